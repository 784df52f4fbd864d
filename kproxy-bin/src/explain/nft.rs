//! nftables mode: which differences of [`kproxy_nft::drift`] concern the Service explained.

use std::net::IpAddr;

use kproxy_core::model::{IpFamily, ProxySettings, ServicePort};
use kproxy_nft::drift::{Difference, Object};
use kproxy_nft::plan::SetId;

/// Whom a difference concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The Service explained.
    Service,
    /// Every Service: the table's structure (table, sets, chains, rules) or a node-wide set.
    Table,
    /// Another Service only.
    Other,
}

/// Sets keyed on `protocol . NodePort` (no address).
fn keyed_on_node_port(set: SetId) -> bool {
    matches!(
        set,
        SetId::ServiceNodeports
            | SetId::NoEndpointNodeports
            | SetId::NodeportShortCircuit
            | SetId::AffinityNodeports
            | SetId::NodeportBackends
            | SetId::NodeportLocalBackends
    )
}

/// Whom `d` concerns, for the Service `service` (`namespace/name`) with these ports. An
/// element belongs to the Service when its comment names it, or its key starts with one of
/// the Service's addresses (so a stray element added by hand, without a comment, is found),
/// or it is keyed on one of its NodePorts, or it is the hairpin pair of one of its endpoints.
pub fn scope(d: &Difference, service: &str, ports: &[&ServicePort]) -> Scope {
    let Object::Element { set, comment, mentions, .. } = &d.object else { return Scope::Table };
    if matches!(set, SetId::PodCidrs | SetId::ServiceCidrs | SetId::NodeportIps) {
        return Scope::Table;
    }
    if comment.as_deref().is_some_and(|c| c == service || c.strip_prefix(service).is_some_and(|rest| rest.starts_with(':'))) {
        return Scope::Service;
    }
    let first = mentions.addrs.first();
    let vip = |ip: &IpAddr| ports.iter().any(|sp| sp.cluster_ip == *ip || sp.external_ips.contains(ip) || sp.load_balancer_ips.contains(ip));
    let endpoint = |ip: &IpAddr| ports.iter().any(|sp| sp.endpoints.iter().any(|e| e.addr.ip() == *ip));
    let node_port = |p: Option<(kproxy_core::model::Protocol, u16)>| {
        p.is_some_and(|(proto, port)| ports.iter().any(|sp| sp.name.protocol == proto && sp.node_port == Some(port) && sp.family == d.family))
    };
    let ours = match set {
        SetId::Hairpin => first.is_some_and(endpoint),
        s if keyed_on_node_port(*s) => node_port(mentions.port),
        _ => first.is_some_and(vip),
    };
    if ours {
        Scope::Service
    } else {
        Scope::Other
    }
}

/// Where NodePorts of `family` are served, as nftables mode matches them: each primary node
/// address, or local addresses inside each `nodePortAddresses` network.
pub fn node_port_places(settings: &ProxySettings, family: IpFamily) -> Vec<String> {
    settings
        .node_port_addresses
        .cidrs_for(family, &settings.node_ips)
        .into_iter()
        .map(|n| if n.prefix_len() == n.max_prefix_len() { n.addr().to_string() } else { format!("local addresses in {n}") })
        .collect()
}

/// Whether a NodePort is served on `ip` (for finding the Service of a `NODE_IP:NODEPORT`).
pub fn serves_node_ports(settings: &ProxySettings, ip: &IpAddr) -> bool {
    settings.node_port_addresses.cidrs_for(IpFamily::of(ip), &settings.node_ips).iter().any(|n| n.contains(ip))
}
