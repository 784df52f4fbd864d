//! nftables backend, real packets: ExternalIPs, LoadBalancer IPs, traffic policies,
//! loadBalancerSourceRanges, sessionAffinity and masqueradeAll.

mod nft_support;

use std::net::SocketAddr;

use kproxy_core::model::{IpFamily, NodePortAddresses, Protocol, SessionAffinity, TrafficPolicy};
use kproxy_tests::Proto;
use nft_support::*;

const FAMILIES: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

fn ext_ip(fam: IpFamily) -> std::net::IpAddr {
    match fam {
        IpFamily::V4 => "198.19.99.5".parse().unwrap(),
        IpFamily::V6 => "2001:db8:c:99::5".parse().unwrap(),
    }
}

fn lb_ip(fam: IpFamily) -> std::net::IpAddr {
    match fam {
        IpFamily::V4 => "198.19.200.5".parse().unwrap(),
        IpFamily::V6 => "2001:db8:c:200::5".parse().unwrap(),
    }
}

#[test]
fn external_ip_and_lb_ip_with_etp_cluster_are_masqueraded_and_spread() {
    let t = topology(3);
    let mut ports = Vec::new();
    for fam in FAMILIES {
        for p in [Protocol::Tcp, Protocol::Udp] {
            let mut sp = with_endpoints(service("ext", p, &vip(fam, 30), 80), &[(1, true), (2, true), (3, true)]);
            sp.external_ips = vec![ext_ip(fam)];
            sp.load_balancer_ips = vec![lb_ip(fam)];
            ports.push(sp);
        }
    }
    let _b = program(&t.node, &state(ports));
    for fam in FAMILIES {
        for proto in [Proto::Tcp, Proto::Udp] {
            for ip in [ext_ip(fam), lb_ip(fam)] {
                let r = send(&t.client().ns, proto, SocketAddr::new(ip, 80), 24, T);
                assert_spread(&r, 24, &[1, 2, 3], gateway(fam));
            }
        }
    }
}

#[test]
fn etp_local_keeps_the_client_ip_uses_local_endpoints_and_short_circuits_pods() {
    let t = topology(3);
    let mut ports = Vec::new();
    let mut none_local = Vec::new();
    for fam in FAMILIES {
        // pod3 "runs on another node": not local.
        let mut sp = with_endpoints(service("local", Protocol::Tcp, &vip(fam, 40), 80), &[(1, true), (2, true), (3, false)]);
        sp.external_traffic_policy = TrafficPolicy::Local;
        sp.load_balancer_ips = vec![lb_ip(fam)];
        sp.node_port = Some(30040);
        ports.push(sp);
        let mut nl = with_endpoints(service("nolocal", Protocol::Tcp, &vip(fam, 41), 80), &[(3, false)]);
        nl.external_traffic_policy = TrafficPolicy::Local;
        nl.external_ips = vec![ext_ip(fam)];
        none_local.push(nl);
    }
    ports.extend(none_local);
    let _b = program(&t.node, &state(ports));
    for fam in FAMILIES {
        let client = client_ip(&t, fam);
        let r = send(&t.client().ns, Proto::Tcp, SocketAddr::new(lb_ip(fam), 80), 24, T);
        assert_spread(&r, 24, &[1, 2], client);
        let r = send(&t.client().ns, Proto::Tcp, SocketAddr::new(node_ip(fam), 30040), 24, T);
        assert_spread(&r, 24, &[1, 2], client);
        // A pod reaching the LB IP is short-circuited to every cluster endpoint, unmasqueraded.
        let r = send(&t.pod(1).ns, Proto::Tcp, SocketAddr::new(lb_ip(fam), 80), 30, T);
        assert_eq!(r.answered(), 30, "{fam:?}: {r}");
        assert!(r.by_server.contains_key("pod3"), "{fam:?} short-circuit reaches non-local endpoints: {r}");
        // The node itself is short-circuited too, and masqueraded.
        let r = send(&t.node, Proto::Tcp, SocketAddr::new(lb_ip(fam), 80), 30, T);
        assert!(r.by_server.contains_key("pod3"), "{fam:?} node short-circuit: {r}");
        assert_eq!(r.answered(), 30, "{fam:?}: {r}");
        // No local endpoint: external traffic is dropped, pods still reach the service.
        let r = send(&t.client().ns, Proto::Tcp, SocketAddr::new(ext_ip(fam), 80), 2, DROP_T);
        assert_eq!(r.timeouts, 2, "{fam:?} eTP=Local without local endpoints drops: {r}");
        let r = send(&t.pod(1).ns, Proto::Tcp, SocketAddr::new(ext_ip(fam), 80), 4, T);
        assert_spread(&r, 4, &[3], pod_ip(fam, 1));
    }
}

