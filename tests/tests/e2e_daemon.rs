//! The `kproxy` daemon in a node network namespace against the real API server, through
//! [`e2e_support::ApiRelay`] with its own ServiceAccount: it reports the node IP from the
//! Node object and programs a Service created through the API into the namespace's
//! nftables (checked with the independent `nft` tool). Also measures API write -> rule in
//! the kernel for a few changes (watched with `nft monitor`, so no polling delay).
//! The measurement at 1,000 services belongs with the traffic tests.
//! Traffic tests build on the same pieces. Needs root.
//!
//! Run with `cargo xtask e2e` (ignored under plain `cargo test`).

mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{endpoint_slice, node, service, ApiRelay, E2eEnv, KproxyDaemon, NftMonitor, Scratch, NFT_NODE_ARGS};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};

const NODE_IP: &str = "198.19.0.7";

fn cluster_ip(svc: &Service) -> String {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.clone()).expect("allocated ClusterIP")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real API server: run `cargo xtask e2e`"]
async fn daemon_in_a_netns_programs_services_from_the_api() {
    let env = E2eEnv::require();
    kproxy_tests::require_root();
    let scratch = Scratch::new(&env, "daemon").await;
    let pp = PostParams::default();
    let node_name = format!("e2e-daemon-{}", std::process::id());
    Api::<Node>::all(scratch.admin.clone()).create(&pp, &node(&node_name, NODE_IP)).await.expect("create node");

    let ns = kproxy_tests::Netns::new("e2e-node").expect("node netns");
    let relay = ApiRelay::start(&ns, &env.url).expect("relay");
    let monitor = NftMonitor::start(&ns);
    let mut daemon = KproxyDaemon::start(
        &env,
        &ns,
        &relay,
        &node_name,
        NFT_NODE_ARGS,
    )
    .expect("start kproxy");
    let line = daemon.wait_log("Successfully retrieved node IP", Duration::from_secs(30)).expect("node IP line");
    assert!(line.contains(NODE_IP), "node IP line lacks {NODE_IP}: {line}");

    // A Service with one endpoint, written through the API: its ClusterIP shows up in the
    // namespace's ruleset.
    let svc = scratch.services.create(&pp, &service(&scratch.ns, "web", 80, &[])).await.expect("create service");
    let ip = cluster_ip(&svc);
    scratch
        .slices
        .create(&pp, &endpoint_slice(&scratch.ns, "web-1", "web", &["198.18.1.10"]))
        .await
        .expect("create slice");
    monitor.wait(&ip, Duration::from_secs(30)).expect("ClusterIP programmed");
    let ruleset = ns.exec(["nft", "list", "ruleset"]).expect("nft list ruleset");
    assert!(ruleset.contains(&ip), "ruleset lacks ClusterIP {ip}:\n{ruleset}");
    assert!(ruleset.contains("198.18.1.10"), "ruleset lacks the endpoint 198.18.1.10:\n{ruleset}");

    // API write -> rule in the kernel: one write per change (the slice of "web" gets a new
    // endpoint address), done when the kernel has that address (nft monitor). Back to back,
    // a change lands while the previous sync is less than minSyncPeriod (default 1 s) ago and
    // waits for it; isolated (1.1 s apart) it is programmed at once.
    let mut n = 0u32;
    for (label, gap) in [("back to back", Duration::ZERO), ("isolated (1.1 s apart)", Duration::from_millis(1100))] {
        let mut lat = Vec::new();
        for _ in 0..10 {
            tokio::time::sleep(gap).await;
            n += 1;
            let ep = format!("198.18.3.{n}");
            let patch = serde_json::json!({ "endpoints": [{ "addresses": [ep.clone()] }] });
            let t0 = Instant::now();
            scratch.slices.patch("web-1", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch slice");
            let t1 = monitor.wait(&ep, Duration::from_secs(30)).expect("new endpoint programmed");
            lat.push(t1.saturating_duration_since(t0));
        }
        lat.sort();
        println!(
            "API write (EndpointSlice patch) -> endpoint in the kernel (nft monitor), 10 changes {label}, \
             default minSyncPeriod: p50 {:?}, max {:?}",
            lat[lat.len() / 2],
            lat[lat.len() - 1]
        );
        if !gap.is_zero() {
            assert!(lat[lat.len() - 1] < Duration::from_secs(1), "an isolated change took {:?}", lat[lat.len() - 1]);
        }
    }
    assert!(daemon.is_running(), "kproxy exited; log:\n{}", daemon.log_text());
    let status = daemon.stop(Duration::from_secs(10));
    println!("kproxy stopped on SIGTERM: {status:?}");
}
