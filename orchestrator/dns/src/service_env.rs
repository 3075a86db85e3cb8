//! The environment variables the kubelet gives every container for the Services that
//! exist when it starts: `<SVC>_SERVICE_HOST`/`_PORT`/`_PORT_<NAME>`, and the Docker
//! link ones (`<SVC>_PORT`, `<SVC>_PORT_<port>_<PROTO>` and its `_PROTO`, `_PORT`,
//! `_ADDR`). Those of the pod's namespace come with `enableServiceLinks` (the
//! default); `kubernetes` of `default` always does, unless the namespace has a
//! Service of that name. Services without a cluster IP (headless, ExternalName) give
//! none.

use std::collections::BTreeMap;

use crate::catalog::{Contents, ServiceEntry};

/// The kubelet's "master services": named whatever a pod's links are.
const MASTER_NAMESPACE: &str = "default";
const MASTER_SERVICES: &[&str] = &["kubernetes"];

/// The variables for a container of a pod in `namespace`, ordered by Service name.
pub fn service_env(contents: &Contents, namespace: &str, enable_service_links: bool) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &ServiceEntry> = BTreeMap::new();
    for name in MASTER_SERVICES {
        if let Some(service) = contents
            .services
            .get(&(MASTER_NAMESPACE.to_string(), name.to_string()))
            .filter(|s| s.cluster_ip().is_some())
        {
            chosen.insert(name, service);
        }
    }
    if enable_service_links {
        for service in contents.services_in(namespace).filter(|s| s.cluster_ip().is_some()) {
            chosen.insert(&service.name, service);
        }
    }
    chosen.values().flat_map(|s| variables(s)).collect()
}

/// `my-svc` → `MY_SVC`.
fn variable_name(name: &str) -> String {
    name.replace('-', "_").to_ascii_uppercase()
}

fn variables(service: &ServiceEntry) -> Vec<(String, String)> {
    let (Some(ip), Some(first)) = (service.cluster_ip(), service.ports.first()) else {
        return Vec::new();
    };
    let prefix = variable_name(&service.name);
    let ip = ip.to_string();
    let mut out = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.clone()),
        (format!("{prefix}_SERVICE_PORT"), first.port.to_string()),
    ];
    for port in service.ports.iter().filter(|p| !p.name.is_empty()) {
        out.push((
            format!("{prefix}_SERVICE_PORT_{}", variable_name(&port.name)),
            port.port.to_string(),
        ));
    }
    // Docker's links: an IPv6 address in brackets in the URLs.
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.clone()
    };
    for (index, port) in service.ports.iter().enumerate() {
        let protocol = port.protocol.to_ascii_lowercase();
        let url = format!("{protocol}://{host}:{}", port.port);
        if index == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, port.protocol.to_ascii_uppercase());
        out.push((format!("{port_prefix}_PROTO"), protocol));
        out.push((format!("{port_prefix}_PORT"), port.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.clone()));
        out.push((port_prefix, url));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::PortEntry;

    fn service(namespace: &str, name: &str, ip: Option<&str>, ports: &[(&str, u16, &str)]) -> ServiceEntry {
        ServiceEntry {
            namespace: namespace.into(),
            name: name.into(),
            cluster_ips: ip.map(|i| i.parse().unwrap()).into_iter().collect(),
            headless: ip.is_none(),
            external_name: None,
            ports: ports
                .iter()
                .map(|(name, port, protocol)| PortEntry {
                    name: name.to_string(),
                    port: *port,
                    protocol: protocol.to_string(),
                })
                .collect(),
            publish_not_ready: false,
        }
    }

    fn contents(services: Vec<ServiceEntry>) -> Contents {
        let mut contents = Contents::default();
        for s in services {
            contents.services.insert((s.namespace.clone(), s.name.clone()), s);
        }
        contents
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_multi_port_service_gives_the_kubelets_variables() {
        let env = service_env(
            &contents(vec![service(
                "shop",
                "redis-primary",
                Some("10.96.0.11"),
                &[("", 6379, "TCP"), ("metrics", 9121, "TCP"), ("gossip", 7000, "UDP")],
            )]),
            "shop",
            true,
        );
        let expected = [
            ("REDIS_PRIMARY_SERVICE_HOST", "10.96.0.11"),
            ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_METRICS", "9121"),
            ("REDIS_PRIMARY_SERVICE_PORT_GOSSIP", "7000"),
            ("REDIS_PRIMARY_PORT", "tcp://10.96.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.96.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.96.0.11"),
            ("REDIS_PRIMARY_PORT_7000_UDP", "udp://10.96.0.11:7000"),
            ("REDIS_PRIMARY_PORT_7000_UDP_PROTO", "udp"),
        ];
        for (name, value) in expected {
            assert_eq!(get(&env, name), Some(value), "{name} in {env:?}");
        }
        assert_eq!(env.len(), 4 + 1 + 3 * 4);
    }

    #[test]
    fn only_the_namespaces_services_with_a_cluster_ip_and_kubernetes_always() {
        let contents = contents(vec![
            service("default", "kubernetes", Some("10.96.0.1"), &[("https", 443, "TCP")]),
            service("shop", "web", Some("10.96.0.20"), &[("http", 80, "TCP")]),
            service("shop", "db", None, &[("pg", 5432, "TCP")]),
            service("other", "cache", Some("10.96.0.30"), &[("", 11211, "TCP")]),
        ]);
        let env = service_env(&contents, "shop", true);
        assert_eq!(get(&env, "WEB_SERVICE_HOST"), Some("10.96.0.20"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get(&env, "DB_SERVICE_HOST"), None, "headless: no variables");
        assert_eq!(get(&env, "CACHE_SERVICE_HOST"), None, "another namespace's");

        let without_links = service_env(&contents, "shop", false);
        assert_eq!(get(&without_links, "WEB_SERVICE_HOST"), None);
        assert_eq!(get(&without_links, "KUBERNETES_SERVICE_PORT"), Some("443"));
    }

    #[test]
    fn a_namespaces_own_kubernetes_service_wins() {
        let contents = contents(vec![
            service("default", "kubernetes", Some("10.96.0.1"), &[("https", 443, "TCP")]),
            service("shop", "kubernetes", Some("10.96.0.99"), &[("", 8443, "TCP")]),
        ]);
        let env = service_env(&contents, "shop", true);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.99"));
        assert_eq!(env.iter().filter(|(k, _)| k == "KUBERNETES_SERVICE_HOST").count(), 1);
    }
}
