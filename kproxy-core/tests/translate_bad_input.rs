//! Malformed objects: each yields a diagnostic naming the object and what is wrong, is skipped
//! (whole, or only the bad port / address / endpoint), and everything else is still programmed.

mod common;

use common::*;
use k8s_openapi::api::core::v1::Service;
use kproxy_core::diagnostic::Diagnostic;
use kproxy_core::model::{IpFamily, Protocol};
use serde_json::{json, Value};

/// A healthy second service, `ns/good`, that must survive every bad neighbour.
fn good() -> Service {
    service(json!({"metadata": {"name": "good"}, "spec": {"clusterIP": "198.19.0.20"}}))
}

fn assert_diag(diags: &[Diagnostic], kind: &str, name: &str, fragment: &str) {
    assert!(
        diags.iter().any(|d| d.kind == kind && d.name == name && d.namespace == "ns" && d.message.contains(fragment)),
        "no {kind} ns/{name} diagnostic containing {fragment:?}: {diags:#?}"
    );
}

/// Service `ns/web` patched with `patch`: expect it skipped entirely, with a diagnostic.
fn service_skipped(patch: Value, fragment: &str) {
    let (state, diags) = run(&[service(patch), good()], &[], None);
    assert_diag(&diags, "Service", "web", fragment);
    assert!(
        state.services.keys().all(|k| k.name.name == "good"),
        "web should be skipped: {:?}",
        state.services.keys().collect::<Vec<_>>()
    );
    assert_eq!(state.services.len(), 1, "the good service is still programmed");
}

#[test]
fn invalid_cluster_ip_skips_the_service() {
    service_skipped(json!({"spec": {"clusterIP": "198.19.0.300"}}), "spec.clusterIPs[0]: \"198.19.0.300\" is not an IP address");
}

#[test]
fn missing_cluster_ip_skips_the_service() {
    service_skipped(json!({"spec": {"clusterIP": null}}), "spec.clusterIP is not set");
}

#[test]
fn cluster_ip_differing_from_cluster_ips_skips_the_service() {
    service_skipped(json!({"spec": {"clusterIPs": ["198.19.0.11"]}}), "differs from spec.clusterIPs[0]");
}

#[test]
fn two_cluster_ips_of_one_family_skip_the_service() {
    service_skipped(json!({"spec": {"clusterIPs": ["198.19.0.10", "198.19.0.11"]}}), "same family");
}

#[test]
fn bad_affinity_timeout_skips_the_service() {
    for t in [0, -5, 86401] {
        service_skipped(
            json!({"spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": t}}}}),
            "timeoutSeconds",
        );
    }
}

#[test]
fn unknown_enum_values_skip_the_service() {
    service_skipped(json!({"spec": {"sessionAffinity": "Cookie"}}), "spec.sessionAffinity: \"Cookie\"");
    service_skipped(json!({"spec": {"externalTrafficPolicy": "Nearby"}}), "spec.externalTrafficPolicy: \"Nearby\"");
    service_skipped(json!({"spec": {"internalTrafficPolicy": "local"}}), "spec.internalTrafficPolicy: \"local\"");
    service_skipped(json!({"spec": {"type": "Magic"}}), "spec.type: \"Magic\"");
}

