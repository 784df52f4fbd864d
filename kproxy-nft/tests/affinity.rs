//! Session affinity entries across syncs, on the fake kernel (no root): the packet path's
//! entries are simulated with `FakeKernel::packet_update`. A partial sync that removes a
//! sticky endpoint deletes only the entries pointing at it (also those recorded between its
//! read and its commit); a full sync carries every still-valid entry over with the time it
//! had left.

use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::*;
use kproxy_nft::lowlevel::{FakeKernel, PacketUpdate, RawData, TableFamily};
use kproxy_nft::{NftBackend, NftConfig, NftError};

mod support;
use support::*;

/// Sticky ClusterIP s1 (endpoints 1, 2, 3; NodePort 30001) and sticky s2 (endpoints 4, 5),
/// 30 s timeout.
fn sticky(s1: &[u32]) -> ProxyState {
    state(vec![port(1, s1, true, Some(30001)), port(2, &[4, 5], true, None)])
}

/// `client . 198.19.160.SVC . tcp . 80 : 198.18.0.EP . 8080`, 30 s.
fn entry(client: u8, svc: u8, ep: u8) -> PacketUpdate {
    PacketUpdate {
        family: TableFamily::Ip,
        table: "kproxy".into(),
        set: "affinity".into(),
        key: vec![198, 18, 9, client, 198, 19, 160, svc, 6, 0, 0, 0, 0, 80, 0, 0],
        data: vec![198, 18, 0, ep, 0x1f, 0x90, 0, 0],
        timeout_ms: 30_000,
    }
}

/// `client . tcp . 30001 : 198.18.0.EP . 8080`, 30 s.
fn nodeport_entry(client: u8, ep: u8) -> PacketUpdate {
    PacketUpdate {
        set: "nodeport-affinity".into(),
        key: vec![198, 18, 9, client, 6, 0, 0, 0, 0x75, 0x31, 0, 0],
        ..entry(client, 1, ep)
    }
}

/// (client, endpoint, time left in ms) of each entry of `set`.
fn entries(b: &mut NftBackend<FakeKernel>, set: &str) -> Vec<(u8, u8, Option<u64>)> {
    use kproxy_nft::lowlevel::NftKernel;
    let els = b.kernel_mut().set_elements(TableFamily::Ip, "kproxy", set).expect("the map exists");
    els.iter()
        .map(|e| match &e.data {
            RawData::Bytes(d) => (e.key[3], d[3], e.expiration_ms),
            other => panic!("an affinity entry with {other:?}"),
        })
        .collect()
}

fn backend(s: &ProxyState) -> NftBackend<FakeKernel> {
    let mut b = NftBackend::fake(NftConfig::default());
    b.sync_full(s).expect("full sync");
    b
}

#[test]
fn a_partial_sync_deletes_only_the_entries_of_the_removed_endpoint() {
    let before = sticky(&[1, 2, 3]);
    let mut b = backend(&before);
    for u in [entry(1, 1, 1), entry(2, 1, 2), entry(3, 1, 3), entry(4, 2, 4), entry(5, 2, 5), nodeport_entry(6, 2), nodeport_entry(7, 3)] {
        b.kernel_mut().packet_update(&u).expect("packet path update");
    }
    // The packet path records one more client on the endpoint being removed while the
    // sync runs (after its read, before its commit).
    b.kernel_mut().packet_update_before_next_commit(entry(8, 1, 2));
    let after = sticky(&[1, 3]);
    let report = b.sync_changes(&after, &before.diff(&after)).expect("partial sync");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        entries(&mut b, "affinity"),
        vec![(1, 1, Some(30_000)), (3, 3, Some(30_000)), (4, 4, Some(30_000)), (5, 5, Some(30_000))],
        "s1's clients of endpoints 1 and 3 and every client of s2 keep their endpoints; \
         the clients of the removed endpoint 2 (also the one recorded during the sync) do not"
    );
    assert_eq!(entries(&mut b, "nodeport-affinity"), vec![(7, 3, Some(30_000))], "NodePort: only endpoint 2's entry goes");
}

