//! IPVS mode: the Service's virtual servers as the plan wants them and as the kernel holds
//! them (read-only: one dump, the addresses, the loopback links), and the drift between.

use std::collections::BTreeSet;
use std::net::IpAddr;

use kproxy_core::model::{ProxyState, ServicePort};
use kproxy_ipvs::drift::{compare, Comparison};
use kproxy_ipvs::ipvs_msg::ServiceKey;
use kproxy_ipvs::plan::{self, Desired};
use kproxy_ipvs::{IpvsConfig, IpvsKernel};
use serde_json::{json, Value};

/// What the kernel says about the Service's virtual servers.
#[derive(Debug, Clone, PartialEq)]
pub struct IpvsFacts {
    /// The NodePort addresses (IPVS programs one virtual server per address).
    pub node_port_addrs: Vec<IpAddr>,
    /// One JSON object per wanted virtual server of the Service.
    pub virtual_servers: Vec<Value>,
    /// Drift of the Service's virtual servers.
    pub drift: Vec<String>,
    /// Draining real servers of the Service's virtual servers.
    pub draining: Vec<String>,
    /// Differences of other virtual servers.
    pub other_drift: usize,
}

/// Reads the kernel's IPVS table and compares the Service's part with the plan.
pub fn facts<K: IpvsKernel>(kernel: &mut K, cfg: &IpvsConfig, state: &ProxyState, ports: &[&ServicePort]) -> Result<IpvsFacts, kproxy_ipvs::Error> {
    let addrs = kernel.addresses()?;
    let loopbacks = kernel.loopback_indexes()?;
    // The VIPs sit on the dummy link: never NodePort addresses (the link is found without
    // creating it, which the backend's lookup would do).
    let vips: BTreeSet<IpAddr> = state
        .services
        .values()
        .flat_map(|sp| std::iter::once(sp.cluster_ip).chain(sp.external_ips.iter().copied()).chain(sp.load_balancer_ips.iter().copied()))
        .collect();
    let local: Vec<_> = addrs.into_iter().filter(|a| !vips.contains(&a.addr)).collect();
    let node_port_addrs = plan::node_port_addresses(&state.settings, &local, &loopbacks);
    let want = plan::plan(cfg, state, &node_port_addrs);
    let kernel_table = kernel.dump()?;
    let Comparison { differences, draining } = compare(&want.table, &kernel_table, &|ip| cfg.is_excluded(ip));
    let mut mine = Desired::default();
    for sp in ports {
        plan::plan_service(cfg, sp, &node_port_addrs, &mut mine);
    }
    // Wanted for the Service, or an unwanted one on its addresses or NodePorts.
    let ours = |k: &ServiceKey| {
        mine.table.contains_key(k)
            || (!want.table.contains_key(k)
                && (mine.vips.contains(&k.addr)
                    || ports.iter().any(|sp| sp.node_port == Some(k.port) && sp.name.protocol == k.protocol && node_port_addrs.contains(&k.addr))))
    };
    let (drift, other): (Vec<_>, Vec<_>) = differences.into_iter().partition(|d| ours(&d.service()));
    let virtual_servers = mine
        .table
        .iter()
        .map(|(k, e)| {
            let kernel = kernel_table.get(k).map(|d| d.reals.iter().map(|(r, _)| format!("{}:{} weight {}", bracket(r.key.addr), r.key.port, r.weight)).collect::<Vec<_>>());
            json!({
                "key": k.to_string(),
                "scheduler": e.service.scheduler,
                "want": e.reals.values().map(|r| format!("{}:{} weight {}", bracket(r.key.addr), r.key.port, r.weight)).collect::<Vec<_>>(),
                "kernel": kernel,
            })
        })
        .collect();
    let draining = draining.iter().filter(|(k, _)| ours(k)).map(|(k, r)| format!("{}:{} of {k}", bracket(r.addr), r.port)).collect();
    Ok(IpvsFacts { node_port_addrs, virtual_servers, drift: drift.iter().map(ToString::to_string).collect(), draining, other_drift: other.len() })
}

