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