#[test]
fn bad_source_range_skips_the_service() {
    service_skipped(
        json!({"spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["198.18.0.0/99"]}}),
        "spec.loadBalancerSourceRanges[0]",
    );
}

#[test]
fn missing_spec_skips_the_service() {
    let mut svc = service(json!({}));
    svc.spec = None;
    let (state, diags) = run(&[svc, good()], &[], None);
    assert_diag(&diags, "Service", "web", "spec is missing");
    assert_eq!(state.services.len(), 1);
}

#[test]
fn missing_name_skips_the_object() {
    let mut svc = service(json!({}));
    svc.metadata.name = None;
    let mut sl = slice("x", json!([ep("198.18.1.1", NODE)]));
    sl.metadata.name = None;
    let (state, diags) = run(&[svc, good()], &[sl], None);
    assert!(diags.iter().any(|d| d.kind == "Service" && d.message.contains("metadata.name is missing")), "{diags:?}");
    assert!(diags.iter().any(|d| d.kind == "EndpointSlice" && d.message.contains("metadata.name is missing")), "{diags:?}");
    assert_eq!(state.services.len(), 1);
}

/// Service `ns/web` with these ports: expect only the good ones programmed.
fn ports_case(ports: Value, fragment: &str, expect_ports: &[&str]) {
    let (state, diags) = run(&[service(json!({"spec": {"type": "NodePort", "ports": ports}})), good()], &[], None);
    assert_diag(&diags, "Service", "web", fragment);
    let mut names: Vec<&str> =
        state.services.keys().filter(|k| k.name.name == "web").map(|k| k.name.port.as_str()).collect();
    names.sort();
    assert_eq!(names, expect_ports);
    assert_eq!(state.services.keys().filter(|k| k.name.name == "good").count(), 1);
}

#[test]
fn port_zero_skips_only_that_port() {
    ports_case(json!([{"name": "a", "port": 0, "nodePort": 30001}, {"name": "b", "port": 81, "nodePort": 30002}]),
        "spec.ports[0].port: 0 is not a valid port", &["b"]);
}

#[test]
fn port_above_65535_skips_only_that_port() {
    ports_case(json!([{"name": "a", "port": 65536, "nodePort": 30001}, {"name": "b", "port": 81, "nodePort": 30002}]),
        "spec.ports[0].port: 65536", &["b"]);
}

#[test]
fn bad_node_port_skips_only_that_port() {
    ports_case(json!([{"name": "a", "port": 80, "nodePort": 70000}, {"name": "b", "port": 81, "nodePort": 30002}]),
        "spec.ports[0].nodePort: 70000", &["b"]);
}

#[test]
fn duplicate_port_name_and_protocol_skips_the_second() {
    ports_case(
        json!([{"name": "a", "port": 80, "nodePort": 30001}, {"name": "a", "port": 81, "nodePort": 30002},
               {"name": "a", "port": 82, "protocol": "UDP", "nodePort": 30003}]),
        "spec.ports[1]: duplicate port name \"a\" with protocol tcp",
        &["a", "a"],
    );
    let (state, _) = run(&[service(json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}}))], &[], None);
    assert_eq!(state.services[&key("web", "a", Protocol::Tcp, IpFamily::V4)].port, 80, "the first one is kept");
}

#[test]
fn unknown_protocol_skips_only_that_port() {
    ports_case(json!([{"name": "a", "port": 80, "protocol": "ICMP", "nodePort": 30001}, {"name": "b", "port": 81, "nodePort": 30002}]),
        "spec.ports[0].protocol: \"ICMP\"", &["b"]);
}

