//! Self-tests of `Topology`, `TestServer` and the clients: real packets between namespaces.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use kproxy_tests::{
    nft_apply, plan, require_root, tally, tcp_connect, tcp_request, tcp_request_from, udp_request,
    ClientError, Proto, ServerSpec, TestServer, Topology,
};

const T: Duration = Duration::from_secs(2);
const PORT: u16 = 8080;

fn topo() -> Topology {
    require_root();
    Topology::builder()
        .pods(3)
        .clients(1)
        .serve(ServerSpec::both(&[PORT, 9090]))
        .build()
        .expect("building topology")
}

#[test]
fn pod_reaches_pod_over_tcp_and_udp_both_families() {
    let t = topo();
    let (p1, p2) = (t.pod(1), t.pod(2));
    for (dst, src_ip) in [
        (p2.addr_v4(PORT), IpAddr::V4(p1.ipv4)),
        (p2.addr_v6(PORT), IpAddr::V6(p1.ipv6)),
    ] {
        let tcp = tcp_request(&p1.ns, dst, T).unwrap_or_else(|e| panic!("tcp {dst}: {e}"));
        assert_eq!(tcp.server, "pod2");
        assert_eq!(tcp.peer.ip(), src_ip);
        let udp = udp_request(&p1.ns, dst, T).unwrap_or_else(|e| panic!("udp {dst}: {e}"));
        assert_eq!(udp.server, "pod2");
        assert_eq!(udp.peer.ip(), src_ip);
    }
    let other_port = tcp_request(&p1.ns, p2.addr_v4(9090), T).unwrap();
    assert_eq!(other_port.server, "pod2");
}

#[test]
fn external_client_and_pods_reach_the_node() {
    let t = topo();
    let node_server = TestServer::start(&t.node, "node", &ServerSpec::both(&[PORT])).unwrap();
    assert_eq!(node_server.name(), "node");
    let c = t.client();
    for (node_ip, client_ip) in [
        (IpAddr::V4(t.node_ipv4()), IpAddr::V4(c.ipv4)),
        (IpAddr::V6(t.node_ipv6()), IpAddr::V6(c.ipv6)),
    ] {
        let dst = SocketAddr::new(node_ip, PORT);
        for reply in [tcp_request(&c.ns, dst, T), udp_request(&c.ns, dst, T)] {
            let reply = reply.unwrap_or_else(|e| panic!("{dst}: {e}"));
            assert_eq!(reply.server, "node");
            assert_eq!(
                reply.peer.ip(),
                client_ip,
                "the node must see the client's own address"
            );
        }
    }
    // Pods reach the node's uplink address through the bridge gateway, unmasqueraded.
    let reply = tcp_request(
        &t.pod(3).ns,
        SocketAddr::new(IpAddr::V4(t.node_ipv4()), PORT),
        T,
    )
    .unwrap();
    assert_eq!(
        (reply.server.as_str(), reply.peer.ip()),
        ("node", IpAddr::V4(t.pod(3).ipv4))
    );
    let reply6 = tcp_request(
        &t.pod(3).ns,
        SocketAddr::new(IpAddr::V6(t.node_ipv6()), PORT),
        T,
    )
    .unwrap();
    assert_eq!(reply6.peer.ip(), IpAddr::V6(t.pod(3).ipv6));
}

#[test]
fn external_client_has_no_route_to_pods() {
    // Outside clients reach pods only through services, as in a real cluster.
    let t = topo();
    let err = tcp_request(&t.client().ns, t.pod(1).addr_v4(PORT), T).unwrap_err();
    assert!(
        matches!(err, ClientError::Unreachable(_)),
        "expected unreachable, got {err:?}"
    );
}

#[test]
fn node_reaches_pods_from_its_bridge_address() {
    let t = topo();
    let reply = tcp_request(&t.node, t.pod(1).addr_v4(PORT), T).unwrap();
    assert_eq!(reply.peer.ip(), IpAddr::V4(plan::POD_GW_V4));
    let from = SocketAddr::new(IpAddr::V4(t.node_ipv4()), 0);
    let reply = tcp_request_from(&t.node, from, t.pod(1).addr_v4(PORT), T).unwrap();
    assert_eq!(
        reply.peer.ip(),
        IpAddr::V4(t.node_ipv4()),
        "explicit source address must be used"
    );
}

