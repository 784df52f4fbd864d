//! nftables backend at scale in a real kernel: 120,000 endpoints in one batch (no ENOBUFS,
//! no 64 KiB attribute overflow), then a partial sync on top. Timing is for benchmarks
//! (`nft_apply`); this test only proves it works and that the kernel holds every element.

mod nft_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::{Endpoint, Protocol};
use kproxy_tests::{require_root, Netns};
use nft_support::*;

const SERVICES: u32 = 20_000;
const EPS: u32 = 6;

fn big_state() -> kproxy_core::model::ProxyState {
    let ports = (0..SERVICES)
        .map(|s| {
            let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 128, 0)) + s);
            let mut sp = service(&format!("s{s}"), Protocol::Tcp, &vip.to_string(), 80);
            let mut eps: Vec<SocketAddr> = (0..EPS)
                .map(|e| {
                    let k = s * EPS + e;
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, (k >> 8) as u8, k as u8)), 8000 + (k >> 16) as u16)
                })
                .collect();
            eps.sort();
            sp.endpoints = eps.iter().map(|a| Endpoint { addr: *a, local: false, ready: true, serving: true, terminating: false }).collect();
            sp.cluster_endpoints = eps;
            sp
        })
        .collect();
    state(ports)
}

fn count_elements(ns: &Netns, map: &str) -> usize {
    let out = ns.exec(["nft", "-j", "list", "map", "ip", "kproxy", map]).expect("nft -j list map");
    let v: serde_json::Value = serde_json::from_str(&out).expect("nft JSON");
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o.get("map")))
        .and_then(|m| m.get("elem"))
        .and_then(|e| e.as_array())
        .map_or(0, Vec::len)
}

#[test]
fn a_hundred_thousand_endpoints_commit_in_one_batch_and_update_partially() {
    require_root();
    let ns = Netns::new("nft-scale").unwrap();
    let s = big_state();
    let mut b = backend(&ns);
    let report = b.sync_full(&s).expect("full sync of 120k endpoints");
    assert!(report.operations > 100, "split over many messages: {}", report.operations);
    assert_eq!(count_elements(&ns, "service-ips"), SERVICES as usize);
    // One endpoint of one service replaced.
    let mut next = s.clone();
    let sp = next.services.values_mut().next().unwrap();
    sp.cluster_endpoints[0] = "198.18.255.254:9999".parse().unwrap();
    sp.cluster_endpoints.sort();
    let changes = s.diff(&next);
    let partial = b.sync_changes(&next, &changes).expect("partial sync");
    assert!(partial.operations <= 4, "a one-endpoint change is a few messages: {}", partial.operations);
    let text = ns.exec(["nft", "list", "map", "ip", "kproxy", "service-ips"]).unwrap();
    assert!(text.contains("default/s19999:p"), "last service present");
}
