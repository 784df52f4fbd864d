//! Which UDP conntrack entries are stale, decided from the programmed [`ProxyState`] alone
//! (pure: no sockets), as upstream's conntrack reconciler does (pkg/proxy/conntrack/cleanup.go).
//! Reading and deleting the entries (ctnetlink) is the `kproxy-conntrack` crate's job; this
//! module only holds the entry type and the verdict, so the decision is testable without root.
//!
//! UDP has no connection teardown, so an entry that DNATs a client to an endpoint keeps doing
//! so while the client keeps sending, even after the endpoint is gone: the client is
//! black-holed. After each sync, an entry is stale when its original destination is a UDP
//! service destination (ClusterIP, ExternalIP or LoadBalancer IP with the service port, or any
//! address with a UDP NodePort) and its reply source is not a currently serving endpoint of
//! that service port. Entries to destinations that existed at the previous sync and are gone
//! now (a deleted service) are stale too.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::model::{IpFamily, Protocol, ProxyState};

/// One direction of a conntrack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

/// A conntrack entry: both tuples, zone and the kernel's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// As the client sent it.
    pub orig: Tuple,
    /// As the answer comes back (its source is the endpoint after DNAT).
    pub reply: Tuple,
    /// Conntrack zone (0 by default).
    pub zone: u16,
    /// The entry's id, when the kernel reported it.
    pub id: Option<u32>,
}

impl Flow {
    /// The family of the entry.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.orig.src)
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "proto {} {} -> {} (reply from {})",
            self.orig.proto,
            SocketAddr::new(self.orig.src, self.orig.src_port),
            SocketAddr::new(self.orig.dst, self.orig.dst_port),
            SocketAddr::new(self.reply.src, self.reply.src_port)
        )
    }
}

/// The UDP destinations of a state and the endpoints allowed to answer on each.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UdpTargets {
    /// (service IP, port) -> serving endpoints.
    by_ip: HashMap<(IpAddr, u16), HashSet<SocketAddr>>,
    /// (family, NodePort) -> serving endpoints.
    by_node_port: HashMap<(IpFamily, u16), HashSet<SocketAddr>>,
}

/// What to do with a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a service flow, or answered by a serving endpoint.
    Keep,
    /// Delete it.
    Stale,
}

impl UdpTargets {
    /// Collect the UDP service destinations of `state`. Serving endpoints are those with
    /// `serving` set (ready ones, and terminating ones still serving), as upstream.
    pub fn of(state: &ProxyState) -> UdpTargets {
        let mut t = UdpTargets::default();
        for port in state.services.values().filter(|p| p.name.protocol == Protocol::Udp) {
            let serving: HashSet<SocketAddr> = port.endpoints.iter().filter(|e| e.serving).map(|e| e.addr).collect();
            let ips = std::iter::once(port.cluster_ip)
                .chain(port.external_ips.iter().copied())
                .chain(port.load_balancer_ips.iter().copied());
            for ip in ips {
                t.by_ip.entry((ip, port.port)).or_default().extend(serving.iter().copied());
            }
            if let Some(node_port) = port.node_port {
                t.by_node_port.entry((port.family, node_port)).or_default().extend(serving.iter().copied());
            }
        }
        t
    }

