//! Proves the topology carries service-style traffic before kproxy programs anything:
//! a hand-written nftables ruleset (upstream's chain-per-endpoint shape, nothing from
//! kproxy) in the node namespace DNATs a ClusterIP and a NodePort to the pods and
//! masquerades external and hairpin traffic. If these fail, a failing kproxy test is the
//! topology's fault, not the backend's.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kproxy_tests::{
    nft_apply, nft_json, plan, require_root, tally, tcp_request, udp_request, Proto, ServerSpec,
    Topology,
};

const T: Duration = Duration::from_secs(2);

/// ClusterIP 198.19.160.10:80 (TCP+UDP) and [2001:db8:b::10]:80 -> pods:8080,
/// NodePort 30080 on the node's IPv4 address -> pods:8080 (masqueraded).
const RULESET: &str = r#"
table ip kpt_hand {
    chain pre { type nat hook prerouting priority dstnat; policy accept; jump services; }
    chain out { type nat hook output priority -100; policy accept; jump services; }
    chain post { type nat hook postrouting priority srcnat; policy accept; meta mark & 0x4000 == 0x4000 masquerade; }
    chain services {
        ip daddr 198.19.160.10 meta l4proto { tcp, udp } th dport 80 goto svc
        ip daddr 198.19.0.1 tcp dport 30080 meta mark set meta mark | 0x4000 goto svc
    }
    chain svc { numgen random mod 3 vmap { 0 : goto ep1, 1 : goto ep2, 2 : goto ep3 }; }
    chain ep1 { ip saddr 198.18.0.11 meta mark set meta mark | 0x4000; meta l4proto tcp dnat to 198.18.0.11:8080; meta l4proto udp dnat to 198.18.0.11:8080; }
    chain ep2 { ip saddr 198.18.0.12 meta mark set meta mark | 0x4000; meta l4proto tcp dnat to 198.18.0.12:8080; meta l4proto udp dnat to 198.18.0.12:8080; }
    chain ep3 { ip saddr 198.18.0.13 meta mark set meta mark | 0x4000; meta l4proto tcp dnat to 198.18.0.13:8080; meta l4proto udp dnat to 198.18.0.13:8080; }
}
table ip6 kpt_hand6 {
    chain pre { type nat hook prerouting priority dstnat; policy accept; ip6 daddr 2001:db8:b::10 tcp dport 80 dnat to [2001:db8:a::12]:8080; }
}
"#;

fn topo_with_rules() -> Topology {
    require_root();
    let t = Topology::builder()
        .pods(3)
        .clients(1)
        .serve(ServerSpec::both(&[8080]))
        .build()
        .unwrap();
    nft_apply(&t.node, RULESET).expect("loading the hand-written ruleset in the node namespace");
    t
}

fn all_pods() -> BTreeSet<String> {
    ["pod1", "pod2", "pod3"].map(String::from).into()
}

#[test]
fn clusterip_from_a_pod_is_spread_and_keeps_the_source() {
    let t = topo_with_rules();
    let vip: SocketAddr = "198.19.160.10:80".parse().unwrap();
    let counts = tally(&t.pod(2).ns, Proto::Tcp, vip, 40, T).unwrap();
    assert_eq!(counts.answered(), 40, "{counts}");
    assert_eq!(
        counts.by_server.keys().cloned().collect::<BTreeSet<_>>(),
        all_pods(),
        "{counts}"
    );
    // pod2 reaching itself is hairpin-masqueraded; pod1/pod3 see pod2's own address.
    let pod2 = IpAddr::V4(t.pod(2).ipv4);
    assert!(counts.by_peer.contains_key(&pod2), "{counts}");
    assert!(
        counts
            .by_peer
            .keys()
            .all(|ip| *ip == pod2 || *ip == IpAddr::V4(plan::POD_GW_V4)),
        "{counts}"
    );
    let udp = udp_request(&t.pod(1).ns, vip, T).unwrap();
    assert!(all_pods().contains(&udp.server));
    let v6 = tcp_request(&t.pod(1).ns, "[2001:db8:b::10]:80".parse().unwrap(), T).unwrap();
    assert_eq!(
        (v6.server.as_str(), v6.peer.ip()),
        ("pod2", IpAddr::V6(t.pod(1).ipv6))
    );
}

#[test]
fn hairpin_to_self_is_masqueraded_to_the_bridge_address() {
    let t = topo_with_rules();
    // Only pod1 as endpoint: replace the dispatch so every choice lands on pod1.
    nft_apply(
        &t.node,
        "flush chain ip kpt_hand svc\nadd rule ip kpt_hand svc goto ep1\n",
    )
    .unwrap();
    let r = tcp_request(&t.pod(1).ns, "198.19.160.10:80".parse().unwrap(), T).unwrap();
    assert_eq!(
        (r.server.as_str(), r.peer.ip()),
        ("pod1", IpAddr::V4(plan::POD_GW_V4))
    );
}

#[test]
fn nodeport_from_the_external_client_is_spread_and_masqueraded() {
    let t = topo_with_rules();
    let np = SocketAddr::new(IpAddr::V4(plan::NODE_IP_V4), 30080);
    let counts = tally(&t.client().ns, Proto::Tcp, np, 40, T).unwrap();
    assert_eq!(counts.answered(), 40, "{counts}");
    assert_eq!(
        counts.by_server.keys().cloned().collect::<BTreeSet<_>>(),
        all_pods(),
        "{counts}"
    );
    assert_eq!(
        counts.by_peer.keys().collect::<Vec<_>>(),
        vec![&IpAddr::V4(plan::POD_GW_V4)],
        "{counts}"
    );
}

#[test]
fn clusterip_from_the_node_itself_goes_through_the_output_hook() {
    let t = topo_with_rules();
    let r = tcp_request(&t.node, "198.19.160.10:80".parse().unwrap(), T).unwrap();
    assert!(all_pods().contains(&r.server), "{r:?}");
    assert!(
        nft_json(&t.node).unwrap()["nftables"]
            .as_array()
            .unwrap()
            .len()
            > 5
    );
}
