//! Pure rendering: a [`ProxyState`] becomes the IPVS [`Table`] and VIP set it needs.
//!
//! One virtual server per destination of every service port: the ClusterIP (internal
//! endpoints), every ExternalIP and LoadBalancer IP, and the NodePort on each NodePort
//! address (external endpoints). Real servers are masqueraded, weight 1. ClusterIPs,
//! ExternalIPs and LoadBalancer IPs are the VIPs bound to the dummy link.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::{
    IpFamily, NodePortAddresses, ProxySettings, ProxyState, ServicePort, ServicePortKey,
};

use crate::config::IpvsConfig;
use crate::ipvs_msg::{Forward, RealKey, RealServer, ServiceKey, VirtualServer, SVC_F_PERSISTENT};
use crate::rtnl::LinkAddr;

/// A virtual server with its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The virtual server.
    pub service: VirtualServer,
    /// Its real servers by identity.
    pub reals: BTreeMap<RealKey, RealServer>,
}

/// An IPVS table: virtual servers by identity.
pub type Table = BTreeMap<ServiceKey, Entry>;

/// What a state needs: the table and the VIPs of the dummy link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    /// Virtual servers.
    pub table: Table,
    /// Addresses to hold on the dummy link.
    pub vips: BTreeSet<IpAddr>,
}

/// The NodePort addresses of this node for `settings`, from its local addresses.
/// `skip_links` are interface indexes to ignore (loopback, the dummy link itself).
pub fn node_port_addresses(
    settings: &ProxySettings,
    local: &[LinkAddr],
    skip_links: &[u32],
) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = match &settings.node_port_addresses {
        NodePortAddresses::Primary => settings.node_ips.clone(),
        NodePortAddresses::Cidrs(_) => {
            let npa = &settings.node_port_addresses;
            let nets: Vec<_> = [IpFamily::V4, IpFamily::V6]
                .into_iter()
                .flat_map(|family| npa.cidrs_for(family, &settings.node_ips))
                .collect();
            local
                .iter()
                .filter(|a| !skip_links.contains(&a.index))
                .map(|a| a.addr)
                .filter(|ip| !ip.is_loopback() && !is_link_local(ip))
                .filter(|ip| nets.iter().any(|c| c.contains(ip)))
                .collect()
        }
    };
    out.sort();
    out.dedup();
    out
}

/// IPv4 169.254/16 or IPv6 fe80::/10.
pub fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn virtual_server(cfg: &IpvsConfig, sp: &ServicePort, addr: IpAddr, port: u16) -> VirtualServer {
    let (flags, timeout) = match sp.session_affinity {
        Some(a) => (SVC_F_PERSISTENT, a.timeout_seconds),
        None => (0, 0),
    };
    VirtualServer {
        key: ServiceKey {
            protocol: sp.name.protocol,
            addr,
            port,
        },
        scheduler: cfg.scheduler.name().to_string(),
        flags: flags | cfg.scheduler_flags,
        timeout,
        netmask: VirtualServer::host_netmask(&addr),
    }
}

fn reals(endpoints: &[SocketAddr]) -> BTreeMap<RealKey, RealServer> {
    endpoints
        .iter()
        .map(|ep| {
            let key = RealKey {
                addr: ep.ip(),
                port: ep.port(),
            };
            (
                key,
                RealServer {
                    key,
                    weight: 1,
                    forward: Forward::Masq,
                },
            )
        })
        .collect()
}

/// Add the entries of one service port to `out`.
pub fn plan_service(
    cfg: &IpvsConfig,
    sp: &ServicePort,
    node_port_addrs: &[IpAddr],
    out: &mut Desired,
) {
    let internal = reals(sp.internal_endpoints());
    let external = reals(sp.external_endpoints());
    let mut add = |addr: IpAddr, port: u16, reals: &BTreeMap<RealKey, RealServer>| {
        let service = virtual_server(cfg, sp, addr, port);
        out.table.insert(
            service.key,
            Entry {
                service,
                reals: reals.clone(),
            },
        );
    };
    add(sp.cluster_ip, sp.port, &internal);
    for ip in sp.external_ips.iter().chain(&sp.load_balancer_ips) {
        add(*ip, sp.port, &external);
    }
    if let Some(np) = sp.node_port {
        for ip in node_port_addrs
            .iter()
            .filter(|ip| IpFamily::of(ip) == sp.family)
        {
            add(*ip, np, &external);
        }
    }
    out.vips.insert(sp.cluster_ip);
    out.vips.extend(sp.external_ips.iter().copied());
    out.vips.extend(sp.load_balancer_ips.iter().copied());
}

