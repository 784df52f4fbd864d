//! What the in-VM cases share: service and state builders, the backend run inside the node
//! namespace, and `ipvsadm -Ln` as the independent witness. The cases themselves: traffic
//! ([`crate::traffic_cases`], [`crate::nft_cases`]), syncs ([`crate::sync_cases`]),
//! configuration ([`crate::config_cases`]), the fake kernel against the real one
//! ([`crate::fake_cases`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::*;
use kproxy_ipvs::{IpvsBackend, IpvsConfig};

use crate::netns::{Netns, IPVSADM};
use crate::topo::{self, pod_ip, POD_PORT};

pub(crate) type R = Result<(), String>;

pub(crate) fn ensure(cond: bool, what: impl FnOnce() -> String) -> R {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

pub(crate) fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().expect("test literal")
}

/// A service port with the given endpoints (all ready, on this node).
pub(crate) fn service(
    name: &str,
    protocol: Protocol,
    cluster_ip: &str,
    port: u16,
    eps: &[SocketAddr],
) -> ServicePort {
    let cluster_ip = ip(cluster_ip);
    let mut eps = eps.to_vec();
    eps.sort();
    let name = ServicePortName {
        namespace: "test".into(),
        name: name.into(),
        port: String::new(),
        protocol,
    };
    let mut sp = ServicePort::new(name, cluster_ip, port);
    sp.endpoints = eps
        .iter()
        .map(|a| Endpoint {
            addr: *a,
            local: true,
            ready: true,
            serving: true,
            terminating: false,
        })
        .collect();
    sp.cluster_endpoints = eps.clone();
    sp.local_endpoints = eps;
    sp
}

pub(crate) fn pods(idx: &[usize]) -> Vec<SocketAddr> {
    idx.iter().map(|i| sa(pod_ip(*i), POD_PORT)).collect()
}

pub(crate) fn state(ports: &[ServicePort], npa: NodePortAddresses) -> ProxyState {
    let mut s = ProxyState::default();
    s.settings.node_name = "node".into();
    s.settings.node_ips = vec![ip(topo::NODE_IP)];
    s.settings.node_port_addresses = npa;
    for p in ports {
        s.services.insert(p.key(), p.clone());
    }
    s
}

pub(crate) fn all_addresses() -> NodePortAddresses {
    NodePortAddresses::Cidrs(vec![
        "0.0.0.0/0".parse().expect("literal"),
        "::/0".parse().expect("literal"),
    ])
}

/// `ipvsadm ARGS` in the node namespace, whitespace collapsed for matching.
pub(crate) fn ipvsadm(node: &Netns, args: &[&str]) -> Result<String, String> {
    let out = node.exec(IPVSADM, args)?;
    Ok(out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n"))
}

pub(crate) fn witness(node: &Netns, must: &[&str], must_not: &[&str]) -> R {
    let out = ipvsadm(node, &["-Ln"])?;
    for m in must {
        ensure(out.contains(m), || {
            format!("ipvsadm -Ln lacks {m:?}:\n{out}")
        })?;
    }
    for m in must_not {
        ensure(!out.contains(m), || {
            format!("ipvsadm -Ln still has {m:?}:\n{out}")
        })?;
    }
    Ok(())
}

/// The backend, created inside the node namespace.
pub(crate) fn backend(node: &Netns, cfg: IpvsConfig) -> Result<IpvsBackend, String> {
    node.run(move || IpvsBackend::new(cfg).map_err(|e| e.to_string()))?
}

/// Run a backend call inside the node namespace (sysctls are per namespace of the caller).
pub(crate) fn inside<T: Send + 'static>(
    node: &Netns,
    be: IpvsBackend,
    f: impl FnOnce(&mut IpvsBackend) -> T + Send + 'static,
) -> Result<(IpvsBackend, T), String> {
    node.run(move || {
        let mut be = be;
        let r = f(&mut be);
        (be, r)
    })
}

/// Answers per pod name.
pub(crate) fn count(answers: &[topo::Answer]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in answers {
        *m.entry(a.pod.clone()).or_insert(0) += 1;
    }
    m
}
