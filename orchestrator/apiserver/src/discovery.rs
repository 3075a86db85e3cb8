//! What a client asks first: `/version`, and which groups, versions and resources
//! the server has (`/api`, `/apis`, `/api/v1`, `/apis/apps/v1`), kept minimal.

use serde_json::{Value, json};

use super::route::SERVED;

pub fn version() -> Value {
    let version = env!("CARGO_PKG_VERSION");
    let mut numbers = version.split('.');
    json!({
        "major": numbers.next().unwrap_or("0"),
        "minor": numbers.next().unwrap_or("0"),
        "gitVersion": format!("v{version}-berth"),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    })
}

pub fn groups() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{
            "name": "apps",
            "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
        }],
    })
}

/// The resources of one group version, with their subresources.
pub fn resources(group_version: &str) -> Value {
    let mut resources = Vec::new();
    for kind in SERVED.iter().filter(|k| k.api_version == group_version) {
        let entry = |name: String, kind_name: &str, verbs: &[&str]| {
            json!({
                "name": name,
                "singularName": if name.contains('/') { String::new() } else { kind.kind.to_lowercase() },
                "namespaced": kind.namespaced,
                "kind": kind_name,
                "verbs": verbs,
            })
        };
        resources.push(entry(
            kind.resource.to_string(),
            kind.kind,
            &["create", "delete", "get", "list", "patch", "update", "watch"],
        ));
        resources.push(entry(
            format!("{}/status", kind.resource),
            kind.kind,
            &["get", "patch", "update"],
        ));
        if kind.is_scalable() {
            resources.push(entry(
                format!("{}/scale", kind.resource),
                "Scale",
                &["get", "patch", "update"],
            ));
        }
        if kind.resource == "pods" {
            resources.push(entry("pods/log".into(), "Pod", &["get"]));
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_server() {
        assert_eq!(version()["gitVersion"], format!("v{}-berth", env!("CARGO_PKG_VERSION")));
        let apps = resources("apps/v1");
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
}
