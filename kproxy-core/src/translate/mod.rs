//! Translation of Kubernetes objects (k8s-openapi types) into a desired
//! [`crate::model::ProxyState`], with upstream kube-proxy's semantics.
//!
//! Each object kind is first checked and reduced to what the proxy needs (`service`,
//! `endpoints`, `node`), then one Service plus its EndpointSlices becomes its service ports
//! (`build`, `topology`). The [`crate::tracker::ChangeTracker`] keeps those reduced objects and
//! re-runs the second step only for services that changed; [`translate`] does everything at
//! once (through the same code).

mod build;
mod endpoints;
mod fields;
pub mod meta;
mod node;
mod service;
mod topology;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;

pub(crate) use endpoints::{parse as parse_slice, NodeNames, SliceInfo};
pub(crate) use node::{effective_settings, parse as parse_node, parse_service_cidr, NodeInfo};
pub(crate) use service::{parse as parse_service, ServiceInfo};
pub(crate) use build::service_ports;
pub(crate) use topology::NodeContext;

use crate::diagnostic::Diagnostic;
use crate::model::{ProxySettings, ProxyState};
use crate::tracker::ChangeTracker;

/// Choices that change which objects are ours or how they are read (not node facts: those are
/// in [`ProxySettings`] and the Node object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateOptions {
    /// Our `serviceProxyName`: Services (and their EndpointSlices) labelled
    /// `service.kubernetes.io/service-proxy-name` are handled only if the label equals this.
    /// `None`: every labelled object belongs to another proxy.
    pub service_proxy_name: Option<String>,
    /// Honour `hints.forNodes` (trafficDistribution PreferSameNode); upstream's feature gate
    /// `PreferSameTrafficDistribution`, on by default.
    pub node_hints: bool,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions { service_proxy_name: None, node_hints: true }
    }
}

/// Everything to translate at once (borrowed, nothing is copied beyond what the state needs).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterObjects<'a> {
    /// v1 Services.
    pub services: &'a [Service],
    /// discovery.k8s.io/v1 EndpointSlices.
    pub endpoint_slices: &'a [EndpointSlice],
    /// networking.k8s.io/v1 ServiceCIDRs.
    pub service_cidrs: &'a [ServiceCIDR],
    /// This node's Node, if known.
    pub node: Option<&'a Node>,
}

/// The result of [`translate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// The desired state.
    pub state: ProxyState,
    /// Problems with objects that were (partly) skipped.
    pub diagnostics: Vec<Diagnostic>,
}

/// Translate a complete set of objects into the desired state.
pub fn translate(objects: &ClusterObjects<'_>, settings: &ProxySettings, options: &TranslateOptions) -> Translation {
    let mut tracker = ChangeTracker::new(settings.clone(), options.clone());
    tracker.reserve(objects.services.len(), objects.endpoint_slices.len());
    let mut diagnostics = Vec::new();
    if let Some(node) = objects.node {
        tracker.upsert_node(node, &mut diagnostics);
    }
    for obj in objects.service_cidrs {
        tracker.upsert_service_cidr(obj, &mut diagnostics);
    }
    for svc in objects.services {
        tracker.upsert_service(svc, &mut diagnostics);
    }
    for slice in objects.endpoint_slices {
        tracker.upsert_slice(slice, &mut diagnostics);
    }
    tracker.take_state();
    Translation { state: tracker.into_state(), diagnostics }
}
