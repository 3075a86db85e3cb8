//! What a client asks first: `/version`, and which groups, versions and resources
//! the server has (`/api`, `/apis`, `/api/v1`, `/apis/apps/v1`), kept minimal: each
//! resource with its names, scope, verbs and subresources, from the kind table.

use serde_json::{Value, json};

use super::auth::reviews::REVIEWS;
use super::route::is_pods;
use berth_api::kinds::{KINDS, group_version, group_versions};

/// Kubernetes' `version.Info`, every field present: the Python client refuses a
/// version without `gitCommit`, `gitTreeState`, `buildDate`, `goVersion` or
/// `compiler`. What a build does not record (berth has no build script) reads as
/// Kubernetes' own defaults for an unstamped build, unless the build environment
/// sets `BERTH_GIT_COMMIT`, `BERTH_GIT_TREE_STATE` or `BERTH_BUILD_DATE`.
/// Every field of Kubernetes' `version.Info`, which clients (the Python one) require.
#[cfg(test)]
pub const VERSION_INFO_FIELDS: [&str; 9] = [
    "major",
    "minor",
    "gitVersion",
    "gitCommit",
    "gitTreeState",
    "buildDate",
    "goVersion",
    "compiler",
    "platform",
];

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
        .iter()
        .copied()
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
    for (group, version) in group_versions().iter().copied().filter(|(group, _)| !group.is_empty()) {
        let entry = json!({"groupVersion": group_version(group, version), "version": version});
        match groups.iter_mut().find(|(name, _)| *name == group) {
            Some((_, versions)) => versions.push(entry),
            None => groups.push((group, vec![entry])),
        }
    }
    // Resource metrics: served by this server, not stored (see `metrics`).
    groups.push((
        berth_api::metrics::GROUP,
        vec![
            json!({"groupVersion": format!("{}/{}", berth_api::metrics::GROUP, berth_api::metrics::VERSION),
                    "version": berth_api::metrics::VERSION}),
        ],
    ));
    // The reviews: created to be answered, not stored (see `auth::reviews`).
    for group in review_groups() {
        groups.push((
            group,
            vec![json!({"groupVersion": format!("{group}/v1"), "version": "v1"})],
        ));
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

/// The groups of the reviews, once each, in the order of [`REVIEWS`].
fn review_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for (group, ..) in REVIEWS {
        if !groups.contains(group) {
            groups.push(group);
        }
    }
    groups
}

/// The group version of the reviews `path` names (`/apis/authorization.k8s.io/v1`).
pub fn review_group_version(path: &str) -> Option<(&'static str, &'static str)> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let named = path.strip_prefix("/apis/")?.strip_suffix("/v1")?;
    review_groups()
        .into_iter()
        .find(|group| *group == named)
        .map(|group| (group, "v1"))
}

/// The reviews of `group`: created only.
fn review_resources(group: &str) -> Value {
    let resources: Vec<Value> = REVIEWS
        .iter()
        .filter(|(g, ..)| *g == group)
        .map(|(_, kind, resource, namespaced)| {
            json!({"name": resource, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["create"]})
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, "v1"),
        "resources": resources,
    })
}

/// The resources of one group version, with their subresources.
pub fn resources(group: &str, version: &str) -> Value {
    if review_groups().contains(&group) {
        return review_resources(group);
    }
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
        if **kind == berth_api::kinds::service_account::SERVICE_ACCOUNT {
            let mut token = entry(format!("{}/token", kind.plural), "TokenRequest", &["create"]);
            token["group"] = "authentication.k8s.io".into();
            token["version"] = "v1".into();
            resources.push(token);
        }
        if is_pods(kind) {
            resources.push(entry(format!("{}/log", kind.plural), kind.kind, &["get"]));
            // An Eviction is policy/v1's kind; clients (kubectl drain) look for the
            // group and version here before they post one.
            let mut eviction = entry(format!("{}/eviction", kind.plural), "Eviction", &["create"]);
            eviction["group"] = "policy".into();
            eviction["version"] = "v1".into();
            resources.push(eviction);
            for (subresource, options) in [
                ("exec", "PodExecOptions"),
                ("attach", "PodAttachOptions"),
                ("portforward", "PodPortForwardOptions"),
            ] {
                resources.push(entry(
                    format!("{}/{subresource}", kind.plural),
                    options,
                    &["create", "get"],
                ));
            }
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    })
}

/// The media type of aggregated discovery (`/api` and `/apis` in one answer each),
/// which kubectl asks for first.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client asks for aggregated discovery before the plain lists.
pub fn wants_aggregated(headers: &axum::http::HeaderMap) -> bool {
    super::codec::preferred_form(headers, "APIGroupDiscoveryList", "apidiscovery.k8s.io", &["v2"]).is_some()
}

