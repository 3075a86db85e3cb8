//! Resource types as the command line names them (`po`, `pods`, `deployment.apps`,
//! `deploy/web`), and the REST paths they are served at.

use std::ops::Deref;

use berth_api::kinds::{KINDS, KindDescriptor};

/// One kind of object, with the names kubectl users type for it: its descriptor
/// in the kind table, and what the CLI makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo(&'static KindDescriptor);

impl Deref for KindInfo {
    type Target = KindDescriptor;

    fn deref(&self) -> &KindDescriptor {
        self.0
    }
}

/// The kinds the CLI names: each once, in the group version it is stored in (events
/// are core/v1 Events here, as kubectl's `get events` shows them).
pub fn all_kinds() -> Vec<KindInfo> {
    KINDS
        .iter()
        .filter(|k| k.conversion.is_none())
        .map(|&k| KindInfo(k))
        .collect()
}

impl KindInfo {
    /// `deployment.apps` or `pod`, as kubectl prefixes names in its messages.
    pub fn qualified(&self) -> String {
        self.qualified_singular()
    }

    /// The collection with query parameters (values percent-encoded); empty values
    /// are left out.
    pub fn collection_url(&self, namespace: Option<&str>, params: &[(&str, &str)]) -> String {
        let query: Vec<String> = params
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| format!("{key}={}", encode_query_value(value)))
            .collect();
        if query.is_empty() {
            self.collection_path(namespace)
        } else {
            format!("{}?{}", self.collection_path(namespace), query.join("&"))
        }
    }
}

/// Finds a kind by any of kubectl's spellings, case-insensitively: `pods`, `pod`,
/// `po`, `Pod`, and with the group `deployments.apps` or `deployment.v1.apps`.
pub fn lookup(word: &str) -> Option<KindInfo> {
    let word = word.to_ascii_lowercase();
    let (name, group) = word.split_once('.').unwrap_or((&word, ""));
    all_kinds().into_iter().find(|k| {
        let group_matches =
            group.is_empty() || group == k.group || group == format!("{}.{}", k.version, k.group).trim_end_matches('.');
        group_matches && (name == k.plural || name == k.singular || k.short_names.contains(&name))
    })
}

/// What `berth get flurbs` says.
pub fn unknown_kind(word: &str) -> String {
    let known: Vec<String> = all_kinds()
        .iter()
        .map(|k| match k.short_names {
            [] => k.plural.to_string(),
            short => format!("{} ({})", k.plural, short.join(", ")),
        })
        .collect();
    format!(
        "the server doesn't have a resource type {word:?}; berth knows {}",
        known.join(", ")
    )
}

/// A kind and the names asked for (none: every object of the kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: KindInfo,
    pub names: Vec<String>,
}

