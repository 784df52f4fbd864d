//! Pure tests of the rule builder (no kernel, no root).

use kproxy_core::model::IpFamily;
use kproxy_nft::lowlevel::{Expr, Field, RuleBuilder};

#[test]
fn named_set_lookup_loads_the_key_then_looks_up_the_callers_set() {
    let r = RuleBuilder::new(IpFamily::V4, "c")
        .in_named_set(&[Field::Daddr, Field::L4proto, Field::Dport], "my-vips", true)
        .drop_()
        .build();
    assert_eq!(r.text, "ip daddr . meta l4proto . th dport != @my-vips drop");
    // daddr in reg 1 (word 0), l4proto in word 1 (reg 9), dport in word 2 (reg 10).
    assert_eq!(r.exprs[1], Expr::Meta { key: kproxy_nft::lowlevel::NFT_META_L4PROTO, dreg: 9 });
    assert_eq!(r.exprs[3], Expr::LookupNamed { sreg: 1, name: "my-vips".into(), dreg: None, invert: true });
}

#[test]
fn named_vmap_yields_a_verdict_from_the_callers_map() {
    let r = RuleBuilder::new(IpFamily::V6, "c").vmap_named(&[Field::Daddr, Field::Dport], "dispatch").build();
    assert_eq!(r.text, "ip6 daddr . th dport vmap @dispatch");
    // A 16-byte address fills words 0-3; the port starts at word 4 (reg 2).
    assert_eq!(r.exprs[1], Expr::Payload { base: kproxy_nft::lowlevel::TRANSPORT, offset: 2, len: 2, dreg: 2 });
    assert_eq!(r.exprs[2], Expr::LookupNamed { sreg: 1, name: "dispatch".into(), dreg: Some(0), invert: false });
}
