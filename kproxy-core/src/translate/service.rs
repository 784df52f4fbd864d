//! A v1 Service, checked and reduced to what the proxy needs ([`ServiceInfo`]).
//!
//! Follows upstream's `newBaseServiceInfo` / `ShouldSkipService`: headless and ExternalName
//! services and services of another service proxy are skipped without complaint; malformed
//! fields produce a diagnostic. Service-wide problems (cluster IPs, affinity, policies, source
//! ranges) skip the whole service; a bad port skips only that port; a bad external or
//! load-balancer IP skips only that address.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{fields, meta, TranslateOptions};
use crate::diagnostic::{Diagnostic, Reporter};
use crate::model::{AddressKind, IpFamily, Protocol, SessionAffinity, TrafficPolicy};

/// Upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub(crate) const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;
/// Upstream's maximum `timeoutSeconds` (one day).
const MAX_AFFINITY_TIMEOUT: i32 = 86400;

/// One `spec.ports[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortInfo {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: Option<u16>,
}

/// What the proxy needs of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceInfo {
    /// One per family, primary first.
    pub cluster_ips: Vec<IpAddr>,
    pub ports: Vec<PortInfo>,
    /// Sorted, deduplicated.
    pub external_ips: Vec<IpAddr>,
    /// VIP-mode ingress IPs, sorted, deduplicated.
    pub load_balancer_ips: Vec<IpAddr>,
    /// Sorted, deduplicated.
    pub source_ranges: Vec<IpNet>,
    pub session_affinity: Option<SessionAffinity>,
    pub internal_traffic_policy: TrafficPolicy,
    /// Already reduced as upstream's `ExternalPolicyLocal`: Local only when the service is
    /// externally accessible.
    pub external_traffic_policy: TrafficPolicy,
    pub health_check_node_port: Option<u16>,
    /// `metadata.creationTimestamp`: the older of two Services claiming one address owns it.
    pub created: Option<Time>,
    /// ExternalIPs and LoadBalancer IPs outside the configured allow-lists (not in the lists
    /// above), sorted.
    pub not_allowed: Vec<(AddressKind, IpAddr)>,
}

/// The service types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServiceType {
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalName,
}

/// Parse a Service. `None`: it contributes nothing (skipped on purpose, or malformed, in which
/// case a diagnostic was pushed).
pub(crate) fn parse(svc: &Service, options: &TranslateOptions, out: &mut Vec<Diagnostic>) -> Option<ServiceInfo> {
    let (namespace, name) = meta::names("Service", &svc.metadata, true, out)?;
    if !meta::ours(&svc.metadata, options) {
        return None;
    }
    let mut r = Reporter::new("Service", namespace, name, out);
    let Some(spec) = svc.spec.as_ref() else {
        r.report("spec is missing: service skipped");
        return None;
    };
    let type_ = match spec.type_.as_deref() {
        None | Some("ClusterIP") => ServiceType::ClusterIp,
        Some("NodePort") => ServiceType::NodePort,
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("ExternalName") => ServiceType::ExternalName,
        Some(other) => {
            r.report(format!(
                "spec.type: {other:?} is not a service type (ClusterIP, NodePort, LoadBalancer, ExternalName): service skipped"
            ));
            return None;
        }
    };
    if type_ == ServiceType::ExternalName {
        return None;
    }
    let cluster_ips = cluster_ips(spec, &mut r)?;
    if cluster_ips.is_empty() {
        return None; // headless
    }
    let session_affinity = session_affinity(spec, &mut r)?;
    let internal_traffic_policy = policy(spec.internal_traffic_policy.as_deref(), "spec.internalTrafficPolicy", &mut r)?;
    let external_policy = policy(spec.external_traffic_policy.as_deref(), "spec.externalTrafficPolicy", &mut r)?;
    let source_ranges = source_ranges(spec, &mut r)?;
    let mut external_ips = addresses(spec.external_ips.iter().flatten().map(|s| s.as_str()), "spec.externalIPs", &mut r);
    let mut load_balancer_ips = load_balancer_ips(svc, &mut r);
    let mut not_allowed = Vec::new();
    allow(&mut external_ips, options.external_ip_allowed_cidrs.as_deref(), AddressKind::ExternalIp, &mut not_allowed);
    allow(&mut load_balancer_ips, options.load_balancer_ip_allowed_cidrs.as_deref(), AddressKind::LoadBalancerIp, &mut not_allowed);
    let ports = ports(spec, type_, &mut r);

    // Upstream's ExternallyAccessible: decided by the type, not by the destinations present.
    let externally_accessible = matches!(type_, ServiceType::NodePort | ServiceType::LoadBalancer)
        || (type_ == ServiceType::ClusterIp && !external_ips.is_empty());
    let external_traffic_policy =
        if externally_accessible { external_policy } else { TrafficPolicy::Cluster };
    let health_check_node_port = if type_ == ServiceType::LoadBalancer && external_traffic_policy == TrafficPolicy::Local {
        match fields::optional_port(spec.health_check_node_port) {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                r.report("spec.healthCheckNodePort is not set on a LoadBalancer service with externalTrafficPolicy Local: no health check served");
                None
            }
            Err(e) => {
                r.report(format!("spec.healthCheckNodePort: {e}: no health check served"));
                None
            }
        }
    } else {
        None
    };
    Some(ServiceInfo {
        cluster_ips,
        ports,
        external_ips,
        load_balancer_ips,
        source_ranges,
        session_affinity,
        internal_traffic_policy,
        external_traffic_policy,
        health_check_node_port,
        created: svc.metadata.creation_timestamp.clone(),
        not_allowed,
    })
}

