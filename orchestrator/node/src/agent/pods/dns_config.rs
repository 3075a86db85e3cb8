//! A pod's `/etc/resolv.conf`, as the kubelet makes it from the pod's `dnsPolicy`
//! and `dnsConfig`, the node's cluster DNS and the host's own file:
//!
//! | dnsPolicy                 | pod network                    | host network    |
//! |---------------------------|--------------------------------|-----------------|
//! | ClusterFirst (default)    | cluster                        | host            |
//! | ClusterFirstWithHostNet   | cluster                        | cluster         |
//! | Default                   | host                           | host            |
//! | None                      | only `dnsConfig`               | only `dnsConfig`|
//!
//! cluster: `nameserver <--cluster-dns>`, `search <ns>.svc.<domain> svc.<domain>
//! <domain>` then the host's searches, `options ndots:5`; host: the host file's
//! nameservers, searches and options. Then `dnsConfig` is merged in: its nameservers
//! and searches appended (duplicates dropped), its options over those of the same
//! name. Finally the kubelet's limits: 3 nameservers, 32 searches in 2048 characters.
//! A node without a cluster DNS gives ClusterFirst pods the host's file (the kubelet
//! then warns with the event MissingClusterDNS).

use std::net::IpAddr;

use berth_api::meta::MetaExt;
use berth_api::objects::Pod;
use berth_dns::resolv::ResolvConf;

const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// What the node says about names: its cluster domain and the nameservers pods
/// are told (none: no cluster DNS here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterNames {
    pub(crate) domain: String,
    pub(crate) nameservers: Vec<IpAddr>,
}

/// What a sandbox's resolv.conf is made from: the node's names and the host's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SandboxDns {
    pub(crate) cluster: ClusterNames,
    pub(crate) host: ResolvConf,
}

/// The pod's resolv.conf (see the module's doc).
pub(crate) fn pod_resolv_conf(pod: &Pod, cluster: &ClusterNames, host: &ResolvConf) -> ResolvConf {
    let host_network = pod.spec.host_network == Some(true);
    let policy = pod.spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let wants_cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "Default" | "None" => false,
        // ClusterFirst and anything validation let through.
        _ => !host_network,
    };
    let mut conf = if policy == "None" {
        ResolvConf::default()
    } else if wants_cluster && !cluster.nameservers.is_empty() {
        let namespace = pod.metadata.namespace();
        let domain = &cluster.domain;
        let mut searches = vec![
            format!("{namespace}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.clone(),
        ];
        searches.extend(host.searches.iter().cloned());
        ResolvConf {
            nameservers: cluster.nameservers.clone(),
            searches: without_duplicates(searches),
            options: vec!["ndots:5".into()],
        }
    } else {
        host.clone()
    };
    if let Some(config) = &pod.spec.dns_config {
        let extra = config.nameservers.iter().flatten().filter_map(|s| s.parse().ok());
        conf.nameservers = without_duplicates(conf.nameservers.into_iter().chain(extra).collect());
        let searches = config
            .searches
            .iter()
            .flatten()
            .map(|s| s.trim_end_matches('.').to_string());
        conf.searches = without_duplicates(conf.searches.into_iter().chain(searches).collect());
        for option in config.options.iter().flatten() {
            let Some(name) = option.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let rendered = match option.value.as_deref().filter(|v| !v.is_empty()) {
                Some(value) => format!("{name}:{value}"),
                None => name.to_string(),
            };
            match conf.options.iter_mut().find(|o| o.split(':').next() == Some(name)) {
                Some(existing) => *existing = rendered,
                None => conf.options.push(rendered),
            }
        }
    }
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches.truncate(MAX_SEARCHES);
    while conf.searches.iter().map(|s| s.len() + 1).sum::<usize>() > MAX_SEARCH_CHARS + 1 {
        conf.searches.pop();
    }
    conf
}

fn without_duplicates<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::objects::PodSpec;
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption};

    fn pod(policy: Option<&str>, host_network: bool, config: Option<PodDNSConfig>) -> Pod {
        let mut pod = Pod::new(
            berth_api::meta::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("shop".into()),
                ..Default::default()
            },
            PodSpec::default(),
        );
        pod.spec.dns_policy = policy.map(Into::into);
        pod.spec.host_network = Some(host_network);
        pod.spec.dns_config = config;
        pod
    }

    fn cluster() -> ClusterNames {
        ClusterNames {
            domain: "cluster.local".into(),
            nameservers: vec!["10.244.1.1".parse().unwrap()],
        }
    }

    fn host() -> ResolvConf {
        ResolvConf::parse("nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n")
    }

    const CLUSTER: &str = "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
                           nameserver 10.244.1.1\noptions ndots:5\n";
    const HOST: &str = "search corp.example\nnameserver 192.0.2.53\noptions edns0\n";

    #[test]
    fn each_policy_with_and_without_host_networking() {
        let cases = [
            (None, false, CLUSTER),
            (Some("ClusterFirst"), false, CLUSTER),
            (Some("ClusterFirst"), true, HOST),
            (Some("ClusterFirstWithHostNet"), true, CLUSTER),
            (Some("ClusterFirstWithHostNet"), false, CLUSTER),
            (Some("Default"), false, HOST),
            (Some("Default"), true, HOST),
        ];
        for (policy, host_network, expected) in cases {
            let conf = pod_resolv_conf(&pod(policy, host_network, None), &cluster(), &host());
            assert_eq!(conf.render(), expected, "{policy:?} hostNetwork={host_network}");
        }
    }

    #[test]
    fn without_a_cluster_dns_cluster_first_gets_the_hosts_file() {
        let none = ClusterNames {
            nameservers: Vec::new(),
            ..cluster()
        };
        assert_eq!(pod_resolv_conf(&pod(None, false, None), &none, &host()).render(), HOST);
    }

    #[test]
    fn dns_config_is_merged_as_the_kubelet_merges_it() {
        let config = PodDNSConfig {
            nameservers: Some(vec!["10.244.1.1".into(), "192.0.2.99".into()]),
            searches: Some(vec!["extra.example.".into(), "svc.cluster.local".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                },
                PodDNSConfigOption {
                    name: Some("single-request".into()),
                    value: None,
                },
            ]),
        };
        let conf = pod_resolv_conf(&pod(None, false, Some(config.clone())), &cluster(), &host());
        assert_eq!(
            conf.render(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example extra.example\n\
             nameserver 10.244.1.1\nnameserver 192.0.2.99\noptions ndots:2 single-request\n"
        );
        let only = pod_resolv_conf(&pod(Some("None"), false, Some(config)), &cluster(), &host());
        assert_eq!(
            only.render(),
            "search extra.example svc.cluster.local\nnameserver 10.244.1.1\nnameserver 192.0.2.99\n\
             options ndots:2 single-request\n"
        );
    }

    #[test]
    fn the_kubelets_limits_hold() {
        let config = PodDNSConfig {
            nameservers: Some((1..=5).map(|i| format!("192.0.2.{i}")).collect()),
            searches: Some((0..40).map(|i| format!("s{i}.example")).collect()),
            options: None,
        };
        let conf = pod_resolv_conf(&pod(None, false, Some(config)), &cluster(), &host());
        assert_eq!(conf.nameservers.len(), 3);
        assert_eq!(conf.nameservers[0], "10.244.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(conf.searches.len(), 32);
    }
}
