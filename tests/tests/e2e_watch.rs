//! The Kubernetes source (`kproxy_bin::source::kube`) against a real kube-apiserver, using
//! kproxy's own ServiceAccount (RBAC on): initial sync, live updates, the proxy-name label
//! filter, the node IP log line, the client-side rate limit, and recovery after the API
//! server restarts and etcd dies briefly.
//!
//! Run with `cargo xtask e2e` (it starts the API server). Under plain `cargo test` these
//! tests are ignored; run with `--ignored` but without the harness they fail.

mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{endpoint_slice, is_delete, is_upsert, node, service, E2eEnv, Events, LogCapture, Scratch};
use k8s_openapi::api::core::v1::{Node, Service};
use kproxy_bin::source::kube::{build_client, spawn_kube_source};
use kproxy_core::event::{ClusterEvent, ObjectKind, Update};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

const ALL_KINDS: [ObjectKind; 4] = [ObjectKind::Service, ObjectKind::EndpointSlice, ObjectKind::ServiceCidr, ObjectKind::Node];
const STEP: Duration = Duration::from_secs(20);

fn node_name(test: &str) -> String {
    format!("e2e-{test}-{}", std::process::id())
}

/// Starts the source as kproxy would run it (ServiceAccount kubeconfig, default qps).
async fn start_source(env: &E2eEnv, node: &str) -> (tokio::task::JoinHandle<()>, Events) {
    let (tx, rx) = mpsc::channel(4096);
    let handle = spawn_kube_source(env.kproxy_options(node), tx).await.expect("spawn_kube_source");
    (handle, Events::new(rx))
}

#[tokio::test]
#[ignore = "needs the real API server: run `cargo xtask e2e`"]
async fn initial_sync_live_updates_and_deletes() {
    let env = E2eEnv::require();
    let logs = LogCapture::install();
    let Scratch { admin, ns, services, slices } = Scratch::new(&env, "watch").await;
    let pp = PostParams::default();
    services.create(&pp, &service(&ns, "before", 80, &[])).await.expect("create service before start");

    let me = node_name("sync");
    Api::<Node>::all(admin.clone()).create(&pp, &node(&me, "198.19.0.5")).await.expect("create node");
    let mark = logs.mark();
    let (handle, mut events) = start_source(&env, &me).await;

    // Initial lists: the pre-existing Service arrives before Synced(Service).
    events.wait_synced(&ALL_KINDS, STEP).await;
    assert!(
        events.seen.iter().any(|e| is_upsert(e, ObjectKind::Service, "before")),
        "pre-existing Service not in the initial list"
    );
    assert!(events.seen.iter().any(|e| is_upsert(e, ObjectKind::Node, &me)), "own Node not listed");
    assert!(
        events.seen.iter().any(|e| matches!(e, ClusterEvent::ServiceCidr(Update::Upsert(c)) if c.metadata.name.as_deref() == Some("kubernetes"))),
        "default ServiceCIDR not listed"
    );
    let line = logs.wait_line(mark, "Successfully retrieved node IP", STEP).await;
    assert!(line.contains("198.19.0.5"), "node IP line lacks the IP: {line}");

    // Live: a Service for another proxy is filtered out server-side; ours arrives with its IP.
    services
        .create(&pp, &service(&ns, "other-proxy", 80, &[("service.kubernetes.io/service-proxy-name", "foo")]))
        .await
        .expect("create other-proxy service");
    services.create(&pp, &service(&ns, "web", 80, &[])).await.expect("create web");
    let ev = events.wait_for("upsert Service web", STEP, |e| is_upsert(e, ObjectKind::Service, "web")).await;
    let ClusterEvent::Service(Update::Upsert(web)) = ev else { unreachable!("matched an upsert") };
    let ip = web.spec.and_then(|s| s.cluster_ip).expect("allocated ClusterIP");
    assert!(ip.starts_with("198.19.1"), "ClusterIP {ip} outside 198.19.160.0/20");
    assert!(
        !events.seen.iter().any(|e| is_upsert(e, ObjectKind::Service, "other-proxy")),
        "a Service labelled for another proxy reached kproxy"
    );

    slices.create(&pp, &endpoint_slice(&ns, "web-1", "web", &["198.18.1.10"])).await.expect("create slice");
    events.wait_for("upsert EndpointSlice web-1", STEP, |e| is_upsert(e, ObjectKind::EndpointSlice, "web-1")).await;
    let scaled = endpoint_slice(&ns, "web-1", "web", &["198.18.1.10", "198.18.1.11"]);
    slices
        .patch("web-1", &PatchParams::apply("e2e").force(), &Patch::Apply(&scaled))
        .await
        .expect("scale slice");
    let ev = events
        .wait_for("slice scaled to 2", STEP, |e| {
            matches!(e, ClusterEvent::EndpointSlice(Update::Upsert(s)) if s.endpoints.len() == 2)
        })
        .await;
    assert!(matches!(ev, ClusterEvent::EndpointSlice(_)));

    slices.delete("web-1", &DeleteParams::default()).await.expect("delete slice");
    events.wait_for("delete EndpointSlice web-1", STEP, |e| is_delete(e, ObjectKind::EndpointSlice, "web-1")).await;
    services.delete("web", &DeleteParams::default()).await.expect("delete web");
    events.wait_for("delete Service web", STEP, |e| is_delete(e, ObjectKind::Service, "web")).await;

    drop(events);
    tokio::time::timeout(STEP, handle).await.expect("source stops after the receiver is dropped").expect("join");
}

