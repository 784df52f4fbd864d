//! The whole backend path without root: state -> plan -> transaction -> fake kernel, whose
//! rules (references resolve, no duplicate elements, nothing missing deleted) every sync must
//! pass. The main property: after any sequence of partial syncs the fake holds exactly what
//! one full sync of the last state gives.

use std::net::{IpAddr, SocketAddr};

use kproxy_core::backend::{ProxyBackend, SyncKind};
use kproxy_core::model::*;
use kproxy_nft::lowlevel::{FakeKernel, FakeTable, SetElement, TableFamily};
use kproxy_nft::plan::{ChainRef, Key, LbKind, SetId, Value, Verdict};
use kproxy_nft::{NftBackend, NftConfig, NftError};

mod support;
use support::*;

fn fake() -> NftBackend<FakeKernel> {
    NftBackend::fake(NftConfig::default())
}

fn full(s: &ProxyState) -> NftBackend<FakeKernel> {
    let mut b = fake();
    b.sync_full(s).expect("full sync on the fake");
    b
}

fn table(b: &NftBackend<FakeKernel>, family: TableFamily) -> &FakeTable {
    b.kernel().table(family, "kproxy").expect("kproxy's table")
}

fn chains(b: &NftBackend<FakeKernel>) -> Vec<String> {
    table(b, TableFamily::Ip).chains.keys().cloned().collect()
}

/// An IPv6 twin of `port(s, ..)`: same shape, IPv6 addresses.
fn port6(s: u32, eps: &[u32]) -> ServicePort {
    let mut p = port(s, eps, false, None);
    p.family = IpFamily::V6;
    p.cluster_ip = format!("2001:db8:b::{s:x}").parse().unwrap();
    let v6 = |a: SocketAddr| SocketAddr::new(format!("2001:db8:a::{:x}", u32::from(ipv4(a.ip())) & 0xffff).parse().unwrap(), a.port());
    for e in &mut p.endpoints {
        e.addr = v6(e.addr);
    }
    p.endpoints.sort();
    p.cluster_endpoints = p.endpoints.iter().map(|e| e.addr).collect();
    p.local_endpoints = p.cluster_endpoints.clone();
    p
}

fn ipv4(ip: IpAddr) -> std::net::Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => unreachable!("support::ep gives IPv4 addresses"),
    }
}

/// `states()` with IPv6 ports and a ServiceCIDR change on the way.
fn sequence() -> Vec<ProxyState> {
    let mut all = states();
    for (i, s) in all.iter_mut().enumerate() {
        let p = port6(40 + i as u32 % 2, &(0..(i as u32 % 3)).collect::<Vec<_>>());
        s.services.insert(p.key(), p);
    }
    all[3].service_cidrs.push("2001:db8:b::/112".parse().unwrap());
    all
}

#[test]
fn a_full_sync_creates_both_tables_every_set_and_the_chains_elements_point_to() {
    let s = state(vec![port(1, &[1, 2], false, Some(30001)), port(2, &[3], true, None), port(3, &[], false, None)]);
    let b = full(&s);
    for fam in [TableFamily::Ip, TableFamily::Ip6] {
        let t = table(&b, fam);
        assert_eq!(t.sets.len(), SetId::ALL.len(), "{fam:?}");
        for chain in ["nat-prerouting", "services", "masquerading", "reject-chain"] {
            assert!(t.chains.contains_key(chain), "{fam:?} {chain}");
        }
    }
    assert!(chains(&b).iter().any(|c| c == "cluster-2") && chains(&b).iter().any(|c| c == "affinity-30"), "{:?}", chains(&b));
    let t = table(&b, TableFamily::Ip);
    let vip = |n: u8| IpAddr::from([198, 19, 160, n]);
    let dispatch = |n, chain| SetElement::Typed {
        key: Key::Dest(vip(n), Protocol::Tcp, 80),
        value: Value::Verdict(Verdict::Goto(chain)),
        comment: "".into(),
    };
    assert!(t.sets["service-ips"].contains(&dispatch(1, ChainRef::Lb(LbKind::Cluster, 2))));
    assert!(t.sets["no-endpoint-services"].contains(&dispatch(3, ChainRef::Reject)));
    // Every recorded element is in the fake (interval sets hold nft's interval encoding).
    for ((fam, set, key), e) in &b.record().elements {
        if set.is_interval() {
            continue;
        }
        let f: TableFamily = (*fam).into();
        let el = SetElement::Typed { key: *key, value: e.value, comment: e.comment.clone() };
        assert!(table(&b, f).sets[set.name()].contains(&el), "{fam:?} {} {key:?}", set.name());
    }
}

