//! Two Services claiming one address: a deterministic owner, reported once, and any order of
//! events ends where a from-scratch translation of the final objects does. Also the
//! ExternalIP / LoadBalancer IP allow-lists (CVE-2020-8554).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use common::*;
use k8s_openapi::api::core::v1::Service;
use kproxy_core::event::{ClusterEvent, Update};
use kproxy_core::model::{AddressKind, IpFamily, Protocol, ProxyState};
use kproxy_core::tracker::{translate, AddressIssueCounts, AddressNotice, ChangeTracker, ClusterObjects};
use kproxy_core::translate::TranslateOptions;
use proptest::prelude::*;
use serde_json::{json, Value};

fn svc(name: &str, created: Option<&str>, patch: Value) -> Service {
    let mut base = json!({"metadata": {"name": name}});
    if let Some(t) = created {
        base["metadata"]["creationTimestamp"] = json!(t);
    }
    merge(&mut base, patch);
    service(base)
}

fn upsert(s: &Service) -> ClusterEvent {
    ClusterEvent::Service(Update::Upsert(s.clone()))
}

fn delete(name: &str) -> ClusterEvent {
    ClusterEvent::Service(Update::Delete { namespace: "ns".into(), name: name.into() })
}

fn names(state: &ProxyState) -> Vec<String> {
    state.services.keys().map(|k| k.name.name.clone()).collect()
}

fn started(notices: &[AddressNotice]) -> Vec<&AddressNotice> {
    notices.iter().filter(|n| !n.ended).collect()
}

const OLD: &str = "2026-01-01T00:00:00Z";
const NEW: &str = "2026-02-01T00:00:00Z";

#[test]
fn the_older_service_owns_a_cluster_ip_whatever_the_order() {
    let old = svc("zz-old", Some(OLD), json!({}));
    let new = svc("aa-new", Some(NEW), json!({}));
    for order in [[&old, &new], [&new, &old]] {
        let mut t = ChangeTracker::new(settings(), TranslateOptions::default());
        for s in order {
            t.apply(upsert(s));
            t.take_changes();
        }
        assert_eq!(names(t.state()), ["zz-old"], "order {:?}", order.map(|s| s.metadata.name.clone()));
        let notices = t.take_address_notices();
        let warned = started(&notices);
        assert_eq!(warned.len(), 1, "{notices:?}");
        assert!(warned[0].message.contains("ns/aa-new") && warned[0].message.contains("ns/zz-old"), "{}", warned[0]);
        assert_eq!(warned[0].kind, AddressKind::ClusterIp);
        assert_eq!(t.address_issues().conflicts[AddressIssueCounts::index(AddressKind::ClusterIp)], 1);
        // Nothing changes at later takes, and nothing is reported again.
        t.apply(upsert(&new));
        assert!(t.take_changes().changes.is_empty());
        assert!(t.take_address_notices().is_empty());
    }
}

#[test]
fn without_timestamps_the_smaller_name_wins_and_a_timestamp_beats_none() {
    let a = svc("a", None, json!({}));
    let b = svc("b", None, json!({}));
    let (state, _) = run(&[b.clone(), a.clone()], &[], None);
    assert_eq!(names(&state), ["a"]);
    let b_dated = svc("b", Some(NEW), json!({}));
    let (state, _) = run(&[a, b_dated], &[], None);
    assert_eq!(names(&state), ["b"]);
}

#[test]
fn deleting_the_owner_hands_the_address_over_in_the_same_take() {
    let old = svc("old", Some(OLD), json!({"spec": {"ports": [{"name": "http", "port": 80}]}}));
    let new = svc("new", Some(NEW), json!({}));
    let mut t = ChangeTracker::new(settings(), TranslateOptions::default());
    t.apply(upsert(&old));
    t.apply(upsert(&new));
    t.take_changes();
    t.take_address_notices();
    t.apply(delete("old"));
    let taken = t.take_changes();
    assert_eq!(names(t.state()), ["new"]);
    // The change set removes the old owner's port and adds the new one's: a partial sync
    // programs the hand-over at once.
    assert_eq!(taken.changes.services.len(), 2, "{:?}", taken.changes.services.keys().collect::<Vec<_>>());
    let notices = t.take_address_notices();
    assert!(started(&notices).is_empty() && notices.len() == 1 && notices[0].ended, "{notices:?}");
    assert_eq!(t.address_issues(), &AddressIssueCounts::default());
}

