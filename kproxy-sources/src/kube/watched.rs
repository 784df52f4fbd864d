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

/// One impl per kind; they differ only in these four names.
macro_rules! watched {
    ($ty:ty, $kind:ident, $variant:ident, $msg:literal) => {
        impl Watched for $ty {
            const KIND: ObjectKind = ObjectKind::$kind;
            const LIST_FAILED: &'static str = $msg;
            fn event(update: Update<Self>) -> ClusterEvent {
                ClusterEvent::$variant(update)
            }
        }
    };
}

watched!(Service, Service, Service, "Failed to list services");
watched!(EndpointSlice, EndpointSlice, EndpointSlice, "Failed to list endpoint slices");
watched!(ServiceCIDR, ServiceCidr, ServiceCidr, "Failed to list service CIDRs");
watched!(Node, Node, Node, "Failed to list nodes");