fn bracket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use kproxy_core::backend::ProxyBackend;
    use kproxy_core::model::{Endpoint, Protocol, ServicePortName};
    use kproxy_ipvs::ipvs::Op;
    use kproxy_ipvs::ipvs_msg::{Forward, RealKey, RealServer, VirtualServer};
    use kproxy_ipvs::{FakeIpvs, IpvsBackend, Operation};

    use super::*;
    use crate::explain::{ipvs_report, select, Target};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn port(name: &str, vip: &str, eps: &[&str], node_port: Option<u16>) -> ServicePort {
        let n = ServicePortName { namespace: "t".into(), name: name.into(), port: "http".into(), protocol: Protocol::Tcp };
        let mut sp = ServicePort::new(n, ip(vip), 80);
        sp.node_port = node_port;
        sp.endpoints = eps
            .iter()
            .map(|e| Endpoint { addr: SocketAddr::new(ip(e), 8080), local: true, ready: true, serving: true, terminating: false })
            .collect();
        sp.cluster_endpoints = sp.endpoints.iter().map(|e| e.addr).collect();
        sp.local_endpoints = sp.cluster_endpoints.clone();
        sp
    }

    fn real(addr: &str, weight: u32) -> RealServer {
        RealServer { key: RealKey { addr: ip(addr), port: 8080 }, weight, forward: Forward::Masq }
    }

    fn key(addr: &str, port: u16) -> ServiceKey {
        ServiceKey { protocol: Protocol::Tcp, addr: ip(addr), port }
    }

    /// The fake kernel programmed by the IPVS backend, then explained, then tampered with:
    /// each difference of `t/web` named, another Service's counted apart, a draining real
    /// server not drift.
    #[test]
    fn ipvs_virtual_and_real_servers_against_the_fake_kernel() {
        let mut state = ProxyState::default();
        state.settings.node_ips = vec![ip("198.19.0.2")];
        for sp in [port("web", "198.19.160.10", &["198.18.0.11", "198.18.0.12"], Some(30080)), port("other", "198.19.160.20", &["198.18.0.13"], None)] {
            state.services.insert(sp.key(), sp);
        }
        let cfg = IpvsConfig { nft_rules: false, ..IpvsConfig::default() };
        let mut fake = FakeIpvs::new();
        fake.add_link("eth0", &[(ip("198.19.0.2"), 24)]);
        let mut backend = IpvsBackend::with_kernel(cfg.clone(), fake).unwrap();
        backend.sync_full(&state).unwrap();
        let (service, ports) = select(&state, &Target::Name { namespace: "t".into(), name: "web".into() }, &|_| false);
        let service = service.unwrap();

        let r = ipvs_report(backend.kernel_mut(), &cfg, &state, service.clone(), &ports).unwrap();
        assert_eq!(r.drift, Vec::<String>::new());
        assert!(r.in_sync());
        let vs: Vec<String> = r.virtual_servers.iter().map(|v| format!("{} {} / {}", v["key"].as_str().unwrap(), v["want"], v["kernel"])).collect();
        assert_eq!(
            vs,
            vec![
                "tcp 198.19.0.2:30080 [\"198.18.0.11:8080 weight 1\",\"198.18.0.12:8080 weight 1\"] / [\"198.18.0.11:8080 weight 1\",\"198.18.0.12:8080 weight 1\"]",
                "tcp 198.19.160.10:80 [\"198.18.0.11:8080 weight 1\",\"198.18.0.12:8080 weight 1\"] / [\"198.18.0.11:8080 weight 1\",\"198.18.0.12:8080 weight 1\"]",
            ]
        );
        let np = &r.ports[0]["destinations"][1];
        assert_eq!((np["kind"].as_str(), np["address"].as_str()), (Some("NodePort"), Some("198.19.0.2:30080")));

        let stray = VirtualServer { key: key("198.19.160.10", 81), scheduler: "rr".into(), flags: 0, timeout: 0, netmask: 0xffff_ffff };
        for op in [
            Op::DelReal(key("198.19.160.10", 80), real("198.18.0.12", 1)),
            Op::UpdateReal(key("198.19.0.2", 30080), real("198.18.0.11", 5)),
            Op::AddReal(key("198.19.0.2", 30080), real("198.18.0.14", 0)),
            Op::AddService(stray),
            Op::DelReal(key("198.19.160.20", 80), real("198.18.0.13", 1)),
        ] {
            backend.kernel_mut().apply_one(&Operation::Ipvs(op)).unwrap();
        }
        let r = ipvs_report(backend.kernel_mut(), &cfg, &state, service, &ports).unwrap();
        assert_eq!(
            r.drift,
            vec![
                "changed: real server 198.18.0.11:8080 of virtual server tcp 198.19.0.2:30080: weight 5 in the kernel, want 1",
                "missing: real server 198.18.0.12:8080 (weight 1) of virtual server tcp 198.19.160.10:80",
                "extra: virtual server tcp 198.19.160.10:81",
            ]
        );
        assert_eq!(r.draining, vec!["198.18.0.14:8080 of tcp 198.19.0.2:30080"]);
        assert_eq!(r.other_drift, 1);
        assert!(!r.in_sync());
        assert!(r.text().contains("kernel: 198.18.0.11:8080 weight 1"), "{}", r.text());
    }
}
