//! Drift repair against the real kernel: the sync loop programs the nftables backend inside a
//! network namespace made by this test; someone deletes our table (`nft delete table`); the
//! periodic full resync re-creates it without any cluster change. Needs root.

#[path = "daemon_support/netns.rs"]
mod netns;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kproxy_telemetry::health::ProxyHealth;
use kproxy_telemetry::metrics::Metrics;
use kproxy_bin::sync_loop::{Outcome, SyncContext, SyncLoop, SyncTiming};
use kproxy_core::event::{ClusterEvent, ObjectKind};
use kproxy_core::model::ProxySettings;
use kproxy_core::tracker::ChangeTracker;
use kproxy_core::translate::TranslateOptions;
use kproxy_nft::{NftBackend, NftConfig};
use netns::Netns;
use tokio::sync::mpsc;

const MANIFEST: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 198.19.160.10
  clusterIPs: [198.19.160.10]
  ipFamilies: [IPv4]
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints: [{addresses: [198.18.0.10], conditions: {ready: true}}]
ports: [{name: http, port: 8080, protocol: TCP}]
";

/// Poll `nft list table ip kproxy` in the namespace until `want(listing)` or the deadline.
async fn wait_table(ns: &Netns, within: Duration, want: impl Fn(Option<&str>) -> bool) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        let listing = ns.run("nft", &["list", "table", "ip", "kproxy"]).ok();
        if want(listing.as_deref()) {
            return listing;
        }
        assert!(Instant::now() < deadline, "table state not reached within {within:?}; last listing: {listing:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_table_is_recreated_by_the_periodic_full_sync() {
    let ns = Netns::new("kpdrift").expect("create a network namespace (run as root)");
    let backend = ns.enter(|| NftBackend::new(NftConfig::default())).expect("nftables netlink socket in the namespace");

    let mut tracker = ChangeTracker::new(
        ProxySettings { node_name: "node-a".into(), ..Default::default() },
        TranslateOptions::default(),
    );
    tracker.wait_for(&[ObjectKind::Service, ObjectKind::EndpointSlice]);
    let timing = SyncTiming {
        sync_period: Duration::from_millis(200),
        min_sync_period: Duration::ZERO,
        full_sync_period: Duration::from_millis(600),
    };
    let ctx = SyncContext {
        backend_name: "nftables",
        timing,
        metrics: Arc::new(Metrics::new()),
        health: Arc::new(ProxyHealth::new(timing.sync_period * 2)),
        hooks: vec![],
        once: false,
        node_name: "node-a".into(),
        require_node: false,
    };
    let (tx, rx) = mpsc::channel(64);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(SyncLoop::new(backend, tracker, ctx).run(rx, async move {
        let _ = stop_rx.await;
    }));
    let manifest = kproxy_core::manifest::parse_manifest(MANIFEST, "drift.yaml");
    assert!(manifest.diagnostics.is_empty(), "{:?}", manifest.diagnostics);
    for event in manifest.events {
        tx.send(event).await.unwrap();
    }
    for kind in [ObjectKind::Service, ObjectKind::EndpointSlice] {
        tx.send(ClusterEvent::Synced(kind)).await.unwrap();
    }

    let first = wait_table(&ns, Duration::from_secs(5), |l| l.is_some_and(|l| l.contains("198.19.160.10"))).await;
    assert!(first.is_some());
    ns.run("nft", &["delete", "table", "ip", "kproxy"]).expect("delete our table behind kproxy's back");
    let deleted_at = Instant::now();
    let repaired =
        wait_table(&ns, Duration::from_secs(5), |l| l.is_some_and(|l| l.contains("198.19.160.10"))).await.unwrap();
    let took = deleted_at.elapsed();
    assert!(took <= timing.full_sync_period + Duration::from_millis(800), "repair took {took:?}");
    assert!(repaired.contains("198.18.0.10"), "endpoint missing after repair:\n{repaired}");

    let _ = stop_tx.send(());
    let (result, _) = tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").expect("no panic");
    assert_eq!(result.expect("clean stop"), Outcome::Stopped);
    // Stopping leaves the rules in place.
    assert!(ns.run("nft", &["list", "table", "ip", "kproxy"]).is_ok(), "table removed on shutdown");
}
