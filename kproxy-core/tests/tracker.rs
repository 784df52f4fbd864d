//! The ChangeTracker: incremental change sets, pending counts, trigger times, sync tracking.

mod common;

use common::*;
use kproxy_core::event::{ClusterEvent, ObjectKind, Update};
use kproxy_core::model::{Change, ProxySettings};
use kproxy_core::tracker::ChangeTracker;
use kproxy_core::translate::TranslateOptions;
use serde_json::json;

fn tracker() -> ChangeTracker {
    ChangeTracker::new(settings(), TranslateOptions::default())
}

fn svc_event(patch: serde_json::Value) -> ClusterEvent {
    ClusterEvent::Service(Update::Upsert(service(patch)))
}

fn slice_event(name: &str, endpoints: serde_json::Value) -> ClusterEvent {
    ClusterEvent::EndpointSlice(Update::Upsert(slice(name, endpoints)))
}

/// Take changes and check that they lead from the previous state to the new one.
fn take(t: &mut ChangeTracker) -> kproxy_core::tracker::TakenChanges {
    let before = t.state().clone();
    let taken = t.take_changes();
    let mut replayed = before;
    replayed.apply(&taken.changes);
    assert_eq!(&replayed, t.state(), "changes must lead from the old state to the new one");
    taken
}

#[test]
fn one_endpoint_change_is_one_modified_port() {
    let mut t = tracker();
    assert!(t.apply(svc_event(json!({}))).is_empty());
    assert!(t.apply(svc_event(json!({"metadata": {"name": "other"}, "spec": {"clusterIP": "198.19.0.11"}}))).is_empty());
    t.apply(slice_event("web-1", json!([ep("198.18.1.1", NODE)])));
    let first = take(&mut t);
    assert_eq!(first.changes.services.len(), 2);
    assert!(first.changes.services.values().all(|c| matches!(c, Change::Added(_))));
    assert_eq!(t.pending(), Default::default());

    t.apply(slice_event("web-1", json!([ep("198.18.1.1", NODE), ep("198.18.1.2", "node-b")])));
    assert_eq!(t.pending().endpoints, 1);
    assert_eq!(t.pending().services, 0);
    let second = take(&mut t);
    assert_eq!(second.changes.services.len(), 1);
    let (k, change) = second.changes.services.iter().next().unwrap();
    assert_eq!(k.name.name, "web");
    let Change::Modified { old, new } = change else { panic!("{change:?}") };
    assert_eq!(old.cluster_endpoints.len(), 1);
    assert_eq!(new.cluster_endpoints, addrs(&["198.18.1.1:8080", "198.18.1.2:8080"]));
    assert!(second.changes.settings.is_none() && second.changes.service_cidrs.is_none());
}

#[test]
fn identical_upserts_change_nothing() {
    let mut t = tracker();
    t.apply(svc_event(json!({})));
    t.apply(slice_event("web-1", json!([ep("198.18.1.1", NODE)])));
    take(&mut t);
    let totals = t.totals();
    t.apply(svc_event(json!({})));
    t.apply(slice_event("web-1", json!([ep("198.18.1.1", NODE)])));
    assert_eq!(t.pending(), Default::default());
    assert!(!t.has_pending());
    assert_eq!(t.totals(), totals);
    assert!(take(&mut t).changes.is_empty());
}

#[test]
fn deletes_remove_ports_and_endpoints() {
    let mut t = tracker();
    t.apply(svc_event(json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}})));
    t.apply(slice_event("web-1", json!([ep("198.18.1.1", NODE)])));
    take(&mut t);
    assert_eq!(t.state().services.len(), 2);

    t.apply(ClusterEvent::EndpointSlice(Update::Delete { namespace: "ns".into(), name: "web-1".into() }));
    let c = take(&mut t);
    assert_eq!(c.changes.services.len(), 1, "only the port with endpoints changed");
    assert!(web(t.state()).endpoints.is_empty());

    t.apply(ClusterEvent::Service(Update::Delete { namespace: "ns".into(), name: "web".into() }));
    let c = take(&mut t);
    assert_eq!(c.changes.services.len(), 2);
    assert!(c.changes.services.values().all(|c| matches!(c, Change::Removed(_))));
    assert!(t.state().services.is_empty());
}

#[test]
fn a_port_removed_from_the_service_is_removed() {
    let mut t = tracker();
    t.apply(svc_event(json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}})));
    take(&mut t);
    t.apply(svc_event(json!({"spec": {"ports": [{"name": "http", "port": 80}]}})));
    let c = take(&mut t);
    assert_eq!(c.changes.services.len(), 1);
    assert!(matches!(c.changes.services.values().next(), Some(Change::Removed(p)) if p.name.port == "https"));
}

