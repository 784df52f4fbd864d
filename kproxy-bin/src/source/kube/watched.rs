//! What differs between the kinds kproxy watches: how each maps onto a
//! [`ClusterEvent`] and the warning an operator greps for when listing it fails.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kproxy_core::event::{ClusterEvent, ObjectKind, Update};
use kube::Resource;
use serde::de::DeserializeOwned;

/// A kind of object the Kubernetes source watches.
pub trait Watched: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {
    /// Which kind this is.
    const KIND: ObjectKind;
    /// Warning logged when listing/watching fails (kube-proxy's wording, grepped by operators).
    const LIST_FAILED: &'static str;
    /// Wraps an update of this kind into a cluster event.
    fn event(update: Update<Self>) -> ClusterEvent;
}

impl Watched for Service {
    const KIND: ObjectKind = ObjectKind::Service;
    const LIST_FAILED: &'static str = "Failed to list services";
    fn event(update: Update<Self>) -> ClusterEvent {
        ClusterEvent::Service(update)
    }
}

impl Watched for EndpointSlice {
    const KIND: ObjectKind = ObjectKind::EndpointSlice;
    const LIST_FAILED: &'static str = "Failed to list endpoint slices";
    fn event(update: Update<Self>) -> ClusterEvent {
        ClusterEvent::EndpointSlice(update)
    }
}

impl Watched for ServiceCIDR {
    const KIND: ObjectKind = ObjectKind::ServiceCidr;
    const LIST_FAILED: &'static str = "Failed to list service CIDRs";
    fn event(update: Update<Self>) -> ClusterEvent {
        ClusterEvent::ServiceCidr(update)
    }
}

impl Watched for Node {
    const KIND: ObjectKind = ObjectKind::Node;
    const LIST_FAILED: &'static str = "Failed to list nodes";
    fn event(update: Update<Self>) -> ClusterEvent {
        ClusterEvent::Node(update)
    }
}
