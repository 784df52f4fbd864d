//! Unit tests, one file per layer: message fixtures and round trips ([`msg`]), planning and
//! reconciliation ([`plan`]), the nftables part ([`nft`]), the fake kernel's rules
//! ([`fake`]), and the whole sync path against the fake kernel ([`backend`]).

use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::*;

use crate::ipvs_msg::*;

mod backend;
mod fake;
mod msg;
mod nft;
mod plan;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vs(addr: &str, port: u16) -> VirtualServer {
    let addr = ip(addr);
    VirtualServer {
        key: ServiceKey {
            protocol: Protocol::Tcp,
            addr,
            port,
        },
        scheduler: "rr".into(),
        flags: 0,
        timeout: 0,
        netmask: VirtualServer::host_netmask(&addr),
    }
}

fn rs(addr: &str, port: u16, weight: u32) -> RealServer {
    RealServer {
        key: RealKey {
            addr: ip(addr),
            port,
        },
        weight,
        forward: Forward::Masq,
    }
}

fn port(name: &str, cluster_ip: &str, eps: &[&str]) -> ServicePort {
    let cluster_ip = ip(cluster_ip);
    let endpoints: Vec<SocketAddr> = eps.iter().map(|e| e.parse().unwrap()).collect();
    let name = ServicePortName {
        namespace: "default".into(),
        name: name.into(),
        port: "".into(),
        protocol: Protocol::Tcp,
    };
    let mut sp = ServicePort::new(name, cluster_ip, 80);
    sp.cluster_endpoints = endpoints.clone();
    sp.local_endpoints = endpoints;
    sp
}

fn state(ports: Vec<ServicePort>) -> ProxyState {
    let mut s = ProxyState::default();
    for p in ports {
        s.services.insert(p.key(), p);
    }
    s
}