#[test]
fn invalid_external_and_ingress_ips_skip_only_that_address() {
    let svc = service(json!({
        "spec": {"type": "LoadBalancer", "externalIPs": ["198.18.50.1", "nonsense"],
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.18.60.1"}, {"ip": "198.18.60.999"}]}}
    }));
    let (state, diags) = run(&[svc], &[], None);
    assert_diag(&diags, "Service", "web", "spec.externalIPs[1]: \"nonsense\" is not an IP address: address skipped");
    assert_diag(&diags, "Service", "web", "status.loadBalancer.ingress[1].ip");
    assert_eq!(format!("{:?}", web(&state).external_ips), "[198.18.50.1]");
    assert_eq!(format!("{:?}", web(&state).load_balancer_ips), "[198.18.60.1]");
}

#[test]
fn node_port_service_without_node_port_is_reported() {
    let (state, diags) = run(&[service(json!({"spec": {"type": "NodePort"}}))], &[], None);
    assert_diag(&diags, "Service", "web", "nodePort is not set on a NodePort service");
    assert_eq!(web(&state).node_port, None);
}

#[test]
fn node_port_on_cluster_ip_service_is_ignored() {
    let (state, diags) = run(&[service(json!({"spec": {"ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}))], &[], None);
    assert_diag(&diags, "Service", "web", "nodePort 30080 on a ClusterIP service: ignored");
    assert_eq!(web(&state).node_port, None);
}

#[test]
fn missing_health_check_node_port_is_reported() {
    let svc = service(json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}));
    let (state, diags) = run(&[svc], &[], None);
    assert_diag(&diags, "Service", "web", "spec.healthCheckNodePort is not set");
    assert_eq!(web(&state).health_check_node_port, None);
}

/// Slices for `ns/web`: expect these endpoints to remain.
fn slices_case(slices: Vec<k8s_openapi::api::discovery::v1::EndpointSlice>, slice_name: &str, fragment: &str, expect: &[&str]) {
    let (state, diags) = run(&[service(json!({}))], &slices, None);
    assert_diag(&diags, "EndpointSlice", slice_name, fragment);
    let got: Vec<String> = web(&state).endpoints.iter().map(|e| e.addr.to_string()).collect();
    assert_eq!(got, expect);
}

#[test]
fn invalid_endpoint_address_skips_only_that_endpoint() {
    slices_case(
        vec![slice("web-1", json!([ep("198.18.1.1", NODE), ep("198.18.1.x", NODE), ep("198.18.1.2", NODE)]))],
        "web-1",
        "endpoints[1].addresses[0]: \"198.18.1.x\" is not an IP address: endpoint skipped",
        &["198.18.1.1:8080", "198.18.1.2:8080"],
    );
}

#[test]
fn endpoint_without_address_is_skipped() {
    slices_case(
        vec![slice("web-1", json!([{"addresses": []}, ep("198.18.1.2", NODE)]))],
        "web-1",
        "endpoints[0].addresses is empty",
        &["198.18.1.2:8080"],
    );
}

#[test]
fn endpoint_of_the_wrong_family_is_skipped() {
    slices_case(
        vec![slice("web-1", json!([ep("2001:db8::5", NODE), ep("198.18.1.2", NODE)]))],
        "web-1",
        "does not match the slice's addressType",
        &["198.18.1.2:8080"],
    );
}

#[test]
fn slice_without_service_label_is_skipped() {
    let mut bad = slice("orphan", json!([ep("198.18.1.9", NODE)]));
    bad.metadata.labels = None;
    slices_case(
        vec![bad, slice("web-1", json!([ep("198.18.1.1", NODE)]))],
        "orphan",
        "label kubernetes.io/service-name is missing",
        &["198.18.1.1:8080"],
    );
}

#[test]
fn slice_with_unknown_address_type_is_skipped() {
    slices_case(
        vec![slice_patched("web-2", json!([ep("198.18.1.9", NODE)]), json!({"addressType": "IPv5"})),
             slice("web-1", json!([ep("198.18.1.1", NODE)]))],
        "web-2",
        "addressType: \"IPv5\"",
        &["198.18.1.1:8080"],
    );
}

#[test]
fn bad_slice_ports_skip_only_that_port() {
    for (ports, fragment) in [
        (json!([{"name": "http", "port": 0}]), "ports[0].port: 0 is not a valid port"),
        (json!([{"name": "http", "port": 70000}]), "ports[0].port: 70000"),
        (json!([{"name": "http"}]), "ports[0].port is not set"),
        (json!([{"name": "http", "port": 80, "protocol": "QUIC"}]), "ports[0].protocol"),
    ] {
        slices_case(
            vec![slice_patched("web-2", json!([ep("198.18.1.9", NODE)]), json!({"ports": ports})),
                 slice("web-1", json!([ep("198.18.1.1", NODE)]))],
            "web-2",
            fragment,
            &["198.18.1.1:8080"],
        );
    }
    slices_case(
        vec![slice_patched("web-1", json!([ep("198.18.1.1", NODE)]),
            json!({"ports": [{"name": "http", "port": 8080}, {"name": "http", "port": 9090}]}))],
        "web-1",
        "ports[1]: duplicate port name \"http\"",
        &["198.18.1.1:8080"],
    );
}

#[test]
fn bad_node_address_and_service_cidr_entries_are_skipped() {
    let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
        "metadata": {"name": NODE},
        "status": {"addresses": [{"type": "InternalIP", "address": "not-an-ip"}, {"type": "InternalIP", "address": "198.18.100.1"}]},
        "spec": {"podCIDRs": ["198.18.64.0/40"]}
    }))
    .unwrap();
    let cidrs = [service_cidr("kubernetes", &["198.19.0.0/16", "198.19.0.0/99"])];
    let t = kproxy_core::tracker::translate(
        &kproxy_core::tracker::ClusterObjects { service_cidrs: &cidrs, node: Some(&n), ..Default::default() },
        &settings(),
        &kproxy_core::translate::TranslateOptions::default(),
    );
    let has = |kind: &str, frag: &str| t.diagnostics.iter().any(|d| d.kind == kind && d.message.contains(frag));
    assert!(has("Node", "status.addresses[0].address: \"not-an-ip\""), "{:?}", t.diagnostics);
    assert!(has("Node", "spec.podCIDRs[0]"), "{:?}", t.diagnostics);
    assert!(has("ServiceCIDR", "spec.cidrs[1]"), "{:?}", t.diagnostics);
    assert_eq!(format!("{:?}", t.state.settings.node_ips), "[198.18.100.1]");
    assert_eq!(format!("{:?}", t.state.service_cidrs), "[198.19.0.0/16]");
}

#[test]
fn diagnostics_display_kind_object_and_message() {
    let (_, diags) = run(&[service(json!({"spec": {"clusterIP": "bad"}}))], &[], None);
    assert_eq!(
        diags[0].to_string(),
        "Service ns/web: spec.clusterIPs[0]: \"bad\" is not an IP address: service skipped"
    );
}
