//! The address plan every topology follows (`../shared/testing/README.md`).
//!
//! Only 198.18.0.0/15 and 2001:db8::/32 are used. Example manifests in `examples/manifests`
//! and the integration tests rely on these exact addresses.
//!
//! | what                  | IPv4               | IPv6                  |
//! |-----------------------|--------------------|-----------------------|
//! | pods (clusterCIDR)    | 198.18.0.0/16      | 2001:db8:a::/48 (bridge /64) |
//! | pod bridge `kbr0`     | 198.18.0.1         | 2001:db8:a::1         |
//! | pod k (1-based)       | 198.18.0.(10+k)/32 | 2001:db8:a::(10+k)/128 |
//! | node (uplink `ext0`)  | 198.19.0.1/24      | 2001:db8:c::1/64      |
//! | external client k     | 198.19.64.(10+k)/24 | 2001:db8:c:64::(10+k)/64 |
//! | ExternalIPs           | 198.19.99.0/24     | 2001:db8:c:99::/64    |
//! | ServiceCIDR           | 198.19.160.0/20    | 2001:db8:b::/112 (in 2001:db8:b::/64) |
//! | LoadBalancer IPs      | 198.19.200.0/24    | 2001:db8:c:200::/64   |
//!
//! In pod and client addresses "(10+k)" is written in decimal digits in both families, so
//! pod 1 is 198.18.0.11 and 2001:db8:a::11.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Pod network (clusterCIDR), IPv4.
pub const POD_CIDR_V4: &str = "198.18.0.0/16";
/// Pod network (clusterCIDR), IPv6.
pub const POD_CIDR_V6: &str = "2001:db8:a::/48";
/// The node's pod bridge.
pub const BRIDGE: &str = "kbr0";
/// The bridge's (the pods' gateway's) IPv4 address.
pub const POD_GW_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The bridge's (the pods' gateway's) IPv6 address.
pub const POD_GW_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1);
/// Prefix length of the pod bridge subnet, IPv4.
pub const POD_PREFIX_V4: u8 = 16;
/// Prefix length of the pod bridge subnet, IPv6.
pub const POD_PREFIX_V6: u8 = 64;
/// The node's uplink bridge towards the external clients (inside the node namespace); each
/// client namespace has a veth into it. It carries the node's own addresses.
pub const UPLINK: &str = "ext0";
/// The node's name (Node object, EndpointSlice `nodeName`, `--hostname-override`).
pub const NODE_NAME: &str = "node-1";
/// The node's IPv4 address (on its uplink): what NodePorts are reached at.
pub const NODE_IP_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The node's IPv6 address (on its uplink).
pub const NODE_IP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
/// Node subnet, IPv4.
pub const NODE_CIDR_V4: &str = "198.19.0.0/24";
/// Node subnet, IPv6.
pub const NODE_CIDR_V6: &str = "2001:db8:c::/64";
/// External clients' subnet, IPv4.
pub const CLIENT_CIDR_V4: &str = "198.19.64.0/24";
/// External clients' subnet, IPv6.
pub const CLIENT_CIDR_V6: &str = "2001:db8:c:64::/64";
/// ExternalIPs, IPv4.
pub const EXTERNAL_IP_CIDR_V4: &str = "198.19.99.0/24";
/// ExternalIPs, IPv6.
pub const EXTERNAL_IP_CIDR_V6: &str = "2001:db8:c:99::/64";
/// ServiceCIDR (ClusterIPs), IPv4.
pub const SERVICE_CIDR_V4: &str = "198.19.160.0/20";
/// ServiceCIDR (ClusterIPs), IPv6.
pub const SERVICE_CIDR_V6: &str = "2001:db8:b::/112";
/// LoadBalancer ingress IPs, IPv4.
pub const LB_CIDR_V4: &str = "198.19.200.0/24";
/// LoadBalancer ingress IPs, IPv6.
pub const LB_CIDR_V6: &str = "2001:db8:c:200::/64";

/// Routes an external client has towards the node, IPv4: nodes, ExternalIPs, ServiceCIDR and
/// LB IPs all lie in 198.19.0.0/16 (the client's own /24 is more specific and on-link).
/// Pod IPs are deliberately not routed: outside clients reach pods only through services.
pub const CLIENT_ROUTES_V4: &[&str] = &["198.19.0.0/16"];
/// Routes an external client has towards the node, IPv6 (services, nodes, ExternalIPs, LBs).
pub const CLIENT_ROUTES_V6: &[&str] = &["2001:db8:b::/64", "2001:db8:c::/48"];

/// Largest pod / client index the plan has room for.
pub const MAX_INDEX: u8 = 200;

/// IPv4 address of pod `k` (1-based).
pub fn pod_ipv4(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 10 + k)
}

/// IPv6 address of pod `k` (1-based).
pub fn pod_ipv6(k: u8) -> Ipv6Addr {
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        0xa,
        0,
        0,
        0,
        0,
        decimal_digits_as_hex(10 + u16::from(k)),
    )
}

/// IPv4 address of external client `k` (1-based).
pub fn client_ipv4(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 64, 10 + k)
}

/// IPv6 address of external client `k` (1-based).
pub fn client_ipv6(k: u8) -> Ipv6Addr {
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        0xc,
        0x64,
        0,
        0,
        0,
        decimal_digits_as_hex(10 + u16::from(k)),
    )
}

/// `211` -> `0x211`, so an IPv6 address reads like its IPv4 sibling.
fn decimal_digits_as_hex(n: u16) -> u16 {
    // n <= 210 here, so its three decimal digits always fit in a hex group.
    u16::from_str_radix(&n.to_string(), 16).unwrap_or(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_addresses_mirror_each_other() {
        assert_eq!(pod_ipv4(1).to_string(), "198.18.0.11");
        assert_eq!(pod_ipv6(1).to_string(), "2001:db8:a::11");
        assert_eq!(pod_ipv6(200).to_string(), "2001:db8:a::210");
        assert_eq!(client_ipv4(1).to_string(), "198.19.64.11");
        assert_eq!(client_ipv6(1).to_string(), "2001:db8:c:64::11");
    }
}
