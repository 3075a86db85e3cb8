//! `berth describe namespace`.

use super::text::{Text, meta_lines};
use berth_api::objects::Namespace;

pub fn namespace(ns: &Namespace) -> String {
    let mut text = Text::default();
    text.line(0, format!("Name:\t{}", ns.metadata.name));
    meta_lines(&mut text, &ns.metadata);
    let phase = if ns.status.phase.is_empty() {
        "Active"
    } else {
        &ns.status.phase
    };
    text.line(0, format!("Status:\t{phase}"));
    text.finish()
}