/// Move the addresses outside `allowed` (if an allow-list is set) from `ips` to `skipped`.
/// Reported by the tracker once, not here (this runs again at every update of the Service).
fn allow(ips: &mut Vec<IpAddr>, allowed: Option<&[IpNet]>, kind: AddressKind, skipped: &mut Vec<(AddressKind, IpAddr)>) {
    let Some(allowed) = allowed else { return };
    ips.retain(|ip| {
        let ok = allowed.iter().any(|net| net.contains(ip));
        if !ok {
            skipped.push((kind, *ip));
        }
        ok
    });
}

/// `spec.clusterIPs` (or `spec.clusterIP` alone): at most one per family. Empty: headless.
fn cluster_ips(spec: &ServiceSpec, r: &mut Reporter<'_>) -> Option<Vec<IpAddr>> {
    let single = spec.cluster_ip.as_deref().filter(|s| !s.is_empty());
    let list: Vec<&str> = match spec.cluster_ips.as_deref() {
        Some(list) if !list.is_empty() => list.iter().map(|s| s.as_str()).collect(),
        _ => single.into_iter().collect(),
    };
    if let (Some(single), Some(first)) = (single, list.first()) {
        if single != *first {
            r.report(format!(
                "spec.clusterIP {single:?} differs from spec.clusterIPs[0] {first:?}: service skipped"
            ));
            return None;
        }
    }
    if list.is_empty() {
        r.report("spec.clusterIP is not set (headless services say \"None\"): service skipped");
        return None;
    }
    if list.contains(&"None") {
        return Some(Vec::new());
    }
    if list.len() > 2 {
        r.report(format!("spec.clusterIPs has {} entries, at most 2 (one per family): service skipped", list.len()));
        return None;
    }
    let mut ips: Vec<IpAddr> = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        match fields::ip(s) {
            Ok(ip) => {
                if ips.iter().any(|o| IpFamily::of(o) == IpFamily::of(&ip)) {
                    r.report(format!("spec.clusterIPs[{i}]: a second address of the same family: service skipped"));
                    return None;
                }
                ips.push(ip);
            }
            Err(e) => {
                r.report(format!("spec.clusterIPs[{i}]: {e}: service skipped"));
                return None;
            }
        }
    }
    Some(ips)
}

fn session_affinity(spec: &ServiceSpec, r: &mut Reporter<'_>) -> Option<Option<SessionAffinity>> {
    match spec.session_affinity.as_deref() {
        None | Some("None") => Some(None),
        Some("ClientIP") => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            match timeout {
                None => Some(Some(SessionAffinity { timeout_seconds: DEFAULT_AFFINITY_TIMEOUT })),
                Some(t) if (1..=MAX_AFFINITY_TIMEOUT).contains(&t) => {
                    // In range 1..=86400, so the cast cannot wrap.
                    Some(Some(SessionAffinity { timeout_seconds: t as u32 }))
                }
                Some(t) => {
                    r.report(format!(
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds: {t} is not in 1-{MAX_AFFINITY_TIMEOUT}: service skipped"
                    ));
                    None
                }
            }
        }
        Some(other) => {
            r.report(format!("spec.sessionAffinity: {other:?} is not None or ClientIP: service skipped"));
            None
        }
    }
}

