//! Shared helpers of the nftables backend's real-packet tests: desired states for the
//! harness topology, and an [`NftBackend`] opened inside the node namespace.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::*;
use kproxy_nft::{NftBackend, NftConfig};
use kproxy_tests::{plan, tally, Netns, Proto, ServerSpec, Tally, Topology};

/// Timeout of a request that must be answered.
pub const T: Duration = Duration::from_millis(1500);
/// Timeout of a request that must be dropped.
pub const DROP_T: Duration = Duration::from_millis(400);
/// Port every pod's test server listens on (TCP and UDP).
pub const POD_PORT: u16 = 8080;

/// A topology with `pods` pods serving [`POD_PORT`] and one external client.
pub fn topology(pods: u8) -> Topology {
    Topology::builder().pods(pods).clients(1).serve(ServerSpec::both(&[POD_PORT])).build().expect("building the test topology")
}

/// Node settings matching the harness address plan.
pub fn settings() -> ProxySettings {
    ProxySettings {
        node_name: plan::NODE_NAME.into(),
        node_ips: vec![IpAddr::V4(plan::NODE_IP_V4), IpAddr::V6(plan::NODE_IP_V6)],
        masquerade_all: false,
        masquerade_bit: 14,
        local_detector: LocalDetector::ClusterCidrs(vec![
            plan::POD_CIDR_V4.parse().unwrap(),
            plan::POD_CIDR_V6.parse().unwrap(),
        ]),
        node_port_addresses: NodePortAddresses::Primary,
    }
}

/// A ClusterIP service port named `default/NAME:p` with no endpoints yet.
pub fn service(name: &str, proto: Protocol, cluster_ip: &str, port: u16) -> ServicePort {
    let ip: IpAddr = cluster_ip.parse().unwrap();
    let name = ServicePortName { namespace: "default".into(), name: name.into(), port: "p".into(), protocol: proto };
    ServicePort::new(name, ip, port)
}

/// Endpoint address of pod `k` in the family of `sp`.
pub fn pod_addr(family: IpFamily, k: u8) -> SocketAddr {
    match family {
        IpFamily::V4 => SocketAddr::new(IpAddr::V4(plan::pod_ipv4(k)), POD_PORT),
        IpFamily::V6 => SocketAddr::new(IpAddr::V6(plan::pod_ipv6(k)), POD_PORT),
    }
}

/// Sets the endpoints: `(pod, local)`; every one ready (categorised as the core would).
pub fn with_endpoints(mut sp: ServicePort, pods: &[(u8, bool)]) -> ServicePort {
    sp.endpoints = pods
        .iter()
        .map(|(k, local)| Endpoint { addr: pod_addr(sp.family, *k), local: *local, ready: true, serving: true, terminating: false })
        .collect();
    sp.endpoints.sort();
    sp.cluster_endpoints = sp.endpoints.iter().map(|e| e.addr).collect();
    sp.local_endpoints = sp.endpoints.iter().filter(|e| e.local).map(|e| e.addr).collect();
    sp
}

/// A state with these service ports.
pub fn state(ports: Vec<ServicePort>) -> ProxyState {
    let mut services = BTreeMap::new();
    for sp in ports {
        services.insert(sp.key(), sp);
    }
    ProxyState {
        settings: settings(),
        service_cidrs: vec![plan::SERVICE_CIDR_V4.parse().unwrap(), plan::SERVICE_CIDR_V6.parse().unwrap()],
        services,
    }
}

/// An nftables backend whose socket lives in `ns`.
pub fn backend(ns: &Netns) -> NftBackend {
    ns.run_in(|| NftBackend::new(NftConfig::default())).expect("entering the node namespace").expect("opening the backend")
}

/// `backend(ns)` + a full sync of `s`.
pub fn program(ns: &Netns, s: &ProxyState) -> NftBackend {
    let mut b = backend(ns);
    b.sync_full(s).expect("full sync");
    b
}

/// Applies `next` as a partial sync from `prev`, the state `b` last synced (a backend keeps
/// only its own record, not the state, so the test names it).
pub fn update(b: &mut NftBackend, prev: &ProxyState, next: &ProxyState) {
    b.sync_changes(next, &prev.diff(next)).expect("partial sync");
}

/// `count` requests from `ns` to `addr`.
pub fn send(ns: &Netns, proto: Proto, addr: SocketAddr, count: usize, timeout: Duration) -> Tally {
    tally(ns, proto, addr, count, timeout).expect("entering the client namespace")
}

/// Pod names `pod{k}`.
pub fn pods(ks: &[u8]) -> Vec<String> {
    ks.iter().map(|k| format!("pod{k}")).collect()
}

/// Asserts every request was answered, only by `expected`, by all of them (given enough
/// requests), and that the servers saw only `source`.
pub fn assert_spread(t: &Tally, count: usize, expected: &[u8], source: IpAddr) {
    assert_eq!(t.answered(), count, "every request answered: {t}");
    let got: Vec<String> = t.by_server.keys().cloned().collect();
    assert_eq!(got, pods(expected), "answered by exactly these pods: {t}");
    assert_eq!(t.by_peer.keys().copied().collect::<Vec<_>>(), vec![source], "source seen by the pods: {t}");
}

/// The address masqueraded traffic to pods carries (the node's bridge address).
pub fn gateway(family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(plan::POD_GW_V4),
        IpFamily::V6 => IpAddr::V6(plan::POD_GW_V6),
    }
}

/// Socket address `ip:port`.
pub fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// The ClusterIP of test service `n` in a family.
pub fn vip(family: IpFamily, n: u8) -> String {
    match family {
        IpFamily::V4 => format!("198.19.160.{n}"),
        IpFamily::V6 => format!("2001:db8:b::{n:x}"),
    }
}

/// Client address of the topology's client in a family.
pub fn client_ip(t: &Topology, family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(t.client().ipv4),
        IpFamily::V6 => IpAddr::V6(t.client().ipv6),
    }
}

/// The node's address in a family.
pub fn node_ip(family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(plan::NODE_IP_V4),
        IpFamily::V6 => IpAddr::V6(plan::NODE_IP_V6),
    }
}

/// Pod `k`'s address in a family.
pub fn pod_ip(family: IpFamily, k: u8) -> IpAddr {
    pod_addr(family, k).ip()
}
