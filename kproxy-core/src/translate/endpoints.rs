//! A discovery.k8s.io/v1 EndpointSlice, checked and reduced to what the proxy needs
//! ([`SliceInfo`]), as upstream's EndpointSliceCache does.
//!
//! Slices without the `kubernetes.io/service-name` label are malformed (skipped with a
//! diagnostic); headless-service slices, FQDN slices and slices of another service proxy are
//! skipped silently. A bad port skips that port; a bad endpoint address skips that endpoint.

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

/// One endpoint of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointInfo {
    pub ip: IpAddr,
    pub node_name: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// `hints.forZones[].name`, sorted (empty: no hint).
    pub zone_hints: Vec<String>,
    /// `hints.forNodes[].name`, sorted (empty: no hint).
    pub node_hints: Vec<String>,
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
pub(crate) fn parse(slice: &EndpointSlice, options: &TranslateOptions, out: &mut Vec<Diagnostic>) -> Option<SliceInfo> {
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
    let endpoints = slice
        .endpoints
        .iter()
        .enumerate()
        .filter_map(|(i, ep)| endpoint(ep, i, family, &mut r))
        .collect();
    Some(SliceInfo { service, family, ports, endpoints })
}

fn ports(slice: &EndpointSlice, r: &mut Reporter<'_>) -> Vec<SlicePort> {
    let mut ports: Vec<SlicePort> = Vec::new();
    for (i, p) in slice.ports.iter().flatten().enumerate() {
        let path = format!("ports[{i}]");
        let name = p.name.clone().unwrap_or_default();
        let parsed = fields::protocol(p.protocol.as_deref(), &format!("{path}.protocol")).and_then(|protocol| {
            let port = match p.port {
                Some(port) => fields::port(port, &format!("{path}.port"))?,
                None => return Err(format!("{path}.port is not set")),
            };
            Ok((protocol, port))
        });
        match parsed {
            Ok((protocol, port)) => {
                if ports.iter().any(|o| o.name == name && o.protocol == protocol) {
                    r.report(format!("{path}: duplicate port name {name:?} with protocol {protocol}: port skipped"));
                } else {
                    ports.push(SlicePort { name, protocol, port });
                }
            }
            Err(e) => r.report(format!("{e}: port skipped")),
        }
    }
    ports
}

fn endpoint(ep: &Endpoint, i: usize, family: IpFamily, r: &mut Reporter<'_>) -> Option<EndpointInfo> {
    // Upstream uses the first address only (the API allows exactly one today).
    let Some(addr) = ep.addresses.first() else {
        r.report(format!("endpoints[{i}].addresses is empty: endpoint skipped"));
        return None;
    };
    let ip = match fields::ip(addr, &format!("endpoints[{i}].addresses[0]")) {
        Ok(ip) => ip,
        Err(e) => {
            r.report(format!("{e}: endpoint skipped"));
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
    let hints = ep.hints.as_ref();
    let mut zone_hints: Vec<String> =
        hints.and_then(|h| h.for_zones.as_ref()).into_iter().flatten().map(|z| z.name.clone()).collect();
    let mut node_hints: Vec<String> =
        hints.and_then(|h| h.for_nodes.as_ref()).into_iter().flatten().map(|n| n.name.clone()).collect();
    zone_hints.sort();
    zone_hints.dedup();
    node_hints.sort();
    node_hints.dedup();
    Some(EndpointInfo { ip, node_name: ep.node_name.clone(), ready, serving, terminating, zone_hints, node_hints })
}
