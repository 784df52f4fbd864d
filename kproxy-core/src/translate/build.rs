//! One Service plus its EndpointSlices -> its [`ServicePort`]s (one per port and family).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::endpoints::SliceInfo;
use super::service::{PortInfo, ServiceInfo};
use super::topology::{categorize, Candidate, NodeContext};
use crate::model::{Endpoint, IpFamily, ServicePort, ServicePortName};

/// Append the service ports of `svc` (namespace/name) to `out`, endpoints taken from `slices`
/// (all slices of this service, in a stable order: later slices win duplicate addresses
/// unless they are terminating, as upstream).
pub(crate) fn service_ports<'a>(
    namespace: &str,
    name: &str,
    svc: &ServiceInfo,
    slices: impl Iterator<Item = &'a SliceInfo> + Clone,
    ctx: &NodeContext<'_>,
    out: &mut Vec<ServicePort>,
) {
    for &cluster_ip in &svc.cluster_ips {
        let family = IpFamily::of(&cluster_ip);
        let external_ips = of_family(&svc.external_ips, family);
        let load_balancer_ips = of_family(&svc.load_balancer_ips, family);
        let load_balancer_source_ranges: Vec<IpNet> =
            svc.source_ranges.iter().filter(|n| IpFamily::of_net(n) == family).copied().collect();
        for port in &svc.ports {
            let candidates = candidates(port, family, slices.clone(), ctx);
            let (cluster_endpoints, local_endpoints) = categorize(&candidates, ctx);
            let endpoints = candidates
                .iter()
                .map(|c| Endpoint {
                    addr: c.addr,
                    local: c.local,
                    ready: c.info.ready,
                    serving: c.info.serving,
                    terminating: c.info.terminating,
                })
                .collect();
            out.push(ServicePort {
                name: ServicePortName {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    port: port.name.clone(),
                    protocol: port.protocol,
                },
                family,
                cluster_ip,
                port: port.port,
                node_port: port.node_port,
                external_ips: external_ips.clone(),
                load_balancer_ips: load_balancer_ips.clone(),
                load_balancer_source_ranges: load_balancer_source_ranges.clone(),
                session_affinity: svc.session_affinity,
                internal_traffic_policy: svc.internal_traffic_policy,
                external_traffic_policy: svc.external_traffic_policy,
                health_check_node_port: svc.health_check_node_port,
                endpoints,
                cluster_endpoints,
                local_endpoints,
            });
        }
    }
}

fn of_family(ips: &[IpAddr], family: IpFamily) -> Vec<IpAddr> {
    ips.iter().filter(|ip| IpFamily::of(ip) == family).copied().collect()
}

/// Every endpoint of `port` in `family`, merged by address and sorted.
fn candidates<'a>(
    port: &PortInfo,
    family: IpFamily,
    slices: impl Iterator<Item = &'a SliceInfo>,
    ctx: &NodeContext<'_>,
) -> Vec<Candidate<'a>> {
    let mut all: Vec<Candidate<'a>> = Vec::new();
    for slice in slices.filter(|s| s.family == family) {
        let Some(target) = slice.ports.iter().find(|p| p.name == port.name && p.protocol == port.protocol) else {
            continue;
        };
        all.extend(slice.endpoints.iter().map(|info| Candidate {
            addr: SocketAddr::new(info.ip, target.port),
            local: !ctx.node_name.is_empty() && ctx.node_id.is_some() && info.node == ctx.node_id,
            info,
        }));
    }
    // Stable sort keeps slice order among duplicates; then, per address, a later duplicate
    // replaces the kept one unless it is terminating (prefer the running pod when an IP was
    // reused, as upstream's EndpointSliceCache does).
    all.sort_by_key(|c| c.addr);
    all.dedup_by(|later, kept| {
        if later.addr != kept.addr {
            return false;
        }
        if !later.info.terminating {
            *kept = *later;
        }
        true
    });
    all
}
