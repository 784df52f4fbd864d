//! Builders shared by the core's integration tests: objects from JSON, translation helpers.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kproxy_core::diagnostic::Diagnostic;
use kproxy_core::model::{IpFamily, Protocol, ProxySettings, ProxyState, ServicePort, ServicePortKey, ServicePortName};
use kproxy_core::tracker::{translate, ClusterObjects};
use kproxy_core::translate::TranslateOptions;
use serde_json::{json, Value};

pub const NODE: &str = "node-a";

/// Merge `patch` into `base` (objects recursively; anything else replaces).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// A ClusterIP service `ns/name` at 198.19.0.10 with one TCP port "http" 80, patched.
pub fn service(patch: Value) -> Service {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "ns", "name": "web"},
        "spec": {"clusterIP": "198.19.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    });
    merge(&mut v, patch);
    serde_json::from_value(v).expect("test service JSON")
}

/// An IPv4 slice `ns/web-1` of service `web` with port "http" 8080, with these endpoints.
pub fn slice(name: &str, endpoints: Value) -> EndpointSlice {
    slice_patched(name, endpoints, json!({}))
}

pub fn slice_patched(name: &str, endpoints: Value, patch: Value) -> EndpointSlice {
    let mut v = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "ns", "name": name, "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    });
    merge(&mut v, patch);
    serde_json::from_value(v).expect("test slice JSON")
}

/// A ready endpoint at `ip` on node `node`.
pub fn ep(ip: &str, node: &str) -> Value {
    json!({"addresses": [ip], "nodeName": node, "conditions": {"ready": true}})
}

pub fn node(zone: Option<&str>) -> Node {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE},
        "status": {"addresses": [
            {"type": "Hostname", "address": NODE},
            {"type": "ExternalIP", "address": "198.18.200.2"},
            {"type": "InternalIP", "address": "198.18.100.1"},
            {"type": "InternalIP", "address": "2001:db8::1"}
        ]},
        "spec": {"podCIDRs": ["198.18.64.0/24", "2001:db8:64::/64"]}
    });
    if let Some(z) = zone {
        merge(&mut v, json!({"metadata": {"labels": {"topology.kubernetes.io/zone": z}}}));
    }
    serde_json::from_value(v).expect("test node JSON")
}

pub fn service_cidr(name: &str, cidrs: &[&str]) -> ServiceCIDR {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
        "metadata": {"name": name}, "spec": {"cidrs": cidrs}
    }))
    .expect("test ServiceCIDR JSON")
}

pub fn settings() -> ProxySettings {
    ProxySettings { node_name: NODE.to_string(), masquerade_bit: 14, ..ProxySettings::default() }
}

/// Translate with default options.
pub fn run(services: &[Service], slices: &[EndpointSlice], node: Option<&Node>) -> (ProxyState, Vec<Diagnostic>) {
    run_with(services, slices, node, &TranslateOptions::default())
}

pub fn run_with(
    services: &[Service],
    slices: &[EndpointSlice],
    node: Option<&Node>,
    options: &TranslateOptions,
) -> (ProxyState, Vec<Diagnostic>) {
    let t = translate(
        &ClusterObjects { services, endpoint_slices: slices, service_cidrs: &[], node },
        &settings(),
        options,
    );
    (t.state, t.diagnostics)
}

pub fn key(name: &str, port: &str, protocol: Protocol, family: IpFamily) -> ServicePortKey {
    ServicePortKey {
        name: ServicePortName { namespace: "ns".into(), name: name.into(), port: port.into(), protocol },
        family,
    }
}

/// The single service port `ns/web:http` TCP IPv4.
pub fn web(state: &ProxyState) -> &ServicePort {
    state
        .services
        .get(&key("web", "http", Protocol::Tcp, IpFamily::V4))
        .unwrap_or_else(|| panic!("ns/web:http missing; state has {:?}", state.services.keys().collect::<Vec<_>>()))
}

pub fn addrs(list: &[&str]) -> Vec<std::net::SocketAddr> {
    list.iter().map(|s| s.parse().expect("test socket address")).collect()
}
