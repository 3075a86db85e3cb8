//! The answers for names under the cluster domain, as CoreDNS's kubernetes plugin
//! gives them: a pure function of the catalog's contents, the question and the zone's
//! settings. `None` means the name is not the cluster's: the server forwards it.
//!
//! ```text
//!  <svc>.<ns>.svc.<domain>                 A/AAAA: the cluster IPs; headless: the ready
//!                                          endpoints' addresses; ExternalName: CNAME
//!  _<port>._<proto>.<svc>.<ns>.svc.<domain> SRV: the named port, target the service
//!                                          (headless: each ready endpoint's name)
//!  <hostname>.<svc>.<ns>.svc.<domain>      A/AAAA: the endpoint with that hostname
//!  <a-b-c-d>.<svc>.<ns>.svc.<domain>       A: the endpoint with that address
//!  <a-b-c-d>.<ns>.pod.<domain>             A: a.b.c.d (CoreDNS's "pods insecure")
//!  anything else under <domain>            NXDOMAIN, with the zone's SOA
//!  a name that exists, another type        NOERROR without answers (NODATA), SOA
//! ```
//!
//! The client's search list makes it ask for names such as
//! `web.shop.svc.cluster.local.shop.svc.cluster.local` first; those end in the domain
//! and so get a quick NXDOMAIN from here rather than a trip upstream.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::catalog::{Contents, EndpointEntry, ServiceEntry};
use crate::wire::{NOERROR, NXDOMAIN, Record, RecordData, Reply, TYPE_ANY, TYPE_CNAME, TYPE_SOA, TYPE_SRV};

/// The zone's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    /// `cluster.local`, lower case, without dots at either end.
    pub domain: String,
    /// Of every record and of negative answers (CoreDNS's kubernetes plugin: 5 s).
    pub ttl: u32,
    /// The SOA's serial.
    pub serial: u32,
}

impl ZoneConfig {
    pub fn new(domain: &str) -> ZoneConfig {
        ZoneConfig {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
            ttl: 5,
            serial: 1,
        }
    }

    fn soa(&self) -> Record {
        Record {
            name: self.domain.clone(),
            ttl: self.ttl,
            data: RecordData::Soa {
                mname: format!("ns.dns.{}", self.domain),
                rname: format!("hostmaster.{}", self.domain),
                serial: self.serial,
                refresh: 7200,
                retry: 1800,
                expire: 86400,
                minimum: self.ttl,
            },
        }
    }
}

/// The reply for `name` (as the client sent it) and `qtype`, or None when the name is
/// not under the cluster domain.
pub fn answer(zone: &ZoneConfig, contents: &Contents, name: &str, qtype: u16) -> Option<Reply> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let relative = if lower == zone.domain {
        ""
    } else {
        lower.strip_suffix(&format!(".{}", zone.domain))?
    };
    let labels: Vec<&str> = if relative.is_empty() {
        Vec::new()
    } else {
        relative.split('.').collect()
    };
    let found = lookup(zone, contents, &labels, qtype);
    let owner = name.trim_end_matches('.').to_string();
    let records = |data: Vec<RecordData>| {
        data.into_iter()
            .map(|data| Record {
                name: owner.clone(),
                ttl: zone.ttl,
                data,
            })
            .collect::<Vec<_>>()
    };
    let mut reply = Reply {
        rcode: NOERROR,
        authoritative: true,
        ..Reply::default()
    };
    match found {
        Found::Nothing => {
            reply.rcode = NXDOMAIN;
            reply.authority.push(zone.soa());
        }
        Found::Data(data, additional) => {
            let wanted: Vec<RecordData> = data
                .into_iter()
                .filter(|d| qtype == TYPE_ANY || d.rtype() == qtype || d.rtype() == TYPE_CNAME)
                .collect();
            if wanted.is_empty() {
                reply.authority.push(zone.soa());
            } else {
                if wanted.iter().any(|d| d.rtype() == TYPE_SRV) {
                    reply.additional = additional;
                }
                reply.answers = records(wanted);
            }
        }
        Found::Apex => {
            if matches!(qtype, TYPE_SOA | TYPE_ANY) {
                reply.answers.push(Record {
                    name: owner.clone(),
                    ..zone.soa()
                });
            } else {
                reply.authority.push(zone.soa());
            }
        }
    }
    Some(reply)
}

/// What a name under the domain stands for.
enum Found {
    /// No such name: NXDOMAIN.
    Nothing,
    /// The zone's apex: its SOA.
    Apex,
    /// The name's records of every type (filtered by the question's type), and the
    /// addresses of SRV targets for the additional section.
    Data(Vec<RecordData>, Vec<Record>),
}

