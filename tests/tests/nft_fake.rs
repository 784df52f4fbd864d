//! The fake kernel against the real one, in a fresh namespace: what the kernel rejects the
//! fake rejects with the same errno, and what the fake accepts the kernel accepts with the
//! same resulting objects (witness: `nft -j list ruleset`).

use std::collections::BTreeMap;

use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::{IpFamily, Protocol};
use kproxy_nft::lowlevel::{
    ChainHook, FakeKernel, Field, NetlinkError, NetlinkKernel, NftKernel, RawData, RawElement, RuleBuilder, SetElement,
    TableFamily, Transaction,
};
use kproxy_nft::plan::{ChainRef, Key, LbKind, Value, Verdict};
use kproxy_nft::{NftBackend, NftConfig};
use kproxy_tests::{nft_json, require_root, Netns};

mod nft_support;
use nft_support::{service, state, with_endpoints};

const T: &str = "fakecheck";
const F: TableFamily = TableFamily::Ip;

fn kernel(ns: &Netns) -> NetlinkKernel {
    ns.run_in(|| NetlinkKernel::open(48 * 1024)).expect("entering the namespace").expect("opening the netlink socket")
}

/// One netlink attribute with a big-endian u32 payload.
fn attr(ty: u16, v: u32) -> Vec<u8> {
    let mut a = 8u16.to_ne_bytes().to_vec();
    a.extend_from_slice(&ty.to_ne_bytes());
    a.extend_from_slice(&v.to_be_bytes());
    a
}

/// NEWSET attributes: `ipv4_addr` keys; a verdict map, or a map to `ipv4_addr . inet_service`.
fn set_raw(map: Option<bool>) -> Vec<u8> {
    let (flags, key_type, key_len, data_type, data_len) = (3, 4, 5, 6, 7);
    let mut raw = attr(flags, if map.is_some() { 0x8 } else { 0 });
    raw.extend(attr(key_type, 7));
    raw.extend(attr(key_len, 4));
    match map {
        Some(true) => {
            raw.extend(attr(data_type, 0xffff_ff00));
            raw.extend(attr(data_len, 0));
        }
        Some(false) => {
            raw.extend(attr(data_type, (7 << 6) | 13));
            raw.extend(attr(data_len, 8));
        }
        None => {}
    }
    raw
}

fn el(ip: [u8; 4], data: RawData) -> Vec<SetElement> {
    vec![RawElement { key: ip.to_vec(), data, ..RawElement::default() }.into()]
}

fn jump(chain: &str) -> RawData {
    RawData::Verdict(-3, Some(chain.into()))
}

/// A table with chains `a`, `target` (jumped to by a rule of `a`), `held` (the target of a
/// map element), `base` (a base chain), a set `addrs`, a verdict map `vmap` and a data map
/// `eps`, each set holding one element.
fn base() -> Transaction {
    let mut tx = Transaction::new();
    tx.add_table(F, T);
    for c in ["a", "target", "held"] {
        tx.add_chain(F, T, c, None);
    }
    tx.add_chain(F, T, "base", Some(ChainHook { kind: "filter", hooknum: 1, priority: 0 }));
    tx.add_set_raw(F, T, "addrs", &set_raw(None));
    tx.add_set_raw(F, T, "vmap", &set_raw(Some(true)));
    tx.add_set_raw(F, T, "eps", &set_raw(Some(false)));
    tx.add_rule(F, T, RuleBuilder::new(IpFamily::V4, "a").jump("target").build());
    tx.add_elements(F, T, "addrs", el([198, 18, 0, 1], RawData::None));
    tx.add_elements(F, T, "vmap", el([198, 18, 0, 2], jump("held")));
    tx.add_elements(F, T, "eps", el([198, 18, 0, 3], RawData::Bytes(vec![198, 18, 0, 4, 0, 80, 0, 0])));
    tx
}

fn errno(r: Result<usize, NetlinkError>) -> Option<i32> {
    match r {
        Ok(_) => None,
        Err(NetlinkError::Rejected { source, .. }) => source.raw_os_error(),
        Err(e) => panic!("not a rejection: {e}"),
    }
}