    /// Whether there is nothing to look for (no UDP service).
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty() && self.by_node_port.is_empty()
    }

    fn serving(&self, flow: &Flow) -> Option<&HashSet<SocketAddr>> {
        self.by_ip
            .get(&(flow.orig.dst, flow.orig.dst_port))
            .or_else(|| self.by_node_port.get(&(flow.family(), flow.orig.dst_port)))
    }

    /// Judge one flow against the current targets (`self`) and those of the previous sync.
    pub fn judge(&self, previous: &UdpTargets, flow: &Flow) -> Verdict {
        if flow.orig.proto != Protocol::Udp.number() {
            return Verdict::Keep;
        }
        let reply_src = SocketAddr::new(flow.reply.src, flow.reply.src_port);
        match self.serving(flow) {
            Some(serving) if serving.contains(&reply_src) => Verdict::Keep,
            Some(_) => Verdict::Stale,
            // A destination that was a service at the previous sync and is gone now.
            None if previous.serving(flow).is_some() => Verdict::Stale,
            None => Verdict::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, ServicePort, ServicePortName};

    fn ep(addr: &str, serving: bool) -> Endpoint {
        Endpoint { addr: addr.parse().unwrap(), local: false, ready: serving, serving, terminating: false }
    }

    fn udp_port(
        name: &str,
        cluster_ip: &str,
        port: u16,
        node_port: Option<u16>,
        endpoints: Vec<Endpoint>,
    ) -> ServicePort {
        let name =
            ServicePortName { namespace: "ns".into(), name: name.into(), port: String::new(), protocol: Protocol::Udp };
        let mut p = ServicePort::new(name, cluster_ip.parse().unwrap(), port);
        p.node_port = node_port;
        p.external_ips = vec!["198.19.99.1".parse().unwrap()];
        // Only `endpoints` (with their serving flag) matters to the verdict.
        p.endpoints = endpoints;
        p
    }

    fn state(ports: Vec<ServicePort>) -> ProxyState {
        ProxyState { services: ports.into_iter().map(|p| (p.key(), p)).collect(), ..Default::default() }
    }

    fn flow(dst: &str, dport: u16, reply_src: &str, rport: u16) -> Flow {
        Flow {
            orig: Tuple {
                src: "198.18.0.5".parse().unwrap(),
                dst: dst.parse().unwrap(),
                proto: 17,
                src_port: 40000,
                dst_port: dport,
            },
            reply: Tuple {
                src: reply_src.parse().unwrap(),
                dst: "198.18.0.5".parse().unwrap(),
                proto: 17,
                src_port: rport,
                dst_port: 40000,
            },
            zone: 0,
            id: None,
        }
    }

    #[test]
    fn table() {
        let now = UdpTargets::of(&state(vec![udp_port(
            "dns",
            "198.19.160.10",
            53,
            Some(30053),
            vec![ep("198.18.0.11:5353", true), ep("198.18.0.12:5353", false)],
        )]));
        let before =
            UdpTargets::of(&state(vec![udp_port("gone", "198.19.160.20", 53, None, vec![ep("198.18.0.20:53", true)])]));
        let cases = [
            ("answered by a serving endpoint", flow("198.19.160.10", 53, "198.18.0.11", 5353), Verdict::Keep),
            ("answered by a removed endpoint", flow("198.19.160.10", 53, "198.18.0.10", 5353), Verdict::Stale),
            ("answered by a non-serving endpoint", flow("198.19.160.10", 53, "198.18.0.12", 5353), Verdict::Stale),
            ("right IP, wrong port of the endpoint", flow("198.19.160.10", 53, "198.18.0.11", 53), Verdict::Stale),
            ("external IP, removed endpoint", flow("198.19.99.1", 53, "198.18.0.10", 5353), Verdict::Stale),
            (
                "NodePort on any address, removed endpoint",
                flow("198.19.0.1", 30053, "198.18.0.10", 5353),
                Verdict::Stale,
            ),
            ("NodePort, serving endpoint", flow("198.19.0.1", 30053, "198.18.0.11", 5353), Verdict::Keep),
            ("not a service", flow("198.19.64.1", 53, "198.19.64.1", 53), Verdict::Keep),
            ("service deleted since the last sync", flow("198.19.160.20", 53, "198.18.0.20", 53), Verdict::Stale),
        ];
        for (what, f, want) in cases {
            assert_eq!(now.judge(&before, &f), want, "{what}: {f}");
        }
        let mut tcp = flow("198.19.160.10", 53, "198.18.0.10", 5353);
        tcp.orig.proto = 6;
        assert_eq!(now.judge(&before, &tcp), Verdict::Keep, "TCP is never touched");
    }

    #[test]
    fn tcp_services_are_not_targets() {
        let mut p = udp_port("web", "198.19.160.10", 80, None, vec![]);
        p.name.protocol = Protocol::Tcp;
        assert!(UdpTargets::of(&state(vec![p])).is_empty());
    }
}