/// Render a whole state.
pub fn plan(cfg: &IpvsConfig, state: &ProxyState, node_port_addrs: &[IpAddr]) -> Desired {
    let mut out = Desired::default();
    for sp in state.services.values() {
        plan_service(cfg, sp, node_port_addrs, &mut out);
    }
    out
}

/// What a partial update touched: the virtual servers and VIPs to reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Touched {
    /// Virtual servers whose desired entry may have changed.
    pub services: BTreeSet<ServiceKey>,
    /// VIPs whose desired presence may have changed.
    pub vips: BTreeSet<IpAddr>,
}

/// The desired table kept across syncs and updated per changed service port, so a partial
/// sync costs O(changed ports), not O(all ports).
///
/// If two service ports claim the same virtual server (same protocol, address and port),
/// the one with the greatest [`ServicePortKey`] wins, in full and partial builds alike.
#[derive(Debug, Clone, Default)]
pub struct DesiredIndex {
    desired: Desired,
    by_port: BTreeMap<ServicePortKey, Desired>,
    claims: BTreeMap<ServiceKey, BTreeSet<ServicePortKey>>,
    vip_refs: BTreeMap<IpAddr, usize>,
}

impl DesiredIndex {
    /// Index a whole state.
    pub fn build(cfg: &IpvsConfig, state: &ProxyState, node_port_addrs: &[IpAddr]) -> DesiredIndex {
        let mut index = DesiredIndex::default();
        let mut touched = Touched::default();
        for (key, sp) in &state.services {
            index.update(cfg, key, Some(sp), node_port_addrs, &mut touched);
        }
        index
    }

    /// The aggregated desired table and VIPs.
    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// Replace what service port `key` wants by `new` (`None`: the port is gone), recording
    /// what changed in `touched`.
    pub fn update(
        &mut self,
        cfg: &IpvsConfig,
        key: &ServicePortKey,
        new: Option<&ServicePort>,
        node_port_addrs: &[IpAddr],
        touched: &mut Touched,
    ) {
        if let Some(old) = self.by_port.remove(key) {
            for sk in old.table.keys() {
                touched.services.insert(*sk);
                let claimants = self.claims.entry(*sk).or_default();
                claimants.remove(key);
                match claimants
                    .iter()
                    .next_back()
                    .and_then(|winner| self.by_port.get(winner))
                {
                    Some(other) => {
                        if let Some(e) = other.table.get(sk) {
                            self.desired.table.insert(*sk, e.clone());
                        }
                    }
                    None => {
                        self.claims.remove(sk);
                        self.desired.table.remove(sk);
                    }
                }
            }
            for vip in &old.vips {
                touched.vips.insert(*vip);
                if let Some(n) = self.vip_refs.get_mut(vip) {
                    *n -= 1;
                    if *n == 0 {
                        self.vip_refs.remove(vip);
                        self.desired.vips.remove(vip);
                    }
                }
            }
        }
        let Some(sp) = new else { return };
        let mut mine = Desired::default();
        plan_service(cfg, sp, node_port_addrs, &mut mine);
        for (sk, entry) in &mine.table {
            touched.services.insert(*sk);
            let claimants = self.claims.entry(*sk).or_default();
            claimants.insert(key.clone());
            if claimants.iter().next_back() == Some(key) {
                self.desired.table.insert(*sk, entry.clone());
            }
        }
        for vip in &mine.vips {
            touched.vips.insert(*vip);
            *self.vip_refs.entry(*vip).or_insert(0) += 1;
            self.desired.vips.insert(*vip);
        }
        self.by_port.insert(key.clone(), mine);
    }
}
