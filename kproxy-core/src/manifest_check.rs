//! Checks on manifest objects that the API server would have made before kproxy saw them:
//! object names, and size limits on one object. Objects from an API server were validated
//! there; objects from manifest files were not, so [`crate::manifest::parse_manifest`] runs
//! [`check_object`] on each one and skips (with a diagnostic) what the API server would
//! reject. [`cross_check`] names what is legal per object but suspicious across them (a slice
//! whose Service is missing, a ClusterIP outside every ServiceCIDR); those objects are kept.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::diagnostic::Diagnostic;
use crate::event::{ClusterEvent, Update};
use crate::names::{dns1035_label, dns1123_label, dns1123_subdomain};
use crate::translate::meta::{DEFAULT_NAMESPACE, LABEL_SERVICE_NAME};

/// Most ports one Service may list. The API server has no count of its own (only its 1.5 MiB
/// object size); kproxy programs one map element per port and address, so a Service with
/// thousands of ports is almost certainly a generator's mistake.
pub const MAX_SERVICE_PORTS: usize = 1000;
/// Most endpoints in one EndpointSlice (the API server's `maxEndpoints`).
pub const MAX_SLICE_ENDPOINTS: usize = 1000;
/// Most ports in one EndpointSlice (the API server's `maxPorts`).
pub const MAX_SLICE_PORTS: usize = 20_000;

fn named(what: &str, value: &str, check: fn(&str) -> Result<(), String>) -> Result<(), String> {
    check(value).map_err(|why| format!("{what} {value:?} is not a valid Kubernetes name: {why}"))
}

fn meta_names(meta: &ObjectMeta, namespaced: bool, name_rule: fn(&str) -> Result<(), String>) -> Result<(), String> {
    let name = meta.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        return Err("metadata.name is missing".into());
    }
    named("metadata.name", name, name_rule)?;
    if namespaced {
        let namespace = meta.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(DEFAULT_NAMESPACE);
        named("metadata.namespace", namespace, dns1123_label)?;
    }
    Ok(())
}

fn at_most(what: &str, count: usize, max: usize) -> Result<(), String> {
    if count > max {
        return Err(format!("{what} has {count} entries; at most {max} are accepted"));
    }
    Ok(())
}

/// Why the API server would reject this object, if it would.
pub fn check_object(event: &ClusterEvent) -> Result<(), String> {
    match event {
        ClusterEvent::Service(Update::Upsert(s)) => {
            meta_names(&s.metadata, true, dns1035_label)?;
            let ports = s.spec.as_ref().and_then(|spec| spec.ports.as_ref()).map_or(0, Vec::len);
            at_most("spec.ports", ports, MAX_SERVICE_PORTS)
        }
        ClusterEvent::EndpointSlice(Update::Upsert(s)) => {
            meta_names(&s.metadata, true, dns1123_subdomain)?;
            at_most("endpoints", s.endpoints.len(), MAX_SLICE_ENDPOINTS)?;
            at_most("ports", s.ports.as_ref().map_or(0, Vec::len), MAX_SLICE_PORTS)
        }
        ClusterEvent::Node(Update::Upsert(n)) => meta_names(&n.metadata, false, dns1123_subdomain),
        ClusterEvent::ServiceCidr(Update::Upsert(c)) => meta_names(&c.metadata, false, dns1123_subdomain),
        _ => Ok(()),
    }
}

fn namespace_name(meta: &ObjectMeta) -> (&str, &str) {
    let namespace = meta.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(DEFAULT_NAMESPACE);
    (namespace, meta.name.as_deref().unwrap_or_default())
}

/// What is suspicious across the objects of all manifest files: EndpointSlices whose Service
/// no manifest defines, and ClusterIPs outside every ServiceCIDR (checked only when some
/// ServiceCIDR is defined). The objects are still used; the diagnostics name them.
pub fn cross_check<'a>(events: impl IntoIterator<Item = &'a ClusterEvent>) -> Vec<Diagnostic> {
    let mut services = Vec::new();
    let mut slices = Vec::new();
    let mut cidrs: Vec<IpNet> = Vec::new();
    for event in events {
        match event {
            ClusterEvent::Service(Update::Upsert(s)) => services.push(s),
            ClusterEvent::EndpointSlice(Update::Upsert(s)) => slices.push(s),
            ClusterEvent::ServiceCidr(Update::Upsert(c)) => {
                let listed = c.spec.as_ref().and_then(|spec| spec.cidrs.as_ref());
                cidrs.extend(listed.into_iter().flatten().filter_map(|c| c.parse::<IpNet>().ok()));
            }
            _ => {}
        }
    }
    let known: BTreeSet<(&str, &str)> = services.iter().map(|s| namespace_name(&s.metadata)).collect();
    let mut out = Vec::new();
    for slice in slices {
        let (namespace, name) = namespace_name(&slice.metadata);
        let labels = slice.metadata.labels.as_ref();
        let Some(service) = labels.and_then(|l| l.get(LABEL_SERVICE_NAME)) else { continue };
        if !known.contains(&(namespace, service.as_str())) {
            let message = format!(
                "its Service {namespace}/{service} is in no manifest file: its endpoints are not used until that Service is added"
            );
            out.push(Diagnostic::new("EndpointSlice", namespace, name, message));
        }
    }
    if cidrs.is_empty() {
        return out;
    }
    for service in services {
        let (namespace, name) = namespace_name(&service.metadata);
        let spec = service.spec.as_ref();
        let single = spec.and_then(|s| s.cluster_ip.as_deref()).into_iter();
        let listed = spec.and_then(|s| s.cluster_ips.as_deref()).into_iter().flatten().map(String::as_str);
        let ips: BTreeSet<IpAddr> = single.chain(listed).filter_map(|ip| ip.parse().ok()).collect();
        for ip in ips {
            if !cidrs.iter().any(|c| c.contains(&ip)) {
                let list: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
                let message = format!(
                    "spec.clusterIP {ip} is outside every ServiceCIDR ({}): the API server would not have allocated it",
                    list.join(", ")
                );
                out.push(Diagnostic::new("Service", namespace, name, message));
            }
        }
    }
    out
}