#[test]
fn itp_local_uses_only_local_endpoints_and_drops_without_them() {
    let t = topology(3);
    let mut ports = Vec::new();
    for fam in FAMILIES {
        let mut sp = with_endpoints(service("itp", Protocol::Udp, &vip(fam, 50), 53), &[(1, true), (2, false), (3, false)]);
        sp.internal_traffic_policy = TrafficPolicy::Local;
        sp.port = 53;
        ports.push(sp);
        let mut none = with_endpoints(service("itp-none", Protocol::Tcp, &vip(fam, 51), 80), &[(2, false)]);
        none.internal_traffic_policy = TrafficPolicy::Local;
        ports.push(none);
    }
    let _b = program(&t.node, &state(ports));
    for fam in FAMILIES {
        let r = send(&t.pod(2).ns, Proto::Udp, sa(&vip(fam, 50), 53), 12, T);
        assert_spread(&r, 12, &[1], pod_ip(fam, 2));
        let r = send(&t.pod(2).ns, Proto::Tcp, sa(&vip(fam, 51), 80), 2, DROP_T);
        assert_eq!(r.timeouts, 2, "{fam:?} iTP=Local without local endpoints drops: {r}");
    }
}

#[test]
fn load_balancer_source_ranges_filter_the_lb_ip_only() {
    let t = topology(2);
    let mut ports = Vec::new();
    for fam in FAMILIES {
        let (allowed, other) = match fam {
            IpFamily::V4 => ("198.19.64.0/24", "198.19.65.0/24"),
            IpFamily::V6 => ("2001:db8:c:64::/64", "2001:db8:c:65::/64"),
        };
        let mut open = with_endpoints(service("fw-open", Protocol::Tcp, &vip(fam, 60), 80), &[(1, true), (2, true)]);
        open.load_balancer_ips = vec![lb_ip(fam)];
        open.load_balancer_source_ranges = vec![allowed.parse().unwrap()];
        ports.push(open);
        let mut closed = with_endpoints(service("fw-closed", Protocol::Tcp, &vip(fam, 61), 81), &[(1, true), (2, true)]);
        closed.load_balancer_ips = vec![lb_ip(fam)];
        closed.port = 81;
        closed.node_port = Some(30061);
        closed.load_balancer_source_ranges = vec![other.parse().unwrap()];
        ports.push(closed);
    }
    let _b = program(&t.node, &state(ports));
    for fam in FAMILIES {
        let r = send(&t.client().ns, Proto::Tcp, SocketAddr::new(lb_ip(fam), 80), 6, T);
        assert_eq!(r.answered(), 6, "{fam:?} source inside the ranges: {r}");
        let r = send(&t.client().ns, Proto::Tcp, SocketAddr::new(lb_ip(fam), 81), 2, DROP_T);
        assert_eq!(r.timeouts, 2, "{fam:?} source outside the ranges is dropped: {r}");
        let r = send(&t.client().ns, Proto::Tcp, SocketAddr::new(node_ip(fam), 30061), 4, T);
        assert_eq!(r.answered(), 4, "{fam:?} the NodePort is not filtered: {r}");
    }
}

