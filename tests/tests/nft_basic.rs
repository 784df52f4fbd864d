//! nftables backend, real packets: ClusterIP, NodePort, masquerading, hairpin, REJECT and
//! DROP, from pods, the node itself and an external client, IPv4 and IPv6, TCP and UDP.

mod nft_support;

use kproxy_core::model::{IpFamily, Protocol};
use kproxy_tests::Proto;
use nft_support::*;

const FAMILIES: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];
const PROTOS: [(Proto, Protocol); 2] = [(Proto::Tcp, Protocol::Tcp), (Proto::Udp, Protocol::Udp)];

/// Service 10 (ClusterIP + NodePort 30080) on pods 1..3, per family and protocol.
fn basic_state() -> kproxy_core::model::ProxyState {
    let mut ports = Vec::new();
    for fam in FAMILIES {
        for (_, p) in PROTOS {
            let mut sp = with_endpoints(service("web", p, &vip(fam, 10), 80), &[(1, true), (2, true), (3, true)]);
            sp.node_port = Some(30080);
            ports.push(sp);
        }
    }
    kproxy_core::model::ProxyState { ..state(ports) }
}

#[test]
fn clusterip_from_a_pod_is_spread_not_masqueraded_and_hairpin_is_masqueraded() {
    let t = topology(3);
    let _b = program(&t.node, &basic_state());
    for fam in FAMILIES {
        for (proto, _) in PROTOS {
            let r = send(&t.pod(2).ns, proto, sa(&vip(fam, 10), 80), 30, T);
            assert_eq!(r.answered(), 30, "{fam:?} {proto:?}: {r}");
            assert_eq!(r.by_server.len(), 3, "{fam:?} {proto:?} spread over all pods: {r}");
            // pod2 reaching itself is masqueraded (hairpin); the others see pod2's own address.
            let hairpin = r.by_server.get("pod2").copied().unwrap_or(0);
            assert_eq!(r.by_peer.get(&gateway(fam)).copied().unwrap_or(0), hairpin, "{fam:?} {proto:?} hairpin: {r}");
            assert_eq!(r.by_peer.get(&pod_ip(fam, 2)).copied().unwrap_or(0), 30 - hairpin, "{fam:?} {proto:?}: {r}");
        }
    }
}

#[test]
fn clusterip_from_the_node_and_from_outside_is_masqueraded() {
    let t = topology(3);
    let _b = program(&t.node, &basic_state());
    for fam in FAMILIES {
        for (proto, _) in PROTOS {
            let r = send(&t.node, proto, sa(&vip(fam, 10), 80), 24, T);
            assert_spread(&r, 24, &[1, 2, 3], gateway(fam));
            let r = send(&t.client().ns, proto, sa(&vip(fam, 10), 80), 24, T);
            assert_spread(&r, 24, &[1, 2, 3], gateway(fam));
        }
    }
}

#[test]
fn nodeport_from_outside_and_from_the_node_is_spread_and_masqueraded() {
    let t = topology(3);
    let _b = program(&t.node, &basic_state());
    for fam in FAMILIES {
        for (proto, _) in PROTOS {
            let np = std::net::SocketAddr::new(node_ip(fam), 30080);
            let r = send(&t.client().ns, proto, np, 24, T);
            assert_spread(&r, 24, &[1, 2, 3], gateway(fam));
            let r = send(&t.node, proto, np, 24, T);
            assert_spread(&r, 24, &[1, 2, 3], gateway(fam));
        }
    }
}