/// `APIGroupDiscoveryList` (apidiscovery.k8s.io/v2): every group (the core group for
/// `/api`, the named ones for `/apis`) with its versions and their resources, each
/// resource with its subresources.
pub fn aggregated(core: bool) -> Value {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (group, version) in group_versions()
        .iter()
        .copied()
        .filter(|(group, _)| group.is_empty() == core)
    {
        match groups.iter_mut().find(|(name, _)| *name == group) {
            Some((_, versions)) => versions.push(version),
            None => groups.push((group, vec![version])),
        }
    }
    if !core {
        groups.push((berth_api::metrics::GROUP, vec![berth_api::metrics::VERSION]));
        groups.extend(review_groups().into_iter().map(|group| (group, vec!["v1"])));
    }
    let items: Vec<Value> = groups
        .into_iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .into_iter()
                .map(|version| json!({"version": version, "resources": aggregated_resources(group, version), "freshness": "Current"}))
                .collect();
            json!({"metadata": {"name": group}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// One version's resources in the aggregated form, from the same entries as
/// [`resources`].
fn aggregated_resources(group: &str, version: &str) -> Vec<Value> {
    let list = if group == berth_api::metrics::GROUP {
        super::metrics::resources()
    } else {
        resources(group, version)
    };
    let entries = list["resources"].as_array().cloned().unwrap_or_default();
    let kind_of = |entry: &Value| {
        json!({
            "group": entry.get("group").cloned().unwrap_or_else(|| group.into()),
            "version": entry.get("version").cloned().unwrap_or_else(|| version.into()),
            "kind": entry["kind"],
        })
    };
    let mut out: Vec<Value> = Vec::new();
    for entry in &entries {
        let name = entry["name"].as_str().unwrap_or_default();
        match name.split_once('/') {
            None => {
                let mut resource = json!({
                    "resource": name,
                    "responseKind": kind_of(entry),
                    "scope": if entry["namespaced"] == true { "Namespaced" } else { "Cluster" },
                    "singularResource": entry["singularName"],
                    "verbs": entry["verbs"],
                });
                for field in ["shortNames", "categories"] {
                    if let Some(value) = entry.get(field) {
                        resource[field] = value.clone();
                    }
                }
                out.push(resource);
            }
            Some((parent, subresource)) => {
                if let Some(resource) = out.iter_mut().find(|r| r["resource"] == parent) {
                    let sub =
                        json!({"subresource": subresource, "responseKind": kind_of(entry), "verbs": entry["verbs"]});
                    match resource.get_mut("subresources").and_then(Value::as_array_mut) {
                        Some(subresources) => subresources.push(sub),
                        None => resource["subresources"] = json!([sub]),
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_has_every_resource_and_its_subresources() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        let accept = |value: &'static str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(axum::http::header::ACCEPT, axum::http::HeaderValue::from_static(value));
            headers
        };
        assert!(wants_aggregated(&accept(kubectl)));
        assert!(!wants_aggregated(&accept("application/json")));
        assert!(!wants_aggregated(&axum::http::HeaderMap::new()));
        let core = aggregated(true);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        let resources = core["items"][0]["versions"][0]["resources"].as_array().unwrap();
        let pods = resources.iter().find(|r| r["resource"] == "pods").unwrap();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["shortNames"], serde_json::json!(["po"]));
        let subresources: Vec<&str> = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert_eq!(
            subresources,
            ["status", "log", "eviction", "exec", "attach", "portforward"]
        );
        assert_eq!(pods["subresources"][2]["responseKind"]["group"], "policy");
        let named = aggregated(false);
        let groups: Vec<&str> = named["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            groups,
            [
                "apps",
                "events.k8s.io",
                "node.k8s.io",
                "discovery.k8s.io",
                "policy",
                "autoscaling",
                "storage.k8s.io",
                "rbac.authorization.k8s.io",
                "networking.k8s.io",
                "coordination.k8s.io",
                "scheduling.k8s.io",
                "metrics.k8s.io",
                "authorization.k8s.io",
                "authentication.k8s.io"
            ]
        );
        // kubectl top looks for the metrics group here before it asks for metrics.
        let metrics = named["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "metrics.k8s.io")
            .unwrap();
        let metrics = &metrics["versions"][0];
        assert_eq!(metrics["version"], "v1beta1");
        let resources: Vec<(&str, &str, &str)> = metrics["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["resource"].as_str().unwrap(),
                    r["responseKind"]["kind"].as_str().unwrap(),
                    r["scope"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            resources,
            [
                ("nodes", "NodeMetrics", "Cluster"),
                ("pods", "PodMetrics", "Namespaced")
            ]
        );
    }

    #[test]
    fn describes_the_server() {
        let version = version();
        assert_eq!(version["gitVersion"], format!("v{}-berth", env!("CARGO_PKG_VERSION")));
        for field in VERSION_INFO_FIELDS {
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
