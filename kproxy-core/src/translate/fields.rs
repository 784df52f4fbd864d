//! Parsing of the small field types every object kind uses: protocols, ports, addresses,
//! networks. Each parser returns what is wrong with the value on failure; callers prefix the
//! field path (built only then: translation of large clusters must not format strings for
//! fields that are fine).

use std::net::IpAddr;

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
    value.parse::<IpAddr>().map_err(|_| format!("{value:?} is not an IP address"))
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
    fn addresses_and_networks() {
        assert!(ip("198.18.0.1").is_ok());
        assert!(ip("2001:db8::1").is_ok());
        assert!(ip("198.18.0.256").is_err());
        assert_eq!(cidr(" 198.18.1.7/16 ").unwrap().to_string(), "198.18.0.0/16");
        assert!(cidr("198.18.0.0/33").is_err());
    }
}
