//! Sources of cluster state: they do the I/O and feed
//! [`kproxy_core::event::ClusterEvent`]s to the change tracker.

pub mod kube;
pub mod manifests;
