//! The demo's requests and how their outcome is shown.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kproxy_tests::{plan, tally, Netns, Proto, Tally, Topology};

const TIMEOUT: Duration = Duration::from_millis(800);

struct Probe<'a> {
    what: &'static str,
    from: (&'a str, &'a Netns, IpAddr),
    proto: Proto,
    to: SocketAddr,
    count: usize,
    /// Must answer for the demo to count as working.
    essential: bool,
}

/// Sends the demo's requests and prints the spread; false if an essential probe got no answer.
pub fn exercise(topo: &Topology) -> bool {
    let pod1 = topo.pod(1);
    let pod2 = topo.pod(2);
    let client = topo.client();
    let sa = |ip: &str, port| {
        SocketAddr::new(
            ip.parse().unwrap_or_else(|_| unreachable!("literal IP")),
            port,
        )
    };
    let from_pod1 = (pod1.name.as_str(), &pod1.ns, IpAddr::V4(pod1.ipv4));
    let from_pod1_v6 = (pod1.name.as_str(), &pod1.ns, IpAddr::V6(pod1.ipv6));
    let from_client = (client.name.as_str(), &client.ns, IpAddr::V4(client.ipv4));
    let from_client_v6 = (client.name.as_str(), &client.ns, IpAddr::V6(client.ipv6));
    let probes = [
        Probe {
            what: "web ClusterIP",
            from: from_pod1,
            proto: Proto::Tcp,
            to: sa("198.19.160.10", 80),
            count: 30,
            essential: true,
        },
        Probe {
            what: "web ClusterIP",
            from: from_pod1,
            proto: Proto::Udp,
            to: sa("198.19.160.10", 53),
            count: 30,
            essential: false,
        },
        Probe {
            what: "web ClusterIP",
            from: from_pod1_v6,
            proto: Proto::Tcp,
            to: sa("2001:db8:b::10", 80),
            count: 30,
            essential: false,
        },
        Probe {
            what: "web-nodeport NodePort",
            from: from_client,
            proto: Proto::Tcp,
            to: SocketAddr::new(IpAddr::V4(plan::NODE_IP_V4), 30080),
            count: 30,
            essential: true,
        },
        Probe {
            what: "web-nodeport NodePort",
            from: from_client_v6,
            proto: Proto::Tcp,
            to: SocketAddr::new(IpAddr::V6(plan::NODE_IP_V6), 30080),
            count: 30,
            essential: false,
        },
        Probe {
            what: "sticky (ClientIP affinity)",
            from: (pod2.name.as_str(), &pod2.ns, IpAddr::V4(pod2.ipv4)),
            proto: Proto::Tcp,
            to: sa("198.19.160.12", 80),
            count: 10,
            essential: false,
        },
        Probe {
            what: "local NodePort (eTP=Local)",
            from: from_client,
            proto: Proto::Tcp,
            to: SocketAddr::new(IpAddr::V4(plan::NODE_IP_V4), 30081),
            count: 10,
            essential: false,
        },
        Probe {
            what: "local ExternalIP (eTP=Local)",
            from: from_client,
            proto: Proto::Tcp,
            to: sa("198.19.99.10", 80),
            count: 10,
            essential: false,
        },
    ];
    let mut ok = true;
    for p in &probes {
        let proto = match p.proto {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        };
        println!(
            "\n{} x {proto} {} -> {} {}",
            p.count, p.from.0, p.what, p.to
        );
        // A few probes first, so a dead path costs three timeouts instead of `count`.
        let probes = p.count.min(3);
        let result = tally(p.from.1, p.proto, p.to, probes, TIMEOUT).and_then(|mut t| {
            if t.answered() > 0 {
                t.merge(tally(p.from.1, p.proto, p.to, p.count - probes, TIMEOUT)?);
            }
            Ok(t)
        });
        match result {
            Ok(t) => {
                println!("  {t}");
                println!("  {}", sources(&t, p.from.2));
                if t.answered() == 0 && p.essential {
                    ok = false;
                }
            }
            Err(e) => {
                println!("  could not send: {e}");
                ok &= !p.essential;
            }
        }
    }
    ok
}

/// Says for each source the pods saw whether it is the requester (not masqueraded) or a
/// node address (masqueraded).
fn sources(t: &Tally, requester: IpAddr) -> String {
    let node_ips = [
        plan::POD_GW_V4.into(),
        plan::NODE_IP_V4.into(),
        IpAddr::V6(plan::POD_GW_V6),
        IpAddr::V6(plan::NODE_IP_V6),
    ];
    let parts: Vec<String> = t
        .by_peer
        .keys()
        .map(|ip| {
            if *ip == requester {
                format!("{ip}: the sender's own address (not masqueraded)")
            } else if node_ips.contains(ip) {
                format!("{ip}: a node address (masqueraded)")
            } else {
                format!("{ip}: unexpected source")
            }
        })
        .collect();
    if parts.is_empty() {
        "no answers".into()
    } else {
        parts.join("; ")
    }
}
