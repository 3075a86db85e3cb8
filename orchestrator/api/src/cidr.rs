//! IPv4 CIDR blocks, as the pod network speaks of them: the cluster CIDR the control
//! plane carves into one block per node (`node.spec.podCIDR`), and the routes an
//! agent keeps to the other nodes' blocks. Only IPv4: berth's pod network is
//! single-stack.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network: an address whose host bits are zero, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix_len: u8,
}

/// Why a CIDR did not parse, in words a flag's error can quote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address: {0}")]
pub struct CidrError(pub String);

impl Ipv4Cidr {
    /// The block of `prefix_len` bits holding `address` (host bits cleared).
    pub fn new(address: Ipv4Addr, prefix_len: u8) -> Result<Self, CidrError> {
        if prefix_len > 32 {
            return Err(CidrError(format!("{address}/{prefix_len}")));
        }
        Ok(Ipv4Cidr {
            network: Ipv4Addr::from(u32::from(address) & mask(prefix_len)),
            prefix_len,
        })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// How many blocks of `prefix_len` bits this block splits into (`None` when the
    /// length is shorter than this block's, or the count does not fit a u32).
    pub fn subnet_count(&self, prefix_len: u8) -> Option<u32> {
        if prefix_len < self.prefix_len || prefix_len > 32 {
            return None;
        }
        1u32.checked_shl(u32::from(prefix_len - self.prefix_len))
    }

    /// The `index`-th block of `prefix_len` bits inside this one, in address order.
    pub fn subnet(&self, prefix_len: u8, index: u32) -> Option<Ipv4Cidr> {
        if index >= self.subnet_count(prefix_len)? {
            return None;
        }
        let size = 1u64 << (32 - prefix_len);
        let start = u64::from(u32::from(self.network)) + u64::from(index) * size;
        Ipv4Cidr::new(Ipv4Addr::from(start as u32), prefix_len).ok()
    }

    /// Which block of `prefix_len` bits inside this one `other` lies in, if it lies
    /// inside this one at all.
    pub fn subnet_index(&self, prefix_len: u8, other: &Ipv4Cidr) -> Option<u32> {
        self.subnet_count(prefix_len)?;
        if !self.contains(other.network) {
            return None;
        }
        let offset = u32::from(other.network) - u32::from(self.network);
        Some(offset >> (32 - u32::from(prefix_len)))
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & mask(self.prefix_len) == u32::from(self.network)
    }

    /// Whether the two blocks share an address (one holds the other's network).
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// The `n`-th address of the block (`n` = 1 is the bridge's gateway address).
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - self.prefix_len);
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.network) + n))
    }
}

fn mask(prefix_len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0)
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    /// `a.b.c.d/n`; an address with host bits set is refused, as Kubernetes refuses
    /// `--cluster-cidr=10.244.1.0/16` (the user most likely meant another block).
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let bad = || CidrError(s.to_string());
        let (address, len) = s.split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix_len: u8 = len.parse().map_err(|_| bad())?;
        let cidr = Ipv4Cidr::new(address, prefix_len).map_err(|_| bad())?;
        if cidr.network != address {
            return Err(bad());
        }
        Ok(cidr)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_and_refuses_host_bits_and_nonsense() {
        assert_eq!(cidr("10.244.0.0/16").to_string(), "10.244.0.0/16");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in [
            "10.244.1.0/16",
            "10.244.0.0",
            "10.244.0.0/33",
            "10.244.0.0/",
            "x/8",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn subnets_count_index_and_contain() {
        let cluster = cidr("10.244.0.0/16");
        assert_eq!(cluster.subnet_count(24), Some(256));
        assert_eq!(cluster.subnet_count(8), None, "a /8 does not fit in a /16");
        assert_eq!(cluster.subnet(24, 0), Some(cidr("10.244.0.0/24")));
        assert_eq!(cluster.subnet(24, 255), Some(cidr("10.244.255.0/24")));
        assert_eq!(cluster.subnet(24, 256), None);
        assert_eq!(cluster.subnet_index(24, &cidr("10.244.7.0/24")), Some(7));
        assert_eq!(cluster.subnet_index(24, &cidr("10.245.7.0/24")), None);
        assert!(cluster.overlaps(&cidr("10.244.3.0/24")));
        assert!(cidr("10.0.0.0/8").overlaps(&cluster));
        assert!(!cluster.overlaps(&cidr("10.245.0.0/24")));
        assert_eq!(cidr("10.244.3.0/24").host(1), Some(Ipv4Addr::new(10, 244, 3, 1)));
        assert_eq!(cidr("10.244.3.0/24").host(256), None);
        assert_eq!(cidr("0.0.0.0/0").subnet_count(32), None, "2^32 does not fit");
    }
}
