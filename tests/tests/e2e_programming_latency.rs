//! Network programming latency, as issue 5 asks: API write -> rules in the kernel, p50/p99
//! over 100 changes with 1,000 Services (each with an EndpointSlice) in the cluster, kproxy
//! (nftables backend, default settings) running in a node namespace. One change = one
//! EndpointSlice write giving a Service a new endpoint address; it has reached the kernel
//! when `nft monitor` in the namespace shows that address. Changes are 1.1 s apart, more
//! than the default minSyncPeriod (1 s), which would otherwise bound every change (see
//! `e2e_daemon` for back-to-back changes). Asserts the goal, p99 <= 1 s. Needs root.
//!
//! Run with `cargo xtask e2e` (ignored under plain `cargo test`).
//!
//! As a benchmark at other sizes (issue 13 item 5: 10,000 Services with `minSyncPeriod: 0`,
//! goal p99 <= 50 ms): `KPROXY_PROGLAT_SERVICES=10000 KPROXY_PROGLAT_MIN_SYNC=0s cargo xtask
//! e2e --release --test e2e_programming_latency`. With a minimum sync period below the 1.1 s
//! spacing the printed numbers are the whole latency; the suite's assertion stays p99 <= 1 s.

mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{add_service_cidr, bulk_endpoint_ip, node, ApiRelay, E2eEnv, KproxyDaemon, NftMonitor, Scratch, NFT_NODE_ARGS};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};

const CHANGES: usize = 100;

/// Services in the cluster (`KPROXY_PROGLAT_SERVICES`, default 1,000).
fn services() -> usize {
    std::env::var("KPROXY_PROGLAT_SERVICES").map_or(1000, |v| v.parse().expect("KPROXY_PROGLAT_SERVICES: a number"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real API server: run `cargo xtask e2e`"]
async fn api_write_to_kernel_p99_at_1000_services() {
    let env = E2eEnv::require();
    kproxy_tests::require_root();
    let scratch = Scratch::new(&env, "proglat").await;
    let pp = PostParams::default();
    let node_name = format!("e2e-proglat-{}", std::process::id());
    Api::<Node>::all(scratch.admin.clone()).create(&pp, &node(&node_name, "198.19.0.8")).await.expect("create node");

    let services = services();
    if services > 4000 {
        // More ClusterIPs than the harness's /20 holds; outside every address used here.
        add_service_cidr(&scratch.admin, "198.19.192.0/18").await;
    }
    scratch.populate(services).await;

    let ns = kproxy_tests::Netns::new("e2e-proglat").expect("node netns");
    let relay = ApiRelay::start(&ns, &env.url).expect("relay");
    let monitor = NftMonitor::start(&ns);
    let t_start = Instant::now();
    let mut args = NFT_NODE_ARGS.to_vec();
    let min_sync = std::env::var("KPROXY_PROGLAT_MIN_SYNC").map(|v| format!("--nftables-min-sync-period={v}"));
    if let Ok(flag) = &min_sync {
        args.push(flag);
    }
    let mut daemon = KproxyDaemon::start(&env, &ns, &relay, &node_name, &args).expect("start kproxy");
    // The last-created endpoint in the kernel means the initial full sync is in.
    monitor.wait(&bulk_endpoint_ip(services - 1), Duration::from_secs(120)).expect("initial sync programmed");
    println!("kproxy start -> {services} services in the kernel: {:?}", t_start.elapsed());

    let mut lat = Vec::with_capacity(CHANGES);
    for n in 0..CHANGES {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let i = (n * 7) % services;
        let new_ip = format!("198.18.{}.{}", 200 + n / 250, 1 + n % 250);
        let patch = serde_json::json!({ "endpoints": [{ "addresses": [new_ip.clone()] }] });
        let t0 = Instant::now();
        scratch.slices.patch(&format!("svc-{i}-a"), &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
        let t1 = monitor.wait(&new_ip, Duration::from_secs(30)).expect("change programmed");
        lat.push(t1.saturating_duration_since(t0));
    }
    lat.sort();
    let (p50, p99, max) = (percentile(&lat, 0.5), percentile(&lat, 0.99), lat[CHANGES - 1]);
    println!(
        "network programming latency (API write -> kernel), {CHANGES} changes at {services} services \
         (minSyncPeriod {}): p50 {p50:?}, p99 {p99:?}, max {max:?}",
        min_sync.as_deref().map_or("default", |f| f.trim_start_matches("--nftables-min-sync-period="))
    );
    assert!(daemon.is_running(), "kproxy exited; log:\n{}", daemon.log_text());
    assert!(p99 <= Duration::from_secs(1), "p99 {p99:?} exceeds the 1 s goal");
}