#[test]
fn partial_syncs_leave_what_a_full_sync_of_the_same_state_leaves() {
    let all = sequence();
    let mut b = full(&all[0]);
    for w in all.windows(2) {
        let changes = w[0].diff(&w[1]);
        let report = b.sync_changes(&w[1], &changes).expect("partial sync on the fake");
        assert_eq!(report.kind, SyncKind::Partial);
        let want = full(&w[1]);
        for fam in [TableFamily::Ip, TableFamily::Ip6] {
            assert_eq!(table(&b, fam), table(&want, fam), "{fam:?} after {changes:?}");
        }
        assert_eq!(b.record(), want.record());
    }
}

#[test]
fn lb_chains_come_and_go_with_endpoint_counts() {
    let one = state(vec![port(1, &[1], false, None)]);
    let three = state(vec![port(1, &[1, 2, 3], false, None)]);
    let mut b = full(&one);
    assert!(chains(&b).contains(&"cluster-1".to_string()));
    b.sync_changes(&three, &one.diff(&three)).unwrap();
    assert!(chains(&b).contains(&"cluster-3".to_string()), "created: {:?}", chains(&b));
    assert!(!chains(&b).contains(&"cluster-1".to_string()), "nothing points to it: deleted");
    let none = state(vec![]);
    b.sync_changes(&none, &three.diff(&none)).unwrap();
    let lb = |c: &String| c.strip_prefix("cluster-").is_some_and(|n| n.parse::<u32>().is_ok());
    assert!(!chains(&b).iter().any(lb), "{:?}", chains(&b));
}

#[test]
fn a_rejected_partial_sync_keeps_record_and_kernel() {
    let a = state(vec![port(1, &[1], false, None)]);
    let c = state(vec![port(1, &[1, 2], false, None)]);
    let mut b = full(&a);
    let (kernel, record) = (b.kernel().tables().clone(), b.record().clone());
    b.kernel_mut().fail_next_commit(libc::ENOMEM);
    let err = b.sync_changes(&c, &a.diff(&c)).expect_err("the injected failure");
    assert!(matches!(err, NftError::PartialSync { .. }), "{err}");
    assert_eq!((b.kernel().tables(), b.record()), (&kernel, &record), "nothing changed");
    b.sync_changes(&c, &a.diff(&c)).expect("the retry applies the same changes");
    assert!(chains(&b).contains(&"cluster-2".to_string()));
}

#[test]
fn cleanup_removes_both_tables_and_is_idempotent() {
    let mut b = full(&state(vec![port(1, &[1], true, Some(30001))]));
    b.cleanup().expect("cleanup");
    assert!(b.kernel().tables().is_empty());
    b.cleanup().expect("a second cleanup finds nothing and succeeds");
    let mut other = fake();
    other.cleanup().expect("cleanup of a kernel that never had the tables");
}

#[test]
fn tables_of_other_names_are_left_alone() {
    let s = state(vec![port(1, &[1], false, None)]);
    let mut b = full(&s);
    let mut cni = NftBackend::with_kernel(NftConfig { table_name: "cni".into(), ..NftConfig::default() }, b.kernel().clone());
    cni.sync_full(&s).unwrap();
    cni.cleanup().unwrap();
    assert!(cni.kernel().table(TableFamily::Ip, "kproxy").is_some(), "kproxy's table survives the CNI's cleanup");
    b.cleanup().unwrap();
}
