//! Translation of Kubernetes objects (k8s-openapi types) into a desired
//! [`crate::model::ProxyState`], with upstream kube-proxy's semantics.
//!
//! Each object kind is first checked and reduced to what the proxy needs (`service`,
//! `endpoints`, `node`), then one Service plus its EndpointSlices becomes its service ports
//! (`build`, `topology`). The [`crate::tracker::ChangeTracker`] keeps those reduced objects and
//! re-runs the second step only for services that changed; [`crate::tracker::translate`] does
//! everything at once (through the same tracker). This module depends on nothing above it: the
//! tracker uses it, never the other way round.

mod build;
mod endpoints;
mod fields;
pub mod meta;
mod node;
mod service;
mod topology;

pub(crate) use endpoints::{parse as parse_slice, NodeNames, SliceInfo};
pub(crate) use node::{effective_settings, parse as parse_node, parse_service_cidr, NodeInfo};
pub(crate) use service::{parse as parse_service, ServiceInfo};
pub(crate) use build::service_ports;
pub(crate) use topology::NodeContext;

use ipnet::IpNet;

/// Choices that change which objects are ours or how they are read (not node facts: those are
/// in [`crate::model::ProxySettings`] and the Node object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateOptions {
    /// Our `serviceProxyName`: Services (and their EndpointSlices) labelled
    /// `service.kubernetes.io/service-proxy-name` are handled only if the label equals this.
    /// `None`: every labelled object belongs to another proxy.
    pub service_proxy_name: Option<String>,
    /// Honour `hints.forNodes` (trafficDistribution PreferSameNode); upstream's feature gate
    /// `PreferSameTrafficDistribution`, on by default.
    pub node_hints: bool,
    /// kproxy extension (CVE-2020-8554): when set, only `spec.externalIPs` inside these
    /// networks are programmed; the others are skipped and reported. `None`: all are.
    pub external_ip_allowed_cidrs: Option<Vec<IpNet>>,
    /// kproxy extension (CVE-2020-8554): the same for `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ip_allowed_cidrs: Option<Vec<IpNet>>,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            service_proxy_name: None,
            node_hints: true,
            external_ip_allowed_cidrs: None,
            load_balancer_ip_allowed_cidrs: None,
        }
    }
}
