//! Real-kernel test of the UDP conntrack reconciler: UDP flows DNATed by nft rules inside a
//! network namespace made by this test, an endpoint removed, the reconciler run over
//! ctnetlink in that namespace, and `conntrack -L` (conntrack-tools) as the independent
//! witness. Needs root; fails loudly without it.

#[path = "daemon_support/fixtures.rs"]
mod fixtures;
#[path = "daemon_support/netns.rs"]
mod netns;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use kproxy_bin::conntrack::ConntrackCleanup;
use kproxy_telemetry::metrics::Metrics;
use kproxy_conntrack::{ConntrackSocket, Reconciler};
use kproxy_core::model::{Endpoint, IpFamily, Protocol, ProxyState, ServicePort};
use netns::Netns;

const RULES: &str = r#"
table ip kpct {
    chain out {
        type nat hook output priority -100; policy accept;
        ip daddr 198.19.160.10 udp dport 53 dnat to 198.18.0.10:5353
        ip daddr 198.19.160.20 udp dport 53 dnat to 198.18.0.11:5353
        ip daddr 198.19.0.1 udp dport 30053 dnat to 198.18.0.10:5353
    }
}
"#;

fn endpoint(addr: &str) -> Endpoint {
    fixtures::endpoint(addr, true, true)
}

fn udp_service(name: &str, ip: &str, node_port: Option<u16>, endpoints: Vec<Endpoint>) -> ServicePort {
    let mut port = fixtures::service_port("test", name, Protocol::Udp, ip, 53);
    port.name.port = "dns".into();
    port.node_port = node_port;
    fixtures::with_endpoints(port, endpoints)
}

fn conntrack_udp(ns: &Netns) -> String {
    ns.run("conntrack", &["-L", "-p", "udp"]).expect("conntrack -L inside the test namespace")
}

fn entries_to<'a>(listing: &'a str, needle: &str) -> Vec<&'a str> {
    listing.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn stale_udp_entries_to_removed_endpoints_are_deleted() {
    let ns = Netns::new("kpct").expect("create a network namespace (run as root)");
    ns.run("ip", &["link", "set", "lo", "up"]).unwrap();
    for addr in ["198.18.0.5/32", "198.18.0.10/32", "198.18.0.11/32", "198.19.0.1/32"] {
        ns.run("ip", &["addr", "add", addr, "dev", "lo"]).unwrap();
    }
    // Service IPs need a route for the first lookup, before the output hook DNATs them.
    ns.run("ip", &["route", "add", "198.19.160.0/20", "dev", "lo"]).unwrap();
    ns.run_stdin("nft", &["-f", "-"], RULES).expect("load the DNAT rules");

    // Sockets opened inside the namespace stay in it.
    // A TCP connection too: its entry must not even be dumped (the kernel filters by protocol).
    let (listeners, clients, _tcp) = ns.enter(|| {
        let listeners: Vec<UdpSocket> = ["198.18.0.10:5353", "198.18.0.11:5353", "198.18.0.11:7777"]
            .iter()
            .map(|a| UdpSocket::bind(a).expect("bind endpoint"))
            .collect();
        let clients: Vec<UdpSocket> =
            (0..4).map(|i| UdpSocket::bind(("198.18.0.5", 40000 + i)).expect("bind client")).collect();
        let tcp_listener = std::net::TcpListener::bind("198.18.0.11:7000").expect("bind TCP");
        let tcp_client =
            std::net::TcpStream::connect_timeout(&"198.18.0.11:7000".parse().unwrap(), Duration::from_secs(2))
                .expect("TCP connect");
        (listeners, clients, (tcp_listener, tcp_client))
    });
    let targets: [SocketAddr; 4] =
        ["198.19.160.10:53", "198.19.160.20:53", "198.19.0.1:30053", "198.18.0.11:7777"].map(|a| a.parse().unwrap());
    for (client, target) in clients.iter().zip(targets) {
        client.send_to(b"ping", target).expect("send a datagram");
    }
    // Every datagram arrived where the rules sent it (so each flow is in the table).
    for listener in &listeners {
        listener.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    }
    let mut buf = [0u8; 16];
    for (listener, expected) in [(&listeners[0], 2), (&listeners[1], 1), (&listeners[2], 1)] {
        for _ in 0..expected {
            listener.recv_from(&mut buf).expect("datagram delivered through the DNAT rule");
        }
    }
    let before = conntrack_udp(&ns);
    assert_eq!(entries_to(&before, "dst=198.19.160.10 ").len(), 1, "{before}");
    assert_eq!(entries_to(&before, "dport=30053 ").len(), 1, "{before}");
    let tcp_entries = ns.run("conntrack", &["-L", "-p", "tcp"]).unwrap();
    assert_eq!(entries_to(&tcp_entries, "dport=7000 ").len(), 1, "{tcp_entries}");

    // Endpoint 198.18.0.10 was removed from service a (replaced by .12); b is unchanged.
    let a = udp_service("a", "198.19.160.10", Some(30053), vec![endpoint("198.18.0.12:5353")]);
    let b = udp_service("b", "198.19.160.20", None, vec![endpoint("198.18.0.11:5353")]);
    let state = ProxyState { services: [a, b].into_iter().map(|p| (p.key(), p)).collect(), ..Default::default() };
    let metrics = Arc::new(Metrics::new());
    let socket = ns.enter(|| ConntrackSocket::open().expect("ctnetlink socket in the namespace"));
    let mut reconciler = ConntrackCleanup::new(Reconciler::with_table(socket), metrics.clone());
    let reports = reconciler.reconcile(&state).expect("reconcile");
    let v4 = &reports.iter().find(|(f, _)| *f == IpFamily::V4).expect("an IPv4 report").1;
    assert_eq!(v4.examined, 4, "only the four UDP entries are dumped: {reports:?}");
    assert_eq!(reconciler.reconciler().kernel_filters(), Some(true), "this kernel (6.x) filters dumps by protocol");
    assert_eq!(v4.stale, 2, "{reports:?}");
    assert_eq!(v4.deletes.deleted, 2, "{reports:?}");

    let after = conntrack_udp(&ns);
    assert!(entries_to(&after, "dst=198.19.160.10 ").is_empty(), "flow to the removed endpoint survived:\n{after}");
    assert!(entries_to(&after, "dport=30053 ").is_empty(), "NodePort flow to the removed endpoint survived:\n{after}");
    assert_eq!(entries_to(&after, "dst=198.19.160.20 ").len(), 1, "flow to a serving endpoint was deleted:\n{after}");
    assert_eq!(entries_to(&after, "dport=7777 ").len(), 1, "a non-service flow was deleted:\n{after}");
    let text = metrics.encode();
    assert!(text.contains("kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family=\"IPv4\"} 2"), "{text}");

    // The service is deleted: its remaining flow goes at the next reconciliation.
    let only_a = ProxyState {
        services: state.services.into_iter().filter(|(k, _)| k.name.name == "a").collect(),
        ..Default::default()
    };
    let reports = reconciler.reconcile(&only_a).expect("reconcile");
    assert_eq!(reports[0].1.deletes.deleted, 1, "{reports:?}");
    let last = conntrack_udp(&ns);
    assert!(entries_to(&last, "dst=198.19.160.20 ").is_empty(), "flow to a deleted service survived:\n{last}");
    assert_eq!(entries_to(&last, "dport=7777 ").len(), 1, "{last}");
}

