//! The names of berth's iptables chains. Every name starts with `BERTH-` and is
//! scoped to one proxy: agents that share a host (`berth up`, each with a pod bridge
//! of its own) keep their own chains, so one agent's exit or restart never removes
//! rules another still uses, as the pods' masquerade exemption is kept per bridge
//! (network/no_masquerade.rs).
//!
//! ```text
//!  BERTH-SVCS-<tag>   nat: every service's entry point (jumped from PREROUTING, OUTPUT)
//!                     filter: REJECT for cluster IPs without endpoints (OUTPUT, FORWARD)
//!  BERTH-NP-<tag>     nat: NodePorts (last rule of BERTH-SVCS, for local addresses)
//!                     filter: REJECT (DROP: none local under the Local policy) for
//!                     NodePorts and external IPs without endpoints (INPUT, FORWARD)
//!  BERTH-POST-<tag>   nat: MASQUERADE of marked packets (POSTROUTING)
//!  BERTH-FWD-<tag>    filter: lets marked and established traffic through (FORWARD)
//!  BERTH-SVC-<code><hash>  a service port's balancing over its endpoints
//!  BERTH-SVL-<code><hash>  the same over this node's endpoints (Local policies)
//!  BERTH-EXT-<code><hash>  a service port's NodePort and external IP traffic
//!  BERTH-SEP-<code><hash>  one endpoint: hairpin mark, affinity, DNAT
//! ```
//!
//! `<tag>` is the proxy's tag (the pod bridge's name, at most 15 characters);
//! `<code>` is 4 characters of a hash of it, so that every chain of one proxy is found
//! by its name alone (cleanup after a killed agent). iptables takes chain names of at
//! most 28 characters; these have at most 26.

use sha2::{Digest, Sha256};

/// The longest tag a proxy takes (an interface name's length).
pub const MAX_TAG_LEN: usize = 15;

/// The prefixes of the per-service chains.
pub const PER_SERVICE_PREFIXES: [&str; 4] = ["BERTH-SVC-", "BERTH-SVL-", "BERTH-EXT-", "BERTH-SEP-"];

/// Tells the chains of one writer of berth's rules (the service proxy, the
/// network policy filter) from everyone else's, so that its cleanup takes its own.
pub trait ChainOwner {
    fn is_own(&self, chain: &str) -> bool;
}

/// The chain names of one proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainNames {
    tag: String,
    code: String,
}

impl ChainNames {
    /// The names of the proxy tagged `tag` (at most [`MAX_TAG_LEN`] characters).
    pub fn new(tag: &str) -> ChainNames {
        assert!(
            !tag.is_empty() && tag.len() <= MAX_TAG_LEN,
            "a proxy tag has 1 to {MAX_TAG_LEN} characters: {tag:?}"
        );
        ChainNames {
            tag: tag.to_string(),
            code: hash32(&["tag", tag], 4),
        }
    }

    pub fn services(&self) -> String {
        format!("BERTH-SVCS-{}", self.tag)
    }

    pub fn node_ports(&self) -> String {
        format!("BERTH-NP-{}", self.tag)
    }

    pub fn postrouting(&self) -> String {
        format!("BERTH-POST-{}", self.tag)
    }

    pub fn forward(&self) -> String {
        format!("BERTH-FWD-{}", self.tag)
    }

    /// A service port's chain (`kind`: "SVC", "SVL" or "EXT").
    pub fn service_port(&self, kind: &str, display_name: &str, protocol: &str) -> String {
        format!("BERTH-{kind}-{}{}", self.code, hash32(&[display_name, protocol], 12))
    }

    /// An endpoint's chain.
    pub fn endpoint(&self, display_name: &str, protocol: &str, address: &str) -> String {
        format!(
            "BERTH-SEP-{}{}",
            self.code,
            hash32(&[display_name, protocol, address], 12)
        )
    }
}

impl ChainOwner for ChainNames {
    /// Whether `chain` is one of this proxy's.
    fn is_own(&self, chain: &str) -> bool {
        [self.services(), self.node_ports(), self.postrouting(), self.forward()].contains(&chain.to_string())
            || PER_SERVICE_PREFIXES.iter().any(|prefix| {
                chain
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with(&self.code))
            })
    }
}

/// The first `len` characters of the base32 (RFC 4648, no padding) SHA-256 of the
/// parts, each ended by a NUL so that ("ab", "c") and ("a", "bc") differ.
pub(crate) fn hash32(parts: &[&str], len: usize) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut out = String::with_capacity(len);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in digest {
        if out.len() == len {
            break;
        }
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 && out.len() < len {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_iptables_and_belong_to_their_proxy_only() {
        let names = ChainNames::new("fifteen-chars-x");
        let svc = names.service_port("SVC", "default/web:http", "tcp");
        let sep = names.endpoint("default/web:http", "tcp", "10.244.1.2:8080");
        for chain in [
            names.services(),
            names.node_ports(),
            names.postrouting(),
            names.forward(),
            svc.clone(),
            sep.clone(),
        ] {
            assert!(chain.len() <= 28, "{chain} is {} characters", chain.len());
            assert!(names.is_own(&chain), "{chain}");
        }
        assert_eq!(svc.len(), 26);
        let other = ChainNames::new("berth1");
        assert!(!other.is_own(&svc) && !other.is_own(&names.services()));
        assert!(!names.is_own("BERTH-PEERS-fifteen-chars-x") && !names.is_own("KUBE-SERVICES"));
    }

    #[test]
    fn hashes_are_stable_and_tell_apart_what_differs() {
        let names = ChainNames::new("berth0");
        assert_eq!(
            names.service_port("SVC", "default/web", "tcp"),
            names.service_port("SVC", "default/web", "tcp")
        );
        assert_ne!(
            names.service_port("SVC", "default/web", "tcp"),
            names.service_port("SVC", "default/web", "udp")
        );
        assert_ne!(hash32(&["ab", "c"], 12), hash32(&["a", "bc"], 12));
        assert!(
            hash32(&["x"], 16)
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        );
    }
}
