//! End-to-end apply benchmark and debugging aid.
//!
//! `apply [--script] [--once] SERVICES ENDPOINTS`: builds a synthetic cluster (services in
//! 198.19.160.0/20 and beyond, endpoints in 198.18.0.0/16), then either prints the nft
//! script (`--script`) or programs it through netlink in the current network namespace and
//! prints timings: cold sync, one endpoint change, peak RSS. Run it in a fresh namespace:
//! `ip netns add b; ip netns exec b target/release/examples/apply 10000 10`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::*;
use kproxy_nft::{render_script, NftBackend, NftConfig};

fn synthetic(services: u32, eps: u32) -> ProxyState {
    let settings = ProxySettings {
        node_name: "node".into(),
        node_ips: vec![IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1))],
        masquerade_all: false,
        masquerade_bit: 14,
        local_detector: LocalDetector::ClusterCidrs(vec!["198.18.0.0/16".parse().unwrap()]),
        node_port_addresses: NodePortAddresses::Primary,
    };
    let mut map = BTreeMap::new();
    let mut k: u32 = 0;
    for s in 0..services {
        let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 160, 0)) + s);
        let name = ServicePortName { namespace: "bench".into(), name: format!("svc-{s}"), port: "http".into(), protocol: Protocol::Tcp };
        let endpoints: Vec<SocketAddr> = (0..eps)
            .map(|_| {
                k += 1;
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, (k >> 8) as u8, k as u8)), 8000 + (k >> 16) as u16)
            })
            .collect();
        let mut sorted = endpoints.clone();
        sorted.sort();
        let sp = ServicePort {
            name: name.clone(),
            family: IpFamily::V4,
            cluster_ip: IpAddr::V4(vip),
            port: 80,
            node_port: None,
            external_ips: vec![],
            load_balancer_ips: vec![],
            load_balancer_source_ranges: vec![],
            session_affinity: None,
            internal_traffic_policy: TrafficPolicy::Cluster,
            external_traffic_policy: TrafficPolicy::Cluster,
            health_check_node_port: None,
            endpoints: sorted.iter().map(|a| Endpoint { addr: *a, local: false, ready: true, serving: true, terminating: false }).collect(),
            cluster_endpoints: sorted,
            local_endpoints: vec![],
        };
        map.insert(sp.key(), sp);
    }
    ProxyState { settings, service_cidrs: vec!["198.19.160.0/20".parse().unwrap()], services: map }
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0)))
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let script = args.iter().any(|a| a == "--script");
    let nums: Vec<u32> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let (s, e) = (nums.first().copied().unwrap_or(10), nums.get(1).copied().unwrap_or(2));
    let t0 = Instant::now();
    let state = synthetic(s, e);
    let t_gen = t0.elapsed();
    let cfg = NftConfig::default();
    if script {
        print!("{}", render_script(&state, &cfg));
        return Ok(());
    }
    let mut backend = NftBackend::new(cfg)?;
    let t1 = Instant::now();
    let report = backend.sync_full(&state)?;
    let t_full = t1.elapsed();
    if args.iter().any(|a| a == "--cold-only") {
        println!("services={s} endpoints/service={e} cold_sync={:.1}ms ({} msgs)", t_full.as_secs_f64() * 1e3, report.operations);
        return Ok(());
    }
    // One endpoint change.
    let mut next = state.clone();
    if let Some(sp) = next.services.values_mut().next() {
        let old = sp.cluster_endpoints[0];
        let new = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 255, 254)), old.port());
        sp.cluster_endpoints[0] = new;
        sp.cluster_endpoints.sort();
        sp.endpoints[0].addr = new;
        sp.endpoints.sort();
    }
    let t2 = Instant::now();
    let changes = state.diff(&next);
    let partial = backend.sync_changes(&next, &changes)?;
    let t_partial = t2.elapsed();
    println!(
        "services={s} endpoints/service={e} generate={:.1}ms cold_sync={:.1}ms ({} msgs) one_endpoint_change={:.3}ms ({} msgs) peak_rss={}MB",
        t_gen.as_secs_f64() * 1e3,
        t_full.as_secs_f64() * 1e3,
        report.operations,
        t_partial.as_secs_f64() * 1e3,
        partial.operations,
        peak_rss_kb() / 1024
    );
    if args.iter().any(|a| a == "--cleanup") {
        backend.cleanup()?;
    }
    Ok(())
}