#[test]
fn a_slice_moving_to_another_service_updates_both() {
    let mut t = tracker();
    t.apply(svc_event(json!({})));
    t.apply(svc_event(json!({"metadata": {"name": "api"}, "spec": {"clusterIP": "198.19.0.11"}})));
    t.apply(slice_event("shared", json!([ep("198.18.1.1", NODE)])));
    take(&mut t);
    assert_eq!(web(t.state()).endpoints.len(), 1);
    t.apply(ClusterEvent::EndpointSlice(Update::Upsert(slice_patched(
        "shared",
        json!([ep("198.18.1.1", NODE)]),
        json!({"metadata": {"labels": {"kubernetes.io/service-name": "api"}}}),
    ))));
    assert_eq!(t.pending().endpoints, 2);
    let c = take(&mut t);
    assert_eq!(c.changes.services.len(), 2);
    assert!(web(t.state()).endpoints.is_empty());
}

#[test]
fn a_malformed_update_withdraws_the_previous_version() {
    let mut t = tracker();
    t.apply(svc_event(json!({})));
    take(&mut t);
    let diags = t.apply(svc_event(json!({"spec": {"clusterIP": "nonsense"}})));
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].name, "web");
    take(&mut t);
    assert!(t.state().services.is_empty());
}

#[test]
fn trigger_times_of_changed_slices_are_returned_once() {
    let mut t = tracker();
    t.apply(svc_event(json!({})));
    let annotated = |ip: &str, time: &str| {
        ClusterEvent::EndpointSlice(Update::Upsert(slice_patched(
            "web-1",
            json!([ep(ip, NODE)]),
            json!({"metadata": {"annotations": {"endpoints.kubernetes.io/last-change-trigger-time": time}}}),
        )))
    };
    t.apply(annotated("198.18.1.1", "2026-01-01T00:00:00Z"));
    let c = take(&mut t);
    assert_eq!(c.trigger_times.len(), 1);
    assert_eq!(c.trigger_times[0].service, "web");
    assert_eq!(c.trigger_times[0].unix_seconds, 1_767_225_600.0);
    assert_eq!(c.trigger_times[0].family, kproxy_core::model::IpFamily::V4, "the slice's addressType");
    assert!(take(&mut t).trigger_times.is_empty());

    // An unchanged slice (only the annotation differs) is no change and no trigger time.
    t.apply(annotated("198.18.1.1", "2026-01-01T00:00:05Z"));
    assert!(take(&mut t).trigger_times.is_empty());

    let diags = t.apply(annotated("198.18.1.2", "last tuesday"));
    assert!(diags[0].message.contains("is not an RFC 3339 time"), "{diags:?}");
    let c = take(&mut t);
    assert!(c.trigger_times.is_empty());
    assert_eq!(c.changes.services.len(), 1, "the slice itself is still used");
}

#[test]
fn synced_waits_for_every_kind_asked_for() {
    let mut t = tracker();
    assert!(t.is_synced(), "nothing to wait for");
    t.wait_for(&[ObjectKind::Service, ObjectKind::EndpointSlice]);
    assert!(!t.is_synced());
    t.apply(ClusterEvent::Synced(ObjectKind::Service));
    assert!(!t.is_synced());
    t.apply(ClusterEvent::Synced(ObjectKind::Node));
    assert!(!t.is_synced());
    t.apply(ClusterEvent::Synced(ObjectKind::EndpointSlice));
    assert!(t.is_synced());
}

#[test]
fn settings_change_is_reported_and_node_name_relocalises_endpoints() {
    let mut t = tracker();
    t.apply(svc_event(json!({})));
    t.apply(slice_event("web-1", json!([ep("198.18.1.1", NODE), ep("198.18.1.2", "node-b")])));
    take(&mut t);
    assert_eq!(web(t.state()).local_endpoints, addrs(&["198.18.1.1:8080"]));

    t.set_settings(ProxySettings { masquerade_all: true, ..settings() });
    assert!(t.has_pending());
    let c = take(&mut t);
    assert!(c.changes.settings.as_ref().is_some_and(|s| s.masquerade_all));
    assert!(c.changes.services.is_empty(), "endpoints do not depend on masqueradeAll");

    t.set_settings(ProxySettings { node_name: "node-b".into(), ..settings() });
    let c = take(&mut t);
    assert!(c.changes.settings.is_some());
    assert_eq!(c.changes.services.len(), 1);
    assert_eq!(web(t.state()).local_endpoints, addrs(&["198.18.1.2:8080"]));
}

