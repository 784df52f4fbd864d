//! Service port -> set elements: the only part of the ruleset that grows with services.
//!
//! Each service port contributes elements to the shared maps (see README for the packet
//! paths they drive). Several service ports may contribute the same element (a ClusterIP
//! shared by ports, an endpoint shared by services); [`crate::record`] counts references.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use kproxy_core::model::{IpFamily, ProxySettings, ProxyState, ServicePort, TrafficPolicy};

use crate::plan::{ChainRef, Element, Key, LbKind, SetId, Value, Verdict};

/// Collects elements of one family's table with a shared comment.
struct Sink<'a> {
    family: IpFamily,
    comment: Arc<str>,
    out: &'a mut Vec<Element>,
}

impl Sink<'_> {
    fn push(&mut self, set: SetId, key: Key, value: Value) {
        self.out.push(Element { family: self.family, set, key, value, comment: self.comment.clone() });
    }

    fn goto(&mut self, set: SetId, key: Key, chain: ChainRef) {
        self.push(set, key, Value::Verdict(Verdict::Goto(chain)));
    }
}

/// Appends every element one service port needs to `out`.
pub fn service_elements(sp: &ServicePort, settings: &ProxySettings, out: &mut Vec<Element>) {
    // `ns/name` and `ns/name:port` (ServicePortName's Display) without the formatting
    // machinery: this runs once per service port of a cold sync.
    let n = &sp.name;
    let mut text = String::with_capacity(n.namespace.len() + n.name.len() + n.port.len() + 2);
    text.push_str(&n.namespace);
    text.push('/');
    text.push_str(&n.name);
    let service_name: Arc<str> = Arc::from(text.as_str());
    text.push(':');
    text.push_str(&n.port);
    let mut sink = Sink { family: sp.family, comment: Arc::from(text), out };
    let proto = sp.name.protocol;
    let cluster = &sp.cluster_endpoints;
    let local = &sp.local_endpoints;
    let affinity = sp.session_affinity.filter(|_| SetId::Affinity.exists_in(sp.family));

    // Shared elements carry comments that do not depend on which user came first: the
    // ClusterIP names its service (all its ports share it), hairpin pairs name nobody.
    sink.out.push(Element {
        family: sp.family,
        set: SetId::ClusterIps,
        key: Key::Addr(sp.cluster_ip),
        value: Value::None,
        comment: service_name,
    });
    // Only an endpoint on this node can reach itself through this node's rules, so only
    // local endpoints need a hairpin element (a tenth of them in a typical cluster).
    let nobody: Arc<str> = Arc::from("");
    for ep in sp.endpoints.iter().filter(|e| e.local) {
        if cluster.binary_search(&ep.addr).is_ok() || local.binary_search(&ep.addr).is_ok() {
            sink.out.push(Element {
                family: sp.family,
                set: SetId::Hairpin,
                key: Key::AddrPair(ep.addr.ip(), ep.addr.ip()),
                value: Value::None,
                comment: nobody.clone(),
            });
        }
    }

    // ClusterIP: internal endpoints.
    let internal = sp.internal_endpoints();
    let dest = Key::Dest(sp.cluster_ip, proto, sp.port);
    if cluster.is_empty() {
        sink.goto(SetId::NoEndpointServices, dest, ChainRef::Reject);
    } else if internal.is_empty() {
        sink.push(SetId::NoEndpointServices, dest, Value::Verdict(Verdict::Drop));
    } else {
        let (kind, map) = match sp.internal_traffic_policy {
            TrafficPolicy::Cluster => (LbKind::Cluster, SetId::ClusterBackends),
            TrafficPolicy::Local => (LbKind::Local, SetId::LocalBackends),
        };
        sink.goto(SetId::ServiceIps, dest, ChainRef::Lb(kind, internal.len() as u32));
        dest_slots(&mut sink, map, sp.cluster_ip, sp, internal);
        if let Some(a) = affinity {
            sink.push(SetId::AffinityServices, dest, Value::Verdict(Verdict::Jump(ChainRef::Affinity(a.timeout_seconds))));
        }
    }

    // ExternalIPs and LoadBalancer IPs: external endpoints.
    for ip in sp.external_ips.iter().chain(sp.load_balancer_ips.iter()) {
        // Shared by every service using the address: no comment, as for hairpin pairs.
        sink.out.push(Element { family: sp.family, set: SetId::ExternalIps, key: Key::Addr(*ip), value: Value::None, comment: nobody.clone() });
        let dest = Key::Dest(*ip, proto, sp.port);
        if cluster.is_empty() {
            sink.goto(SetId::NoEndpointServices, dest, ChainRef::Reject);
            continue;
        }
        match sp.external_traffic_policy {
            TrafficPolicy::Cluster => {
                sink.goto(SetId::ServiceIps, dest, ChainRef::Lb(LbKind::External, cluster.len() as u32));
            }
            TrafficPolicy::Local => {
                sink.goto(SetId::ServiceIps, dest, ChainRef::Lb(LbKind::ExternalLocal, local.len() as u32));
                sink.goto(SetId::ExternalShortCircuit, dest, ChainRef::Lb(LbKind::Cluster, cluster.len() as u32));
                dest_slots(&mut sink, SetId::LocalBackends, *ip, sp, local);
            }
        }
        dest_slots(&mut sink, SetId::ClusterBackends, *ip, sp, cluster);
        if let Some(a) = affinity {
            sink.push(SetId::AffinityServices, dest, Value::Verdict(Verdict::Jump(ChainRef::Affinity(a.timeout_seconds))));
        }
    }

    firewall(&mut sink, sp, settings);
    nodeport(&mut sink, sp, affinity.map(|a| a.timeout_seconds));
}

