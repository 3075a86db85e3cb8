//! A pod's DNS fields, checked as Kubernetes checks them: `dnsPolicy`, `dnsConfig`
//! (at most 3 nameservers, each an IP address; at most 32 search domains, 2048
//! characters in all; options with names), and `hostname`/`subdomain` (DNS labels,
//! which name the pod under a headless Service).

use super::{Errors, err, is_dns_label, is_dns_subdomain};
use crate::objects::PodSpec;

const POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

const LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
                             '-', and must start and end with an alphanumeric character";

pub(super) fn pod_dns(spec: &PodSpec, path: &str, errors: &mut Errors) {
    let policy = spec.dns_policy.as_deref().unwrap_or_default();
    if !policy.is_empty() && !POLICIES.contains(&policy) {
        let supported: Vec<String> = POLICIES.iter().map(|p| format!("{p:?}")).collect();
        err(
            errors,
            format!("{path}.dnsPolicy"),
            format!(
                "Unsupported value: {policy:?}: supported values: {}",
                supported.join(", ")
            ),
        );
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty())
            && !is_dns_label(value)
        {
            err(
                errors,
                format!("{path}.{field}"),
                format!("Invalid value: {value:?}: {LABEL_MESSAGE}"),
            );
        }
    }
    let config = spec.dns_config.as_ref();
    if policy == "None" {
        match config {
            None => err(
                errors,
                format!("{path}.dnsConfig"),
                "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            ),
            Some(c) if c.nameservers.as_ref().is_none_or(Vec::is_empty) => err(
                errors,
                format!("{path}.dnsConfig.nameservers"),
                "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
            ),
            Some(_) => {}
        }
    }
    let Some(config) = config else { return };
    let at = format!("{path}.dnsConfig");
    let nameservers = config.nameservers.as_deref().unwrap_or_default();
    if nameservers.len() > MAX_NAMESERVERS {
        err(
            errors,
            format!("{at}.nameservers"),
            format!("Invalid value: {nameservers:?}: must not have more than {MAX_NAMESERVERS} nameservers"),
        );
    }
    for (i, server) in nameservers.iter().enumerate() {
        if server.parse::<std::net::IpAddr>().is_err() {
            err(
                errors,
                format!("{at}.nameservers[{i}]"),
                format!("Invalid value: {server:?}: must be a valid IP address"),
            );
        }
    }
    let searches = config.searches.as_deref().unwrap_or_default();
    if searches.len() > MAX_SEARCHES {
        err(
            errors,
            format!("{at}.searches"),
            format!("Invalid value: {searches:?}: must not have more than {MAX_SEARCHES} search paths"),
        );
    }
    let chars = searches.iter().map(String::len).sum::<usize>() + searches.len().saturating_sub(1);
    if chars > MAX_SEARCH_CHARS {
        err(
            errors,
            format!("{at}.searches"),
            format!(
                "Invalid value: {searches:?}: must not have more than {MAX_SEARCH_CHARS} characters (including spaces) in the search list"
            ),
        );
    }
    for (i, search) in searches.iter().enumerate() {
        let name = search.strip_suffix('.').unwrap_or(search);
        if !is_dns_subdomain(name) {
            err(
                errors,
                format!("{at}.searches[{i}]"),
                format!(
                    "Invalid value: {search:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
                ),
            );
        }
    }
    for (i, option) in config.options.iter().flatten().enumerate() {
        if option.name.as_deref().is_none_or(str::is_empty) {
            err(
                errors,
                format!("{at}.options[{i}].name"),
                "Required value: Option.Name must not be empty",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption};

    fn check(spec: PodSpec) -> Vec<String> {
        let mut errors = Vec::new();
        pod_dns(&spec, "spec", &mut errors);
        errors.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn good_dns_fields_pass() {
        let spec = PodSpec {
            dns_policy: Some("None".into()),
            hostname: Some("db-0".into()),
            subdomain: Some("db".into()),
            dns_config: Some(PodDNSConfig {
                nameservers: Some(vec!["192.0.2.53".into(), "2001:db8::53".into()]),
                searches: Some(vec!["corp.example.".into(), "lab.example".into()]),
                options: Some(vec![PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                }]),
            }),
            ..Default::default()
        };
        assert_eq!(check(spec), Vec::<String>::new());
    }

    #[test]
    fn bad_dns_fields_are_refused_by_name() {
        let spec = PodSpec {
            dns_policy: Some("Cluster".into()),
            hostname: Some("Db_0".into()),
            dns_config: Some(PodDNSConfig {
                nameservers: Some(vec!["1.1.1.1".into(), "2.2.2.2".into(), "3.3.3.3".into(), "dns".into()]),
                searches: Some(vec!["bad..name".into()]),
                options: Some(vec![PodDNSConfigOption::default()]),
            }),
            ..Default::default()
        };
        let errors = check(spec);
        let fields: Vec<&str> = errors.iter().map(|e| e.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "spec.dnsPolicy",
                "spec.hostname",
                "spec.dnsConfig.nameservers",
                "spec.dnsConfig.nameservers[3]",
                "spec.dnsConfig.searches[0]",
                "spec.dnsConfig.options[0].name"
            ]
        );
        let none = PodSpec {
            dns_policy: Some("None".into()),
            ..Default::default()
        };
        assert_eq!(
            check(none),
            ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]
        );
    }
}