#[test]
fn load_balancer_source_ranges_are_per_protocol() {
    let t = topology(2);
    let range = |fam: IpFamily, allow: bool| -> &'static str {
        match (fam, allow) {
            (IpFamily::V4, true) => "198.19.64.0/24",
            (IpFamily::V4, false) => "198.19.65.0/24",
            (IpFamily::V6, true) => "2001:db8:c:64::/64",
            (IpFamily::V6, false) => "2001:db8:c:65::/64",
        }
    };
    // A TCP and a UDP service on the same LB IP and port; only TCP allows the client.
    let ports = |udp_allows: bool| {
        let mut ports = Vec::new();
        for fam in FAMILIES {
            for (name, proto, n, allow) in [("fw-tcp", Protocol::Tcp, 62, true), ("fw-udp", Protocol::Udp, 63, udp_allows)] {
                let mut sp = with_endpoints(service(name, proto, &vip(fam, n), 90), &[(1, true), (2, true)]);
                sp.load_balancer_ips = vec![lb_ip(fam)];
                sp.load_balancer_source_ranges = vec![range(fam, allow).parse().unwrap()];
                ports.push(sp);
            }
        }
        state(ports)
    };
    let mut b = program(&t.node, &ports(false));
    for fam in FAMILIES {
        let lb = SocketAddr::new(lb_ip(fam), 90);
        let r = send(&t.client().ns, Proto::Tcp, lb, 4, T);
        assert_eq!(r.answered(), 4, "{fam:?} TCP allows the client: {r}");
        let r = send(&t.client().ns, Proto::Udp, lb, 2, DROP_T);
        assert_eq!(r.timeouts, 2, "{fam:?} UDP on the same IP and port does not: {r}");
    }
    update(&mut b, &ports(false), &ports(true));
    for fam in FAMILIES {
        let r = send(&t.client().ns, Proto::Udp, SocketAddr::new(lb_ip(fam), 90), 4, T);
        assert_eq!(r.answered(), 4, "{fam:?} UDP once its range allows the client: {r}");
    }
}

#[test]
fn lb_ips_are_allowed_sources_when_a_node_ip_is_inside_the_ranges() {
    let t = topology(2);
    let mut ports = Vec::new();
    for fam in FAMILIES {
        let (client, node) = match fam {
            IpFamily::V4 => ("198.19.64.0/24", "198.19.0.0/24"),
            IpFamily::V6 => ("2001:db8:c:64::/64", "2001:db8:c::/64"),
        };
        let mut with_node = with_endpoints(service("fw-node", Protocol::Tcp, &vip(fam, 64), 91), &[(1, true), (2, true)]);
        with_node.load_balancer_ips = vec![lb_ip(fam)];
        with_node.load_balancer_source_ranges = vec![client.parse().unwrap(), node.parse().unwrap()];
        ports.push(with_node);
        let mut without = with_endpoints(service("fw-no-node", Protocol::Tcp, &vip(fam, 65), 92), &[(1, true), (2, true)]);
        without.load_balancer_ips = vec![lb_ip(fam)];
        without.load_balancer_source_ranges = vec![client.parse().unwrap()];
        ports.push(without);
        // Traffic whose source is the LB IP itself (as some cloud load balancers send it):
        // from the node, bound to the LB IP.
        let prefix = if fam == IpFamily::V4 { "32" } else { "128" };
        let mut add = vec!["ip".to_string(), "addr".into(), "add".into(), format!("{}/{prefix}", lb_ip(fam)), "dev".into(), "lo".into()];
        if fam == IpFamily::V6 {
            add.push("nodad".into());
        }
        t.node.exec(&add).expect("adding the LB IP to the node's loopback");
    }
    let _b = program(&t.node, &state(ports));
    for fam in FAMILIES {
        let src = SocketAddr::new(lb_ip(fam), 0);
        let r = kproxy_tests::tcp_request_from(&t.node, src, SocketAddr::new(lb_ip(fam), 91), T);
        assert!(r.is_ok(), "{fam:?} a node IP is in the ranges: the LB IP is an allowed source: {r:?}");
        let r = kproxy_tests::tcp_request_from(&t.node, src, SocketAddr::new(lb_ip(fam), 92), DROP_T);
        assert!(r.as_ref().is_err_and(|e| e.is_timeout()), "{fam:?} no node IP in the ranges: the LB IP source is dropped: {r:?}");
        for port in [91, 92] {
            let r = send(&t.client().ns, Proto::Tcp, SocketAddr::new(lb_ip(fam), port), 2, T);
            assert_eq!(r.answered(), 2, "{fam:?} the client is inside both ranges (port {port}): {r}");
        }
    }
}