const RULES_V6: &str = r#"
table ip6 kpct6 {
    chain out {
        type nat hook output priority -100; policy accept;
        ip6 daddr 2001:db8:b::10 udp dport 53 dnat to [2001:db8:a::10]:5353
        ip6 daddr 2001:db8:b::20 udp dport 53 dnat to [2001:db8:a::11]:5353
    }
}
"#;

#[test]
fn ipv6_stale_entries_are_deleted_too() {
    let ns = Netns::new("kpct6").expect("create a network namespace (run as root)");
    ns.run("ip", &["link", "set", "lo", "up"]).unwrap();
    for addr in ["2001:db8:a::5/128", "2001:db8:a::10/128", "2001:db8:a::11/128"] {
        ns.run("ip", &["-6", "addr", "add", addr, "dev", "lo", "nodad"]).unwrap();
    }
    ns.run("ip", &["-6", "route", "add", "2001:db8:b::/64", "dev", "lo"]).unwrap();
    ns.run_stdin("nft", &["-f", "-"], RULES_V6).expect("load the DNAT rules");
    let (listeners, clients) = ns.enter(|| {
        let listeners: Vec<UdpSocket> = ["[2001:db8:a::10]:5353", "[2001:db8:a::11]:5353"]
            .iter()
            .map(|a| UdpSocket::bind(a).expect("bind endpoint"))
            .collect();
        let clients: Vec<UdpSocket> =
            (0..2).map(|i| UdpSocket::bind(("2001:db8:a::5", 41000 + i)).expect("bind client")).collect();
        (listeners, clients)
    });
    for (client, target) in clients.iter().zip(["[2001:db8:b::10]:53", "[2001:db8:b::20]:53"]) {
        client.send_to(b"ping", target).expect("send a datagram");
    }
    let mut buf = [0u8; 16];
    for listener in &listeners {
        listener.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        listener.recv_from(&mut buf).expect("datagram delivered through the DNAT rule");
    }
    let before = ns.run("conntrack", &["-L", "-f", "ipv6", "-p", "udp"]).unwrap();
    assert_eq!(entries_to(&before, "dst=2001:db8:b::").len(), 2, "{before}");

    let a = udp_service("a6", "2001:db8:b::10", None, vec![endpoint("[2001:db8:a::12]:5353")]);
    let b = udp_service("b6", "2001:db8:b::20", None, vec![endpoint("[2001:db8:a::11]:5353")]);
    let state = ProxyState { services: [a, b].into_iter().map(|p| (p.key(), p)).collect(), ..Default::default() };
    let metrics = Arc::new(Metrics::new());
    let socket = ns.enter(|| ConntrackSocket::open().expect("ctnetlink socket in the namespace"));
    let mut reconciler = ConntrackCleanup::new(Reconciler::with_table(socket), metrics.clone());
    let reports = reconciler.reconcile(&state).expect("reconcile");
    let v6 = &reports.iter().find(|(f, _)| *f == IpFamily::V6).expect("an IPv6 report").1;
    assert_eq!((v6.examined, v6.stale, v6.deletes.deleted), (2, 1, 1), "{reports:?}");
    assert!(
        reconciler.reconcile(&state).expect("reconcile").is_empty(),
        "nothing changed: the table is not read again"
    );
    let after = ns.run("conntrack", &["-L", "-f", "ipv6", "-p", "udp"]).unwrap();
    assert!(entries_to(&after, "dst=2001:db8:b::10 ").is_empty(), "{after}");
    assert_eq!(entries_to(&after, "dst=2001:db8:b::20 ").len(), 1, "{after}");
    assert!(metrics.encode().contains("kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family=\"IPv6\"} 1"));
}