#[test]
fn node_zone_change_re_evaluates_hints_and_node_ips_reach_the_settings() {
    let mut t = tracker();
    t.apply(svc_event(json!({})));
    t.apply(ClusterEvent::EndpointSlice(Update::Upsert(slice(
        "web-1",
        json!([
            {"addresses": ["198.18.1.1"], "hints": {"forZones": [{"name": "z1"}]}},
            {"addresses": ["198.18.1.2"], "hints": {"forZones": [{"name": "z2"}]}}
        ]),
    ))));
    t.apply(ClusterEvent::Node(Update::Upsert(node(Some("z1")))));
    let c = take(&mut t);
    assert_eq!(format!("{:?}", c.changes.settings.unwrap().node_ips), "[198.18.100.1, 2001:db8::1]");
    assert_eq!(web(t.state()).cluster_endpoints, addrs(&["198.18.1.1:8080"]));

    t.apply(ClusterEvent::Node(Update::Upsert(node(Some("z2")))));
    let c = take(&mut t);
    assert!(c.changes.settings.is_none(), "same addresses");
    assert_eq!(web(t.state()).cluster_endpoints, addrs(&["198.18.1.2:8080"]));

    t.apply(ClusterEvent::Node(Update::Delete { namespace: String::new(), name: NODE.into() }));
    let c = take(&mut t);
    assert!(c.changes.settings.is_some_and(|s| s.node_ips.is_empty()));
    assert_eq!(web(t.state()).cluster_endpoints.len(), 2);
}

#[test]
fn service_cidr_changes_are_reported() {
    let mut t = tracker();
    t.apply(ClusterEvent::ServiceCidr(Update::Upsert(service_cidr("kubernetes", &["198.19.0.0/16"]))));
    let c = take(&mut t);
    assert_eq!(format!("{:?}", c.changes.service_cidrs), "Some([198.19.0.0/16])");
    t.apply(ClusterEvent::ServiceCidr(Update::Delete { namespace: String::new(), name: "kubernetes".into() }));
    let c = take(&mut t);
    assert_eq!(c.changes.service_cidrs, Some(vec![]));
}

#[test]
fn totals_count_changes() {
    let mut t = tracker();
    t.apply(svc_event(json!({})));
    t.apply(svc_event(json!({"spec": {"clusterIP": "198.19.0.12"}})));
    t.apply(slice_event("web-1", json!([ep("198.18.1.1", NODE)])));
    assert_eq!(t.pending().services, 1);
    assert_eq!(t.totals().services, 2);
    assert_eq!(t.totals().endpoints, 1);
    take(&mut t);
    assert_eq!(t.totals().services, 2);
}

#[test]
fn take_state_matches_take_changes() {
    let events = || {
        vec![svc_event(json!({})), slice_event("web-1", json!([ep("198.18.1.1", NODE)])), ClusterEvent::Node(Update::Upsert(node(None)))]
    };
    let mut a = tracker();
    let mut b = tracker();
    for e in events() {
        a.apply(e);
    }
    for e in events() {
        b.apply(e);
    }
    a.take_changes();
    b.take_state();
    assert_eq!(a.state(), b.state());
}

#[test]
fn the_state_is_shared_and_changed_in_place_when_no_snapshot_is_held() {
    let mut t = tracker();
    t.apply(svc_event(json!({})));
    t.apply(slice_event("web-1", json!([ep("198.18.1.1", NODE)])));
    t.take_changes();
    let at = std::sync::Arc::as_ptr(&t.snapshot());
    assert!(std::ptr::eq(at, t.state()), "a snapshot is the tracker's own state, not a copy");

    // No snapshot held at the take: the state is updated where it is (no copy per sync).
    t.apply(slice_event("web-1", json!([ep("198.18.1.1", NODE), ep("198.18.1.2", "node-b")])));
    t.take_changes();
    assert!(std::ptr::eq(at, t.state()), "the take copied the state although nobody shared it");

    // A snapshot held across a take keeps what it saw (copy on write); the tracker moves on.
    let held = t.snapshot();
    t.apply(slice_event("web-1", json!([ep("198.18.1.3", NODE)])));
    let taken = take(&mut t);
    assert_eq!(taken.changes.services.len(), 1);
    let mut replayed = (*held).clone();
    replayed.apply(&taken.changes);
    assert_eq!(&replayed, t.state(), "the held snapshot is the state before the take");
}
