//! ServicePort builders shared by the unit tests (included by lib.rs) and the daemon_* integration tests.
#![allow(dead_code)]

use kproxy_core::model::{Endpoint, IpFamily, Protocol, ServicePort, ServicePortName, TrafficPolicy};

/// A service port with no endpoints and no external destinations; tests set what they need.
pub(crate) fn service_port(
    namespace: &str,
    name: &str,
    protocol: Protocol,
    cluster_ip: &str,
    port: u16,
) -> ServicePort {
    let cluster_ip: std::net::IpAddr = cluster_ip.parse().expect("cluster IP");
    ServicePort {
        name: ServicePortName { namespace: namespace.into(), name: name.into(), port: String::new(), protocol },
        family: IpFamily::of(&cluster_ip),
        cluster_ip,
        port,
        node_port: None,
        external_ips: vec![],
        load_balancer_ips: vec![],
        load_balancer_source_ranges: vec![],
        session_affinity: None,
        internal_traffic_policy: TrafficPolicy::Cluster,
        external_traffic_policy: TrafficPolicy::Cluster,
        health_check_node_port: None,
        endpoints: vec![],
        cluster_endpoints: vec![],
        local_endpoints: vec![],
    }
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
