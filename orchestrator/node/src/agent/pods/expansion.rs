//! Kubernetes' variable references: `$(NAME)` in a container's `env[].value`,
//! `command` and `args` becomes NAME's value; `$$` is a literal `$` (so `$$(NAME)`
//! stays `$(NAME)`); a reference to a name not defined, or not closed, is left as
//! written. An env value sees the Services' variables and the container's own
//! variables defined before it; command and args see them all. Values from
//! ConfigMaps, Secrets and fields are taken as they are, and the image's
//! ENTRYPOINT and CMD are never expanded.

use std::collections::HashMap;

use crate::runtime::ContainerSpec;

/// `input` with its references to `lookup`'s names replaced.
pub(crate) fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// What of a container's spec is expanded, beside its Services' variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Expansion {
    /// The container's own variables (envFrom and env), in the spec's order.
    pub(crate) own: Vec<String>,
    /// Those whose value is a literal `env[].value`, the ones expanded.
    pub(crate) literal: Vec<String>,
    /// Where the container's own `command`/`args` begin in argv (None: argv is the
    /// image's alone).
    pub(crate) argv_from: Option<usize>,
}

/// Expands `spec` in place: its own literal env values in order, then its command
/// and args, over `services` (the Services' variables it gets) and its own.
pub(crate) fn apply(spec: &mut ContainerSpec, services: &[(String, String)], expansion: &Expansion) {
    if expansion.literal.is_empty() && expansion.argv_from.is_none() {
        return;
    }
    let mut known: HashMap<String, String> = services.iter().cloned().collect();
    for (name, value) in spec.env.iter_mut() {
        if !expansion.own.contains(name) {
            continue;
        }
        if expansion.literal.contains(name) {
            *value = expand(value, |n| known.get(n).cloned());
        }
        known.insert(name.clone(), value.clone());
    }
    if let Some(from) = expansion.argv_from {
        for arg in spec.argv.iter_mut().skip(from) {
            *arg = expand(arg, |n| known.get(n).cloned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn references_escapes_and_what_is_left_alone() {
        let vars = with(&[("HOST", "db"), ("PORT", "5432"), ("EMPTY", "")]);
        assert_eq!(expand("$(HOST):$(PORT)", &vars), "db:5432");
        assert_eq!(expand("x$(EMPTY)y", &vars), "xy");
        assert_eq!(expand("$$(HOST)", &vars), "$(HOST)", "$$ escapes");
        assert_eq!(expand("$$$(HOST)", &vars), "$db");
        assert_eq!(expand("$(MISSING) and $(date)", &vars), "$(MISSING) and $(date)");
        assert_eq!(
            expand("cost: $5, $HOST, $(unclosed", &vars),
            "cost: $5, $HOST, $(unclosed"
        );
        assert_eq!(expand("end$", &vars), "end$");
        assert_eq!(expand("", &vars), "");
    }

    #[test]
    fn env_values_see_what_comes_before_and_argv_sees_all_but_the_images() {
        let mut spec = ContainerSpec {
            env: vec![
                ("PATH".into(), "/bin:$(HOME)".into()),
                ("BASE".into(), "/srv".into()),
                ("DATA".into(), "$(BASE)/data:$(LATER):$(WEB_SERVICE_HOST)".into()),
                ("FROM_SECRET".into(), "$(BASE)".into()),
                ("LATER".into(), "late".into()),
            ],
            argv: vec!["/entrypoint".into(), "--data=$(DATA)".into(), "$(LATER)".into()],
            ..ContainerSpec::default()
        };
        let expansion = Expansion {
            own: vec!["BASE".into(), "DATA".into(), "FROM_SECRET".into(), "LATER".into()],
            literal: vec!["BASE".into(), "DATA".into(), "LATER".into()],
            argv_from: Some(1),
        };
        let services = [("WEB_SERVICE_HOST".to_string(), "10.96.0.9".to_string())];
        apply(&mut spec, &services, &expansion);
        let env: HashMap<_, _> = spec.env.iter().cloned().collect();
        assert_eq!(env["PATH"], "/bin:$(HOME)", "the image's variables are not expanded");
        assert_eq!(
            env["DATA"], "/srv/data:$(LATER):10.96.0.9",
            "only what comes before, and the Services'"
        );
        assert_eq!(env["FROM_SECRET"], "$(BASE)", "a value from a Secret is taken as it is");
        assert_eq!(
            spec.argv,
            ["/entrypoint", "--data=/srv/data:$(LATER):10.96.0.9", "late"]
        );
    }
}
