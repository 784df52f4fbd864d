//! Property tests: `a.apply(&a.diff(&b)) == b`, and the tracker's incremental state equals a
//! from-scratch translation after any event sequence.

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_core::event::{ClusterEvent, Update};
use kproxy_core::model::ProxySettings;
use kproxy_core::tracker::{translate, ChangeTracker, ClusterObjects};
use kproxy_core::translate::TranslateOptions;
use proptest::prelude::*;
use serde_json::{json, Value};

const NAMES: [&str; 4] = ["s0", "s1", "s2", "s3"];
const NAMESPACES: [&str; 2] = ["ns", "other"];

fn service_strategy() -> impl Strategy<Value = Service> {
    (0..2usize, 0..4usize, 0..3usize, 0..4u8, any::<bool>(), any::<bool>(), 0..3usize, 0..8u8).prop_map(
        |(ns, name, ips, ports, local_itp, local_etp, type_, misc)| {
            let cluster_ips = match ips {
                0 => json!([format!("198.19.0.{}", name + 1)]),
                1 => json!([format!("198.19.0.{}", name + 1), format!("2001:db8:19::{}", name + 1)]),
                _ => json!(["None"]),
            };
            let mut port_list = Vec::new();
            if ports & 1 != 0 {
                port_list.push(json!({"name": "http", "port": 80, "nodePort": 30080 + name}));
            }
            if ports & 2 != 0 {
                port_list.push(json!({"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053 + name}));
            }
            if misc == 7 {
                port_list.push(json!({"name": "bad", "port": 0}));
            }
            let type_ = ["ClusterIP", "NodePort", "LoadBalancer"][type_];
            let mut spec = json!({
                "type": type_,
                "clusterIPs": cluster_ips,
                "ports": port_list,
                "internalTrafficPolicy": if local_itp { "Local" } else { "Cluster" },
                "externalTrafficPolicy": if local_etp { "Local" } else { "Cluster" },
                "externalIPs": if misc & 1 != 0 { json!(["198.18.50.1", "2001:db8:50::1"]) } else { json!([]) },
                "sessionAffinity": if misc & 2 != 0 { "ClientIP" } else { "None" },
                "healthCheckNodePort": 32000 + name,
            });
            if type_ != "ClusterIP" {
                spec["type"] = json!(type_);
            } else {
                for p in spec["ports"].as_array_mut().unwrap() {
                    p.as_object_mut().unwrap().remove("nodePort");
                }
            }
            if misc == 6 {
                spec["clusterIPs"] = json!(["not-an-ip"]);
            }
            serde_json::from_value(json!({
                "metadata": {"namespace": NAMESPACES[ns], "name": NAMES[name]},
                "spec": spec,
                "status": {"loadBalancer": {"ingress": if misc & 4 != 0 { json!([{"ip": "198.18.60.1"}]) } else { json!([]) }}}
            }))
            .unwrap()
        },
    )
}

fn endpoint_strategy(v6: bool) -> impl Strategy<Value = Value> {
    (1..7u8, 0..4u8, 0..3usize, 0..4u8).prop_map(move |(ip, cond, node, hints)| {
        let addr = if v6 { format!("2001:db8:1::{ip}") } else { format!("198.18.1.{ip}") };
        let (ready, serving, terminating) = [(true, true, false), (false, true, true), (false, false, true), (false, false, false)][cond as usize];
        let mut v = json!({"addresses": [addr], "conditions": {"ready": ready, "serving": serving, "terminating": terminating}});
        if node < 2 {
            v["nodeName"] = json!(["node-a", "node-b"][node]);
        }
        match hints {
            1 => v["hints"] = json!({"forZones": [{"name": "z1"}]}),
            2 => v["hints"] = json!({"forZones": [{"name": "z2"}], "forNodes": [{"name": "node-a"}]}),
            _ => {}
        }
        v
    })
}

fn slice_strategy() -> impl Strategy<Value = EndpointSlice> {
    (0..2usize, 0..4usize, 0..2usize, any::<bool>(), 0..4u8).prop_flat_map(|(ns, svc, idx, v6, ports)| {
        proptest::collection::vec(endpoint_strategy(v6), 0..4).prop_map(move |endpoints| {
            let mut port_list = Vec::new();
            if ports & 1 != 0 {
                port_list.push(json!({"name": "http", "port": 8080}));
            }
            if ports & 2 != 0 {
                port_list.push(json!({"name": "dns", "port": 5353, "protocol": "UDP"}));
            }
            serde_json::from_value(json!({
                "metadata": {"namespace": NAMESPACES[ns], "name": format!("{}-{idx}", NAMES[svc]),
                    "labels": {"kubernetes.io/service-name": NAMES[svc]}},
                "addressType": if v6 { "IPv6" } else { "IPv4" },
                "ports": port_list,
                "endpoints": endpoints,
            }))
            .unwrap()
        })
    })
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
enum Op {
    Event(ClusterEvent),
    NodeName(&'static str),
    Take,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => service_strategy().prop_map(|s| Op::Event(ClusterEvent::Service(Update::Upsert(s)))),
        1 => (0..2usize, 0..4usize).prop_map(|(ns, n)| Op::Event(ClusterEvent::Service(Update::Delete {
            namespace: NAMESPACES[ns].into(), name: NAMES[n].into() }))),
        4 => slice_strategy().prop_map(|s| Op::Event(ClusterEvent::EndpointSlice(Update::Upsert(s)))),
        1 => (0..2usize, 0..4usize, 0..2usize).prop_map(|(ns, n, i)| Op::Event(ClusterEvent::EndpointSlice(Update::Delete {
            namespace: NAMESPACES[ns].into(), name: format!("{}-{i}", NAMES[n]) }))),
        1 => proptest::option::of(prop_oneof![Just("z1"), Just("z2")]).prop_map(|z| Op::Event(ClusterEvent::Node(Update::Upsert(node(z))))),
        1 => prop_oneof![Just("node-a"), Just("node-b")].prop_map(Op::NodeName),
        2 => Just(Op::Take),
    ]
}

/// The objects a sequence of events leaves, as a source would hold them.
#[derive(Default)]
struct World {
    services: BTreeMap<(String, String), Service>,
    slices: BTreeMap<(String, String), EndpointSlice>,
    node: Option<Node>,
}

impl World {
    fn apply(&mut self, e: &ClusterEvent) {
        let key = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            (m.namespace.clone().unwrap_or_default(), m.name.clone().unwrap_or_default())
        };
        match e {
            ClusterEvent::Service(Update::Upsert(s)) => {
                self.services.insert(key(&s.metadata), s.clone());
            }
            ClusterEvent::Service(Update::Delete { namespace, name }) => {
                self.services.remove(&(namespace.clone(), name.clone()));
            }
            ClusterEvent::EndpointSlice(Update::Upsert(s)) => {
                self.slices.insert(key(&s.metadata), s.clone());
            }
            ClusterEvent::EndpointSlice(Update::Delete { namespace, name }) => {
                self.slices.remove(&(namespace.clone(), name.clone()));
            }
            ClusterEvent::Node(Update::Upsert(n)) => self.node = Some(n.clone()),
            _ => {}
        }
    }
}

fn settings_for(node_name: &str) -> ProxySettings {
    ProxySettings { node_name: node_name.into(), ..settings() }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn diff_then_apply_gives_the_target(
        a in proptest::collection::vec(service_strategy(), 0..5),
        sa in proptest::collection::vec(slice_strategy(), 0..6),
        b in proptest::collection::vec(service_strategy(), 0..5),
        sb in proptest::collection::vec(slice_strategy(), 0..6),
        node_b in any::<bool>(),
    ) {
        let opts = TranslateOptions::default();
        let state_a = translate(&ClusterObjects { services: &a, endpoint_slices: &sa, ..Default::default() }, &settings_for("node-a"), &opts).state;
        let state_b = translate(&ClusterObjects { services: &b, endpoint_slices: &sb, ..Default::default() },
            &settings_for(if node_b { "node-b" } else { "node-a" }), &opts).state;
        let mut patched = state_a.clone();
        patched.apply(&state_a.diff(&state_b));
        prop_assert_eq!(&patched, &state_b);
        prop_assert!(state_b.diff(&state_b).is_empty());
    }

    #[test]
    fn incremental_equals_from_scratch(ops in proptest::collection::vec(op_strategy(), 1..40)) {
        let opts = TranslateOptions::default();
        let mut node_name = "node-a";
        let mut tracker = ChangeTracker::new(settings_for(node_name), opts.clone());
        let mut world = World::default();
        for op in ops {
            match op {
                Op::Event(e) => {
                    world.apply(&e);
                    tracker.apply(e);
                }
                Op::NodeName(n) => {
                    node_name = n;
                    tracker.set_settings(settings_for(n));
                    // A source following "this node" sends the newly named node's object.
                    if let Some(node) = world.node.as_ref().filter(|w| w.metadata.name.as_deref() == Some(n)) {
                        tracker.apply(ClusterEvent::Node(Update::Upsert(node.clone())));
                    }
                }
                Op::Take => {
                    let before = tracker.state().clone();
                    let taken = tracker.take_changes();
                    let mut replayed = before;
                    replayed.apply(&taken.changes);
                    prop_assert_eq!(&replayed, tracker.state());
                }
            }
        }
        tracker.take_changes();
        let services: Vec<Service> = world.services.into_values().collect();
        let slices: Vec<EndpointSlice> = world.slices.into_values().collect();
        // A Node of another name is ignored by both paths alike.
        let node = world.node.filter(|n| n.metadata.name.as_deref() == Some(node_name));
        let scratch = translate(
            &ClusterObjects { services: &services, endpoint_slices: &slices, service_cidrs: &[], node: node.as_ref() },
            &settings_for(node_name),
            &opts,
        );
        prop_assert_eq!(tracker.state(), &scratch.state);
    }
}
