//! Which endpoints a service port uses: upstream's `CategorizeEndpoints`.
//!
//! Cluster endpoints are the ready ones, narrowed by topology hints when every ready endpoint
//! carries a hint of that kind and at least one is hinted for this node (forNodes, written by
//! the EndpointSlice controller for `trafficDistribution: PreferSameNode`) or this node's zone
//! (forZones, for `PreferClose` / `PreferSameZone` and topology-aware routing); if none is
//! ready anywhere, the serving-and-terminating ones. Local endpoints follow the same
//! readiness rule (no topology) among endpoints on this node.

use std::net::SocketAddr;

use super::endpoints::{EndpointInfo, NodeId};

/// One merged endpoint of a service port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate<'a> {
    pub addr: SocketAddr,
    pub local: bool,
    pub info: &'a EndpointInfo,
}

/// Facts about this node that categorisation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeContext<'a> {
    /// This node's name (empty: unknown, no endpoint is local).
    pub node_name: &'a str,
    /// This node's interned name, if any endpoint ever named it.
    pub node_id: Option<NodeId>,
    /// The node's `topology.kubernetes.io/zone` label.
    pub zone: Option<&'a str>,
    /// Honour forNodes hints (upstream feature gate PreferSameTrafficDistribution).
    pub node_hints: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopologyMode {
    Any,
    SameNode,
    SameZone,
}

fn mode(eps: &[Candidate<'_>], ctx: &NodeContext<'_>) -> TopologyMode {
    let mut any_ready = false;
    let (mut all_node_hints, mut for_node) = (true, false);
    let (mut all_zone_hints, mut for_zone) = (true, false);
    for ep in eps.iter().filter(|e| e.info.ready) {
        any_ready = true;
        if ep.info.node_hints().is_empty() {
            all_node_hints = false;
        } else if !ctx.node_name.is_empty() && ep.info.node_hints().iter().any(|n| n == ctx.node_name) {
            for_node = true;
        }
        if ep.info.zone_hints().is_empty() {
            all_zone_hints = false;
        } else if ctx.zone.is_some_and(|z| ep.info.zone_hints().iter().any(|h| h == z)) {
            for_zone = true;
        }
    }
    if !any_ready {
        TopologyMode::Any
    } else if ctx.node_hints && all_node_hints && for_node {
        TopologyMode::SameNode
    } else if all_zone_hints && for_zone {
        TopologyMode::SameZone
    } else {
        TopologyMode::Any
    }
}

fn available(ep: &Candidate<'_>, mode: TopologyMode, ctx: &NodeContext<'_>) -> bool {
    match mode {
        TopologyMode::Any => true,
        TopologyMode::SameNode => ep.info.node_hints().iter().any(|n| n == ctx.node_name),
        TopologyMode::SameZone => ctx.zone.is_some_and(|z| ep.info.zone_hints().iter().any(|h| h == z)),
    }
}

fn fallback(ep: &Candidate<'_>) -> bool {
    ep.info.serving && ep.info.terminating
}

/// `(cluster endpoints, local endpoints)`, both in the (sorted) order of `eps`.
pub(crate) fn categorize(eps: &[Candidate<'_>], ctx: &NodeContext<'_>) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let mode = mode(eps, ctx);
    let mut cluster = select(eps, |e| e.info.ready && available(e, mode, ctx));
    if cluster.is_empty() {
        cluster = select(eps, fallback);
    }
    let local_ready = eps.iter().any(|e| e.local && e.info.ready);
    let local = select(eps, |e| e.local && if local_ready { e.info.ready } else { fallback(e) });
    (cluster, local)
}

/// The addresses of the endpoints `keep` accepts, allocated once at the exact size (these
/// lists are built for every service port of a large cluster).
fn select(eps: &[Candidate<'_>], keep: impl Fn(&Candidate<'_>) -> bool) -> Vec<SocketAddr> {
    let n = eps.iter().filter(|e| keep(e)).count();
    if n == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(n);
    out.extend(eps.iter().filter(|e| keep(e)).map(|e| e.addr));
    out
}
