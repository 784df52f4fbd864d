//! Service ports for the unit tests of the interpreter and the drift check.

use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::{Endpoint, Protocol, ServicePort, ServicePortName};

/// An address.
pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// TCP port 80 of `ns/NAME` (port name `p`) on `vip`, with local ready endpoints `eps:8080`
/// used for cluster and local traffic.
pub(crate) fn sp(name: &str, vip: &str, eps: &[&str], node_port: Option<u16>) -> ServicePort {
    let n = ServicePortName { namespace: "ns".into(), name: name.into(), port: "p".into(), protocol: Protocol::Tcp };
    let mut s = ServicePort::new(n, ip(vip), 80);
    s.node_port = node_port;
    s.endpoints = eps
        .iter()
        .map(|e| Endpoint { addr: SocketAddr::new(ip(e), 8080), local: true, ready: true, serving: true, terminating: false })
        .collect();
    s.endpoints.sort();
    s.cluster_endpoints = s.endpoints.iter().map(|e| e.addr).collect();
    s.local_endpoints = s.cluster_endpoints.clone();
    s
}