/// Reads kubectl's ways of naming objects: `KIND[,KIND...] [NAME...]` or
/// `KIND/NAME...`; objects of one kind are grouped, in the order given.
pub fn parse_targets(args: &[String]) -> Result<Vec<Target>, String> {
    let Some(first) = args.first() else {
        return Err(format!(
            "you must specify the type of resource: {}",
            all_kinds().iter().map(|k| k.plural).collect::<Vec<_>>().join(", ")
        ));
    };
    if first.contains('/') {
        let mut targets: Vec<Target> = Vec::new();
        for arg in args {
            let Some((word, name)) = arg.split_once('/') else {
                return Err(format!(
                    "there is no need to specify a resource type as a separate argument when passing \
                     arguments in resource/name form (e.g. 'berth get resource/<resource_name>' instead of \
                     'berth get resource resource/<resource_name>'); {arg:?} has no type"
                ));
            };
            let kind = lookup(word).ok_or_else(|| unknown_kind(word))?;
            if name.is_empty() {
                return Err(format!("{arg:?}: the name after '/' is missing"));
            }
            match targets.last_mut() {
                Some(last) if last.kind == kind => last.names.push(name.to_string()),
                _ => targets.push(Target {
                    kind,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(targets);
    }
    let names: Vec<String> = args[1..].to_vec();
    if let Some(slashed) = names.iter().find(|n| n.contains('/')) {
        return Err(format!(
            "there is no need to specify a resource type as a separate argument when passing arguments in \
             resource/name form (e.g. 'berth get resource/<resource_name>' instead of 'berth get resource \
             resource/<resource_name>'); got {first:?} and {slashed:?}"
        ));
    }
    first
        .split(',')
        .filter(|word| !word.is_empty())
        .map(|word| {
            Ok(Target {
                kind: lookup(word).ok_or_else(|| unknown_kind(word))?,
                names: names.clone(),
            })
        })
        .collect()
}

/// Percent-encodes a query parameter's value (`app=web,tier=x` → `app%3Dweb%2Ctier%3Dx`).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn every_kind_has_cli_names() {
        assert_eq!(
            all_kinds().len(),
            KINDS.iter().filter(|k| k.conversion.is_none()).count()
        );
        for kind in all_kinds() {
            for word in [kind.plural, kind.singular].iter().chain(kind.short_names) {
                assert_eq!(lookup(word), Some(kind), "{word}");
            }
        }
        assert_eq!(
            unknown_kind("flurbs"),
            "the server doesn't have a resource type \"flurbs\"; berth knows namespaces (ns), nodes (no), \
             pods (po), replicasets (rs), deployments (deploy), events (ev), secrets, configmaps (cm), \
             runtimeclasses, services (svc), endpointslices, poddisruptionbudgets (pdb), \
             horizontalpodautoscalers (hpa), statefulsets (sts), controllerrevisions, persistentvolumes (pv), \
             persistentvolumeclaims (pvc), storageclasses (sc), roles, clusterroles, rolebindings, \
             clusterrolebindings, resourcequotas (quota), limitranges (limits), serviceaccounts (sa), \
             networkpolicies (netpol), leases, priorityclasses (pc)"
        );
    }

    #[test]
    fn aliases_as_kubectl_spells_them() {
        for (words, kind) in [
            (&["po", "pod", "pods", "Pod", "PODS"][..], "Pod"),
            (
                &[
                    "deploy",
                    "deployment",
                    "deployments",
                    "deployments.apps",
                    "deployment.v1.apps",
                ],
                "Deployment",
            ),
            (&["rs", "replicaset", "replicasets", "replicasets.apps"], "ReplicaSet"),
            (&["no", "node", "nodes"], "Node"),
            (&["ns", "namespace", "namespaces"], "Namespace"),
        ] {
            for word in words {
                assert_eq!(lookup(word).map(|k| k.kind), Some(kind), "{word}");
            }
        }
        assert_eq!(lookup("flurbs"), None);
        assert_eq!(lookup("pods.apps"), None, "pods are in the core group");
        assert_eq!(lookup("deploymentz"), None);
    }

    #[test]
    fn paths_and_qualified_names() {
        let deploy = lookup("deploy").unwrap();
        assert_eq!(deploy.qualified(), "deployment.apps");
        assert_eq!(
            deploy.object_path("default", "web"),
            "/apis/apps/v1/namespaces/default/deployments/web"
        );
        assert_eq!(deploy.collection_path(None), "/apis/apps/v1/deployments");
        let pod = lookup("po").unwrap();
        assert_eq!(pod.qualified(), "pod");
        assert_eq!(pod.collection_path(Some("kube")), "/api/v1/namespaces/kube/pods");
        assert_eq!(pod.collection_path(None), "/api/v1/pods");
        let node = lookup("no").unwrap();
        assert_eq!(node.object_path("default", "n1"), "/api/v1/nodes/n1", "cluster-scoped");
        assert_eq!(
            pod.collection_url(None, &[("labelSelector", "app=web"), ("fieldSelector", "")]),
            "/api/v1/pods?labelSelector=app%3Dweb"
        );
        assert_eq!(pod.collection_url(Some("a"), &[]), "/api/v1/namespaces/a/pods");
    }

    #[test]
    fn targets_in_both_forms() {
        let targets = parse_targets(&args(&["deployment/web"])).unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].kind.kind, "Deployment");
        assert_eq!(targets[0].names, ["web"]);

        let targets = parse_targets(&args(&["po", "a", "b"])).unwrap();
        assert_eq!(
            (targets[0].kind.kind, targets[0].names.clone()),
            ("Pod", args(&["a", "b"]))
        );

        let targets = parse_targets(&args(&["deploy/a", "deploy/b", "po/c"])).unwrap();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].names, ["a", "b"]);
        assert_eq!(targets[1].kind.kind, "Pod");

        let targets = parse_targets(&args(&["pods,deploy"])).unwrap();
        assert_eq!(
            targets.iter().map(|t| t.kind.kind).collect::<Vec<_>>(),
            ["Pod", "Deployment"]
        );
        assert!(targets.iter().all(|t| t.names.is_empty()));

        let err = parse_targets(&args(&["flurbs"])).unwrap_err();
        assert!(err.contains("\"flurbs\""), "{err}");
        assert!(parse_targets(&args(&["pods", "deploy/web"])).is_err());
        assert!(parse_targets(&args(&["deploy/web", "pods"])).is_err());
        assert!(parse_targets(&args(&["deploy/"])).is_err());
        assert!(parse_targets(&[]).is_err());
    }

    #[test]
    fn selectors_are_encoded() {
        assert_eq!(encode_query_value("app=web,tier=x"), "app%3Dweb%2Ctier%3Dx");
        assert_eq!(encode_query_value("a.b-c_d~"), "a.b-c_d~");
    }
}
