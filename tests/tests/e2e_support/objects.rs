//! Builders for the objects the tests create.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use kube::api::ObjectMeta;

/// A ClusterIP Service with one TCP port (the API server allocates the IP).
pub fn service(ns: &str, name: &str, port: i32, labels: &[(&str, &str)]) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: Some(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect::<BTreeMap<_, _>>()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort { name: Some("p".into()), port, protocol: Some("TCP".into()), ..Default::default() }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An IPv4 EndpointSlice for `service` with ready endpoints at `ips`, port 8080.
pub fn endpoint_slice(ns: &str, name: &str, service: &str, ips: &[&str]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("kubernetes.io/service-name".to_string(), service.to_string())])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: ips.iter().map(|ip| Endpoint { addresses: vec![(*ip).into()], ..Default::default() }).collect(),
        ports: Some(vec![EndpointPort { name: Some("p".into()), port: Some(8080), protocol: Some("TCP".into()), ..Default::default() }]),
    }
}

/// A Node with an InternalIP (nodes may carry status on create).
pub fn node(name: &str, internal_ip: &str) -> Node {
    Node {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress { type_: "InternalIP".into(), address: internal_ip.into() }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
