//! A discovery.k8s.io/v1 EndpointSlice, checked and reduced to what the proxy needs
//! ([`SliceInfo`]), as upstream's EndpointSliceCache does.
//!
//! Slices without the `kubernetes.io/service-name` label are malformed (skipped with a
//! diagnostic); headless-service slices, FQDN slices and slices of another service proxy are
//! skipped silently. A bad port skips that port; a bad endpoint address skips that endpoint.

use std::collections::HashMap;
use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

use super::{fields, meta, TranslateOptions};
use crate::diagnostic::{Diagnostic, Reporter};
use crate::model::{IpFamily, Protocol};

/// One `ports[]` entry of a slice: the (already resolved) target port for a named service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlicePort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

/// Identifier of an interned node name (see [`NodeNames`]).
pub(crate) type NodeId = u32;

/// Node names seen in endpoints, interned: 100k endpoints on a few hundred nodes would
/// otherwise hold 100k copies of those names, and allocating and freeing them dominated
/// translation time. Never shrinks (bounded by the distinct node names ever seen).
#[derive(Debug, Clone)]
pub(crate) struct NodeNames {
    /// The authoritative map (SipHash: names come from the cluster, so no weak hash here).
    ids: HashMap<String, NodeId>,
    /// `names[id]`.
    names: Vec<String>,
    /// A small direct-mapped cache in front of `ids`, indexed by a cheap hash. A crafted name
    /// can only cause misses (then `ids` answers), never wrong answers or long probes.
    recent: [NodeId; RECENT],
}

const RECENT: usize = 64;
const EMPTY: NodeId = NodeId::MAX;

impl Default for NodeNames {
    fn default() -> Self {
        NodeNames { ids: HashMap::new(), names: Vec::new(), recent: [EMPTY; RECENT] }
    }
}

/// FNV-1a, reduced to a cache slot.
fn slot(name: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name.as_bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h as usize) % RECENT
}

impl NodeNames {
    /// The id of `name`, interning it if new.
    pub(crate) fn intern(&mut self, name: &str) -> NodeId {
        let slot = slot(name);
        let cached = self.recent[slot];
        if cached != EMPTY && self.names.get(cached as usize).is_some_and(|n| n == name) {
            return cached;
        }
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                // More than 4 billion distinct node names cannot be held in memory anyway.
                let id = NodeId::try_from(self.names.len()).unwrap_or(EMPTY - 1);
                self.ids.insert(name.to_string(), id);
                self.names.push(name.to_string());
                id
            }
        };
        self.recent[slot] = id;
        id
    }

    /// The id of `name`, if it was ever interned.
    pub(crate) fn get(&self, name: &str) -> Option<NodeId> {
        self.ids.get(name).copied()
    }
}

/// Topology hints of an endpoint (boxed: most endpoints have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hints {
    /// `hints.forZones[].name`, sorted (empty: no zone hint).
    pub zones: Vec<String>,
    /// `hints.forNodes[].name`, sorted (empty: no node hint).
    pub nodes: Vec<String>,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointInfo {
    pub ip: IpAddr,
    /// Interned `nodeName`.
    pub node: Option<NodeId>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub hints: Option<Box<Hints>>,
}

impl EndpointInfo {
    /// Zone hints (empty: none).
    pub(crate) fn zone_hints(&self) -> &[String] {
        self.hints.as_ref().map_or(&[], |h| &h.zones)
    }

    /// Node hints (empty: none).
    pub(crate) fn node_hints(&self) -> &[String] {
        self.hints.as_ref().map_or(&[], |h| &h.nodes)
    }
}

/// What the proxy needs of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SliceInfo {
    /// Name of the Service it belongs to (same namespace).
    pub service: String,
    pub family: IpFamily,
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<EndpointInfo>,
}

