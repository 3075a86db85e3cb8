//! resolv.conf files: the host's, read for the server's upstreams and the pods'
//! search lists, and the pods', written by the agent.
//!
//! A host whose file names only a loopback stub (systemd-resolved's 127.0.0.53)
//! hides its real resolvers: a pod cannot reach the host's loopback, so, as kubeadm
//! points the kubelet at it, the file systemd-resolved keeps of the real ones
//! ([`SYSTEMD_RESOLVED_UPSTREAMS`]) is read instead when it exists.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of the resolvers behind its stub.
pub const SYSTEMD_RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";

/// The parts of a resolv.conf the cluster uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    /// `search` (or `domain`) entries, without trailing dots.
    pub searches: Vec<String>,
    /// `options` entries as written (`ndots:5`, `edns0`).
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Reads resolv.conf text as glibc does: the last `search` or `domain` line wins;
    /// comments start with `#` or `;`; unparsable nameservers are skipped.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A scoped IPv6 address (`fe80::1%eth0`) loses its zone: pods
                    // have other interfaces.
                    if let Some(ip) = words.next().and_then(|w| w.split('%').next()?.parse().ok()) {
                        conf.nameservers.push(ip);
                    }
                }
                Some("search") | Some("domain") => {
                    conf.searches = words
                        .map(|w| w.trim_end_matches('.').to_string())
                        .filter(|w| !w.is_empty())
                        .collect();
                }
                Some("options") => conf.options.extend(words.map(String::from)),
                _ => {}
            }
        }
        conf
    }

    /// The file's text, as container runtimes write a pod's.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for server in &self.nameservers {
            out.push_str(&format!("nameserver {server}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }

    /// Whether every nameserver is on loopback (or there is none).
    pub fn only_loopback(&self) -> bool {
        self.nameservers.iter().all(IpAddr::is_loopback)
    }
}

/// The host's resolver configuration from `path`, or systemd-resolved's upstream file
/// when `path` names only a loopback stub and that file exists (see the module's doc).
/// A missing file reads as empty.
pub fn host_resolv_conf(path: &Path) -> ResolvConf {
    let read = |p: &Path| std::fs::read_to_string(p).map(|t| ResolvConf::parse(&t)).ok();
    let conf = read(path).unwrap_or_default();
    if conf.only_loopback()
        && !conf.nameservers.is_empty()
        && let Some(upstreams) = read(&PathBuf::from(SYSTEMD_RESOLVED_UPSTREAMS)).filter(|u| !u.only_loopback())
    {
        return ResolvConf {
            nameservers: upstreams.nameservers,
            ..conf
        };
    }
    conf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_file_is_read_as_glibc_reads_it() {
        let conf = ResolvConf::parse(
            "# generated\n\
             nameserver 10.0.0.2\n\
             nameserver not-an-address\n\
             nameserver fe80::1%eth0 ; scoped\n\
             domain old.example\n\
             search corp.example. lab.example\n\
             options ndots:2 edns0\n",
        );
        assert_eq!(
            conf.nameservers,
            ["10.0.0.2".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]
        );
        assert_eq!(
            conf.searches,
            ["corp.example", "lab.example"],
            "the last search line wins"
        );
        assert_eq!(conf.options, ["ndots:2", "edns0"]);
    }

    #[test]
    fn rendering_reads_back() {
        let conf = ResolvConf {
            nameservers: vec!["10.244.1.1".parse().unwrap()],
            searches: vec!["shop.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            conf.render(),
            "search shop.svc.cluster.local svc.cluster.local\nnameserver 10.244.1.1\noptions ndots:5\n"
        );
        assert_eq!(ResolvConf::parse(&conf.render()), conf);
    }

    #[test]
    fn a_file_that_is_missing_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(host_resolv_conf(&dir.path().join("none")), ResolvConf::default());
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.53\n").unwrap();
        assert_eq!(
            host_resolv_conf(&path).nameservers,
            ["192.0.2.53".parse::<IpAddr>().unwrap()]
        );
    }
}
