//! IP addresses and subnets (`192.0.2.7`, `10.0.0.0/8`, `::1`, `2001:db8::/32`)
//! as operators write them in allow-lists and limit exemptions.
//!
//! A plain address is a subnet of one address (`/32` or `/128`), so a list
//! may mix both: the Go RTMP server's play allow-list silently ignored
//! plain addresses, which is the mistake this type exists to not repeat.
//! An IPv4 subnet also matches the IPv4-mapped IPv6 form of its addresses
//! (`::ffff:10.0.0.1`), which is how a dual-stack listener reports IPv4
//! peers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A subnet: an address and how many leading bits of it are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a text is not an address or subnet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not an IP address or subnet: {0:?} (expected e.g. 192.0.2.7, 10.0.0.0/8, ::1, 2001:db8::/32)"
)]
pub struct IpNetError(String);

impl IpNet {
    /// The subnet of `addr` with `prefix` fixed bits; `None` if the prefix
    /// is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` is in the subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix_v4(net, ip, self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => same_prefix_v6(net, ip, self.prefix),
            (IpAddr::V4(net), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip| same_prefix_v4(net, ip, self.prefix)),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }

    /// Whether any subnet of `nets` contains `ip`.
    pub fn any_contains(nets: &[IpNet], ip: IpAddr) -> bool {
        nets.iter().any(|n| n.contains(ip))
    }

    /// Parses a comma-separated list (spaces around items allowed, empty
    /// items skipped), as environment variables carry them.
    pub fn parse_list(text: &str) -> Result<Vec<IpNet>, IpNetError> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }
}

fn same_prefix_v4(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

fn same_prefix_v6(a: Ipv6Addr, b: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(a) & mask == u128::from(b) & mask
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpNetError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => {
                let prefix: u8 = prefix.parse().map_err(|_| err())?;
                (addr, Some(prefix))
            }
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix = prefix.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        IpNet::new(addr, prefix).ok_or_else(err)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_plain_address_matches_only_itself() {
        assert!(net("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!net("192.0.2.7").contains(ip("192.0.2.8")));
        assert!(net("::1").contains(ip("::1")));
        assert!(!net("::1").contains(ip("::2")));
    }

    #[test]
    fn a_subnet_matches_its_range() {
        let n = net("10.1.0.0/16");
        assert!(n.contains(ip("10.1.255.3")));
        assert!(!n.contains(ip("10.2.0.1")));
        let n = net("2001:db8::/32");
        assert!(n.contains(ip("2001:db8:ffff::1")));
        assert!(!n.contains(ip("2001:db9::1")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn an_ipv4_subnet_matches_mapped_ipv6_peers_and_not_the_other_way() {
        assert!(net("127.0.0.0/8").contains(ip("::ffff:127.0.0.5")));
        assert!(!net("::1").contains(ip("127.0.0.1")));
    }

    #[test]
    fn lists_parse_with_spaces_and_reject_garbage_with_the_item() {
        let list = IpNet::parse_list(" 127.0.0.1, 10.0.0.0/8 ,,::1").unwrap();
        assert_eq!(list.len(), 3);
        assert!(IpNet::any_contains(&list, ip("10.9.9.9")));
        let e = IpNet::parse_list("127.0.0.1,10.0.0.0/33").unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/33"));
        assert!(IpNet::parse_list("example.com").is_err());
    }
}