#[test]
fn closed_port_is_refused_and_dropped_traffic_times_out() {
    let t = topo();
    let (p1, p2) = (t.pod(1), t.pod(2));
    for dst in [p2.addr_v4(7), p2.addr_v6(7)] {
        assert!(
            tcp_request(&p1.ns, dst, T).unwrap_err().is_refused(),
            "tcp {dst}"
        );
        assert!(
            udp_request(&p1.ns, dst, T).unwrap_err().is_refused(),
            "udp {dst}"
        );
    }
    // A drop rule inside pod2 (never the root namespace) turns answers into timeouts.
    p2.ns.exec(["nft", "add table inet kpt; add chain inet kpt in { type filter hook input priority 0; }; add rule inet kpt in tcp dport 8080 drop; add rule inet kpt in udp dport 8080 drop"]).unwrap();
    let short = Duration::from_millis(300);
    let started = std::time::Instant::now();
    assert!(tcp_request(&p1.ns, p2.addr_v4(PORT), short)
        .unwrap_err()
        .is_timeout());
    assert!(udp_request(&p1.ns, p2.addr_v6(PORT), short)
        .unwrap_err()
        .is_timeout());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "timeouts must be bounded: {:?}",
        started.elapsed()
    );
    // A reject rule gives "refused" even though a server listens.
    p2.ns.exec(["nft", "add rule inet kpt in tcp dport 9090 reject; add rule inet kpt in udp dport 9090 reject"]).unwrap();
    assert!(tcp_request(&p1.ns, p2.addr_v4(9090), T)
        .unwrap_err()
        .is_refused());
    assert!(udp_request(&p1.ns, p2.addr_v4(9090), T)
        .unwrap_err()
        .is_refused());
}

#[test]
fn tally_counts_who_answered_and_long_lived_sessions_work() {
    let t = topo();
    let counts = tally(&t.pod(1).ns, Proto::Tcp, t.pod(3).addr_v4(PORT), 10, T).unwrap();
    assert_eq!(counts.by_server.get("pod3"), Some(&10), "{counts}");
    assert_eq!(
        counts.by_peer.get(&IpAddr::V4(t.pod(1).ipv4)),
        Some(&10),
        "{counts}"
    );
    let refused = tally(&t.pod(1).ns, Proto::Udp, t.pod(3).addr_v6(7), 3, T).unwrap();
    assert_eq!((refused.answered(), refused.refused), (0, 3), "{refused}");

    let mut session = tcp_connect(&t.pod(2).ns, t.pod(1).addr_v6(PORT), T).unwrap();
    assert_eq!(session.greeting().map(|g| g.server.as_str()), Some("pod1"));
    let first_port = session.greeting().unwrap().peer.port();
    for _ in 0..3 {
        let r = session.request().unwrap();
        assert_eq!(
            (r.server.as_str(), r.peer.port()),
            ("pod1", first_port),
            "same connection"
        );
    }
}

#[test]
fn dropping_the_topology_removes_every_namespace_and_server() {
    let t = topo();
    let mut names: Vec<PathBuf> = vec![t.node.path(), t.client().ns.path()];
    names.extend(t.pods.iter().map(|p| p.ns.path()));
    let pids: Vec<u32> = t
        .pods
        .iter()
        .filter_map(|p| p.server.as_ref())
        .map(|s| s.pid())
        .collect();
    assert_eq!(pids.len(), 3);
    assert!(names.iter().all(|n| n.exists()));
    drop(t);
    for n in &names {
        assert!(!n.exists(), "{} survived", n.display());
    }
    for pid in pids {
        assert!(
            !PathBuf::from(format!("/proc/{pid}")).exists(),
            "server {pid} survived"
        );
    }
}

#[test]
fn topology_is_cleaned_up_after_a_panic() {
    require_root();
    let mut names = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let t = Topology::builder().pods(1).clients(1).build().unwrap();
        names = vec![t.node.path(), t.pod(1).ns.path(), t.client().ns.path()];
        panic!("simulated failure mid-test");
    }));
    assert!(result.is_err());
    assert_eq!(names.len(), 3);
    for n in &names {
        assert!(!n.exists(), "{} survived the panic", n.display());
    }
}

#[test]
fn reject_in_the_node_is_refused_for_every_family_and_protocol() {
    // ICMPv6 port unreachable often reaches a TCP client while connect() still holds the
    // socket lock (veth delivers it synchronously); the client must still call it refused.
    let t = topo();
    nft_apply(
        &t.node,
        "table inet kpt_rej {\n chain fw {\n  type filter hook forward priority 0; policy accept;\n  \
         ip daddr 198.19.160.20 reject\n  ip6 daddr 2001:db8:b::20 reject\n }\n}\n",
    )
    .unwrap();
    let c = &t.client().ns;
    for dst in ["198.19.160.20:80", "[2001:db8:b::20]:80"] {
        let dst: SocketAddr = dst.parse().unwrap();
        for i in 0..3 {
            let started = std::time::Instant::now();
            let tcp = tcp_request(c, dst, Duration::from_millis(1500)).unwrap_err();
            assert!(
                tcp.is_refused(),
                "tcp {dst} attempt {i}: {tcp:?} after {:?}",
                started.elapsed()
            );
            let udp = udp_request(c, dst, T).unwrap_err();
            assert!(udp.is_refused(), "udp {dst} attempt {i}: {udp:?}");
        }
    }
}

#[test]
fn a_server_that_cannot_bind_reports_why() {
    let t = topo();
    // pod1 already serves 8080 (builder), so a second server there cannot bind it.
    let err = t
        .pod(1)
        .start_server(&ServerSpec::tcp(&[PORT]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not become ready"), "{err}");
    assert!(
        err.contains("binding tcp port 8080") && err.contains("Address already in use"),
        "stderr not reported: {err}"
    );
}