#[test]
fn session_affinity_keeps_a_client_on_one_endpoint_ipv4() {
    session_affinity_case(IpFamily::V4);
}

#[test]
fn session_affinity_keeps_a_client_on_one_endpoint_ipv6() {
    session_affinity_case(IpFamily::V6);
}

/// Sticky ClusterIP and NodePort in `fam`: each client keeps one endpoint; when that endpoint
/// is removed, the client moves to a remaining one and sticks to it; a plain service spreads.
fn session_affinity_case(fam: IpFamily) {
    let t = topology(3);
    let mut sp = with_endpoints(service("sticky", Protocol::Tcp, &vip(fam, 70), 80), &[(1, true), (2, true), (3, true)]);
    sp.session_affinity = Some(SessionAffinity { timeout_seconds: 600 });
    sp.node_port = Some(30070);
    let plain = with_endpoints(service("plain", Protocol::Tcp, &vip(fam, 71), 80), &[(1, true), (2, true), (3, true)]);
    let mut b = program(&t.node, &state(vec![sp.clone(), plain.clone()]));
    for ns in [&t.pod(1).ns, &t.pod(2).ns, &t.client().ns] {
        let r = send(ns, Proto::Tcp, sa(&vip(fam, 70), 80), 20, T);
        assert_eq!(r.answered(), 20, "{fam:?}: {r}");
        assert_eq!(r.by_server.len(), 1, "{fam:?} one client, one endpoint: {r}");
    }
    // The endpoint pod1 sticks to goes away: pod1 must be re-balanced, not sent to it.
    let r = send(&t.pod(1).ns, Proto::Tcp, sa(&vip(fam, 70), 80), 1, T);
    let stuck: u8 = r.by_server.keys().next().unwrap().trim_start_matches("pod").parse().unwrap();
    let remaining: Vec<(u8, bool)> = [1u8, 2, 3].into_iter().filter(|k| *k != stuck).map(|k| (k, true)).collect();
    let mut fewer = with_endpoints(sp.clone(), &remaining);
    fewer.session_affinity = sp.session_affinity;
    update(&mut b, &state(vec![sp.clone(), plain.clone()]), &state(vec![fewer, plain.clone()]));
    let r = send(&t.pod(1).ns, Proto::Tcp, sa(&vip(fam, 70), 80), 10, T);
    assert_eq!(r.answered(), 10, "{fam:?} after removing the sticky endpoint: {r}");
    assert_eq!(r.by_server.len(), 1, "{fam:?} sticky again, to a remaining endpoint: {r}");
    assert!(!r.by_server.contains_key(&format!("pod{stuck}")), "{fam:?} never the removed endpoint: {r}");
    let r = send(&t.client().ns, Proto::Tcp, SocketAddr::new(node_ip(fam), 30070), 20, T);
    assert_eq!(r.answered(), 20, "{fam:?} NodePort: {r}");
    assert_eq!(r.by_server.len(), 1, "{fam:?} NodePort affinity: {r}");
    let r = send(&t.pod(1).ns, Proto::Tcp, sa(&vip(fam, 71), 80), 30, T);
    assert!(r.by_server.len() > 1, "{fam:?} without affinity the same client is spread: {r}");
}

