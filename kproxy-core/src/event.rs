//! Events a source (API server watches, manifest files) feeds into the change tracker.
//!
//! Sources live outside the core (they do I/O); this type is the boundary. A source sends
//! [`ClusterEvent::Synced`] for a kind once its initial list is complete; the sync loop does
//! not program anything before every kind it watches is synced (as upstream waits for its
//! informers).

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;

/// The kinds of object kproxy follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// networking.k8s.io/v1 ServiceCIDR.
    ServiceCidr,
    /// v1 Node (only this node's).
    Node,
}

/// An object was created/updated, or deleted.
#[derive(Debug, Clone, PartialEq)]
pub enum Update<T> {
    /// Created or updated: the whole new object.
    Upsert(T),
    /// Deleted. `namespace` is empty for cluster-scoped kinds.
    Delete {
        /// Namespace of the deleted object (empty for Node and ServiceCIDR).
        namespace: String,
        /// Name of the deleted object.
        name: String,
    },
}

/// One event from a source.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEvent {
    /// A Service changed.
    Service(Update<Service>),
    /// An EndpointSlice changed.
    EndpointSlice(Update<EndpointSlice>),
    /// A ServiceCIDR changed.
    ServiceCidr(Update<ServiceCIDR>),
    /// This node's Node object changed.
    Node(Update<Node>),
    /// The initial list of this kind is complete (sent once per kind, and again after a
    /// relist replaced everything of that kind: objects not re-sent since the relist began
    /// are to be treated as deleted by the source itself, which sends the deletes).
    Synced(ObjectKind),
}