fn policy(value: Option<&str>, path: &str, r: &mut Reporter<'_>) -> Option<TrafficPolicy> {
    match value {
        None | Some("Cluster") => Some(TrafficPolicy::Cluster),
        Some("Local") => Some(TrafficPolicy::Local),
        Some(other) => {
            r.report(format!("{path}: {other:?} is not Cluster or Local: service skipped"));
            None
        }
    }
}

/// A bad source range skips the whole service: dropping only that range would open the load
/// balancer to more sources than intended (and all of them if it was the only one).
fn source_ranges(spec: &ServiceSpec, r: &mut Reporter<'_>) -> Option<Vec<IpNet>> {
    let mut nets = Vec::new();
    for (i, s) in spec.load_balancer_source_ranges.iter().flatten().enumerate() {
        match fields::cidr(s) {
            Ok(net) => nets.push(net),
            Err(e) => {
                r.report(format!("spec.loadBalancerSourceRanges[{i}]: {e}: service skipped (ignoring the range would widen access)"));
                return None;
            }
        }
    }
    nets.sort();
    nets.dedup();
    Some(nets)
}

fn addresses<'s>(values: impl Iterator<Item = &'s str>, path: &str, r: &mut Reporter<'_>) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for (i, s) in values.enumerate() {
        match fields::ip(s) {
            Ok(ip) => ips.push(ip),
            Err(e) => r.report(format!("{path}[{i}]: {e}: address skipped")),
        }
    }
    ips.sort();
    ips.dedup();
    ips
}

/// `status.loadBalancer.ingress[].ip`, except hostname-only entries and `ipMode: Proxy`
/// (the load balancer proxies itself; packets arrive addressed to the node).
fn load_balancer_ips(svc: &Service, r: &mut Reporter<'_>) -> Vec<IpAddr> {
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    let mut ips = Vec::new();
    for (i, ing) in ingress.into_iter().flatten().enumerate() {
        let Some(ip) = ing.ip.as_deref().filter(|s| !s.is_empty()) else { continue };
        if ing.ip_mode.as_deref() == Some("Proxy") {
            continue;
        }
        match fields::ip(ip) {
            Ok(ip) => ips.push(ip),
            Err(e) => r.report(format!("status.loadBalancer.ingress[{i}].ip: {e}: address skipped")),
        }
    }
    ips.sort();
    ips.dedup();
    ips
}

fn ports(spec: &ServiceSpec, type_: ServiceType, r: &mut Reporter<'_>) -> Vec<PortInfo> {
    let has_node_ports = matches!(type_, ServiceType::NodePort | ServiceType::LoadBalancer);
    let mut ports: Vec<PortInfo> = Vec::new();
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        let path = || format!("spec.ports[{i}]");
        let name = p.name.clone().unwrap_or_default();
        let parsed = (|| {
            let protocol = fields::protocol(p.protocol.as_deref()).map_err(|e| format!("{}.protocol: {e}", path()))?;
            let port = fields::port(p.port).map_err(|e| format!("{}.port: {e}", path()))?;
            let node_port = fields::optional_port(p.node_port).map_err(|e| format!("{}.nodePort: {e}", path()))?;
            Ok::<_, String>((protocol, port, node_port))
        })();
        let (protocol, port, node_port) = match parsed {
            Ok(v) => v,
            Err(e) => {
                r.report(format!("{e}: port skipped"));
                continue;
            }
        };
        if ports.iter().any(|o| o.name == name && o.protocol == protocol) {
            r.report(format!("{}: duplicate port name {name:?} with protocol {protocol}: port skipped", path()));
            continue;
        }
        let node_port = match (has_node_ports, node_port) {
            (true, None) if type_ == ServiceType::NodePort => {
                r.report(format!("{}.nodePort is not set on a NodePort service: reachable on its cluster IP only", path()));
                None
            }
            (false, Some(np)) => {
                r.report(format!("{}.nodePort {np} on a ClusterIP service: ignored", path()));
                None
            }
            (_, np) => np,
        };
        ports.push(PortInfo { name, protocol, port, node_port });
    }
    ports
}
