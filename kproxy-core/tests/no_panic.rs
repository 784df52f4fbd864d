//! Arbitrary (mostly malformed) input never panics: manifests of any text, objects with any
//! field values, through both the full translation and the tracker.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_core::event::{ClusterEvent, Update};
use kproxy_core::manifest::parse_manifest;
use kproxy_core::model::ProxySettings;
use kproxy_core::tracker::ChangeTracker;
use kproxy_core::tracker::{translate, ClusterObjects};
use kproxy_core::translate::TranslateOptions;
use proptest::prelude::*;
use serde_json::json;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[0-9a-fA-F:./ ]{0,20}",
        "\\PC{0,12}",
        Just("198.18.0.1".to_string()),
        Just("2001:db8::1".to_string()),
        Just("None".to_string()),
    ]
}

fn service() -> impl Strategy<Value = Service> {
    (
        (text(), proptest::collection::vec(text(), 0..3), any::<i32>(), proptest::option::of(any::<i32>())),
        (text(), proptest::option::of(any::<i32>()), proptest::collection::vec(text(), 0..3), proptest::collection::vec(text(), 0..2)),
        (prop_oneof![Just("ClusterIP"), Just("NodePort"), Just("LoadBalancer"), Just("ExternalName"), Just("x")], text(), text()),
    )
        .prop_map(|((ip, ips, port, node_port), (protocol, timeout, external, ranges), (type_, etp, lb))| {
            serde_json::from_value(json!({
                "metadata": {"namespace": "ns", "name": "s"},
                "spec": {"type": type_, "clusterIP": ip, "clusterIPs": ips,
                    "ports": [{"name": "p", "port": port, "nodePort": node_port, "protocol": protocol}, {"port": port}],
                    "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": timeout}},
                    "externalIPs": external, "loadBalancerSourceRanges": ranges, "externalTrafficPolicy": etp,
                    "healthCheckNodePort": node_port},
                "status": {"loadBalancer": {"ingress": [{"ip": lb}]}}
            }))
            .expect("service JSON")
        })
}

fn slice() -> impl Strategy<Value = EndpointSlice> {
    (text(), proptest::collection::vec(text(), 0..4), proptest::option::of(any::<i32>()), text(), text())
        .prop_map(|(address_type, addresses, port, protocol, name)| {
            let endpoints: Vec<_> = addresses.iter().map(|a| json!({"addresses": [a], "nodeName": name})).collect();
            serde_json::from_value(json!({
                "metadata": {"namespace": "ns", "name": format!("s-{name}"), "labels": {"kubernetes.io/service-name": "s"},
                    "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": name}},
                "addressType": address_type,
                "ports": [{"name": "p", "port": port, "protocol": protocol}],
                "endpoints": endpoints
            }))
            .expect("slice JSON")
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn manifests_of_any_text(t in "\\PC{0,200}", prefix in prop_oneof![Just(""), Just("---\n"), Just("apiVersion: v1\nkind: List\nitems:\n"), Just("{")]) {
        let m = parse_manifest(&format!("{prefix}{t}"), "fuzz");
        for d in &m.diagnostics {
            prop_assert!(!d.to_string().is_empty());
        }
    }

    #[test]
    fn objects_with_any_values(services in proptest::collection::vec(service(), 0..3), slices in proptest::collection::vec(slice(), 0..3)) {
        let settings = ProxySettings { node_name: "n".into(), ..ProxySettings::default() };
        let _ = translate(&ClusterObjects { services: &services, endpoint_slices: &slices, ..Default::default() }, &settings, &TranslateOptions::default());
        let mut t = ChangeTracker::new(settings, TranslateOptions::default());
        for s in services {
            t.apply(ClusterEvent::Service(Update::Upsert(s)));
        }
        for s in slices {
            t.apply(ClusterEvent::EndpointSlice(Update::Upsert(s)));
        }
        let _ = t.take_changes();
    }
}
