//! Table-driven tests: one case per upstream semantic, Service/EndpointSlice/Node -> the
//! resulting ServicePort fields.

mod common;

use common::*;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_core::model::{IpFamily, Protocol, ProxyState, SessionAffinity, TrafficPolicy};
use kproxy_core::translate::TranslateOptions;
use serde_json::json;

struct Case {
    name: &'static str,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
    zone: Option<Option<&'static str>>,
    options: TranslateOptions,
    check: fn(&ProxyState),
}

fn case(name: &'static str, services: Vec<Service>, slices: Vec<EndpointSlice>, check: fn(&ProxyState)) -> Case {
    Case { name, services, slices, zone: None, options: TranslateOptions::default(), check }
}

fn zoned(mut c: Case, zone: Option<&'static str>) -> Case {
    c.zone = Some(zone);
    c
}

fn two_ready() -> Vec<EndpointSlice> {
    vec![slice("web-1", json!([ep("198.18.1.1", NODE), ep("198.18.1.2", "node-b")]))]
}

fn cases() -> Vec<Case> {
    vec![
        case("clusterip basic", vec![service(json!({}))], two_ready(), |s| {
            let p = web(s);
            assert_eq!(p.cluster_ip.to_string(), "198.19.0.10");
            assert_eq!(p.port, 80);
            assert_eq!(p.node_port, None);
            assert_eq!(p.family, IpFamily::V4);
            assert_eq!(p.cluster_endpoints, addrs(&["198.18.1.1:8080", "198.18.1.2:8080"]));
            assert_eq!(p.local_endpoints, addrs(&["198.18.1.1:8080"]));
            assert!(p.endpoints[0].local && !p.endpoints[1].local);
            assert_eq!(p.internal_traffic_policy, TrafficPolicy::Cluster);
            assert_eq!(p.session_affinity, None);
            assert!(!p.has_external_destinations());
        }),
        case(
            "dual-stack: one service port per family, endpoints by family",
            vec![service(json!({"spec": {"clusterIP": "198.19.0.10", "clusterIPs": ["198.19.0.10", "2001:db8:19::a"],
                "externalIPs": ["198.18.50.1", "2001:db8:50::1"]}}))],
            vec![
                slice("web-v4", json!([ep("198.18.1.1", NODE)])),
                slice_patched("web-v6", json!([ep("2001:db8:1::1", NODE)]), json!({"addressType": "IPv6"})),
            ],
            |s| {
                assert_eq!(s.services.len(), 2);
                let v6 = &s.services[&key("web", "http", Protocol::Tcp, IpFamily::V6)];
                assert_eq!(v6.cluster_ip.to_string(), "2001:db8:19::a");
                assert_eq!(v6.cluster_endpoints, addrs(&["[2001:db8:1::1]:8080"]));
                assert_eq!(v6.external_ips, vec!["2001:db8:50::1".parse::<std::net::IpAddr>().unwrap()]);
                let v4 = web(s);
                assert_eq!(v4.cluster_endpoints, addrs(&["198.18.1.1:8080"]));
                assert_eq!(v4.external_ips, vec!["198.18.50.1".parse::<std::net::IpAddr>().unwrap()]);
            },
        ),
        case(
            "nodeport",
            vec![service(json!({"spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}))],
            two_ready(),
            |s| {
                assert_eq!(web(s).node_port, Some(30080));
                assert!(web(s).has_external_destinations());
            },
        ),
        case(
            "externalIPs, sorted and per family",
            vec![service(json!({"spec": {"externalIPs": ["198.18.50.9", "198.18.50.1", "198.18.50.1"]}}))],
            two_ready(),
            |s| assert_eq!(format!("{:?}", web(s).external_ips), "[198.18.50.1, 198.18.50.9]"),
        ),
        case(
            "load balancer ingress: ipMode Proxy and hostname-only skipped",
            vec![service(json!({"spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
                "status": {"loadBalancer": {"ingress": [
                    {"ip": "198.18.60.2", "ipMode": "VIP"}, {"ip": "198.18.60.1"},
                    {"ip": "198.18.60.3", "ipMode": "Proxy"}, {"hostname": "lb.example"}]}}}))],
            two_ready(),
            |s| assert_eq!(format!("{:?}", web(s).load_balancer_ips), "[198.18.60.1, 198.18.60.2]"),
        ),
        case(
            "loadBalancerSourceRanges from spec, trimmed, host bits cleared",
            vec![service(json!({"spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": [" 198.18.7.9/24", "2001:db8:7::/48"],
                    "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
                "metadata": {"annotations": {"service.beta.kubernetes.io/load-balancer-source-ranges": "198.18.9.0/24"}}}))],
            two_ready(),
            |s| assert_eq!(format!("{:?}", web(s).load_balancer_source_ranges), "[198.18.7.0/24]"),
        ),
        case(
            "sessionAffinity ClientIP default timeout",
            vec![service(json!({"spec": {"sessionAffinity": "ClientIP"}}))],
            two_ready(),
            |s| assert_eq!(web(s).session_affinity, Some(SessionAffinity { timeout_seconds: 10800 })),
        ),
        case(
            "sessionAffinity ClientIP explicit timeout",
            vec![service(json!({"spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}}))],
            two_ready(),
            |s| assert_eq!(web(s).session_affinity, Some(SessionAffinity { timeout_seconds: 60 })),
        ),
        case(
            "internalTrafficPolicy Local uses local endpoints for the cluster IP",
            vec![service(json!({"spec": {"internalTrafficPolicy": "Local"}}))],
            two_ready(),
            |s| {
                let p = web(s);
                assert_eq!(p.internal_traffic_policy, TrafficPolicy::Local);
                assert_eq!(p.internal_endpoints(), &addrs(&["198.18.1.1:8080"])[..]);
                assert_eq!(p.cluster_endpoints.len(), 2, "cluster endpoints still computed (REJECT decision)");
            },
        ),
        case(
            "externalTrafficPolicy Local on a LoadBalancer, with healthCheckNodePort",
            vec![service(json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
                "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}))],
            two_ready(),
            |s| {
                let p = web(s);
                assert_eq!(p.external_traffic_policy, TrafficPolicy::Local);
                assert_eq!(p.health_check_node_port, Some(32000));
                assert_eq!(p.external_endpoints(), &addrs(&["198.18.1.1:8080"])[..]);
                assert!(!p.masquerade_external());
            },
        ),
        case(
            "externalTrafficPolicy Local ignored without external access (ClusterIP, no externalIPs)",
            vec![service(json!({"spec": {"externalTrafficPolicy": "Local", "healthCheckNodePort": 32000}}))],
            two_ready(),
            |s| {
                assert_eq!(web(s).external_traffic_policy, TrafficPolicy::Cluster);
                assert_eq!(web(s).health_check_node_port, None);
            },
        ),
        case(
            "externalTrafficPolicy Local on a ClusterIP service with externalIPs",
            vec![service(json!({"spec": {"externalTrafficPolicy": "Local", "externalIPs": ["198.18.50.1"]}}))],
            two_ready(),
            |s| {
                assert_eq!(web(s).external_traffic_policy, TrafficPolicy::Local);
                assert_eq!(web(s).health_check_node_port, None, "health checks only for LoadBalancer");
            },
        ),
        case(
            "healthCheckNodePort only for eTP Local LoadBalancers",
            vec![service(json!({"spec": {"type": "LoadBalancer", "healthCheckNodePort": 32000,
                "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}))],
            two_ready(),
            |s| assert_eq!(web(s).health_check_node_port, None),
        ),
        case(
            "terminating fallback: no ready endpoint -> serving and terminating ones",
            vec![service(json!({}))],
            vec![slice("web-1", json!([
                {"addresses": ["198.18.1.1"], "nodeName": NODE, "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["198.18.1.2"], "nodeName": "node-b", "conditions": {"ready": false, "serving": false, "terminating": true}},
                {"addresses": ["198.18.1.3"], "nodeName": "node-b", "conditions": {"ready": false}}
            ]))],
            |s| {
                let p = web(s);
                assert_eq!(p.endpoints.len(), 3, "all endpoints known");
                assert_eq!(p.cluster_endpoints, addrs(&["198.18.1.1:8080"]));
                assert_eq!(p.local_endpoints, addrs(&["198.18.1.1:8080"]));
                assert!(!p.has_no_endpoints());
            },
        ),
        case(
            "ready endpoints win over terminating ones",
            vec![service(json!({}))],
            vec![slice("web-1", json!([
                {"addresses": ["198.18.1.1"], "nodeName": NODE, "conditions": {"ready": false, "serving": true, "terminating": true}},
                ep("198.18.1.2", "node-b")
            ]))],
            |s| {
                assert_eq!(web(s).cluster_endpoints, addrs(&["198.18.1.2:8080"]));
                assert_eq!(web(s).local_endpoints, addrs(&["198.18.1.1:8080"]), "local falls back independently");
            },
        ),
        case(
            "unset conditions: ready and serving true, terminating false",
            vec![service(json!({}))],
            vec![slice("web-1", json!([{"addresses": ["198.18.1.1"]}]))],
            |s| {
                let e = web(s).endpoints[0];
                assert!(e.ready && e.serving && !e.terminating && !e.local);
                assert_eq!(web(s).cluster_endpoints, addrs(&["198.18.1.1:8080"]));
            },
        ),
        case(
            "iTP Local without local endpoints: internal traffic has none (DROP), the service is not REJECTed",
            vec![service(json!({"spec": {"internalTrafficPolicy": "Local"}}))],
            vec![slice("web-1", json!([ep("198.18.1.2", "node-b")]))],
            |s| {
                assert!(web(s).internal_endpoints().is_empty());
                assert!(!web(s).has_no_endpoints());
            },
        ),
        case(
            "eTP Local without local endpoints: external traffic has none (DROP); short-circuit uses cluster endpoints",
            vec![service(json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Local",
                "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}))],
            vec![slice("web-1", json!([ep("198.18.1.2", "node-b")]))],
            |s| {
                let p = web(s);
                assert!(p.external_endpoints().is_empty());
                assert_eq!(p.cluster_endpoints, addrs(&["198.18.1.2:8080"]));
                assert!(!p.has_no_endpoints());
                assert!(!p.masquerade_external());
            },
        ),
        case(
            "eTP Cluster: external traffic masqueraded",
            vec![service(json!({"spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}))],
            two_ready(),
            |s| assert!(web(s).masquerade_external()),
        ),
        case("no endpoints at all: REJECT", vec![service(json!({}))], vec![], |s| {
            assert!(web(s).has_no_endpoints());
            assert!(web(s).endpoints.is_empty());
        }),
        zoned(
            case(
                "zone hints: every ready endpoint hinted, one for our zone",
                vec![service(json!({"spec": {"trafficDistribution": "PreferClose"}}))],
                vec![slice("web-1", json!([
                    {"addresses": ["198.18.1.1"], "nodeName": "node-b", "hints": {"forZones": [{"name": "z1"}]}},
                    {"addresses": ["198.18.1.2"], "nodeName": "node-c", "hints": {"forZones": [{"name": "z2"}]}}
                ]))],
                |s| {
                    assert_eq!(web(s).cluster_endpoints, addrs(&["198.18.1.1:8080"]));
                    assert_eq!(web(s).endpoints.len(), 2);
                },
            ),
            Some("z1"),
        ),
        zoned(
            case(
                "zone hints ignored when one ready endpoint has none",
                vec![service(json!({}))],
                vec![slice("web-1", json!([
                    {"addresses": ["198.18.1.1"], "hints": {"forZones": [{"name": "z1"}]}},
                    {"addresses": ["198.18.1.2"]}
                ]))],
                |s| assert_eq!(web(s).cluster_endpoints.len(), 2),
            ),
            Some("z1"),
        ),
        zoned(
            case(
                "zone hints ignored when none is for our zone",
                vec![service(json!({}))],
                vec![slice("web-1", json!([
                    {"addresses": ["198.18.1.1"], "hints": {"forZones": [{"name": "z2"}]}},
                    {"addresses": ["198.18.1.2"], "hints": {"forZones": [{"name": "z3"}]}}
                ]))],
                |s| assert_eq!(web(s).cluster_endpoints.len(), 2),
            ),
            Some("z1"),
        ),
        zoned(
            case(
                "zone hints ignored when the node has no zone label",
                vec![service(json!({}))],
                vec![slice("web-1", json!([
                    {"addresses": ["198.18.1.1"], "hints": {"forZones": [{"name": "z1"}]}},
                    {"addresses": ["198.18.1.2"], "hints": {"forZones": [{"name": "z2"}]}}
                ]))],
                |s| assert_eq!(web(s).cluster_endpoints.len(), 2),
            ),
            None,
        ),
        zoned(
            case(
                "node hints (PreferSameNode) win over zone hints",
                vec![service(json!({"spec": {"trafficDistribution": "PreferSameNode"}}))],
                vec![slice("web-1", json!([
                    {"addresses": ["198.18.1.1"], "nodeName": NODE, "hints": {"forNodes": [{"name": NODE}], "forZones": [{"name": "z1"}]}},
                    {"addresses": ["198.18.1.2"], "nodeName": "node-b", "hints": {"forNodes": [{"name": "node-b"}], "forZones": [{"name": "z1"}]}}
                ]))],
                |s| assert_eq!(web(s).cluster_endpoints, addrs(&["198.18.1.1:8080"])),
            ),
            Some("z1"),
        ),
        zoned(
            Case {
                options: TranslateOptions { node_hints: false, ..TranslateOptions::default() },
                ..case(
                    "node hints off (feature gate): zone hints apply",
                    vec![service(json!({}))],
                    vec![slice("web-1", json!([
                        {"addresses": ["198.18.1.1"], "hints": {"forNodes": [{"name": NODE}], "forZones": [{"name": "z1"}]}},
                        {"addresses": ["198.18.1.2"], "hints": {"forNodes": [{"name": "node-b"}], "forZones": [{"name": "z1"}]}},
                        {"addresses": ["198.18.1.3"], "hints": {"forNodes": [{"name": "node-c"}], "forZones": [{"name": "z2"}]}}
                    ]))],
                    |s| assert_eq!(web(s).cluster_endpoints, addrs(&["198.18.1.1:8080", "198.18.1.2:8080"])),
                )
            },
            Some("z1"),
        ),
        zoned(
            case(
                "topology does not narrow local endpoints",
                vec![service(json!({"spec": {"internalTrafficPolicy": "Local"}}))],
                vec![slice("web-1", json!([
                    {"addresses": ["198.18.1.1"], "nodeName": NODE, "hints": {"forZones": [{"name": "z2"}]}},
                    {"addresses": ["198.18.1.2"], "nodeName": "node-b", "hints": {"forZones": [{"name": "z1"}]}}
                ]))],
                |s| {
                    assert_eq!(web(s).cluster_endpoints, addrs(&["198.18.1.2:8080"]));
                    assert_eq!(web(s).local_endpoints, addrs(&["198.18.1.1:8080"]));
                },
            ),
            Some("z1"),
        ),
        case("headless service skipped", vec![service(json!({"spec": {"clusterIP": "None"}}))], two_ready(), |s| {
            assert!(s.services.is_empty())
        }),
        case(
            "ExternalName service skipped",
            vec![service(json!({"spec": {"type": "ExternalName", "externalName": "db.example", "clusterIP": null}}))],
            two_ready(),
            |s| assert!(s.services.is_empty()),
        ),
        case(
            "service-proxy-name label: another proxy's service skipped",
            vec![service(json!({"metadata": {"labels": {"service.kubernetes.io/service-proxy-name": "other"}}}))],
            two_ready(),
            |s| assert!(s.services.is_empty()),
        ),
        Case {
            options: TranslateOptions { service_proxy_name: Some("kproxy".into()), ..TranslateOptions::default() },
            ..case(
                "service-proxy-name label equal to ours: handled",
                vec![service(json!({"metadata": {"labels": {"service.kubernetes.io/service-proxy-name": "kproxy"}}}))],
                vec![slice_patched("web-1", json!([ep("198.18.1.1", NODE)]),
                    json!({"metadata": {"labels": {"service.kubernetes.io/service-proxy-name": "kproxy"}}}))],
                |s| assert_eq!(web(s).cluster_endpoints.len(), 1),
            )
        },
        case(
            "headless-labelled slices skipped",
            vec![service(json!({}))],
            vec![
                slice("web-1", json!([ep("198.18.1.1", NODE)])),
                slice_patched("web-2", json!([ep("198.18.1.2", NODE)]), json!({"metadata": {"labels": {"service.kubernetes.io/headless": ""}}})),
            ],
            |s| assert_eq!(web(s).cluster_endpoints, addrs(&["198.18.1.1:8080"])),
        ),
        case(
            "slices matched by service-name label",
            vec![service(json!({}))],
            vec![
                slice("web-1", json!([ep("198.18.1.1", NODE)])),
                slice_patched("api-1", json!([ep("198.18.1.9", NODE)]), json!({"metadata": {"labels": {"kubernetes.io/service-name": "api"}}})),
            ],
            |s| assert_eq!(web(s).cluster_endpoints, addrs(&["198.18.1.1:8080"])),
        ),
        case(
            "slice in another namespace does not match",
            vec![service(json!({}))],
            vec![slice_patched("web-1", json!([ep("198.18.1.1", NODE)]), json!({"metadata": {"namespace": "other"}}))],
            |s| assert!(web(s).endpoints.is_empty()),
        ),
        case(
            "endpoint port matched by port name and protocol",
            vec![service(json!({"spec": {"ports": [
                {"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}))],
            vec![slice_patched("web-1", json!([ep("198.18.1.1", NODE)]), json!({"ports": [
                {"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"},
                {"name": "dns", "port": 9999, "protocol": "TCP"}, {"name": "dns-tcp", "port": 5354}]}))],
            |s| {
                assert_eq!(s.services.len(), 3);
                assert_eq!(web(s).cluster_endpoints, addrs(&["198.18.1.1:8080"]));
                let dns = &s.services[&key("web", "dns", Protocol::Udp, IpFamily::V4)];
                assert_eq!(dns.port, 53);
                assert_eq!(dns.cluster_endpoints, addrs(&["198.18.1.1:5353"]));
                let dns_tcp = &s.services[&key("web", "dns-tcp", Protocol::Tcp, IpFamily::V4)];
                assert_eq!(dns_tcp.cluster_endpoints, addrs(&["198.18.1.1:5354"]));
            },
        ),
        case(
            "unnamed single port",
            vec![service(json!({"spec": {"ports": [{"port": 80}]}}))],
            vec![slice_patched("web-1", json!([ep("198.18.1.1", NODE)]), json!({"ports": [{"port": 8080}]}))],
            |s| {
                let p = &s.services[&key("web", "", Protocol::Tcp, IpFamily::V4)];
                assert_eq!(p.cluster_endpoints, addrs(&["198.18.1.1:8080"]));
            },
        ),
        case(
            "multiple slices per service are unioned",
            vec![service(json!({}))],
            vec![slice("web-1", json!([ep("198.18.1.1", NODE)])), slice("web-2", json!([ep("198.18.1.2", "node-b")]))],
            |s| assert_eq!(web(s).cluster_endpoints, addrs(&["198.18.1.1:8080", "198.18.1.2:8080"])),
        ),
        case(
            "duplicate endpoint across slices merged; the non-terminating copy wins",
            vec![service(json!({}))],
            vec![
                slice("web-1", json!([ep("198.18.1.1", NODE)])),
                slice("web-2", json!([
                    {"addresses": ["198.18.1.1"], "nodeName": NODE, "conditions": {"ready": false, "serving": true, "terminating": true}},
                    ep("198.18.1.2", "node-b")])),
            ],
            |s| {
                let p = web(s);
                assert_eq!(p.endpoints.len(), 2);
                assert!(p.endpoints[0].ready && !p.endpoints[0].terminating);
                assert_eq!(p.cluster_endpoints, addrs(&["198.18.1.1:8080", "198.18.1.2:8080"]));
            },
        ),
        case(
            "duplicate endpoint: a later non-terminating copy replaces a terminating one",
            vec![service(json!({}))],
            vec![
                slice("web-1", json!([
                    {"addresses": ["198.18.1.1"], "nodeName": NODE, "conditions": {"ready": false, "serving": true, "terminating": true}}])),
                slice("web-2", json!([ep("198.18.1.1", NODE)])),
            ],
            |s| {
                let p = web(s);
                assert_eq!(p.endpoints.len(), 1);
                assert!(p.endpoints[0].ready && !p.endpoints[0].terminating);
            },
        ),
        case(
            "same IP on different target ports is two endpoints",
            vec![service(json!({}))],
            vec![
                slice("web-1", json!([ep("198.18.1.1", NODE)])),
                slice_patched("web-2", json!([ep("198.18.1.1", NODE)]), json!({"ports": [{"name": "http", "port": 9090}]})),
            ],
            |s| assert_eq!(web(s).cluster_endpoints, addrs(&["198.18.1.1:8080", "198.18.1.1:9090"])),
        ),
        case(
            "FQDN slices ignored",
            vec![service(json!({}))],
            vec![slice_patched("web-1", json!([{"addresses": ["db.example"]}]), json!({"addressType": "FQDN"}))],
            |s| assert!(web(s).endpoints.is_empty()),
        ),
        case(
            "SCTP port",
            vec![service(json!({"spec": {"ports": [{"name": "sig", "port": 3868, "protocol": "SCTP"}]}}))],
            vec![slice_patched("web-1", json!([ep("198.18.1.1", NODE)]), json!({"ports": [{"name": "sig", "port": 3868, "protocol": "SCTP"}]}))],
            |s| assert_eq!(s.services[&key("web", "sig", Protocol::Sctp, IpFamily::V4)].cluster_endpoints.len(), 1),
        ),
    ]
}

#[test]
fn every_semantic() {
    let mut failures = Vec::new();
    for c in cases() {
        let node = c.zone.map(node);
        let (state, diags) = run_with(&c.services, &c.slices, node.as_ref(), &c.options);
        let unexpected: Vec<_> = diags.iter().filter(|d| !d.message.contains("no health check")).collect();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert!(unexpected.is_empty(), "unexpected diagnostics: {unexpected:?}");
            (c.check)(&state)
        }));
        if result.is_err() {
            failures.push(c.name);
        }
    }
    assert!(failures.is_empty(), "failing cases: {failures:?}");
}

#[test]
fn node_facts_complete_the_settings() {
    let n = node(Some("z1"));
    let (state, _) = run(&[], &[], Some(&n));
    assert_eq!(format!("{:?}", state.settings.node_ips), "[198.18.100.1, 2001:db8::1]");

    // Explicit node IPs from the caller are kept.
    let mut settings = settings();
    settings.node_ips = vec!["198.18.0.7".parse().unwrap()];
    settings.local_detector = kproxy_core::model::LocalDetector::NodeCidrs(Vec::new());
    let t = kproxy_core::tracker::translate(
        &kproxy_core::tracker::ClusterObjects { node: Some(&n), ..Default::default() },
        &settings,
        &TranslateOptions::default(),
    );
    assert_eq!(format!("{:?}", t.state.settings.node_ips), "[198.18.0.7]");
    assert_eq!(
        format!("{:?}", t.state.settings.local_detector),
        "NodeCidrs([198.18.64.0/24, 2001:db8:64::/64])",
        "NodeCIDR detection takes the Node's pod CIDRs"
    );
}

#[test]
fn external_ip_fallback_when_no_internal_ip() {
    let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
        "metadata": {"name": NODE},
        "status": {"addresses": [{"type": "ExternalIP", "address": "198.18.200.2"}]}
    }))
    .unwrap();
    let (state, _) = run(&[], &[], Some(&n));
    assert_eq!(format!("{:?}", state.settings.node_ips), "[198.18.200.2]");
}

#[test]
fn other_nodes_are_ignored() {
    let mut n = node(Some("z9"));
    n.metadata.name = Some("someone-else".into());
    let (state, _) = run(&[], &[], Some(&n));
    assert!(state.settings.node_ips.is_empty());
}

#[test]
fn service_cidrs_collected_sorted_and_deduplicated() {
    let cidrs = [service_cidr("kubernetes", &["198.19.0.0/16", "2001:db8:19::/112"]), service_cidr("extra", &["198.19.0.0/16", "198.18.240.0/20"])];
    let t = kproxy_core::tracker::translate(
        &kproxy_core::tracker::ClusterObjects { service_cidrs: &cidrs, ..Default::default() },
        &settings(),
        &TranslateOptions::default(),
    );
    assert_eq!(format!("{:?}", t.state.service_cidrs), "[198.18.240.0/20, 198.19.0.0/16, 2001:db8:19::/112]");
}