#[test]
fn the_fake_rejects_what_the_kernel_rejects_with_the_same_errno() {
    require_root();
    let ns = Netns::new("nft-fake").unwrap();
    let mut real = kernel(&ns);
    let mut fake = FakeKernel::new();
    real.commit(&base()).expect("the base table on the kernel");
    fake.commit(&base()).expect("the base table on the fake");
    let r = |c: &str| RuleBuilder::new(IpFamily::V4, c);
    let cases: Vec<(&str, i32, Transaction)> = vec![
        ("delete a missing table", libc::ENOENT, { let mut t = Transaction::new(); t.delete_table(F, "nope"); t }),
        ("delete a missing chain", libc::ENOENT, { let mut t = Transaction::new(); t.delete_chain(F, T, "nope"); t }),
        ("a chain in a missing table", libc::ENOENT, { let mut t = Transaction::new(); t.add_chain(F, "nope", "c", None); t }),
        ("a rule in a missing chain", libc::ENOENT, { let mut t = Transaction::new(); t.add_rule(F, T, r("nope").drop_().build()); t }),
        ("a jump to a missing chain", libc::ENOENT, { let mut t = Transaction::new(); t.add_rule(F, T, r("a").jump("nope").build()); t }),
        ("a lookup of a missing set", libc::ENOENT, {
            let mut t = Transaction::new();
            t.add_rule(F, T, r("a").in_named_set(&[Field::Daddr], "nope", false).drop_().build());
            t
        }),
        ("a jump to a base chain", libc::EOPNOTSUPP, { let mut t = Transaction::new(); t.add_rule(F, T, r("a").jump("base").build()); t }),
        ("flush a missing set", libc::ENOENT, { let mut t = Transaction::new(); t.flush_set(F, T, "nope"); t }),
        ("delete a chain a rule jumps to", libc::EBUSY, { let mut t = Transaction::new(); t.delete_chain(F, T, "target"); t }),
        ("delete a chain a map element jumps to", libc::EBUSY, { let mut t = Transaction::new(); t.delete_chain(F, T, "held"); t }),
        ("add an element that exists", libc::EEXIST, {
            let mut t = Transaction::new();
            t.add_elements(F, T, "addrs", el([198, 18, 0, 1], RawData::None));
            t
        }),
        ("delete a missing element", libc::ENOENT, {
            let mut t = Transaction::new();
            t.delete_elements(F, T, "addrs", el([198, 18, 0, 9], RawData::None));
            t
        }),
        ("a 16-byte key in a 4-byte set", libc::EINVAL, {
            let mut t = Transaction::new();
            t.add_elements(F, T, "addrs", vec![RawElement { key: vec![0x20; 16], ..RawElement::default() }.into()]);
            t
        }),
        ("a verdict in a data map", libc::EINVAL, {
            let mut t = Transaction::new();
            t.add_elements(F, T, "eps", el([198, 18, 0, 5], RawData::Verdict(0, None)));
            t
        }),
        ("a map element jumping to a missing chain", libc::ENOENT, {
            let mut t = Transaction::new();
            t.add_elements(F, T, "vmap", el([198, 18, 0, 6], jump("nope")));
            t
        }),
        ("a good change, then a bad one: nothing applied", libc::ENOENT, {
            let mut t = Transaction::new();
            t.add_chain(F, T, "new", None);
            t.add_elements(F, T, "addrs", el([198, 18, 0, 7], RawData::None));
            t.delete_chain(F, T, "nope");
            t
        }),
    ];
    let before = nft_json(&ns).unwrap();
    for (what, want, tx) in &cases {
        assert_eq!(errno(real.commit(tx)), Some(*want), "kernel: {what}");
        assert_eq!(errno(fake.commit(tx)), Some(*want), "fake: {what}");
    }
    assert_eq!(nft_json(&ns).unwrap(), before, "no rejected transaction changed the kernel");
    assert_eq!(fake.commits(), 1, "nor the fake");
}

/// Per table `family name`: chains with their rule counts, and sets with their element counts.
type Objects = BTreeMap<String, (BTreeMap<String, usize>, BTreeMap<String, usize>)>;

fn family_word(f: TableFamily) -> &'static str {
    match f {
        TableFamily::Ip => "ip",
        TableFamily::Ip6 => "ip6",
        TableFamily::Inet => "inet",
    }
}