#[test]
fn no_endpoints_reject_undefined_port_rejects_unallocated_ip_drops() {
    let t = topology(1);
    let mut ports = Vec::new();
    for fam in FAMILIES {
        for (_, p) in PROTOS {
            let mut empty = service("empty", p, &vip(fam, 20), 80);
            empty.node_port = Some(30020);
            ports.push(empty);
            ports.push(with_endpoints(service("web", p, &vip(fam, 10), 80), &[(1, true)]));
        }
    }
    let _b = program(&t.node, &state(ports));
    for fam in FAMILIES {
        for (proto, _) in PROTOS {
            let from_pod = &t.pod(1).ns;
            let r = send(from_pod, proto, sa(&vip(fam, 20), 80), 2, T);
            assert_eq!(r.refused, 2, "{fam:?} {proto:?} no endpoints -> REJECT: {r}");
            let r = send(&t.client().ns, proto, sa(&vip(fam, 20), 80), 2, T);
            assert_eq!(r.refused, 2, "{fam:?} {proto:?} no endpoints from outside -> REJECT: {r}");
            let r = send(&t.client().ns, proto, std::net::SocketAddr::new(node_ip(fam), 30020), 2, T);
            assert_eq!(r.refused, 2, "{fam:?} {proto:?} NodePort without endpoints -> REJECT: {r}");
            let r = send(from_pod, proto, sa(&vip(fam, 10), 81), 2, T);
            assert_eq!(r.refused, 2, "{fam:?} {proto:?} undefined port of a ClusterIP -> REJECT: {r}");
            let r = send(from_pod, proto, sa(&vip(fam, 99), 80), 2, DROP_T);
            assert_eq!(r.timeouts, 2, "{fam:?} {proto:?} unallocated ServiceCIDR IP -> DROP: {r}");
            let r = send(from_pod, proto, sa(&vip(fam, 10), 80), 2, T);
            assert_eq!(r.answered(), 2, "{fam:?} {proto:?} the working service still works: {r}");
        }
    }
}

#[test]
fn nodeport_addresses_cidrs_listen_on_every_local_address_inside_them() {
    let t = topology(2);
    let mut s = basic_state();
    s.settings.node_port_addresses = kproxy_core::model::NodePortAddresses::Cidrs(vec![
        "0.0.0.0/0".parse().unwrap(),
        "2001:db8:a::/48".parse().unwrap(),
    ]);
    s.services.values_mut().for_each(|sp| {
        *sp = with_endpoints(sp.clone(), &[(1, true), (2, true)]);
        sp.node_port = Some(30080);
    });
    let _b = program(&t.node, &s);
    // IPv4: every local address (the uplink and the bridge); IPv6: only inside the pod range.
    for ip in [node_ip(IpFamily::V4), gateway(IpFamily::V4), gateway(IpFamily::V6)] {
        let r = send(&t.pod(1).ns, Proto::Tcp, std::net::SocketAddr::new(ip, 30080), 8, T);
        assert_eq!(r.answered(), 8, "NodePort on {ip}: {r}");
    }
    let r = send(&t.client().ns, Proto::Tcp, std::net::SocketAddr::new(node_ip(IpFamily::V6), 30080), 2, DROP_T);
    assert_eq!(r.answered(), 0, "the IPv6 uplink address is outside nodePortAddresses: {r}");
}

#[test]
fn bridge_interface_detector_treats_bridge_traffic_as_pod_traffic() {
    let t = topology(2);
    let mut s = basic_state();
    s.settings.local_detector = kproxy_core::model::LocalDetector::BridgeInterface(kproxy_tests::plan::BRIDGE.into());
    let _b = program(&t.node, &s);
    for fam in FAMILIES {
        let r = send(&t.pod(2).ns, Proto::Tcp, sa(&vip(fam, 10), 80), 20, T);
        let others = r.answered() - r.by_server.get("pod2").copied().unwrap_or(0);
        assert_eq!(r.by_peer.get(&pod_ip(fam, 2)).copied().unwrap_or(0), others, "{fam:?} pods keep their source: {r}");
        let r = send(&t.client().ns, Proto::Tcp, sa(&vip(fam, 10), 80), 12, T);
        assert_eq!(r.by_peer.keys().copied().collect::<Vec<_>>(), vec![gateway(fam)], "{fam:?} outside traffic masqueraded: {r}");
    }
}