#[test]
fn nodeport_affinity_works_with_every_node_port_addresses_mode() {
    let t = topology(3);
    let modes = [
        ("CIDRs", vec!["198.19.0.0/24".parse().unwrap(), "2001:db8:c::/64".parse().unwrap()]),
        ("all", vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]),
    ];
    for (mode, cidrs) in modes {
        for fam in FAMILIES {
            let mut sp = with_endpoints(service("sticky-np", Protocol::Tcp, &vip(fam, 72), 80), &[(1, true), (2, true), (3, true)]);
            sp.session_affinity = Some(SessionAffinity { timeout_seconds: 600 });
            sp.node_port = Some(30072);
            let mut s = state(vec![sp.clone()]);
            s.settings.node_port_addresses = NodePortAddresses::Cidrs(cidrs.clone());
            let mut b = program(&t.node, &s);
            let np = SocketAddr::new(node_ip(fam), 30072);
            let r = send(&t.client().ns, Proto::Tcp, np, 20, T);
            assert_eq!(r.answered(), 20, "{mode} {fam:?}: {r}");
            assert_eq!(r.by_server.len(), 1, "{mode} {fam:?} NodePort affinity, external client: {r}");
            let stuck: u8 = r.by_server.keys().next().unwrap().trim_start_matches("pod").parse().unwrap();
            let remaining: Vec<(u8, bool)> = [1u8, 2, 3].into_iter().filter(|k| *k != stuck).map(|k| (k, true)).collect();
            let mut fewer = with_endpoints(sp.clone(), &remaining);
            fewer.session_affinity = sp.session_affinity;
            let mut next = state(vec![fewer]);
            next.settings = s.settings.clone();
            update(&mut b, &s, &next);
            let r = send(&t.client().ns, Proto::Tcp, np, 10, T);
            assert_eq!(r.answered(), 10, "{mode} {fam:?} after removing the sticky endpoint: {r}");
            assert_eq!(r.by_server.len(), 1, "{mode} {fam:?} sticky again: {r}");
            assert!(!r.by_server.contains_key(&format!("pod{stuck}")), "{mode} {fam:?} never the removed endpoint: {r}");
        }
    }
}

#[test]
fn masquerade_all_masquerades_pod_traffic_too() {
    let t = topology(2);
    let mut s = state(vec![with_endpoints(service("all", Protocol::Tcp, &vip(IpFamily::V4, 80), 80), &[(1, true), (2, true)])]);
    s.settings.masquerade_all = true;
    let _b = program(&t.node, &s);
    let r = send(&t.pod(1).ns, Proto::Tcp, sa(&vip(IpFamily::V4, 80), 80), 12, T);
    assert_spread(&r, 12, &[1, 2], gateway(IpFamily::V4));
}

/// Upstream's masqueradeAll rule matches only traffic to the ClusterIP (`ip daddr <ClusterIP>
/// ... jump mark-for-masquerade` in the service chain): a pod reaching an eTP=Local LB IP is
/// short-circuited to the service's endpoints with its own source address, masqueradeAll or not.
#[test]
fn masquerade_all_leaves_pod_traffic_to_an_etp_local_lb_ip_unmasqueraded() {
    let t = topology(3);
    let mut ports = Vec::new();
    for fam in FAMILIES {
        let mut sp = with_endpoints(service("lblocal", Protocol::Tcp, &vip(fam, 81), 80), &[(2, true), (3, true)]);
        sp.external_traffic_policy = TrafficPolicy::Local;
        sp.load_balancer_ips = vec![lb_ip(fam)];
        ports.push(sp);
    }
    let mut s = state(ports);
    s.settings.masquerade_all = true;
    let _b = program(&t.node, &s);
    for fam in FAMILIES {
        // pod1 is not an endpoint, so no hairpin masquerade is involved.
        let r = send(&t.pod(1).ns, Proto::Tcp, SocketAddr::new(lb_ip(fam), 80), 12, T);
        assert_spread(&r, 12, &[2, 3], pod_ip(fam, 1));
        // The same pod to the ClusterIP: masqueradeAll applies.
        let r = send(&t.pod(1).ns, Proto::Tcp, sa(&vip(fam, 81), 80), 12, T);
        assert_spread(&r, 12, &[2, 3], gateway(fam));
    }
}