fn objects_of_nft(json: &serde_json::Value, skip_intervals: &[&str]) -> Objects {
    let mut out = Objects::new();
    let items = json["nftables"].as_array().expect("an nftables array");
    for item in items {
        let Some((kind, o)) = item.as_object().and_then(|m| m.iter().next()) else { continue };
        let table = format!("{} {}", o["family"].as_str().unwrap_or(""), o["table"].as_str().unwrap_or(""));
        match kind.as_str() {
            "chain" => {
                out.entry(table).or_default().0.entry(o["name"].as_str().unwrap().to_string()).or_default();
            }
            "rule" => *out.entry(table).or_default().0.entry(o["chain"].as_str().unwrap().to_string()).or_default() += 1,
            "set" | "map" => {
                let name = o["name"].as_str().unwrap().to_string();
                let n = if skip_intervals.contains(&name.as_str()) { 0 } else { o["elem"].as_array().map_or(0, Vec::len) };
                out.entry(table).or_default().1.insert(name, n);
            }
            _ => {}
        }
    }
    out
}

fn objects_of_fake(k: &FakeKernel, skip_intervals: &[&str]) -> Objects {
    let mut out = Objects::new();
    for ((f, name), t) in k.tables() {
        let e = out.entry(format!("{} {name}", family_word(*f))).or_default();
        e.0 = t.chains.iter().map(|(n, c)| (n.clone(), c.rules.len())).collect();
        e.1 = t.sets.iter().map(|(n, s)| (n.clone(), if skip_intervals.contains(&n.as_str()) { 0 } else { s.elements.len() })).collect();
    }
    out
}

#[test]
fn what_the_fake_accepts_the_kernel_accepts_with_the_same_objects() {
    require_root();
    let ns = Netns::new("nft-fake-ok").unwrap();
    // Interval sets: nft lists merged prefixes, not the kernel's interval elements.
    let intervals = ["pod-cidrs", "service-cidrs", "nodeport-ips", "firewall-allow"];
    let a = state(vec![
        with_endpoints(service("one", Protocol::Tcp, "198.19.160.10", 80), &[(1, true), (2, false)]),
        with_endpoints(service("six", Protocol::Udp, "2001:db8:b::10", 53), &[(1, true)]),
    ]);
    let b = state(vec![
        with_endpoints(service("one", Protocol::Tcp, "198.19.160.10", 80), &[(1, true), (2, false), (3, true)]),
        with_endpoints(service("two", Protocol::Tcp, "198.19.160.11", 443), &[]),
    ]);
    let mut fake = NftBackend::fake(NftConfig::default());
    let mut real = ns.run_in(|| NftBackend::new(NftConfig::default())).unwrap().expect("the backend");
    for (from, to) in [(None, &a), (Some(&a), &b)] {
        match from {
            None => {
                fake.sync_full(to).expect("fake full sync");
                real.sync_full(to).expect("kernel full sync");
            }
            Some(from) => {
                fake.sync_changes(to, &from.diff(to)).expect("fake partial sync");
                real.sync_changes(to, &from.diff(to)).expect("kernel partial sync");
            }
        }
        let want = objects_of_fake(fake.kernel(), &intervals);
        assert_eq!(objects_of_nft(&nft_json(&ns).unwrap(), &intervals), want, "kernel vs fake");
        assert!(want["ip kproxy"].0.contains_key("cluster-2") || want["ip kproxy"].0.contains_key("cluster-3"), "{want:?}");
    }
    // A lone typed element the fake checked, on both.
    let mut tx = Transaction::new();
    let el = SetElement::Typed {
        key: Key::Dest("198.19.160.12".parse().unwrap(), Protocol::Tcp, 80),
        value: Value::Verdict(Verdict::Goto(ChainRef::Lb(LbKind::Cluster, 3))),
        comment: "default/three:p".into(),
    };
    tx.add_elements(F, "kproxy", "service-ips", vec![el]);
    let mut fk = fake.kernel().clone();
    fk.commit(&tx).expect("fake");
    kernel(&ns).commit(&tx).expect("kernel");
    assert_eq!(objects_of_nft(&nft_json(&ns).unwrap(), &intervals), objects_of_fake(&fk, &intervals));
}