/// `ip . proto . port . i : endpoint[i]` for one destination.
fn dest_slots(sink: &mut Sink<'_>, map: SetId, ip: IpAddr, sp: &ServicePort, eps: &[SocketAddr]) {
    for (i, ep) in eps.iter().enumerate() {
        sink.push(map, Key::DestSlot(ip, sp.name.protocol, sp.port, i as u32), Value::Endpoint(*ep));
    }
}

/// loadBalancerSourceRanges: which sources may reach the LB IPs.
fn firewall(sink: &mut Sink<'_>, sp: &ServicePort, settings: &ProxySettings) {
    let ranges: Vec<IpNet> =
        sp.load_balancer_source_ranges.iter().filter(|n| IpFamily::of_net(n) == sp.family).copied().collect();
    if ranges.is_empty() || sp.cluster_endpoints.is_empty() {
        return;
    }
    let node_inside = settings.node_ips.iter().any(|ip| ranges.iter().any(|r| r.contains(ip)));
    for lb in &sp.load_balancer_ips {
        sink.push(SetId::FirewallIps, Key::Dest(*lb, sp.name.protocol, sp.port), Value::None);
        for r in &ranges {
            sink.push(SetId::FirewallAllow, Key::DestPortNet(*lb, sp.name.protocol, sp.port, *r), Value::None);
        }
        if node_inside {
            sink.push(SetId::FirewallAllow, Key::DestPortNet(*lb, sp.name.protocol, sp.port, IpNet::from(*lb)), Value::None);
        }
    }
}

