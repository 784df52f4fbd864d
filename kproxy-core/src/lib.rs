//! kproxy-core: the backend-agnostic heart of kproxy.
//!
//! What goes in: Kubernetes objects (Services, EndpointSlices, ServiceCIDRs, this node's Node),
//! the [`config`] (upstream's `KubeProxyConfiguration`) and facts about the node.
//! What comes out: a desired [`model::ProxyState`] and a [`model::ChangeSet`] describing what
//! changed since the last sync, handed to a [`backend::ProxyBackend`] that programs a kernel;
//! and, given conntrack entries read by someone else, which UDP entries that state makes stale
//! ([`conntrack`]).
//!
//! This crate does no I/O: no sockets, no files, no clock reads, no environment, no interface
//! lookups. Everything is deterministic so it can be golden-tested, property-tested and
//! benchmarked cheaply. Kernel programming lives in `kproxy-nft` and `kproxy-ipvs`; sources
//! (API server watches, manifest files) live in the `kproxy` binary.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod config;
pub mod conntrack;
pub mod diagnostic;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod manifest;
pub mod manifest_check;
pub mod model;
pub mod names;
pub mod tracker;
pub mod translate;
