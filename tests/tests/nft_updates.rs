//! nftables backend, real packets: partial syncs (endpoints added, removed, terminating
//! fallback; services added, removed, changed type), checked by traffic after each sync.

mod nft_support;

use std::net::SocketAddr;

use kproxy_core::backend::{ProxyBackend, SyncKind};
use kproxy_core::model::{IpFamily, Protocol, ProxyState};
use kproxy_nft::record::Record;
use kproxy_nft::Plan;
use kproxy_tests::Proto;
use nft_support::*;

fn web(fam: IpFamily, pods: &[(u8, bool)]) -> kproxy_core::model::ServicePort {
    with_endpoints(service("web", Protocol::Tcp, &vip(fam, 10), 80), pods)
}

fn both(f: impl Fn(IpFamily) -> Vec<kproxy_core::model::ServicePort>) -> ProxyState {
    state([IpFamily::V4, IpFamily::V6].into_iter().flat_map(f).collect())
}

#[test]
fn endpoint_changes_are_applied_as_partial_syncs() {
    let t = topology(3);
    let s1 = both(|f| vec![web(f, &[(1, true)])]);
    let mut b = program(&t.node, &s1);
    for fam in [IpFamily::V4, IpFamily::V6] {
        assert_spread(&send(&t.pod(2).ns, Proto::Tcp, sa(&vip(fam, 10), 80), 6, T), 6, &[1], pod_ip(fam, 2));
    }

    // Endpoints added: the lb chain for 3 endpoints appears, the one for 1 goes.
    let s2 = both(|f| vec![web(f, &[(1, true), (2, true), (3, true)])]);
    let changes = s1.diff(&s2);
    let report = b.sync_changes(&s2, &changes).expect("partial sync");
    assert_eq!(report.kind, SyncKind::Partial);
    for fam in [IpFamily::V4, IpFamily::V6] {
        let r = send(&t.pod(1).ns, Proto::Tcp, sa(&vip(fam, 10), 80), 30, T);
        assert_eq!(r.by_server.len(), 3, "{fam:?} after adding endpoints: {r}");
    }
    let text = kproxy_tests::nft_text(&t.node).unwrap();
    assert!(text.contains("chain cluster-3"), "lb chain for 3 endpoints exists:\n{text}");
    assert!(!text.contains("chain cluster-1 "), "unused lb chain was deleted:\n{text}");

    // Endpoint removed.
    let s3 = both(|f| vec![web(f, &[(1, true), (3, true)])]);
    update(&mut b, &s2, &s3);
    for fam in [IpFamily::V4, IpFamily::V6] {
        let r = send(&t.pod(2).ns, Proto::Tcp, sa(&vip(fam, 10), 80), 24, T);
        assert_spread(&r, 24, &[1, 3], pod_ip(fam, 2));
    }

    // Only terminating endpoints left: the core falls back to serving+terminating ones.
    let s4 = both(|f| {
        let mut sp = web(f, &[(3, true)]);
        sp.endpoints.iter_mut().for_each(|e| {
            e.ready = false;
            e.terminating = true;
        });
        vec![sp]
    });
    update(&mut b, &s3, &s4);
    for fam in [IpFamily::V4, IpFamily::V6] {
        assert_spread(&send(&t.pod(2).ns, Proto::Tcp, sa(&vip(fam, 10), 80), 6, T), 6, &[3], pod_ip(fam, 2));
    }

    // No endpoints at all: REJECT.
    let s5 = both(|f| vec![web(f, &[])]);
    update(&mut b, &s4, &s5);
    for fam in [IpFamily::V4, IpFamily::V6] {
        let r = send(&t.pod(2).ns, Proto::Tcp, sa(&vip(fam, 10), 80), 2, T);
        assert_eq!(r.refused, 2, "{fam:?}: {r}");
    }
    // What the backend remembers of its partial syncs is what a full sync of s5 records.
    assert_eq!(b.record(), &Record::from_elements(&Plan::render(&s5).elements));
}

#[test]
fn services_added_removed_and_changing_type() {
    let t = topology(2);
    let s1 = both(|f| vec![web(f, &[(1, true), (2, true)])]);
    let mut b = program(&t.node, &s1);

    // A second service is added.
    let s2 = both(|f| {
        vec![web(f, &[(1, true), (2, true)]), with_endpoints(service("api", Protocol::Udp, &vip(f, 11), 53), &[(2, true)])]
    });
    update(&mut b, &s1, &s2);
    for fam in [IpFamily::V4, IpFamily::V6] {
        assert_spread(&send(&t.pod(1).ns, Proto::Udp, sa(&vip(fam, 11), 53), 6, T), 6, &[2], pod_ip(fam, 1));
    }

    // web becomes a NodePort service (type change): the NodePort starts to answer.
    let s3 = both(|f| {
        let mut w = web(f, &[(1, true), (2, true)]);
        w.node_port = Some(30010);
        vec![w, with_endpoints(service("api", Protocol::Udp, &vip(f, 11), 53), &[(2, true)])]
    });
    update(&mut b, &s2, &s3);
    for fam in [IpFamily::V4, IpFamily::V6] {
        let r = send(&t.client().ns, Proto::Tcp, SocketAddr::new(node_ip(fam), 30010), 12, T);
        assert_spread(&r, 12, &[1, 2], gateway(fam));
    }

    // api is removed: its ClusterIP is now an unallocated ServiceCIDR address (DROP);
    // web is back to ClusterIP only: the NodePort no longer answers.
    update(&mut b, &s3, &s1);
    for fam in [IpFamily::V4, IpFamily::V6] {
        let r = send(&t.pod(1).ns, Proto::Udp, sa(&vip(fam, 11), 53), 2, DROP_T);
        assert_eq!(r.answered(), 0, "{fam:?} removed service: {r}");
        let r = send(&t.client().ns, Proto::Tcp, SocketAddr::new(node_ip(fam), 30010), 2, DROP_T);
        assert_eq!(r.answered(), 0, "{fam:?} removed NodePort: {r}");
        assert_eq!(send(&t.pod(1).ns, Proto::Tcp, sa(&vip(fam, 10), 80), 4, T).answered(), 4);
    }
    // The kernel holds exactly what a fresh full sync of s1 would: compare element counts.
    let after_partial = kproxy_tests::nft_text(&t.node).unwrap();
    b.sync_full(&s1).expect("full sync");
    let after_full = kproxy_tests::nft_text(&t.node).unwrap();
    assert_eq!(normalise(&after_partial), normalise(&after_full), "partial syncs converge to the full state");
}

/// Sorted lines (element order within a listing depends on insertion history).
fn normalise(listing: &str) -> Vec<String> {
    let mut lines: Vec<String> = listing
        .lines()
        .flat_map(|l| l.split(", ").map(|s| s.trim().trim_start_matches("elements = {").trim_end_matches('}').trim().to_string()))
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}