/// The NodePort: dispatch, endpoints and the no-endpoint verdict.
fn nodeport(sink: &mut Sink<'_>, sp: &ServicePort, affinity: Option<u32>) {
    let Some(np) = sp.node_port else { return };
    let proto = sp.name.protocol;
    let key = Key::Port(proto, np);
    let cluster = &sp.cluster_endpoints;
    let local = &sp.local_endpoints;
    if cluster.is_empty() {
        sink.goto(SetId::NoEndpointNodeports, key, ChainRef::Reject);
        return;
    }
    let slots = |sink: &mut Sink<'_>, map: SetId, eps: &[SocketAddr]| {
        for (i, ep) in eps.iter().enumerate() {
            sink.push(map, Key::PortSlot(proto, np, i as u32), Value::Endpoint(*ep));
        }
    };
    match sp.external_traffic_policy {
        TrafficPolicy::Cluster => {
            sink.goto(SetId::ServiceNodeports, key, ChainRef::Lb(LbKind::Nodeport, cluster.len() as u32));
        }
        TrafficPolicy::Local => {
            sink.goto(SetId::ServiceNodeports, key, ChainRef::Lb(LbKind::NodeportLocal, local.len() as u32));
            sink.goto(SetId::NodeportShortCircuit, key, ChainRef::Lb(LbKind::NodeportDirect, cluster.len() as u32));
            slots(sink, SetId::NodeportLocalBackends, local);
        }
    }
    slots(sink, SetId::NodeportBackends, cluster);
    // Keyed on the NodePort, not the address it was reached on: works for every
    // nodePortAddresses mode.
    if let Some(t) = affinity {
        sink.push(SetId::AffinityNodeports, key, Value::Verdict(Verdict::Jump(ChainRef::NodeportAffinity(t))));
    }
}

/// Node-wide elements: pod CIDRs of the local detector, ServiceCIDRs, NodePort addresses.
pub fn node_elements(state: &ProxyState, out: &mut Vec<Element>) {
    let none: Arc<str> = Arc::from("");
    let s = &state.settings;
    let pods: &[IpNet] = match &s.local_detector {
        kproxy_core::model::LocalDetector::ClusterCidrs(c) | kproxy_core::model::LocalDetector::NodeCidrs(c) => c,
        _ => &[],
    };
    let nodeport: Vec<IpNet> = [IpFamily::V4, IpFamily::V6]
        .into_iter()
        .flat_map(|family| s.node_port_addresses.cidrs_for(family, &s.node_ips))
        .collect();
    for (set, nets) in [(SetId::PodCidrs, pods), (SetId::ServiceCidrs, &state.service_cidrs[..]), (SetId::NodeportIps, &nodeport[..])] {
        for net in IpNet::aggregate(&nets.to_vec()) {
            out.push(Element { family: IpFamily::of_net(&net), set, key: Key::Net(net), value: Value::None, comment: none.clone() });
        }
    }
}

/// Every element of a state, service ports first.
pub fn all_elements(state: &ProxyState) -> Vec<Element> {
    // Close to the real count: page faults of an over-sized vector cost more than a regrow.
    let estimate: usize = state
        .services
        .values()
        .map(|sp| {
            let dests = 1 + sp.external_ips.len() + sp.load_balancer_ips.len() + usize::from(sp.node_port.is_some());
            4 + dests * (2 + sp.cluster_endpoints.len() + sp.local_endpoints.len())
        })
        .sum();
    let mut out = Vec::with_capacity(estimate + 64);
    for sp in state.services.values() {
        service_elements(sp, &state.settings, &mut out);
    }
    node_elements(state, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use kproxy_core::model::{Protocol, ServicePortName};

    use super::*;

    #[test]
    fn comments_name_the_service_port_and_the_service() {
        for port in ["", "http"] {
            let name = ServicePortName { namespace: "ns".into(), name: "web".into(), port: port.into(), protocol: Protocol::Tcp };
            let sp = ServicePort::new(name.clone(), "198.18.0.1".parse().unwrap(), 80);
            let mut out = Vec::new();
            service_elements(&sp, &ProxySettings::default(), &mut out);
            let cluster_ip = out.iter().find(|e| e.set == SetId::ClusterIps).expect("a ClusterIP element");
            assert_eq!(&*cluster_ip.comment, "ns/web");
            let own = out.iter().find(|e| e.set == SetId::NoEndpointServices).expect("a no-endpoint element");
            assert_eq!(own.comment.to_string(), name.to_string());
        }
    }
}