/// Parse an EndpointSlice. `None`: it contributes nothing (skipped on purpose, or malformed,
/// in which case a diagnostic was pushed).
pub(crate) fn parse(
    slice: &EndpointSlice,
    options: &TranslateOptions,
    nodes: &mut NodeNames,
    out: &mut Vec<Diagnostic>,
) -> Option<SliceInfo> {
    let (namespace, name) = meta::names("EndpointSlice", &slice.metadata, true, out)?;
    if meta::label(&slice.metadata, meta::LABEL_HEADLESS).is_some() || !meta::ours(&slice.metadata, options) {
        return None;
    }
    let mut r = Reporter::new("EndpointSlice", namespace, name, out);
    let service = match meta::label(&slice.metadata, meta::LABEL_SERVICE_NAME) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => {
            r.report(format!("label {} is missing: slice skipped (it belongs to no service)", meta::LABEL_SERVICE_NAME));
            return None;
        }
    };
    let family = match slice.address_type.as_str() {
        "IPv4" => IpFamily::V4,
        "IPv6" => IpFamily::V6,
        "FQDN" => return None,
        other => {
            r.report(format!("addressType: {other:?} is not IPv4, IPv6 or FQDN: slice skipped"));
            return None;
        }
    };
    let ports = ports(slice, &mut r);
    let mut endpoints = Vec::with_capacity(slice.endpoints.len());
    for (i, ep) in slice.endpoints.iter().enumerate() {
        if let Some(info) = endpoint(ep, i, family, nodes, &mut r) {
            endpoints.push(info);
        }
    }
    Some(SliceInfo { service, family, ports, endpoints })
}

fn ports(slice: &EndpointSlice, r: &mut Reporter<'_>) -> Vec<SlicePort> {
    let mut ports: Vec<SlicePort> = Vec::new();
    for (i, p) in slice.ports.iter().flatten().enumerate() {
        let name = p.name.clone().unwrap_or_default();
        let parsed = (|| {
            let protocol = fields::protocol(p.protocol.as_deref()).map_err(|e| format!("ports[{i}].protocol: {e}"))?;
            let port = match p.port {
                Some(port) => fields::port(port).map_err(|e| format!("ports[{i}].port: {e}"))?,
                None => return Err(format!("ports[{i}].port is not set")),
            };
            Ok((protocol, port))
        })();
        match parsed {
            Ok((protocol, port)) => {
                if ports.iter().any(|o| o.name == name && o.protocol == protocol) {
                    r.report(format!("ports[{i}]: duplicate port name {name:?} with protocol {protocol}: port skipped"));
                } else {
                    ports.push(SlicePort { name, protocol, port });
                }
            }
            Err(e) => r.report(format!("{e}: port skipped")),
        }
    }
    ports
}

fn endpoint(ep: &Endpoint, i: usize, family: IpFamily, nodes: &mut NodeNames, r: &mut Reporter<'_>) -> Option<EndpointInfo> {
    // Upstream uses the first address only (the API allows exactly one today).
    let Some(addr) = ep.addresses.first() else {
        r.report(format!("endpoints[{i}].addresses is empty: endpoint skipped"));
        return None;
    };
    let ip = match fields::ip(addr) {
        Ok(ip) => ip,
        Err(e) => {
            r.report(format!("endpoints[{i}].addresses[0]: {e}: endpoint skipped"));
            return None;
        }
    };
    if IpFamily::of(&ip) != family {
        r.report(format!("endpoints[{i}].addresses[0]: {ip} does not match the slice's addressType: endpoint skipped"));
        return None;
    }
    let conditions = ep.conditions.as_ref();
    // Upstream: ready and serving unset count as true, terminating unset as false.
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(true);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    let hints = ep.hints.as_ref().and_then(|h| {
        let mut zones: Vec<String> = h.for_zones.iter().flatten().map(|z| z.name.clone()).collect();
        let mut nodes: Vec<String> = h.for_nodes.iter().flatten().map(|n| n.name.clone()).collect();
        zones.sort();
        zones.dedup();
        nodes.sort();
        nodes.dedup();
        (!zones.is_empty() || !nodes.is_empty()).then(|| Box::new(Hints { zones, nodes }))
    });
    let node = ep.node_name.as_deref().map(|n| nodes.intern(n));
    Some(EndpointInfo { ip, node, ready, serving, terminating, hints })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_survives_cache_collisions() {
        let mut names = NodeNames::default();
        let a = names.intern("node-a");
        let many: Vec<NodeId> = (0..500).map(|i| names.intern(&format!("node-{i}"))).collect();
        assert_eq!(names.intern("node-a"), a);
        for (i, id) in many.iter().enumerate() {
            assert_eq!(names.intern(&format!("node-{i}")), *id);
            assert_eq!(names.get(&format!("node-{i}")), Some(*id));
        }
        assert_eq!(names.get("unknown"), None);
        let mut distinct = many.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 500);
    }
}
