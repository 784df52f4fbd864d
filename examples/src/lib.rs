//! Sample cluster objects for kproxy's library examples.
//!
//! The examples themselves are `node_agent.rs` (a node agent that embeds `kproxy-core` and
//! `kproxy-nft` with a table name of its own) and `custom_backend.rs` (a
//! [`ProxyBackend`](kproxy_core::backend::ProxyBackend) of one's own, driven by the change
//! tracker). Both are built by `cargo build --workspace --all-targets` and run by this
//! crate's tests, so they cannot rot. This library only holds the objects they feed in, in
//! the JSON a CNI's watch of the API server delivers.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The ClusterIP of [`web_service`].
pub const WEB_CLUSTER_IP: &str = "198.19.160.10";

/// Service `demo/web`: ClusterIP 198.19.160.10, TCP port 80 to target port 8080.
pub fn web_service() -> Service {
    let json = r#"{
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {
            "type": "ClusterIP", "clusterIP": "198.19.160.10", "clusterIPs": ["198.19.160.10"],
            "ipFamilies": ["IPv4"], "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
        }
    }"#;
    // A constant written to deserialize; the tests would fail on the first call otherwise.
    serde_json::from_str(json).expect("the sample Service is valid")
}

/// EndpointSlice `demo/web-ipv4` of Service `demo/web`: ready endpoints on port 8080 at
/// `addresses` (IPv4, e.g. `198.18.0.11`), all on node `node-1`.
pub fn web_slice(addresses: &[&str]) -> EndpointSlice {
    let endpoints: Vec<serde_json::Value> = addresses
        .iter()
        .map(|a| serde_json::json!({"addresses": [a], "conditions": {"ready": true}, "nodeName": "node-1"}))
        .collect();
    let json = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-ipv4", "namespace": "demo", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    });
    // Built from string addresses only: an invalid one is caught by the tracker, not here.
    serde_json::from_value(json).expect("the sample EndpointSlice is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_deserialize() {
        assert_eq!(web_service().spec.and_then(|s| s.cluster_ip).as_deref(), Some(WEB_CLUSTER_IP));
        assert_eq!(web_slice(&["198.18.0.11", "198.18.0.12"]).endpoints.len(), 2);
    }
}
