//! nftables backend, real packets: session affinity across endpoint removal, full resyncs
//! and timeouts. Two sticky services; removing one endpoint of the first must cost only the
//! clients stuck to that endpoint (upstream's behaviour), not every sticky client of the node;
//! a full resync (which recreates the table) must cost none; and an entry must go when
//! `timeoutSeconds` pass without traffic.
//!
//! Many sticky clients are needed to tell "kept" from "re-balanced by chance": the client
//! namespace gets [`SOURCES`] extra addresses, each one client.

mod nft_support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::{IpFamily, Protocol, ServicePort, SessionAffinity};
use kproxy_tests::{tcp_request_from, Topology};
use nft_support::*;

/// Sticky clients per family: all of them landing on their old endpoint by chance after a
/// flush (or an expiry) has probability 2^-16 or less.
const SOURCES: u8 = 16;
/// timeoutSeconds of the service whose expiry is observed.
const SHORT_TIMEOUT: u32 = 2;

/// Adds the extra client addresses (in the client's on-link subnet) and returns them.
fn sources(t: &Topology, fam: IpFamily) -> Vec<IpAddr> {
    (0..SOURCES)
        .map(|i| {
            let (ip, args): (IpAddr, Vec<String>) = match fam {
                IpFamily::V4 => {
                    let ip: IpAddr = format!("198.19.64.{}", 100 + i).parse().unwrap();
                    (ip, vec!["ip".into(), "addr".into(), "add".into(), format!("{ip}/24"), "dev".into(), "eth0".into()])
                }
                IpFamily::V6 => {
                    let ip: IpAddr = format!("2001:db8:c:64::1:{i:x}").parse().unwrap();
                    let cidr = format!("{ip}/64");
                    let a = ["ip", "-6", "addr", "add", &cidr, "dev", "eth0", "nodad"];
                    (ip, a.into_iter().map(String::from).collect())
                }
            };
            t.client().ns.exec(&args).expect("adding a client address");
            ip
        })
        .collect()
}

/// Which pod answers each source's new connection to `dest`.
fn round(t: &Topology, srcs: &[IpAddr], dest: SocketAddr) -> Vec<String> {
    srcs.iter()
        .map(|src| {
            let r = tcp_request_from(&t.client().ns, SocketAddr::new(*src, 0), dest, T);
            r.unwrap_or_else(|e| panic!("{src} -> {dest}: {e}")).server
        })
        .collect()
}

fn sticky(name: &str, fam: IpFamily, n: u8, pods: &[u8], timeout_seconds: u32) -> ServicePort {
    let eps: Vec<(u8, bool)> = pods.iter().map(|k| (*k, true)).collect();
    let mut sp = with_endpoints(service(name, Protocol::Tcp, &vip(fam, n), 80), &eps);
    sp.session_affinity = Some(SessionAffinity { timeout_seconds });
    sp
}

/// The affinity map's listing by the independent `nft` tool.
fn affinity_listing(t: &Topology, fam: IpFamily) -> String {
    let word = match fam {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    };
    t.node.exec(["nft", "list", "map", word, "kproxy", "affinity"]).expect("nft list map")
}

#[test]
fn removing_a_sticky_endpoint_keeps_every_other_sticky_client_ipv4() {
    case(IpFamily::V4);
}

#[test]
fn removing_a_sticky_endpoint_keeps_every_other_sticky_client_ipv6() {
    case(IpFamily::V6);
}

fn case(fam: IpFamily) {
    let t = topology(5);
    let srcs = sources(&t, fam);
    let (a_vip, b_vip, c_vip) = (sa(&vip(fam, 80), 80), sa(&vip(fam, 81), 80), sa(&vip(fam, 82), 80));
    let a = sticky("sticky-a", fam, 80, &[1, 2, 3], 600);
    let b_svc = sticky("sticky-b", fam, 81, &[4, 5], 600);
    let c = sticky("short", fam, 82, &[1, 2, 3], SHORT_TIMEOUT);
    let before = state(vec![a.clone(), b_svc.clone(), c.clone()]);
    let mut b = program(&t.node, &before);

    // Every client sticks to one endpoint of each service.
    let a0 = round(&t, &srcs, a_vip);
    let b0 = round(&t, &srcs, b_vip);
    assert_eq!(round(&t, &srcs, a_vip), a0, "{fam:?} A is sticky");
    assert_eq!(round(&t, &srcs, b_vip), b0, "{fam:?} B is sticky");

    // Remove the endpoint of A most clients stick to (others stick to the rest of A).
    let removed = ["pod1", "pod2", "pod3"].into_iter().max_by_key(|p| a0.iter().filter(|s| s == p).count()).unwrap();
    assert!(a0.iter().any(|s| s != removed), "{fam:?} some client of A sticks elsewhere: {a0:?}");
    let kept: Vec<u8> = [1u8, 2, 3].into_iter().filter(|k| format!("pod{k}") != removed).collect();
    let after = state(vec![sticky("sticky-a", fam, 80, &kept, 600), b_svc.clone(), c.clone()]);
    let started = Instant::now();
    update(&mut b, &before, &after);
    let partial = started.elapsed();
    let a1 = round(&t, &srcs, a_vip);
    for (i, (old, new)) in a0.iter().zip(&a1).enumerate() {
        if old == removed {
            assert_ne!(new, removed, "{fam:?} client {} of A leaves the removed endpoint", srcs[i]);
        } else {
            assert_eq!(new, old, "{fam:?} client {} of A keeps its endpoint {old} ({removed} was removed)", srcs[i]);
        }
    }
    assert_eq!(round(&t, &srcs, b_vip), b0, "{fam:?} every client of B keeps its endpoint");
    assert_eq!(round(&t, &srcs, a_vip), a1, "{fam:?} A's moved clients stick to their new endpoint");

    // A periodic full resync recreates the table and keeps every sticky client.
    let report = b.sync_full(&after).expect("full resync");
    assert!(report.warnings.is_empty(), "{fam:?} {:?}", report.warnings);
    assert_eq!(round(&t, &srcs, a_vip), a1, "{fam:?} A's clients keep their endpoints over a full resync");
    assert_eq!(round(&t, &srcs, b_vip), b0, "{fam:?} B's clients keep their endpoints over a full resync");

    // Expiry: within timeoutSeconds clients stay (each connection refreshes the entry);
    // after timeoutSeconds without traffic the entries are gone and clients re-balance.
    let c0 = round(&t, &srcs, c_vip);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(round(&t, &srcs, c_vip), c0, "{fam:?} C is sticky within its {SHORT_TIMEOUT} s");
    let c_ip = vip(fam, 82);
    assert!(affinity_listing(&t, fam).contains(&format!("{c_ip} . tcp . 80")), "{fam:?} C's entries listed");
    std::thread::sleep(Duration::from_millis(u64::from(SHORT_TIMEOUT) * 1000 + 1500));
    let listing = affinity_listing(&t, fam);
    assert!(!listing.contains(&format!("{c_ip} . tcp . 80")), "{fam:?} C's entries expired: {listing}");
    assert!(listing.contains(&format!("{} . tcp . 80", vip(fam, 81))), "{fam:?} B's (600 s) entries stay: {listing}");
    let c2 = round(&t, &srcs, c_vip);
    assert_ne!(c2, c0, "{fam:?} after {SHORT_TIMEOUT} s without traffic C's clients are balanced afresh");
    eprintln!("{fam:?}: partial sync with affinity cleanup took {partial:?}");
}
