//! Where a service proxy's cluster state comes from, as
//! [`kproxy_core::event::ClusterEvent`]s on a channel for kproxy-core's change tracker:
//!
//! - [`kube`]: watches of Services, EndpointSlices, ServiceCIDRs and this node's Node on the
//!   API server, with client-go's informer semantics (initial list from the watch cache in
//!   one response, relist after a broken watch with deletes for what vanished), kube-proxy's
//!   client-side `qps`/`burst` token bucket, its label selector, and the node's IPs.
//! - [`manifests`]: the same objects read from a file or directory of YAML/JSON manifests,
//!   polled for changes (kproxy's `--manifests`, for a node without an API server and for
//!   tests).
//!
//! Not here: deciding anything. Sources only do the I/O and translate nothing; what the
//! objects mean for the proxy is kproxy-core's. kproxy's daemon (`kproxy_bin::daemon`) wires a
//! source to the sync loop; an embedder (a CNI programming its own service rules) can run the
//! same source into its own tracker. Both sources run as tokio tasks and never end on a
//! transient failure: they log a warning and retry (the API source) or keep what they had
//! (the manifest source).
#![warn(missing_docs)]

pub mod kube;
pub mod manifests;

/// The README's example, compiled so that it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
