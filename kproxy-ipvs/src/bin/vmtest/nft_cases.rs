//! In-VM cases of the nftables table's filtering: eTP=Local without local endpoints (DROP)
//! and the short-circuit of pods and the node to the cluster endpoints, the NodePort of a
//! service without endpoints (REJECT), ports of a VIP that are no service port (REJECT even
//! though the node listens there), and the node-IP exception of loadBalancerSourceRanges.

use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::*;
use kproxy_ipvs::IpvsConfig;

use crate::cases::{all_addresses, backend, ensure, inside, ip, pods, sa, service, state, R};
use crate::topo::{self, pod_ip, pod_ip6, pod_name, tcp_query, Answer, Topology, POD_PORT};

/// `res` must be an error containing `want` ("timed out": dropped, "refused": rejected).
fn fails_with(res: Result<Answer, String>, want: &str, what: &str) -> R {
    match res {
        Err(e) if e.contains(want) => Ok(()),
        other => Err(format!("{what}: expected {want:?}, got {other:?}")),
    }
}

const LOCAL_LB: &str = "198.19.200.5";
const FW_LB: &str = "198.19.200.6";

/// eTP=Local, REJECT/DROP filtering and the source-range node exception, by traffic.
pub fn nft_filtering_and_short_circuit() -> R {
    let t = Topology::new(2)?;
    // The node's own listener: must answer on its address, never on a VIP.
    topo::start_servers(&t.node, "node".into())?;
    // eTP=Local whose only endpoint (pod-1) is on another node.
    let mut remote = service("remote", Protocol::Tcp, "198.19.160.90", 80, &pods(&[1]));
    remote.local_endpoints.clear();
    for e in &mut remote.endpoints {
        e.local = false;
    }
    remote.node_port = Some(30092);
    remote.load_balancer_ips = vec![ip(LOCAL_LB)];
    remote.external_traffic_policy = TrafficPolicy::Local;
    let mut empty = service("empty-np", Protocol::Tcp, "198.19.160.91", 80, &[]);
    empty.node_port = Some(30093);
    let mut fw = service("fw-node", Protocol::Tcp, "198.19.160.92", 80, &pods(&[0]));
    fw.load_balancer_ips = vec![ip(FW_LB)];
    // Holds the node IP 198.19.0.2, not the client 198.19.64.10.
    fw.load_balancer_source_ranges = vec!["198.19.0.0/24".parse().expect("literal")];
    // The same eTP=Local case in IPv6.
    let pod1_v6 = sa(pod_ip6(1), POD_PORT);
    let mut remote6 = service("remote6", Protocol::Tcp, "2001:db8:f::90", 80, &[pod1_v6]);
    remote6.local_endpoints.clear();
    for e in &mut remote6.endpoints {
        e.local = false;
    }
    remote6.node_port = Some(30094);
    remote6.external_traffic_policy = TrafficPolicy::Local;
    let mut st = state(&[remote.clone(), empty, fw, remote6], all_addresses());
    st.settings.local_detector = LocalDetector::ClusterCidrs(vec![
        "198.18.0.0/16".parse().expect("literal"),
        "2001:db8:a::/64".parse().expect("literal"),
    ]);
    let be = backend(&t.node, IpvsConfig::default())?;
    let st0 = st.clone();
    let (be, r) = inside(&t.node, be, move |b| b.sync_full(&st0))?;
    r.map_err(|e| e.to_string())?;
    let node_ip = ip(topo::NODE_IP);

    // External traffic to eTP=Local without local endpoints: dropped, not rejected.
    fails_with(
        tcp_query(&t.ext, sa(node_ip, 30092)),
        "timed out",
        "external to eTP=Local NodePort without local endpoints",
    )?;
    fails_with(
        tcp_query(&t.ext, sa(ip(LOCAL_LB), 80)),
        "timed out",
        "external to eTP=Local LB IP without local endpoints",
    )?;
    // Pods are short-circuited to the cluster endpoints, their address kept.
    for dest in [sa(ip(LOCAL_LB), 80), sa(node_ip, 30092)] {
        let x = tcp_query(&t.pods[0], dest)?;
        ensure(
            x.pod == pod_name(1) && x.peer == pod_ip(0).to_string(),
            || format!("pod to eTP=Local {dest}: want pod-1 seeing the pod, got {x:?}"),
        )?;
    }
    // So is the node itself, masqueraded.
    for dest in [sa(ip(LOCAL_LB), 80), sa(node_ip, 30092)] {
        let x = tcp_query(&t.node, dest)?;
        ensure(x.pod == pod_name(1) && x.peer == topo::BRIDGE_IP, || {
            format!("node to eTP=Local {dest}: want pod-1 seeing the node, got {x:?}")
        })?;
    }
    // A NodePort of a service without endpoints: rejected.
    fails_with(
        tcp_query(&t.ext, sa(node_ip, 30093)),
        "refused",
        "NodePort of a service without endpoints",
    )?;
    // The node's listener: open on the node IP, rejected on VIPs.
    let x = tcp_query(&t.ext, sa(node_ip, POD_PORT))?;
    ensure(x.pod == "node", || format!("node listener: {x:?}"))?;
    for vip in ["198.19.160.92", FW_LB, "198.19.160.90"] {
        fails_with(
            tcp_query(&t.ext, sa(ip(vip), POD_PORT)),
            "refused",
            &format!("{vip}:{POD_PORT} is no service port"),
        )?;
    }
    // IPv6: dropped from outside, short-circuited for a pod and the node, VIP ports filtered.
    let np6 = sa(ip(topo::NODE_IP6), 30094);
    fails_with(
        tcp_query(&t.ext, np6),
        "timed out",
        "IPv6 eTP=Local NodePort",
    )?;
    let x = tcp_query(&t.pods[0], np6)?;
    ensure(
        x.pod == pod_name(1) && x.peer == pod_ip6(0).to_string(),
        || format!("IPv6 pod to eTP=Local NodePort: {x:?}"),
    )?;
    let x = tcp_query(&t.node, np6)?;
    ensure(x.pod == pod_name(1) && x.peer == "2001:db8:a::1", || {
        format!("IPv6 node to eTP=Local NodePort: {x:?}")
    })?;
    fails_with(
        tcp_query(&t.ext, sa(ip("2001:db8:f::90"), POD_PORT)),
        "refused",
        "IPv6 VIP port that is no service port",
    )?;
    // loadBalancerSourceRanges holding the node IP: the node (whose source to its own LB
    // IP is that LB IP) is allowed, the outside client is not.
    let route = t.node.ip(&format!("route get {FW_LB}"))?;
    ensure(route.contains(&format!("src {FW_LB}")), || {
        format!("the node does not use the LB IP as source: {route}")
    })?;
    let x = tcp_query(&t.node, sa(ip(FW_LB), 80))?;
    ensure(x.pod == pod_name(0), || format!("node to its LB IP: {x:?}"))?;
    fails_with(
        tcp_query(&t.ext, sa(ip(FW_LB), 80)),
        "timed out",
        "client outside loadBalancerSourceRanges",
    )?;
    let table = t
        .node
        .exec("/usr/sbin/nft", &["list", "table", "ip", "kproxy-ipvs"])?;
    for needle in [
        "dnat",
        "reject",
        "ip saddr 198.19.200.6",
        "fib daddr type local",
    ] {
        ensure(table.contains(needle), || {
            format!("nft list table lacks {needle:?}:\n{table}")
        })?;
    }
    // pod-1 turns local (a partial sync: element deletes only): the outside client now
    // reaches it through the NodePort, its address kept.
    let mut st2 = st.clone();
    let mut remote2 = remote.clone();
    remote2.local_endpoints = remote2.cluster_endpoints.clone();
    for e in &mut remote2.endpoints {
        e.local = true;
    }
    st2.services.insert(remote2.key(), remote2);
    let changes = st.diff(&st2);
    let (be, r) = inside(&t.node, be, move |b| b.sync_changes(&st2, &changes))?;
    r.map_err(|e| e.to_string())?;
    let x = tcp_query(&t.ext, sa(node_ip, 30092))?;
    ensure(x.pod == pod_name(1) && x.peer == topo::EXT_IP, || {
        format!("eTP=Local NodePort after its endpoint turned local: {x:?}")
    })?;
    let (_be, r) = inside(&t.node, be, |b| b.cleanup())?;
    r.map_err(|e| e.to_string())
}