/// The entries of a dynamic map (what session affinity reads back, destroys and carries
/// over): the fake agrees with the kernel on what is accepted, what is rejected (same
/// errno) and what reading the map back gives.
#[test]
fn dynamic_map_entries_behave_alike_on_the_fake_and_the_kernel() {
    require_root();
    let ns = Netns::new("nft-fake-dyn").unwrap();
    let mut sp = with_endpoints(service("sticky", Protocol::Tcp, "198.19.160.20", 80), &[(1, true)]);
    sp.session_affinity = Some(kproxy_core::model::SessionAffinity { timeout_seconds: 30 });
    let s = state(vec![sp]);
    let mut fake = NftBackend::fake(NftConfig::default());
    let mut real = ns.run_in(|| NftBackend::new(NftConfig::default())).unwrap().expect("the backend");
    fake.sync_full(&s).expect("fake full sync");
    real.sync_full(&s).expect("kernel full sync");
    // client 198.18.9.1 . 198.19.160.20 . tcp . 80 : 198.18.0.11 . 8080
    let entry = |client: u8, ep: u8, times: Option<(u64, Option<u64>)>| RawElement {
        key: vec![198, 18, 9, client, 198, 19, 160, 20, 6, 0, 0, 0, 0, 80, 0, 0],
        data: RawData::Bytes(vec![198, 18, 0, ep, 0x1f, 0x90, 0, 0]),
        timeout_ms: times.map(|t| t.0),
        expiration_ms: times.and_then(|t| t.1),
        ..RawElement::default()
    };
    let add = |e: RawElement| {
        let mut t = Transaction::new();
        t.add_elements(F, "kproxy", "affinity", vec![e.into()]);
        t
    };
    let destroy = |e: RawElement| {
        let mut t = Transaction::new();
        t.destroy_elements(F, "kproxy", "affinity", vec![e.into()]);
        t
    };
    let plain = |set: &str, e: RawElement| {
        let mut t = Transaction::new();
        t.add_elements(F, "kproxy", set, vec![e.into()]);
        t
    };
    let steps: Vec<(&str, Option<i32>, Transaction)> = vec![
        ("an entry carried over: timeout and time left", None, add(entry(1, 11, Some((30_000, Some(20_000)))))),
        ("an entry with a timeout only", None, add(entry(2, 11, Some((30_000, None))))),
        ("destroy a missing entry", None, destroy(entry(3, 11, None))),
        ("destroy an entry", None, destroy(entry(2, 11, None))),
        ("destroy an entry read with other data", Some(libc::EEXIST), destroy(entry(1, 12, None))),
        ("a timeout in a set without timeouts", Some(libc::EINVAL), {
            let mut e = entry(1, 11, Some((30_000, None)));
            e.key = vec![198, 18, 9, 1, 198, 18, 9, 1];
            e.data = RawData::None;
            plain("hairpin", e)
        }),
    ];
    for (what, want, tx) in &steps {
        let (k, f) = (errno(real.kernel_mut().commit(tx)), errno(fake.kernel_mut().commit(tx)));
        assert_eq!(k, *want, "kernel: {what}");
        assert_eq!(f, *want, "fake: {what}");
    }
    let read = |k: &mut dyn NftKernel| k.set_elements(F, "kproxy", "affinity").expect("reading the map back");
    let (k, f) = (read(real.kernel_mut()), read(fake.kernel_mut()));
    let shape = |v: &[RawElement]| v.iter().map(|e| (e.key.clone(), e.data.clone(), e.timeout_ms)).collect::<Vec<_>>();
    assert_eq!(shape(&k), shape(&f), "the same entries, data and timeouts");
    assert_eq!(shape(&k), vec![(entry(1, 11, None).key, entry(1, 11, None).data, Some(30_000))]);
    let left = k[0].expiration_ms.expect("the kernel lists the time left");
    assert!((15_000..=20_000).contains(&left), "the kernel kept the time left that was given: {left} ms");
    assert_eq!(f[0].expiration_ms, Some(20_000));
    assert!(real.kernel_mut().set_elements(F, "kproxy", "nope").unwrap_err().is_not_found(), "a missing map");
    assert!(fake.kernel_mut().set_elements(F, "kproxy", "nope").unwrap_err().is_not_found(), "a missing map (fake)");
}
