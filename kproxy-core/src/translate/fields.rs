//! Parsing of the small field types every object kind uses: protocols, ports, addresses,
//! networks. Each parser returns what is wrong with the value on failure; callers prefix the
//! field path (built only then: translation of large clusters must not format strings for
//! fields that are fine).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use crate::model::Protocol;

/// `protocol` of a port; unset means TCP (the API server's default).
pub(crate) fn protocol(value: Option<&str>) -> Result<Protocol, String> {
    match value {
        None | Some("TCP") => Ok(Protocol::Tcp),
        Some("UDP") => Ok(Protocol::Udp),
        Some("SCTP") => Ok(Protocol::Sctp),
        Some(other) => Err(format!("{other:?} is not a protocol (TCP, UDP or SCTP)")),
    }
}

/// A required port number (1..=65535).
pub(crate) fn port(value: i32) -> Result<u16, String> {
    match u16::try_from(value) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(format!("{value} is not a valid port (1-65535)")),
    }
}

/// An optional port number: unset or 0 means none.
pub(crate) fn optional_port(value: Option<i32>) -> Result<Option<u16>, String> {
    match value {
        None | Some(0) => Ok(None),
        Some(v) => port(v).map(Some),
    }
}

/// An IP address, in the forms the API server accepts (no zone, no brackets).
pub(crate) fn ip(value: &str) -> Result<IpAddr, String> {
    if let Some(v4) = canonical_ipv4(value) {
        return Ok(IpAddr::V4(v4));
    }
    value.parse::<IpAddr>().map_err(|_| format!("{value:?} is not an IP address"))
}

/// Fast path for the common case, canonical dotted-quad IPv4 (100k endpoints are parsed per
/// full translation; the standard parser tries several grammars). Anything else, including
/// leading zeros, returns `None` and goes to the standard parser, so what is accepted does not
/// change.
fn canonical_ipv4(value: &str) -> Option<Ipv4Addr> {
    let b = value.as_bytes();
    if b.len() < 7 || b.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v: u16 = 0;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() || i - start == 3 {
                break;
            }
            v = v * 10 + u16::from(c - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || (len > 1 && b[start] == b'0') || v > 255 {
            return None;
        }
        // v <= 255 checked above.
        *octet = v as u8;
    }
    (i == b.len()).then(|| Ipv4Addr::from(octets))
}

/// A network in CIDR notation (surrounding whitespace tolerated, as upstream does for
/// loadBalancerSourceRanges; host bits are cleared).
pub(crate) fn cidr(value: &str) -> Result<IpNet, String> {
    value
        .trim()
        .parse::<IpNet>()
        .map(|net| net.trunc())
        .map_err(|_| format!("{value:?} is not a CIDR (for example 198.18.0.0/15)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        assert_eq!(protocol(None), Ok(Protocol::Tcp));
        assert_eq!(protocol(Some("SCTP")), Ok(Protocol::Sctp));
        assert!(protocol(Some("tcp")).unwrap_err().contains("\"tcp\" is not a protocol"));
    }

    #[test]
    fn ports() {
        assert_eq!(port(80), Ok(80));
        assert!(port(0).is_err());
        assert!(port(65536).is_err());
        assert!(port(-1).is_err());
        assert_eq!(optional_port(Some(0)), Ok(None));
        assert_eq!(optional_port(Some(30080)), Ok(Some(30080)));
    }

    #[test]
    fn ipv4_fast_path_accepts_exactly_what_the_standard_parser_accepts() {
        for s in ["0.0.0.0", "198.18.0.1", "255.255.255.255", "1.2.3.4", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1",
            "1..2.3", "1.2.3.", ".1.2.3", "1.2.3.4 ", "+1.2.3.4", "1.2.3.-4", "1234.1.1.1", "a.b.c.d", "", "::1", "2001:db8::1"] {
            assert_eq!(ip(s).ok(), s.parse::<IpAddr>().ok(), "{s:?}");
            if let Some(v4) = canonical_ipv4(s) {
                assert_eq!(Ok(v4), s.parse::<Ipv4Addr>(), "{s:?}");
            }
        }
    }

    #[test]
    fn addresses_and_networks() {
        assert!(ip("198.18.0.1").is_ok());
        assert!(ip("2001:db8::1").is_ok());
        assert!(ip("198.18.0.256").is_err());
        assert_eq!(cidr(" 198.18.1.7/16 ").unwrap().to_string(), "198.18.0.0/16");
        assert!(cidr("198.18.0.0/33").is_err());
    }
}
