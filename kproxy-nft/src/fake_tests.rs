//! The fake kernel's own rules, one test per rule.

use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::{IpFamily, Protocol};

use super::*;
use crate::tx::RawElement;
use crate::plan::{ChainRef, Key, LbKind, SetId, Verdict};
use crate::stmt::{Field, RuleBuilder};

const T: &str = "t";
const F: TableFamily = TableFamily::Ip;

/// NEWSET attributes: flags, key length, and for maps data type and length.
fn set_raw(key_len: u32, data: Option<(u32, u32)>) -> Vec<u8> {
    let attr = |ty: u16, v: u32| {
        let mut a = 8u16.to_ne_bytes().to_vec();
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(&v.to_be_bytes());
        a
    };
    let mut raw = attr(3, if data.is_some() { SET_MAP } else { 0 });
    raw.extend(attr(5, key_len));
    if let Some((ty, len)) = data {
        raw.extend(attr(6, ty));
        raw.extend(attr(7, len));
    }
    raw
}

fn typed(key: Key, value: Value) -> SetElement {
    SetElement::Typed { key, value, comment: "".into() }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A table with a regular chain `c`, a base chain `base`, an address set `addrs`, a verdict
/// map `vmap` (`ip . proto . port`) and an endpoint map `eps`.
fn base() -> FakeKernel {
    let mut k = FakeKernel::new();
    let mut tx = Transaction::new();
    tx.add_table(F, T);
    tx.add_chain(F, T, "c", None);
    tx.add_chain(F, T, "base", Some(ChainHook { kind: "filter", hooknum: 1, priority: 0 }));
    tx.add_set_raw(F, T, "addrs", &set_raw(4, None));
    tx.add_set_raw(F, T, "vmap", &set_raw(12, Some((DATA_VERDICT, 0))));
    tx.add_set_raw(F, T, "eps", &set_raw(4, Some((13, 8))));
    k.commit(&tx).expect("the base table");
    k
}

fn errno(k: &mut FakeKernel, tx: &Transaction) -> i32 {
    match k.commit(tx) {
        Err(NetlinkError::Rejected { source, .. }) => source.raw_os_error().expect("an errno"),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn one(op: Op) -> Transaction {
    let mut tx = Transaction::new();
    tx.push(op);
    tx
}

fn goto_c() -> Value {
    Value::Verdict(Verdict::Goto(ChainRef::Lb(LbKind::Cluster, 1)))
}

#[test]
fn a_failed_transaction_changes_nothing() {
    let mut k = base();
    let before = k.tables().clone();
    let mut tx = Transaction::new();
    tx.add_chain(F, T, "new", None);
    tx.add_elements(F, T, "addrs", vec![typed(Key::Addr(ip("198.18.0.1")), Value::None)]);
    tx.delete_chain(F, T, "missing");
    assert_eq!(errno(&mut k, &tx), libc::ENOENT);
    assert_eq!(k.tables(), &before, "neither the chain nor the element stayed");
    assert_eq!(k.commits(), 1);
}

#[test]
fn missing_objects_are_enoent() {
    let mut k = base();
    let other = |op| one(op);
    let cases = [
        other(Op::DeleteTable { family: F, table: "nope".into() }),
        other(Op::DeleteTable { family: TableFamily::Ip6, table: T.into() }),
        other(Op::AddChain { family: F, table: "nope".into(), chain: "c".into(), hook: None }),
        other(Op::DeleteChain { family: F, table: T.into(), chain: "nope".into() }),
        other(Op::FlushSet { family: F, table: T.into(), set: "nope".into() }),
        other(Op::AddRule { family: F, table: T.into(), rule: RuleBuilder::new(IpFamily::V4, "nope").drop_().build() }),
        other(Op::AddRule { family: F, table: T.into(), rule: RuleBuilder::new(IpFamily::V4, "c").jump("nope").build() }),
        other(Op::AddRule {
            family: F,
            table: T.into(),
            rule: RuleBuilder::new(IpFamily::V4, "c").in_named_set(&[Field::Daddr], "nope", false).drop_().build(),
        }),
        other(Op::DeleteElements {
            family: F,
            table: T.into(),
            set: "addrs".into(),
            elements: vec![typed(Key::Addr(ip("198.18.0.9")), Value::None)],
        }),
        other(Op::AddElements {
            family: F,
            table: T.into(),
            set: "vmap".into(),
            elements: vec![typed(Key::Dest(ip("198.19.160.1"), Protocol::Tcp, 80), goto_c())],
        }),
    ];
    for tx in &cases {
        assert_eq!(errno(&mut k, tx), libc::ENOENT, "{:?}", tx.ops());
    }
}

#[test]
fn rules_resolve_their_sets_and_chains() {
    let mut k = base();
    let mut tx = Transaction::new();
    tx.add_rule(F, T, RuleBuilder::new(IpFamily::V4, "base").in_named_set(&[Field::Daddr], "addrs", false).jump("c").build());
    tx.add_rule(F, T, RuleBuilder::new(IpFamily::V4, "base").vmap_named(&[Field::Daddr, Field::L4proto, Field::Dport], "vmap").build());
    k.commit(&tx).expect("lookups of existing sets, a jump to an existing chain");
    let rules = &k.table(F, T).unwrap().chains["base"].rules;
    assert_eq!(rules.len(), 2);
    // A verdict-map lookup of a plain set, a jump to a base chain.
    let vmap_of_set = one(Op::AddRule {
        family: F,
        table: T.into(),
        rule: RuleBuilder::new(IpFamily::V4, "c").vmap_named(&[Field::Daddr], "addrs").build(),
    });
    assert_eq!(errno(&mut k, &vmap_of_set), libc::EINVAL);
    let to_base = one(Op::AddRule { family: F, table: T.into(), rule: RuleBuilder::new(IpFamily::V4, "c").jump("base").build() });
    assert_eq!(errno(&mut k, &to_base), libc::EOPNOTSUPP);
}

#[test]
fn referenced_chains_cannot_be_deleted() {
    let mut k = base();
    let mut tx = Transaction::new();
    tx.add_chain(F, T, "cluster-1", None);
    tx.add_rule(F, T, RuleBuilder::new(IpFamily::V4, "c").jump("cluster-1").build());
    k.commit(&tx).unwrap();
    let del = one(Op::DeleteChain { family: F, table: T.into(), chain: "cluster-1".into() });
    assert_eq!(errno(&mut k, &del), libc::EBUSY, "a rule jumps to it");

    let mut k = base();
    let el = typed(Key::Dest(ip("198.19.160.1"), Protocol::Tcp, 80), goto_c());
    let mut tx = Transaction::new();
    tx.add_chain(F, T, "cluster-1", None);
    tx.add_elements(F, T, "vmap", vec![el.clone()]);
    k.commit(&tx).unwrap();
    assert_eq!(errno(&mut k, &del), libc::EBUSY, "a map element jumps to it");
    // Deleting the element first frees it, in the same transaction.
    let mut tx = Transaction::new();
    tx.delete_elements(F, T, "vmap", vec![el]);
    tx.delete_chain(F, T, "cluster-1");
    k.commit(&tx).expect("element, then chain");
    assert!(!k.table(F, T).unwrap().chains.contains_key("cluster-1"));
    // A chain's own rules do not hold it; deleting the table takes everything.
    k.commit(&one(Op::DeleteTable { family: F, table: T.into() })).unwrap();
    assert!(k.tables().is_empty());
}

#[test]
fn elements_must_fit_their_set() {
    let mut k = base();
    let ep = Value::Endpoint(SocketAddr::new(ip("198.18.0.5"), 8080));
    let bad = [
        ("addrs", typed(Key::Addr(ip("2001:db8::1")), Value::None)), // 16-byte key in a 4-byte set
        ("addrs", typed(Key::Addr(ip("198.18.0.1")), ep)),           // data in a set
        ("eps", typed(Key::Addr(ip("198.18.0.1")), Value::None)),    // no data in a map
        ("eps", typed(Key::Addr(ip("198.18.0.1")), Value::Verdict(Verdict::Drop))), // verdict in a data map
        ("eps", typed(Key::Addr(ip("198.18.0.1")), Value::Endpoint(SocketAddr::new(ip("2001:db8::5"), 80)))), // 20 bytes
        ("vmap", typed(Key::Dest(ip("198.19.160.1"), Protocol::Tcp, 80), ep)), // bytes in a verdict map
        ("vmap", typed(Key::Port(Protocol::Tcp, 80), Value::Verdict(Verdict::Drop))), // 8-byte key
    ];
    for (set, e) in bad {
        let tx = one(Op::AddElements { family: F, table: T.into(), set: set.into(), elements: vec![e.clone()] });
        assert_eq!(errno(&mut k, &tx), libc::EINVAL, "{set}: {e:?}");
    }
    let mut tx = Transaction::new();
    tx.add_elements(F, T, "eps", vec![typed(Key::Addr(ip("198.18.0.1")), ep)]);
    tx.add_elements(F, T, "vmap", vec![typed(Key::Dest(ip("198.19.160.1"), Protocol::Tcp, 80), Value::Verdict(Verdict::Drop))]);
    tx.add_elements(F, T, "addrs", vec![RawElement { key: vec![0; 4], flags: INTERVAL_END, ..RawElement::default() }.into()]);
    k.commit(&tx).expect("elements of the right shapes");
    assert!(k.table(F, T).unwrap().sets["eps"].contains(&typed(Key::Addr(ip("198.18.0.1")), Value::None)));
}

#[test]
fn existing_elements_and_sets_are_eexist() {
    let mut k = base();
    let e = typed(Key::Addr(ip("198.18.0.1")), Value::None);
    let twice = |k: &mut FakeKernel| {
        let mut tx = Transaction::new();
        tx.add_elements(F, T, "addrs", vec![e.clone()]);
        errno(k, &tx)
    };
    let mut tx = Transaction::new();
    tx.add_elements(F, T, "addrs", vec![e.clone(), e.clone()]);
    assert_eq!(errno(&mut k, &tx), libc::EEXIST, "twice in one transaction");
    k.commit(&one(Op::AddElements { family: F, table: T.into(), set: "addrs".into(), elements: vec![e.clone()] })).unwrap();
    assert_eq!(twice(&mut k), libc::EEXIST, "already in the kernel");
    // A flush empties the set: adding again works.
    let mut tx = Transaction::new();
    tx.flush_set(F, T, "addrs");
    tx.add_elements(F, T, "addrs", vec![e]);
    k.commit(&tx).expect("flush, then add");
    // The same set again is fine (NLM_F_CREATE without EXCL); other types are not.
    k.commit(&one(Op::AddSet { family: F, table: T.into(), set: SetDecl { name: "addrs".into(), raw: set_raw(4, None) } }))
        .expect("the same declaration");
    let other = one(Op::AddSet { family: F, table: T.into(), set: SetDecl { name: "addrs".into(), raw: set_raw(16, None) } });
    assert_eq!(errno(&mut k, &other), libc::EEXIST);
}

#[test]
fn kproxy_set_templates_parse() {
    let mut k = FakeKernel::new();
    let plan = crate::render::Plan::render(&kproxy_core::model::ProxyState::default());
    let tx = crate::transaction::full(&plan, &crate::record::Record::default(), "kproxy");
    k.commit(&tx).expect("kproxy's empty ruleset");
    let t = k.table(TableFamily::Ip6, "kproxy").expect("the ip6 table");
    assert_eq!(t.sets["service-ips"].key_len, 16 + 4 + 4);
    assert!(t.sets["service-ips"].is_verdict_map());
    assert_eq!(t.sets[SetId::ClusterBackends.name()].data_len, 20);
}

#[test]
fn an_injected_failure_changes_nothing_once() {
    let mut k = base();
    k.fail_next_commit(libc::ENOMEM);
    let tx = one(Op::AddChain { family: F, table: T.into(), chain: "x".into(), hook: None });
    assert_eq!(errno(&mut k, &tx), libc::ENOMEM);
    assert!(!k.table(F, T).unwrap().chains.contains_key("x"));
    k.commit(&tx).expect("the next commit is normal");
}
