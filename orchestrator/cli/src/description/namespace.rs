//! `berth describe namespace`.

use super::text::{Text, meta_lines};
use crate::table::text as field;
use berth_api::meta::MetaExt;
use berth_api::objects::Namespace;

pub fn namespace(ns: &Namespace) -> String {
    let mut text = Text::default();
    text.line(0, format!("Name:\t{}", ns.metadata.name()));
    meta_lines(&mut text, &ns.metadata);
    let phase = match field(&ns.status.phase) {
        "" => "Active",
        phase => phase,
    };
    text.line(0, format!("Status:\t{phase}"));
    text.finish()
}
