//! Cold start from the real API server (issue 13 item 2b): process start -> objects listed ->
//! rules in the kernel, and the daemon's peak RSS, at 4,000 and 10,000 Services x 10
//! endpoints (one EndpointSlice each). A benchmark, not part of the suite: run it with
//! `cargo xtask e2e --release --test bench_cold_start` (sizes from `KPROXY_COLD_START`, e.g.
//! `1000x10,4000x10`; the default is `4000x10,10000x10`). Sizes grow in one namespace (no
//! namespace controller runs to delete a smaller cluster), so they must be increasing.
//!
//! Phases come from the daemon's own klog timestamps at `-v=4`: the first `"Syncing proxy
//! rules"` line (every watch has listed: the first sync waits for all of them) and the first
//! `"Synced proxy rules"` line (the kernel acknowledged the batch). Prints one line per size:
//! `cold NxE: listed A s, programmed B s, peak RSS C MB` and the goal it is held to.

mod e2e_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e_support::{add_service_cidr, endpoint_slice, node, service, ApiRelay, E2eEnv, KproxyDaemon, Scratch, NFT_NODE_ARGS};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};

/// A second ServiceCIDR (16,384 addresses): the harness's service range (a /20) holds only
/// 4,096 ClusterIPs. Outside every address the test uses (endpoints end below 198.19.136.0).
const EXTRA_SERVICE_CIDR: &str = "198.19.192.0/18";

/// Endpoint address `k` (0-based, up to 130,000) in 198.18.1.0 onwards.
fn endpoint_ip(k: usize) -> String {
    let n = 256 + k as u32;
    format!("198.{}.{}.{}", 18 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
}

/// Creates Services `svc-from`..`svc-to` with one slice of `eps` endpoints each.
async fn populate(scratch: &Scratch, from: usize, to: usize, eps: usize) {
    let started = std::time::Instant::now();
    futures::stream::iter(from..to)
        .map(|i| async move {
            let name = format!("svc-{i}");
            scratch.services.create(&PostParams::default(), &service(&scratch.ns, &name, 80, &[])).await?;
            let ips: Vec<String> = (0..eps).map(|j| endpoint_ip(i * eps + j)).collect();
            let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
            let slice = endpoint_slice(&scratch.ns, &format!("{name}-a"), &name, &refs);
            scratch.slices.create(&PostParams::default(), &slice).await?;
            Ok::<_, kube::Error>(())
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("create services and slices");
    println!("created Services {from}..{to} with {eps} endpoints each in {:.1?}", started.elapsed());
}

/// Seconds since midnight UTC of a klog line (`I1205 07:30:12.852027 ...`).
fn klog_seconds(line: &str) -> Option<f64> {
    let t = line.get(6..21)?;
    let (h, rest) = t.split_once(':')?;
    let (m, s) = rest.split_once(':')?;
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

/// Seconds since midnight UTC now.
fn now_seconds() -> f64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    (d.as_secs() % 86_400) as f64 + f64::from(d.subsec_micros()) / 1e6
}

/// Peak resident set of a process (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("daemon's /proc status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb / 1024.0
}

fn sizes() -> Vec<(usize, usize)> {
    let spec = std::env::var("KPROXY_COLD_START").unwrap_or_else(|_| "4000x10,10000x10".into());
    spec.split(',')
        .map(|s| {
            let (n, e) = s.trim().split_once('x').unwrap_or_else(|| panic!("KPROXY_COLD_START: {s:?} is not NxE"));
            (n.parse().expect("service count"), e.parse().expect("endpoints per service"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run `cargo xtask e2e --release --test bench_cold_start`"]
async fn cold_start_from_the_api_server() {
    let env = E2eEnv::require();
    kproxy_tests::require_root();
    let scratch = Scratch::new(&env, "cold").await;
    let node_name = format!("e2e-cold-{}", std::process::id());
    Api::<Node>::all(scratch.admin.clone())
        .create(&PostParams::default(), &node(&node_name, "198.19.150.8"))
        .await
        .expect("create node");
    add_service_cidr(&scratch.admin, EXTRA_SERVICE_CIDR).await;
    let mut have = 0;
    let mut results = Vec::new();
    for (services, eps) in sizes() {
        assert!(services > have, "KPROXY_COLD_START sizes must increase");
        populate(&scratch, have, services, eps).await;
        have = services;

        let ns = kproxy_tests::Netns::new("e2e-cold").expect("node netns");
        let relay = ApiRelay::start(&ns, &env.url).expect("relay");
        let mut args = NFT_NODE_ARGS.to_vec();
        args.push("-v=4");
        let t0 = now_seconds();
        let mut daemon = KproxyDaemon::start(&env, &ns, &relay, &node_name, &args).expect("start kproxy");
        let synced = daemon.wait_log("\"Synced proxy rules\"", Duration::from_secs(120)).expect("first sync");
        let rss = peak_rss_mb(daemon.pid());
        let syncing = daemon.wait_log("\"Syncing proxy rules\"", Duration::from_secs(1)).expect("sync start line");
        let listed = klog_seconds(&syncing).expect("klog timestamp") - t0;
        let programmed = klog_seconds(&synced).expect("klog timestamp") - t0;
        let table = ns.exec(["nft", "list", "table", "ip", "kproxy"]).expect("nft list table");
        let last = endpoint_ip(services * eps - 1);
        assert!(daemon.is_running(), "kproxy exited; log:\n{}", daemon.log_text());
        drop(daemon);
        println!(
            "cold {services}x{eps}: listed {listed:.2} s, programmed {programmed:.2} s, peak RSS {rss:.0} MB"
        );
        assert!(table.contains(&last), "the last Service's endpoint {last} is not in the kernel");
        results.push((services, eps, programmed, rss));
    }
    for (services, eps, programmed, rss) in results {
        // Issue 13's goals: 4,000 x 10 in 0.5 s, 10,000 x 10 in 1 s, <= 150 MB.
        let goal = if services <= 4000 { 0.5 } else { 1.0 };
        let verdict = if programmed <= goal && rss <= 150.0 { "met" } else { "NOT met" };
        println!("goal {services}x{eps}: start -> programmed <= {goal} s and <= 150 MB: {verdict}");
    }
}
