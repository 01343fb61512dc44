//! The client's IP address, for rate limiting and reputation.
//!
//! On Cloudflare, `CF-Connecting-IP` is set by the edge and a client cannot forge it.
//! `X-Forwarded-For` is anyone's to write, so it is read only when `GATEHOUSE_TRUSTED_PROXIES`
//! is configured and the connecting hop is one of them; then the right-most entry that is not a
//! trusted proxy is the client (entries to its left were written by the client itself).
//!
//! A header that does not parse never means "no limit" (the CVE-2024-47070 class: a malformed
//! `X-Forwarded-For` bypassing authentik's reputation and rate checks). Every such request shares
//! one key, `ip:unparsable`, and every request without the header shares `ip:missing`, so an
//! attacker who sends garbage only competes with other garbage for one small budget.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::error::InternalError;
use crate::http::Request;

/// An IPv4 or IPv6 network, e.g. `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address (a single host).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
        };
        Some(Cidr {
            net: mask(net, prefix),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:192.0.2.1`) is the IPv4 address: one client, one key.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// `GATEHOUSE_TRUSTED_PROXIES`: comma-separated CIDRs. Empty: `X-Forwarded-For` is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    pub fn parse(value: &str) -> Result<TrustedProxies, InternalError> {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                Cidr::parse(s).ok_or_else(|| {
                    InternalError::new(format!(
                        "GATEHOUSE_TRUSTED_PROXIES: {s:?} is not an address or network like 10.0.0.0/8"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// Who is asking, as far as the headers can honestly tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIp {
    Addr(IpAddr),
    /// A header was present but not a bare IP address (or was repeated).
    Unparsable,
    /// No `CF-Connecting-IP` at all (not behind Cloudflare, e.g. some test setups).
    Missing,
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse::<IpAddr>().ok().map(canonical)
}

impl ClientIp {
    pub fn from_request(req: &Request, trusted: &TrustedProxies) -> ClientIp {
        let connecting = match req.header_all("cf-connecting-ip").as_slice() {
            [] => return ClientIp::Missing,
            [one] => match parse_ip(one) {
                Some(ip) => ip,
                None => return ClientIp::Unparsable,
            },
            _ => return ClientIp::Unparsable,
        };
        if trusted.is_empty() || !trusted.trusts(connecting) {
            return ClientIp::Addr(connecting);
        }
        let forwarded = req.header_all("x-forwarded-for");
        if forwarded.is_empty() {
            return ClientIp::Addr(connecting);
        }
        // Several X-Forwarded-For headers are one list, in order (RFC 9110 §5.3).
        let joined = forwarded.join(",");
        let mut client = connecting;
        for entry in joined.split(',').rev() {
            let Some(ip) = parse_ip(entry) else {
                return ClientIp::Unparsable;
            };
            client = ip;
            if !trusted.trusts(ip) {
                break;
            }
        }
        ClientIp::Addr(client)
    }

    /// The counter key. IPv6 clients are grouped by /64: one subscriber usually holds a whole
    /// /64, and a per-address key would give them 2^64 fresh budgets.
    pub fn key(&self) -> String {
        match self {
            ClientIp::Addr(IpAddr::V4(v4)) => format!("ip:{v4}"),
            ClientIp::Addr(IpAddr::V6(v6)) => {
                let net = Ipv6Addr::from(u128::from(*v6) & (u128::MAX << 64));
                format!("ip:{net}/64")
            }
            ClientIp::Unparsable => "ip:unparsable".to_owned(),
            ClientIp::Missing => "ip:missing".to_owned(),
        }
    }

    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            ClientIp::Addr(ip) => Some(*ip),
            _ => None,
        }
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientIp::Addr(ip) => write!(f, "{ip}"),
            ClientIp::Unparsable => f.write_str("unparsable"),
            ClientIp::Missing => f.write_str("missing"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn req(headers: &[(&str, &str)]) -> Request {
        headers
            .iter()
            .fold(Request::new(Method::Post, "/oauth2/login"), |r, (k, v)| {
                r.with_header(k, v)
            })
    }

    fn proxies(s: &str) -> TrustedProxies {
        TrustedProxies::parse(s).unwrap()
    }

    fn ip(headers: &[(&str, &str)], trusted: &str) -> String {
        ClientIp::from_request(&req(headers), &proxies(trusted)).key()
    }

    #[test]
    fn cf_connecting_ip_is_the_client_when_no_proxy_is_trusted() {
        assert_eq!(ip(&[("cf-connecting-ip", "203.0.113.7")], ""), "ip:203.0.113.7");
        assert_eq!(ip(&[("cf-connecting-ip", " 203.0.113.7 ")], ""), "ip:203.0.113.7");
    }

    #[test]
    fn x_forwarded_for_is_ignored_unless_the_connecting_hop_is_a_trusted_proxy() {
        // A client writing its own X-Forwarded-For must not pick its key.
        let spoof = [("cf-connecting-ip", "203.0.113.7"), ("x-forwarded-for", "198.51.100.1")];
        assert_eq!(ip(&spoof, ""), "ip:203.0.113.7");
        assert_eq!(ip(&spoof, "10.0.0.0/8"), "ip:203.0.113.7");
        assert_eq!(ip(&spoof, "203.0.113.0/24"), "ip:198.51.100.1");
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let h = [
            ("cf-connecting-ip", "10.0.0.2"),
            ("x-forwarded-for", "1.1.1.1, 198.51.100.9, 10.0.0.1"),
        ];
        // 1.1.1.1 was written by the client (forgeable); 198.51.100.9 was seen by our proxy.
        assert_eq!(ip(&h, "10.0.0.0/8"), "ip:198.51.100.9");
        // Repeated headers are one list.
        let h = [
            ("cf-connecting-ip", "10.0.0.2"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "198.51.100.9, 10.0.0.1"),
        ];
        assert_eq!(ip(&h, "10.0.0.0/8"), "ip:198.51.100.9");
        // Only trusted hops: the left-most is as close to the client as we can tell.
        let h = [
            ("cf-connecting-ip", "10.0.0.2"),
            ("x-forwarded-for", "10.0.0.7, 10.0.0.1"),
        ];
        assert_eq!(ip(&h, "10.0.0.0/8"), "ip:10.0.0.7");
        // A trusted hop without X-Forwarded-For is itself the client.
        assert_eq!(ip(&[("cf-connecting-ip", "10.0.0.2")], "10.0.0.0/8"), "ip:10.0.0.2");
    }

    /// CVE-2024-47070 class: malformed headers must map to a shared strict key, never "no limit"
    /// and never a fresh key per request.
    #[test]
    fn malformed_headers_never_fail_open() {
        for bad in [
            "",
            "garbage",
            "1.2.3",
            "1.2.3.4.5",
            "203.0.113.7:443",
            "[2001:db8::1]",
            "unknown",
            "1.2.3.4, 5.6.7.8",
        ] {
            assert_eq!(ip(&[("cf-connecting-ip", bad)], ""), "ip:unparsable", "{bad:?}");
        }
        let twice = [
            ("cf-connecting-ip", "203.0.113.7"),
            ("cf-connecting-ip", "198.51.100.1"),
        ];
        assert_eq!(ip(&twice, ""), "ip:unparsable");
        for bad in [
            "",
            "garbage",
            "198.51.100.9, nonsense",
            "198.51.100.9,,10.0.0.1",
            "unknown, 10.0.0.1",
            "_hidden",
        ] {
            let h = [("cf-connecting-ip", "10.0.0.2"), ("x-forwarded-for", bad)];
            assert_eq!(ip(&h, "10.0.0.0/8"), "ip:unparsable", "{bad:?}");
        }
        // Garbage to the left of the right-most untrusted entry is never looked at.
        let h = [
            ("cf-connecting-ip", "10.0.0.2"),
            ("x-forwarded-for", "garbage, 198.51.100.9"),
        ];
        assert_eq!(ip(&h, "10.0.0.0/8"), "ip:198.51.100.9");
        assert_eq!(ip(&[], ""), "ip:missing");
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            ip(&[("cf-connecting-ip", "2001:db8:1:2:aaaa::1")], ""),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(
            ip(&[("cf-connecting-ip", "2001:db8:1:2:ffff::9")], ""),
            "ip:2001:db8:1:2::/64"
        );
        assert_ne!(
            ip(&[("cf-connecting-ip", "2001:db8:1:3::1")], ""),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(ip(&[("cf-connecting-ip", "::ffff:203.0.113.7")], ""), "ip:203.0.113.7");
    }

    #[test]
    fn cidrs_parse_strictly() {
        assert!(Cidr::parse("10.0.0.0/8")
            .unwrap()
            .contains("10.255.1.2".parse().unwrap()));
        assert!(!Cidr::parse("10.0.0.0/8").unwrap().contains("11.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains("127.0.0.2".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32")
            .unwrap()
            .contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains("::1".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "nonsense",
            "::/129",
            "",
        ] {
            assert!(Cidr::parse(bad).is_none(), "{bad:?}");
        }
        assert!(TrustedProxies::parse("10.0.0.0/8, 192.168.0.0/16").is_ok());
        let e = TrustedProxies::parse("10.0.0.0/8, nope").unwrap_err();
        assert!(e.0.contains("GATEHOUSE_TRUSTED_PROXIES"));
    }
}