#[tokio::test]
#[ignore = "needs the real API server: run `cargo xtask e2e`"]
async fn rate_limit_throttles_real_requests() {
    let env = E2eEnv::require();
    let mut opts = env.kproxy_options("unused");
    opts.qps = 4.0;
    opts.burst = 2;
    let client = build_client(&opts).await.expect("client");
    let api: Api<Service> = Api::all(client);
    let start = Instant::now();
    for _ in 0..10 {
        api.list(&ListParams::default().limit(1)).await.expect("list services as kproxy");
    }
    // 2 from the burst, then 8 at 4/s: at least ~2 s; unthrottled this takes milliseconds.
    let took = start.elapsed();
    println!("10 lists at qps 4 / burst 2 took {took:?}");
    assert!(took >= Duration::from_millis(1900), "10 requests took only {took:?}: not rate limited");
    assert!(took < Duration::from_secs(10), "10 requests took {took:?}");
}

#[tokio::test]
#[ignore = "needs the real API server: run `cargo xtask e2e`"]
async fn recovers_after_apiserver_restart_and_etcd_outage() {
    let env = E2eEnv::require();
    let logs = LogCapture::install();
    let Scratch { ns, services, .. } = Scratch::new(&env, "recover").await;
    let pp = PostParams::default();
    services.create(&pp, &service(&ns, "doomed", 80, &[])).await.expect("create doomed");

    let me = node_name("recover");
    let (handle, mut events) = start_source(&env, &me).await;
    events.wait_synced(&ALL_KINDS, STEP).await;

    // API server down: the source keeps running and warns with the grep-able line.
    let mark = logs.mark();
    env.control("stop-apiserver").expect("stop apiserver");
    logs.wait_line(mark, "Failed to list services", Duration::from_secs(30)).await;
    assert!(!handle.is_finished(), "source ended while the API server was down");
    env.control("start-apiserver").expect("start apiserver");

    // Changes made right after the restart (while the watch may still be backing off, and
    // with the new API server's watch cache unable to resume old resourceVersions, which
    // forces a relist) still arrive: a delete and a create.
    let after_restart = events.mark();
    services.delete("doomed", &DeleteParams::default()).await.expect("delete doomed after restart");
    services.create(&pp, &service(&ns, "reborn", 80, &[])).await.expect("create after restart");
    // After a relist the upsert comes first (listed), the delete last (vanished from the list).
    let minute = Duration::from_secs(60);
    events.wait_since(after_restart, "delete Service doomed", minute, |e| is_delete(e, ObjectKind::Service, "doomed")).await;
    events.wait_since(after_restart, "upsert Service reborn", minute, |e| is_upsert(e, ObjectKind::Service, "reborn")).await;

    // etcd killed for a few seconds under a running API server.
    env.control("kill-etcd").expect("kill etcd");
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.control("start-etcd").expect("start etcd");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Writes fail until the API server reconnects to etcd; retry (bounded).
    loop {
        match services.create(&pp, &service(&ns, "after-etcd", 80, &[])).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                println!("create after etcd restart not yet possible: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("API server did not recover from the etcd outage within 60 s: {e}"),
        }
    }
    events
        .wait_for("upsert Service after-etcd", Duration::from_secs(60), |e| is_upsert(e, ObjectKind::Service, "after-etcd"))
        .await;
    assert!(!handle.is_finished(), "source ended during the etcd outage");
}