#[test]
fn a_lost_node_port_or_external_ip_drops_only_that_destination() {
    let old = svc("old", Some(OLD), json!({"spec": {"type": "NodePort", "clusterIP": "198.19.0.1",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}], "externalIPs": ["198.18.9.1"]}}));
    let new = svc("new", Some(NEW), json!({"spec": {"type": "NodePort", "clusterIP": "198.19.0.2",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}], "externalIPs": ["198.18.9.1", "198.18.9.2"]}}));
    let (state, _) = run(&[new, old], &[], None);
    let port = |n: &str| state.services.values().find(|p| p.name.name == n).expect("port");
    assert_eq!(port("old").node_port, Some(30080));
    assert_eq!(port("new").node_port, None);
    assert_eq!(port("new").external_ips, ["198.18.9.2".parse::<IpAddr>().unwrap()]);
    assert_eq!(port("new").cluster_ip, "198.19.0.2".parse::<IpAddr>().unwrap());
}

#[test]
fn an_external_ip_of_one_service_conflicts_with_the_cluster_ip_of_another() {
    let old = svc("old", Some(OLD), json!({"spec": {"clusterIP": "198.19.0.1"}}));
    let new = svc("new", Some(NEW), json!({"spec": {"clusterIP": "198.19.0.2", "externalIPs": ["198.19.0.1"]}}));
    let mut t = ChangeTracker::new(settings(), TranslateOptions::default());
    t.apply(upsert(&old));
    t.apply(upsert(&new));
    t.take_changes();
    assert!(t.state().services.values().all(|p| p.external_ips.is_empty()));
    let notices = t.take_address_notices();
    assert_eq!(notices.len(), 1);
    assert!(notices[0].message.contains("ExternalIP 198.19.0.1:80/tcp") && notices[0].message.contains("as its ClusterIP"), "{}", notices[0]);
}

#[test]
fn addresses_outside_the_allow_lists_are_skipped_and_reported_once() {
    let opts = TranslateOptions {
        external_ip_allowed_cidrs: Some(vec!["198.18.10.0/24".parse().unwrap()]),
        load_balancer_ip_allowed_cidrs: Some(vec!["198.18.20.0/24".parse().unwrap()]),
        ..TranslateOptions::default()
    };
    let s = svc("web", None, json!({
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "nodePort": 30080}],
                 "externalIPs": ["198.18.10.1", "198.18.11.1"]},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.18.20.1"}, {"ip": "198.18.21.1"}]}}
    }));
    let mut t = ChangeTracker::new(settings(), opts);
    t.apply(upsert(&s));
    t.take_changes();
    let p = web(t.state());
    assert_eq!(p.external_ips, ["198.18.10.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(p.load_balancer_ips, ["198.18.20.1".parse::<IpAddr>().unwrap()]);
    let notices = t.take_address_notices();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices.iter().all(|n| !n.conflict && !n.ended));
    assert!(notices.iter().any(|n| n.message.contains("198.18.11.1") && n.message.contains("--external-ip-allowed-cidrs")));
    assert!(notices.iter().any(|n| n.message.contains("198.18.21.1") && n.message.contains("--load-balancer-ip-allowed-cidrs")));
    let counts = t.address_issues();
    assert_eq!(counts.not_allowed[AddressIssueCounts::index(AddressKind::ExternalIp)], 1);
    assert_eq!(counts.not_allowed[AddressIssueCounts::index(AddressKind::LoadBalancerIp)], 1);
    // An endpoint change re-translates the service: nothing is reported again.
    t.apply(ClusterEvent::EndpointSlice(Update::Upsert(slice("web-1", json!([ep("198.18.1.1", NODE)])))));
    t.take_changes();
    assert!(t.take_address_notices().is_empty());
    // Without allow-lists (the default) every address is programmed.
    let (state, _) = run(&[s], &[], None);
    assert_eq!(web(&state).external_ips.len(), 2);
    assert_eq!(web(&state).load_balancer_ips.len(), 2);
}

// ---- Property: any order of upserts and deletes ends where a from-scratch translation does.

const POOL: usize = 5;
const TIMES: [Option<&str>; 3] = [Some(OLD), Some(NEW), None];

