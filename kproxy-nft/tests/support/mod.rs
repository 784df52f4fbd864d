//! States shared by the pure tests (render, record, fake kernel): IPv4 ClusterIP service
//! ports with endpoints, and a sequence of states a cluster goes through.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use kproxy_core::model::*;
use kproxy_nft::record::Record;
use kproxy_nft::Plan;

pub fn settings() -> ProxySettings {
    ProxySettings {
        node_name: "n".into(),
        node_ips: vec!["198.19.0.1".parse().unwrap()],
        masquerade_all: false,
        masquerade_bit: 14,
        local_detector: LocalDetector::ClusterCidrs(vec!["198.18.0.0/16".parse().unwrap()]),
        node_port_addresses: NodePortAddresses::Primary,
    }
}

pub fn ep(k: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + k)), 8080)
}

pub fn port(s: u32, eps: &[u32], affinity: bool, node_port: Option<u16>) -> ServicePort {
    let mut cluster: Vec<SocketAddr> = eps.iter().map(|k| ep(*k)).collect();
    cluster.sort();
    ServicePort {
        name: ServicePortName { namespace: "ns".into(), name: format!("s{s}"), port: "p".into(), protocol: Protocol::Tcp },
        family: IpFamily::V4,
        cluster_ip: IpAddr::V4(Ipv4Addr::new(198, 19, 160, s as u8)),
        port: 80,
        node_port,
        external_ips: vec![],
        load_balancer_ips: vec![],
        load_balancer_source_ranges: vec![],
        session_affinity: affinity.then_some(SessionAffinity { timeout_seconds: 30 }),
        internal_traffic_policy: TrafficPolicy::Cluster,
        external_traffic_policy: TrafficPolicy::Cluster,
        health_check_node_port: None,
        endpoints: cluster.iter().map(|a| Endpoint { addr: *a, local: true, ready: true, serving: true, terminating: false }).collect(),
        cluster_endpoints: cluster.clone(),
        local_endpoints: cluster,
    }
}

pub fn state(ports: Vec<ServicePort>) -> ProxyState {
    let mut services = BTreeMap::new();
    for p in ports {
        services.insert(p.key(), p);
    }
    ProxyState { settings: settings(), service_cidrs: vec!["198.19.160.0/20".parse().unwrap()], services }
}

pub fn record_of(s: &ProxyState) -> Record {
    Record::from_elements(&Plan::render(s).elements)
}

/// The sequence of states a cluster goes through, each step a few changes.
pub fn states() -> Vec<ProxyState> {
    vec![
        state(vec![port(1, &[1, 2], false, None), port(2, &[3], true, Some(30002))]),
        state(vec![port(1, &[1, 2, 3], false, None), port(2, &[3], true, Some(30002))]),
        state(vec![port(1, &[2, 3], false, Some(30001)), port(2, &[], true, Some(30002)), port(3, &[2], false, None)]),
        state(vec![port(3, &[2, 4], true, None)]),
        state(vec![]),
        state(vec![port(1, &[1, 2], false, None), port(2, &[3], true, Some(30002))]),
    ]
}
