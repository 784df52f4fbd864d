//! Translation of a complete set of objects at once: a fresh [`ChangeTracker`] fed every
//! object and taken once, so one-shot and incremental translation share one code path.

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;

use super::ChangeTracker;
use crate::diagnostic::Diagnostic;
use crate::model::{ProxySettings, ProxyState};
use crate::translate::TranslateOptions;

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