/// Services drawn from small pools of names, timestamps, ClusterIPs, NodePorts, ExternalIPs
/// and LB IPs, so that most generated sets contain conflicts of every kind (and ties).
fn service_strategy() -> impl Strategy<Value = Service> {
    (0..POOL, 0..3usize, 0..3u8, 0..4u8, 0..4u8, 0..4u8, 0..3u8, any::<bool>()).prop_map(
        |(name, time, cip, np, ext, lb, ports, dual)| {
            let cluster_ips = if dual {
                json!([format!("198.19.0.{cip}"), format!("2001:db8:19::{cip}")])
            } else {
                json!([format!("198.19.0.{cip}")])
            };
            let mut port_list = vec![json!({"name": "http", "port": 80, "nodePort": 30000 + u32::from(np)})];
            if ports >= 1 {
                port_list.push(json!({"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30000 + u32::from(np)}));
            }
            if ports == 2 {
                port_list.push(json!({"name": "alt", "port": 8080, "nodePort": 30100 + u32::from(np)}));
            }
            let mut v = json!({
                "metadata": {"name": format!("s{name}")},
                "spec": {"type": "LoadBalancer", "clusterIP": Value::Null, "clusterIPs": cluster_ips,
                         "ports": port_list,
                         // ExternalIPs may equal a ClusterIP of another service (pool overlap).
                         "externalIPs": [format!("198.19.0.{ext}"), format!("198.18.{}.1", 10 + ext % 2)]},
                "status": {"loadBalancer": {"ingress": [{"ip": format!("198.18.{}.{}", 20 + lb % 2, lb)}]}}
            });
            if let Some(t) = TIMES[time] {
                v["metadata"]["creationTimestamp"] = json!(t);
            }
            service(v)
        },
    )
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
enum Op {
    Upsert(Service),
    Delete(usize),
    Take,
    TakeState,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => service_strategy().prop_map(Op::Upsert),
        2 => (0..POOL).prop_map(Op::Delete),
        2 => Just(Op::Take),
        1 => Just(Op::TakeState),
    ]
}

fn options(allow: bool) -> TranslateOptions {
    if !allow {
        return TranslateOptions::default();
    }
    TranslateOptions {
        external_ip_allowed_cidrs: Some(vec!["198.19.0.0/24".parse().unwrap(), "198.18.10.0/24".parse().unwrap()]),
        load_balancer_ip_allowed_cidrs: Some(vec!["198.18.20.0/24".parse().unwrap()]),
        ..TranslateOptions::default()
    }
}

/// Kernel keys in a state: (ip, port, protocol) and (family, nodePort, protocol), each must be
/// programmed by one service at most.
fn assert_no_shared_destination(state: &ProxyState) -> Result<(), TestCaseError> {
    let mut ips: HashMap<(SocketAddr, Protocol), &str> = HashMap::new();
    let mut node_ports: HashMap<(IpFamily, u16, Protocol), &str> = HashMap::new();
    for p in state.services.values() {
        let proto = p.name.protocol;
        let owner = p.name.name.as_str();
        let dests = std::iter::once(p.cluster_ip).chain(p.external_ips.iter().copied()).chain(p.load_balancer_ips.iter().copied());
        for ip in dests {
            let prev = ips.insert((SocketAddr::new(ip, p.port), proto), owner);
            prop_assert!(prev.is_none_or(|o| o == owner), "{ip}:{} {proto} programmed for {owner} and {prev:?}", p.port);
        }
        if let Some(np) = p.node_port {
            let prev = node_ports.insert((p.family, np, proto), owner);
            prop_assert!(prev.is_none_or(|o| o == owner), "nodePort {np} programmed for {owner} and {prev:?}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_order_of_events_ends_as_a_from_scratch_translation(
        ops in proptest::collection::vec(op_strategy(), 1..40),
        allow in any::<bool>(),
    ) {
        let opts = options(allow);
        let mut tracker = ChangeTracker::new(settings(), opts.clone());
        let mut world: BTreeMap<String, Service> = BTreeMap::new();
        let mut notices: Vec<AddressNotice> = Vec::new();
        for op in ops {
            match op {
                Op::Upsert(s) => {
                    world.insert(s.metadata.name.clone().unwrap_or_default(), s.clone());
                    tracker.apply(upsert(&s));
                }
                Op::Delete(i) => {
                    world.remove(&format!("s{i}"));
                    tracker.apply(delete(&format!("s{i}")));
                }
                Op::Take => {
                    let mut replayed = tracker.state().clone();
                    let taken = tracker.take_changes();
                    replayed.apply(&taken.changes);
                    prop_assert_eq!(&replayed, tracker.state());
                    assert_no_shared_destination(tracker.state())?;
                }
                Op::TakeState => {
                    tracker.take_state();
                }
            }
            notices.extend(tracker.take_address_notices());
        }
        tracker.take_changes();
        notices.extend(tracker.take_address_notices());
        let services: Vec<Service> = world.into_values().collect();
        let scratch = translate(&ClusterObjects { services: &services, ..Default::default() }, &settings(), &opts);
        prop_assert_eq!(tracker.state(), &scratch.state);
        assert_no_shared_destination(tracker.state())?;
        // The counts are those of a fresh tracker fed the final objects, and the notices
        // (started minus ended, per reason and kind) add up to them.
        let mut fresh = ChangeTracker::new(settings(), opts);
        for s in &services {
            fresh.apply(upsert(s));
        }
        fresh.take_state();
        prop_assert_eq!(tracker.address_issues(), fresh.address_issues());
        let mut net = AddressIssueCounts::default();
        for n in &notices {
            let i = AddressIssueCounts::index(n.kind);
            let slot = if n.conflict { &mut net.conflicts[i] } else { &mut net.not_allowed[i] };
            *slot = if n.ended { slot.checked_sub(1).expect("an end without a start") } else { *slot + 1 };
        }
        prop_assert_eq!(&net, tracker.address_issues());
    }
}
