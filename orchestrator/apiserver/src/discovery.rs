//! What a client asks first: `/version`, and which groups, versions and resources
//! the server has (`/api`, `/apis`, `/api/v1`, `/apis/apps/v1`), kept minimal: each
//! resource with its names, scope, verbs and subresources, from the kind table.

use serde_json::{Value, json};

use super::route::is_pods;
use berth_api::kinds::{KINDS, group_version, group_versions};

/// Kubernetes' `version.Info`, every field present: the Python client refuses a
/// version without `gitCommit`, `gitTreeState`, `buildDate`, `goVersion` or
/// `compiler`. What a build does not record (berth has no build script) reads as
/// Kubernetes' own defaults for an unstamped build, unless the build environment
/// sets `BERTH_GIT_COMMIT`, `BERTH_GIT_TREE_STATE` or `BERTH_BUILD_DATE`.
pub fn version() -> Value {
    let version = env!("CARGO_PKG_VERSION");
    let mut numbers = version.split('.');
    json!({
        "major": numbers.next().unwrap_or("0"),
        "minor": numbers.next().unwrap_or("0"),
        "gitVersion": format!("v{version}-berth"),
        "gitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or(""),
        "gitTreeState": option_env!("BERTH_GIT_TREE_STATE").unwrap_or(""),
        "buildDate": option_env!("BERTH_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        // Not Go: berth is Rust, built by rustc.
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

pub fn core_versions() -> Value {
    let versions: Vec<&str> = group_versions()
        .into_iter()
        .filter(|(group, _)| group.is_empty())
        .map(|(_, version)| version)
        .collect();
    json!({
        "kind": "APIVersions",
        "versions": versions,
        "serverAddressByClientCIDRs": [],
    })
}

/// The named groups; a group's first version is its preferred one.
pub fn groups() -> Value {
    let mut groups: Vec<(&str, Vec<Value>)> = Vec::new();
    for (group, version) in group_versions().into_iter().filter(|(group, _)| !group.is_empty()) {
        let entry = json!({"groupVersion": group_version(group, version), "version": version});
        match groups.iter_mut().find(|(name, _)| *name == group) {
            Some((_, versions)) => versions.push(entry),
            None => groups.push((group, vec![entry])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let preferred = versions[0].clone();
            json!({
                "name": name,
                "versions": versions,
                "preferredVersion": preferred,
            })
        })
        .collect();
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups,
    })
}

/// The resources of one group version, with their subresources.
pub fn resources(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for kind in KINDS.iter().filter(|k| (k.group, k.version) == (group, version)) {
        let entry = |name: String, kind_name: &str, verbs: &[&str]| {
            json!({
                "name": name,
                "singularName": if name.contains('/') { "" } else { kind.singular },
                "namespaced": kind.namespaced,
                "kind": kind_name,
                "verbs": verbs,
            })
        };
        let mut main = entry(
            kind.plural.to_string(),
            kind.kind,
            &["create", "delete", "get", "list", "patch", "update", "watch"],
        );
        // Left out when empty, as Kubernetes leaves them out.
        if !kind.short_names.is_empty() {
            main["shortNames"] = kind.short_names.into();
        }
        if !kind.categories.is_empty() {
            main["categories"] = kind.categories.into();
        }
        resources.push(main);
        if kind.subresources.status {
            resources.push(entry(
                format!("{}/status", kind.plural),
                kind.kind,
                &["get", "patch", "update"],
            ));
        }
        if kind.subresources.scale {
            resources.push(entry(
                format!("{}/scale", kind.plural),
                "Scale",
                &["get", "patch", "update"],
            ));
        }
        if is_pods(kind) {
            resources.push(entry(format!("{}/log", kind.plural), kind.kind, &["get"]));
            // An Eviction is policy/v1's kind; clients (kubectl drain) look for the
            // group and version here before they post one.
            let mut eviction = entry(format!("{}/eviction", kind.plural), "Eviction", &["create"]);
            eviction["group"] = "policy".into();
            eviction["version"] = "v1".into();
            resources.push(eviction);
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_server() {
        let version = version();
        assert_eq!(version["gitVersion"], format!("v{}-berth", env!("CARGO_PKG_VERSION")));
        for field in [
            "major",
            "minor",
            "gitVersion",
            "gitCommit",
            "gitTreeState",
            "buildDate",
            "goVersion",
            "compiler",
            "platform",
        ] {
            assert!(version[field].is_string(), "{field} is missing: {version}");
        }
        let apps = resources("apps", "v1");
        let names: Vec<&str> = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"deployments") && names.contains(&"deployments/scale"),
            "{names:?}"
        );
        assert!(!names.contains(&"pods"));
        assert_eq!(groups()["groups"][0]["name"], "apps");
    }

    #[test]
    fn pods_offer_evictions_of_policy_v1() {
        let core = resources("", "v1");
        let eviction = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .expect("pods/eviction is listed");
        assert_eq!(eviction["kind"], "Eviction");
        assert_eq!(
            (&eviction["group"], &eviction["version"]),
            (&"policy".into(), &"v1".into())
        );
        assert_eq!(eviction["verbs"], serde_json::json!(["create"]));
    }
}
