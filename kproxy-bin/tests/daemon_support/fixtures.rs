//! ServicePort builders shared by the unit tests (included by kproxy-bin's and kproxy-telemetry's lib.rs) and the daemon_* integration tests.
#![allow(dead_code)]

use kproxy_core::model::{Endpoint, Protocol, ServicePort, ServicePortName};

/// A service port with no endpoints and no external destinations; tests set what they need.
pub(crate) fn service_port(
    namespace: &str,
    name: &str,
    protocol: Protocol,
    cluster_ip: &str,
    port: u16,
) -> ServicePort {
    let cluster_ip: std::net::IpAddr = cluster_ip.parse().expect("cluster IP");
    let name = ServicePortName { namespace: namespace.into(), name: name.into(), port: String::new(), protocol };
    ServicePort::new(name, cluster_ip, port)
}

/// Set `endpoints` and derive the categorised lists the simple way (ready ones, local ones).
pub(crate) fn with_endpoints(mut port: ServicePort, endpoints: Vec<Endpoint>) -> ServicePort {
    port.cluster_endpoints = endpoints.iter().filter(|e| e.ready).map(|e| e.addr).collect();
    port.local_endpoints = endpoints.iter().filter(|e| e.ready && e.local).map(|e| e.addr).collect();
    port.endpoints = endpoints;
    port
}

/// An endpoint, ready and serving when `ready`.
pub(crate) fn endpoint(addr: &str, local: bool, ready: bool) -> Endpoint {
    Endpoint { addr: addr.parse().expect("endpoint address"), local, ready, serving: ready, terminating: false }
}
