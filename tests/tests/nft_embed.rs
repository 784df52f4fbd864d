//! kproxy-nft as a library for embedders (kproxy-ipvs): a table of the caller's own, sets
//! created with `Transaction::add_set_raw`, and rules that look them up by name
//! (`RuleBuilder::in_named_set` / `vmap_named`). Real packets in a fresh namespace.

use std::net::SocketAddr;
use std::time::Duration;

use kproxy_core::model::IpFamily;
use kproxy_nft::lowlevel::{
    ChainHook, Field, NetlinkError, NetlinkKernel, NftKernel, RawData, RawElement, RuleBuilder, SetElement, TableFamily,
    Transaction,
};
use kproxy_tests::{nft_text, require_root, tcp_request, Netns};

const TABLE: &str = "embedder";
/// Generous per-message limit for the few elements here.
const MAX: usize = 48 * 1024;

/// One netlink attribute: u16 length, u16 type (native endian), payload, padding to 4.
fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(payload);
    a.resize(a.len().div_ceil(4) * 4, 0);
    a
}

/// NEWSET attributes of an `ipv4_addr` set (`map`: a verdict map).
fn ipv4_set(map: bool) -> Vec<u8> {
    let (flags, key_type, key_len, data_type, data_len) = (3, 4, 5, 6, 7); // NFTA_SET_*
    let mut raw = attr(flags, &u32::to_be_bytes(if map { 0x8 } else { 0 })); // NFT_SET_MAP
    raw.extend(attr(key_type, &7u32.to_be_bytes())); // ipv4_addr
    raw.extend(attr(key_len, &4u32.to_be_bytes()));
    if map {
        raw.extend(attr(data_type, &0xffff_ff00u32.to_be_bytes())); // verdict
        raw.extend(attr(data_len, &0u32.to_be_bytes()));
    }
    raw
}

fn element(ip: [u8; 4], data: RawData) -> Vec<SetElement> {
    vec![RawElement { key: ip.to_vec(), data, ..RawElement::default() }.into()]
}

fn commit(ns: &Netns, tx: Transaction) -> Result<usize, NetlinkError> {
    ns.run_in(move || NetlinkKernel::open(MAX)?.commit(&tx)).expect("entering the namespace")
}

#[test]
fn rules_look_up_sets_the_embedder_named() {
    require_root();
    let ns = Netns::new("nft-embed").unwrap();
    for ip in ["198.19.77.1/32", "198.19.77.2/32", "198.19.77.3/32"] {
        ns.exec(["ip", "addr", "add", ip, "dev", "lo"]).expect("adding a loopback address");
    }
    let f = TableFamily::Ip;
    let mut b = Transaction::new();
    b.add_table(f, TABLE);
    b.add_set_raw(f, TABLE, "blocked", &ipv4_set(false));
    b.add_set_raw(f, TABLE, "dispatch", &ipv4_set(true));
    b.add_chain(f, TABLE, "out", Some(ChainHook { kind: "filter", hooknum: 3, priority: 0 }));
    let r = |c: &str| RuleBuilder::new(IpFamily::V4, c);
    b.add_rule(f, TABLE, r("out").in_named_set(&[Field::Daddr], "blocked", false).drop_().build());
    b.add_rule(f, TABLE, r("out").vmap_named(&[Field::Daddr], "dispatch").build());
    b.add_elements(f, TABLE, "blocked", element([198, 19, 77, 1], RawData::None));
    b.add_elements(f, TABLE, "dispatch", element([198, 19, 77, 2], RawData::Verdict(0, None)));
    commit(&ns, b).expect("a batch with named-set lookups");

    let text = nft_text(&ns).unwrap();
    assert!(text.contains("ip daddr @blocked drop"), "the set lookup lists by name:\n{text}");
    assert!(text.contains("ip daddr vmap @dispatch"), "the verdict map lookup lists by name:\n{text}");
    let t = Duration::from_millis(400);
    let req = |last: u8| tcp_request(&ns, SocketAddr::from(([198, 19, 77, last], 9)), t);
    assert!(req(1).is_err_and(|e| e.is_timeout()), "in @blocked: dropped");
    assert!(req(2).is_err_and(|e| e.is_timeout()), "@dispatch says drop: dropped");
    assert!(req(3).is_err_and(|e| e.is_refused()), "in neither: reaches the (closed) port, refused");

    // A rule naming a set that does not exist fails the batch, named by its label.
    let mut b = Transaction::new();
    b.add_rule(f, TABLE, r("out").in_named_set(&[Field::Daddr], "missing", false).drop_().build());
    let err = commit(&ns, b).expect_err("a lookup of a missing set must fail");
    assert!(err.to_string().contains("add rule embedder out ip daddr @missing drop"), "names the rule: {err}");
}
