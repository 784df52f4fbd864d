//! This node's Node object (zone, addresses, pod CIDRs) and ServiceCIDR objects.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::ServiceCIDR;

use super::{fields, meta};
use crate::diagnostic::{Diagnostic, Reporter};
use crate::model::{IpFamily, LocalDetector, ProxySettings};

/// What the proxy needs of its Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeInfo {
    pub name: String,
    /// `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
    /// Primary IPs: per family the first InternalIP, else the first ExternalIP.
    pub ips: Vec<IpAddr>,
    /// `spec.podCIDRs` (or `spec.podCIDR`).
    pub pod_cidrs: Vec<IpNet>,
}

/// Parse a Node. Bad addresses or CIDRs are skipped with a diagnostic.
pub(crate) fn parse(node: &Node, out: &mut Vec<Diagnostic>) -> Option<NodeInfo> {
    let (_, name) = meta::names("Node", &node.metadata, false, out)?;
    let mut r = Reporter::new("Node", "", name, out);
    let zone = meta::label(&node.metadata, meta::LABEL_TOPOLOGY_ZONE).map(str::to_string);
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    let mut ips: Vec<IpAddr> = Vec::new();
    for wanted in ["InternalIP", "ExternalIP"] {
        for (i, a) in addresses.into_iter().flatten().enumerate().filter(|(_, a)| a.type_ == wanted) {
            match fields::ip(&a.address) {
                Ok(ip) if !ips.iter().any(|o| IpFamily::of(o) == IpFamily::of(&ip)) => ips.push(ip),
                Ok(_) => {}
                Err(e) => r.report(format!("status.addresses[{i}].address: {e}: address skipped")),
            }
        }
    }
    let spec = node.spec.as_ref();
    let cidrs: Vec<&String> = match spec.and_then(|s| s.pod_cidrs.as_ref()) {
        Some(list) if !list.is_empty() => list.iter().collect(),
        _ => spec.and_then(|s| s.pod_cidr.as_ref()).into_iter().collect(),
    };
    let mut pod_cidrs = Vec::new();
    for (i, c) in cidrs.into_iter().enumerate() {
        match fields::cidr(c) {
            Ok(net) => pod_cidrs.push(net),
            Err(e) => r.report(format!("spec.podCIDRs[{i}]: {e}: pod CIDR skipped")),
        }
    }
    Some(NodeInfo { name: name.to_string(), zone, ips, pod_cidrs })
}

/// The settings in effect: the caller's, completed from the Node where the caller left a
/// fact open (no node IPs given; NodeCIDR local detection without CIDRs).
pub(crate) fn effective_settings(base: &ProxySettings, node: Option<&NodeInfo>) -> ProxySettings {
    let mut settings = base.clone();
    let Some(node) = node else { return settings };
    if settings.node_ips.is_empty() {
        settings.node_ips = node.ips.clone();
    }
    if let LocalDetector::NodeCidrs(cidrs) = &mut settings.local_detector {
        if cidrs.is_empty() {
            cidrs.clone_from(&node.pod_cidrs);
        }
    }
    settings
}

/// `spec.cidrs` of a ServiceCIDR; bad entries are skipped with a diagnostic.
pub(crate) fn parse_service_cidr(obj: &ServiceCIDR, out: &mut Vec<Diagnostic>) -> Option<Vec<IpNet>> {
    let (_, name) = meta::names("ServiceCIDR", &obj.metadata, false, out)?;
    let mut r = Reporter::new("ServiceCIDR", "", name, out);
    let mut nets = Vec::new();
    for (i, c) in obj.spec.as_ref().and_then(|s| s.cidrs.as_ref()).into_iter().flatten().enumerate() {
        match fields::cidr(c) {
            Ok(net) => nets.push(net),
            Err(e) => r.report(format!("spec.cidrs[{i}]: {e}: CIDR skipped")),
        }
    }
    Some(nets)
}
