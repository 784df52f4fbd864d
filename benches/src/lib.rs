//! Shared synthetic clusters for kproxy's benchmarks (and for tests that need scale).
//!
//! Addresses only from 198.18.0.0/15: ClusterIPs in 198.19.0.0/16 (one per service, up to
//! 65,536 services), endpoints in 198.18.0.0/16 with the target port varying past 65,536
//! endpoints (as `shared/tools/nft-shapes/upstream_shape.py` does), so every endpoint address
//! is unique. The node is `node-0` (198.19.255.254); endpoints rotate over ten node names, so a
//! tenth of them are local.
#![warn(missing_docs)]

pub mod cpu_time;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{ServiceCIDR, ServiceCIDRSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kproxy_core::event::{ClusterEvent, Update};
use kproxy_core::model::{ProxySettings, ProxyState};
use kproxy_core::tracker::{translate, ClusterObjects};
use kproxy_core::translate::TranslateOptions;

/// Namespace of every synthetic object.
pub const NAMESPACE: &str = "bench";
/// Name of the synthetic node (the one whose endpoints are local).
pub const NODE_NAME: &str = "node-0";
/// The synthetic node's IP.
pub const NODE_IP: &str = "198.19.255.254";
/// Services beyond this do not fit 198.19.0.0/16 next to the node IP.
pub const MAX_SERVICES: usize = 65_534;

/// ClusterIP of service `s`: 198.19.(s >> 8).(s & 255).
pub fn service_ip(s: usize) -> String {
    format!("198.19.{}.{}", (s >> 8) & 255, s & 255)
}

/// Address and target port of the `k`-th endpoint overall.
pub fn endpoint_addr(k: usize) -> (String, i32) {
    // Fits i32: k < 2^31 for any cluster a benchmark builds.
    (format!("198.18.{}.{}", (k >> 8) & 255, k & 255), 8000 + (k >> 16) as i32)
}

fn meta(name: String, labels: Option<BTreeMap<String, String>>) -> ObjectMeta {
    ObjectMeta { namespace: Some(NAMESPACE.to_string()), name: Some(name), labels, ..ObjectMeta::default() }
}

/// Service `svc-{s}`: ClusterIP, one TCP port `http` 80.
pub fn service(s: usize) -> Service {
    Service {
        metadata: meta(format!("svc-{s}"), None),
        spec: Some(ServiceSpec {
            cluster_ip: Some(service_ip(s)),
            cluster_ips: Some(vec![service_ip(s)]),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The EndpointSlices of service `s` with its `eps` ready endpoints, the `k`-th endpoint
/// overall being `s * eps + e`: one slice `svc-{s}-0`, or two (`-0`, `-1`) when the service's
/// endpoints straddle a multiple of 65,536, where the target port changes (a slice has one
/// port). `generation` lets a benchmark make a changed copy: when odd, the first endpoint
/// moves to 198.18.255.255 (same port; only generation 0 guarantees unique addresses).
pub fn endpoint_slices(s: usize, eps: usize, generation: u64) -> Vec<EndpointSlice> {
    let labels = BTreeMap::from([("kubernetes.io/service-name".to_string(), format!("svc-{s}"))]);
    let mut slices: Vec<EndpointSlice> = Vec::new();
    for e in 0..eps {
        let k = s * eps + e;
        let (mut ip, port) = endpoint_addr(k);
        if e == 0 && generation % 2 == 1 {
            ip = "198.18.255.255".to_string();
        }
        let endpoint = Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions { ready: Some(true), serving: Some(true), terminating: Some(false) }),
            node_name: Some(format!("node-{}", k % 10)),
            ..Endpoint::default()
        };
        let same_port = slices
            .last()
            .and_then(|sl| sl.ports.as_ref())
            .and_then(|p| p.first())
            .is_some_and(|p| p.port == Some(port));
        match slices.last_mut() {
            Some(slice) if same_port => slice.endpoints.push(endpoint),
            _ => slices.push(EndpointSlice {
                metadata: meta(format!("svc-{s}-{}", slices.len()), Some(labels.clone())),
                address_type: "IPv4".into(),
                endpoints: vec![endpoint],
                ports: Some(vec![EndpointPort {
                    name: Some("http".into()),
                    port: Some(port),
                    protocol: Some("TCP".into()),
                    ..EndpointPort::default()
                }]),
            }),
        }
    }
    slices
}

/// The synthetic node.
pub fn node() -> Node {
    Node {
        metadata: ObjectMeta { name: Some(NODE_NAME.into()), ..ObjectMeta::default() },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress { type_: "InternalIP".into(), address: NODE_IP.into() }]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

/// The synthetic ServiceCIDR (198.19.0.0/16).
pub fn service_cidr() -> ServiceCIDR {
    ServiceCIDR {
        metadata: ObjectMeta { name: Some("kubernetes".into()), ..ObjectMeta::default() },
        spec: Some(ServiceCIDRSpec { cidrs: Some(vec!["198.19.0.0/16".into()]) }),
        ..ServiceCIDR::default()
    }
}

/// The objects of a synthetic cluster.
#[derive(Debug, Clone)]
pub struct SyntheticObjects {
    /// `services` Services.
    pub services: Vec<Service>,
    /// One EndpointSlice per service (two where the target port changes).
    pub endpoint_slices: Vec<EndpointSlice>,
    /// One ServiceCIDR.
    pub service_cidrs: Vec<ServiceCIDR>,
    /// This node.
    pub node: Node,
}

impl SyntheticObjects {
    /// Borrow as translation input.
    pub fn as_input(&self) -> ClusterObjects<'_> {
        ClusterObjects {
            services: &self.services,
            endpoint_slices: &self.endpoint_slices,
            service_cidrs: &self.service_cidrs,
            node: Some(&self.node),
        }
    }
}

/// `services` services with `endpoints_per_service` endpoints each.
///
/// # Panics
/// When `services` exceeds [`MAX_SERVICES`] (ClusterIPs would leave 198.19.0.0/16).
pub fn synthetic_objects(services: usize, endpoints_per_service: usize) -> SyntheticObjects {
    assert!(services <= MAX_SERVICES, "at most {MAX_SERVICES} synthetic services fit 198.19.0.0/16");
    SyntheticObjects {
        services: (0..services).map(service).collect(),
        endpoint_slices: (0..services).flat_map(|s| endpoint_slices(s, endpoints_per_service, 0)).collect(),
        service_cidrs: vec![service_cidr()],
        node: node(),
    }
}

/// The same cluster as events, as a source sends them (Node, ServiceCIDR, Services, slices).
pub fn synthetic_cluster(services: usize, endpoints_per_service: usize) -> Vec<ClusterEvent> {
    let o = synthetic_objects(services, endpoints_per_service);
    let mut events = vec![ClusterEvent::Node(Update::Upsert(o.node)), ClusterEvent::ServiceCidr(Update::Upsert(service_cidr()))];
    events.extend(o.services.into_iter().map(|s| ClusterEvent::Service(Update::Upsert(s))));
    events.extend(o.endpoint_slices.into_iter().map(|s| ClusterEvent::EndpointSlice(Update::Upsert(s))));
    events
}

/// Settings of the synthetic node (node IP left to the Node object).
pub fn synthetic_settings() -> ProxySettings {
    ProxySettings { node_name: NODE_NAME.into(), masquerade_bit: 14, ..ProxySettings::default() }
}

/// The translated state of [`synthetic_cluster`].
pub fn synthetic_state(services: usize, endpoints_per_service: usize) -> ProxyState {
    let o = synthetic_objects(services, endpoints_per_service);
    translate(&o.as_input(), &synthetic_settings(), &TranslateOptions::default()).state
}

/// The same cluster as one `kind: List` JSON document (for `--manifests` end-to-end benches).
pub fn synthetic_manifest_json(services: usize, endpoints_per_service: usize) -> String {
    let o = synthetic_objects(services, endpoints_per_service);
    let mut items: Vec<serde_json::Value> = Vec::with_capacity(2 + 2 * services);
    // k8s-openapi serializes apiVersion and kind; these objects contain no maps with non-string
    // keys, so conversion to JSON cannot fail.
    let to_value = |v: serde_json::Result<serde_json::Value>| v.expect("k8s-openapi objects serialize to JSON");
    items.push(to_value(serde_json::to_value(&o.node)));
    items.extend(o.service_cidrs.iter().map(|c| to_value(serde_json::to_value(c))));
    items.extend(o.services.iter().map(|s| to_value(serde_json::to_value(s))));
    items.extend(o.endpoint_slices.iter().map(|s| to_value(serde_json::to_value(s))));
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kproxy_core::manifest::parse_manifest;
    use kproxy_core::tracker::ChangeTracker;

    #[test]
    fn state_has_every_service_and_endpoint() {
        let state = synthetic_state(300, 7);
        assert_eq!(state.services.len(), 300);
        assert!(state.services.values().all(|p| p.cluster_endpoints.len() == 7));
        assert_eq!(state.service_cidrs.len(), 1);
        assert_eq!(format!("{:?}", state.settings.node_ips), "[198.19.255.254]");
        let local: usize = state.services.values().map(|p| p.local_endpoints.len()).sum();
        assert_eq!(local, 210, "a tenth of the endpoints are on node-0");
    }

    #[test]
    fn endpoint_addresses_are_unique_past_65536() {
        let state = synthetic_state(7000, 10);
        let mut all: Vec<_> = state.services.values().flat_map(|p| p.cluster_endpoints.iter().copied()).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
        assert_eq!(n, 70_000);
    }

    #[test]
    fn events_and_manifest_give_the_same_state() {
        let mut tracker = ChangeTracker::new(synthetic_settings(), TranslateOptions::default());
        for e in synthetic_cluster(50, 3) {
            assert!(tracker.apply(e).is_empty());
        }
        tracker.take_changes();
        assert_eq!(tracker.state(), &synthetic_state(50, 3));

        let m = parse_manifest(&synthetic_manifest_json(50, 3), "synthetic.json");
        assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
        let mut from_manifest = ChangeTracker::new(synthetic_settings(), TranslateOptions::default());
        for e in m.events {
            from_manifest.apply(e);
        }
        from_manifest.take_changes();
        assert_eq!(from_manifest.state(), tracker.state());
    }
}