fn lookup(zone: &ZoneConfig, contents: &Contents, labels: &[&str], qtype: u16) -> Found {
    match labels {
        [] => Found::Apex,
        // Names that exist without records of their own.
        ["svc"] | ["pod"] => Found::Data(Vec::new(), Vec::new()),
        [namespace, "svc"] if contents.services_in(namespace).next().is_some() => Found::Data(Vec::new(), Vec::new()),
        [pod_ip, _namespace, "pod"] => match parse_dashed_ip(pod_ip) {
            Some(ip) => Found::Data(vec![RecordData::address(ip)], Vec::new()),
            None => Found::Nothing,
        },
        [service, namespace, "svc"] => match find_service(contents, namespace, service) {
            Some(service) => service_records(zone, contents, service, qtype),
            None => Found::Nothing,
        },
        [endpoint, service, namespace, "svc"] => {
            let Some(service) = find_service(contents, namespace, service) else {
                return Found::Nothing;
            };
            let addresses: Vec<RecordData> = endpoints(contents, service)
                .filter(|e| endpoint_label(e).as_deref() == Some(*endpoint))
                .flat_map(|e| e.addresses.iter().copied().map(RecordData::address))
                .collect();
            if addresses.is_empty() {
                Found::Nothing
            } else {
                Found::Data(addresses, Vec::new())
            }
        }
        [port, protocol, service, namespace, "svc"] => {
            let (Some(port), Some(protocol)) = (port.strip_prefix('_'), protocol.strip_prefix('_')) else {
                return Found::Nothing;
            };
            let Some(service) = find_service(contents, namespace, service) else {
                return Found::Nothing;
            };
            let wanted = |p: &crate::catalog::PortEntry| {
                !p.name.is_empty() && p.name.eq_ignore_ascii_case(port) && p.protocol.eq_ignore_ascii_case(protocol)
            };
            match srv_records(zone, contents, service, &wanted) {
                Found::Data(data, _) if data.is_empty() => Found::Nothing,
                found => found,
            }
        }
        _ => Found::Nothing,
    }
}

fn find_service<'a>(contents: &'a Contents, namespace: &str, name: &str) -> Option<&'a ServiceEntry> {
    contents.services.get(&(namespace.to_string(), name.to_string()))
}

/// The endpoints a name gives: the ready ones (all, with `publishNotReadyAddresses`).
fn endpoints<'a>(contents: &'a Contents, service: &'a ServiceEntry) -> impl Iterator<Item = &'a EndpointEntry> + 'a {
    contents
        .slices_of(&service.namespace, &service.name)
        .flat_map(|slice| &slice.endpoints)
        .filter(|e| e.ready || service.publish_not_ready)
}

fn service_records(zone: &ZoneConfig, contents: &Contents, service: &ServiceEntry, qtype: u16) -> Found {
    if let Some(target) = &service.external_name {
        return Found::Data(vec![RecordData::Cname(target.to_ascii_lowercase())], Vec::new());
    }
    if qtype == TYPE_SRV {
        return srv_records(zone, contents, service, &|p| !p.name.is_empty());
    }
    let addresses: Vec<IpAddr> = if service.headless {
        let unique: BTreeSet<IpAddr> = endpoints(contents, service)
            .flat_map(|e| e.addresses.iter().copied())
            .collect();
        unique.into_iter().collect()
    } else {
        service.cluster_ips.clone()
    };
    Found::Data(addresses.into_iter().map(RecordData::address).collect(), Vec::new())
}

/// SRV records for the service's ports that `wanted` keeps: one per port, at the
/// service's name (headless: one per ready endpoint and port, at the endpoint's name).
fn srv_records(
    zone: &ZoneConfig,
    contents: &Contents,
    service: &ServiceEntry,
    wanted: &dyn Fn(&crate::catalog::PortEntry) -> bool,
) -> Found {
    let service_name = format!("{}.{}.svc.{}", service.name, service.namespace, zone.domain);
    let mut targets: Vec<(u16, String, Vec<IpAddr>)> = Vec::new();
    if service.headless {
        for slice in contents.slices_of(&service.namespace, &service.name) {
            for port in slice.ports.iter().filter(|p| wanted(p)) {
                for endpoint in slice.endpoints.iter().filter(|e| e.ready || service.publish_not_ready) {
                    let Some(label) = endpoint_label(endpoint) else {
                        continue;
                    };
                    targets.push((port.port, format!("{label}.{service_name}"), endpoint.addresses.clone()));
                }
            }
        }
    } else {
        for port in service.ports.iter().filter(|p| wanted(p)) {
            targets.push((port.port, service_name.clone(), service.cluster_ips.clone()));
        }
    }
    let weight = (100 / targets.len().max(1)).max(1) as u16;
    let mut additional = Vec::new();
    let mut seen = BTreeSet::new();
    let mut records = Vec::new();
    for (port, target, addresses) in targets {
        if seen.insert(target.clone()) {
            additional.extend(addresses.into_iter().map(|ip| Record {
                name: target.clone(),
                ttl: zone.ttl,
                data: RecordData::address(ip),
            }));
        }
        records.push(RecordData::Srv {
            priority: 0,
            weight,
            port,
            target,
        });
    }
    Found::Data(records, additional)
}

/// An endpoint's own label: its hostname, else its first address with dashes
/// (`10-244-1-5`), as CoreDNS names endpoints without one.
fn endpoint_label(endpoint: &EndpointEntry) -> Option<String> {
    if let Some(hostname) = &endpoint.hostname {
        return Some(hostname.to_ascii_lowercase());
    }
    endpoint.addresses.first().map(|ip| dashed_ip(*ip))
}

pub fn dashed_ip(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

fn parse_dashed_ip(label: &str) -> Option<IpAddr> {
    (label.replace('-', ".").parse().ok()).or_else(|| label.replace('-', ":").parse().ok())
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod tests;