#[test]
fn an_unrelated_change_reads_and_deletes_nothing() {
    let before = sticky(&[1, 2, 3]);
    let mut b = backend(&before);
    b.kernel_mut().packet_update(&entry(1, 1, 2)).expect("packet path update");
    let mut after = before.clone();
    let p = port(3, &[7], false, None);
    after.services.insert(p.key(), p);
    b.sync_changes(&after, &before.diff(&after)).expect("partial sync");
    assert_eq!(entries(&mut b, "affinity"), vec![(1, 2, Some(30_000))]);
}

#[test]
fn a_full_sync_carries_valid_entries_over_with_the_time_they_had_left() {
    let before = sticky(&[1, 2, 3]);
    let mut b = backend(&before);
    for u in [entry(1, 1, 1), entry(2, 1, 2), entry(4, 2, 4), nodeport_entry(6, 3), nodeport_entry(7, 2)] {
        b.kernel_mut().packet_update(&u).expect("packet path update");
    }
    b.kernel_mut().advance(12_000);
    let commits = b.kernel().commits();
    // A full sync of a state without endpoint 2 (a resync after a missed event).
    let report = b.sync_full(&sticky(&[1, 3])).expect("full sync");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(b.kernel().commits(), commits + 1, "one transaction recreated the table");
    assert_eq!(entries(&mut b, "affinity"), vec![(1, 1, Some(18_000)), (4, 4, Some(18_000))]);
    assert_eq!(entries(&mut b, "nodeport-affinity"), vec![(6, 3, Some(18_000))]);
    // They still expire when their time is up, not later.
    b.kernel_mut().advance(18_000);
    assert!(entries(&mut b, "affinity").is_empty());
    // Without stickiness nothing is carried over.
    b.kernel_mut().packet_update(&entry(1, 1, 1)).expect("packet path update");
    let mut plain = sticky(&[1, 3]);
    for sp in plain.services.values_mut() {
        sp.session_affinity = None;
    }
    b.sync_full(&plain).expect("full sync");
    assert!(entries(&mut b, "affinity").is_empty());
}

#[test]
fn the_first_full_sync_on_an_empty_kernel_has_nothing_to_carry() {
    let mut b = NftBackend::fake(NftConfig::default());
    let report = b.sync_full(&sticky(&[1])).expect("full sync");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn a_failed_read_fails_a_partial_sync_before_anything_is_sent() {
    let before = sticky(&[1, 2, 3]);
    let mut b = backend(&before);
    b.kernel_mut().packet_update(&entry(1, 1, 2)).expect("packet path update");
    let commits = b.kernel().commits();
    b.kernel_mut().fail_next_read(libc::ENOMEM);
    let after = sticky(&[1, 3]);
    let err = b.sync_changes(&after, &before.diff(&after)).expect_err("the read fails");
    assert!(matches!(err, NftError::ReadAffinity { .. }), "{err}");
    assert!(err.to_string().contains("nothing of the sync was sent"), "{err}");
    assert_eq!(b.kernel().commits(), commits, "nothing committed");
    // The same sync again works and deletes the stale entry.
    b.sync_changes(&after, &before.diff(&after)).expect("partial sync");
    assert!(entries(&mut b, "affinity").is_empty());
}

#[test]
fn a_failed_read_leaves_a_full_sync_working_with_a_warning() {
    let s = sticky(&[1, 2, 3]);
    let mut b = backend(&s);
    b.kernel_mut().packet_update(&entry(1, 1, 2)).expect("packet path update");
    b.kernel_mut().fail_next_read(libc::ENOMEM);
    let report = b.sync_full(&s).expect("the full sync itself works");
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("sticky clients may get a new endpoint"), "{:?}", report.warnings);
    assert!(entries(&mut b, "affinity").is_empty(), "the maps start empty");
}
