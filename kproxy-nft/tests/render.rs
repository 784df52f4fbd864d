//! Pure tests of the render and diff steps (no kernel, no root).

use kproxy_core::model::*;
use kproxy_nft::plan::{ChainRef, LbKind, SetId};
use kproxy_nft::{render_script, NftConfig, Plan};

mod support;
use support::*;

#[test]
fn applying_each_delta_gives_the_record_of_the_next_state() {
    let all = states();
    let mut rec = record_of(&all[0]);
    for w in all.windows(2) {
        let changes = w[0].diff(&w[1]);
        let delta = rec.delta(&w[1], &changes);
        rec.apply(&delta);
        let want = record_of(&w[1]);
        assert_eq!(rec.elements, want.elements, "elements after {changes:?}");
        assert_eq!(rec.chains, want.chains, "chains after {changes:?}");
    }
}

#[test]
fn lb_chains_follow_endpoint_counts() {
    let all = states();
    let rec = record_of(&all[0]);
    let delta = rec.delta(&all[1], &all[0].diff(&all[1]));
    assert_eq!(delta.new_chains, vec![(IpFamily::V4, ChainRef::Lb(LbKind::Cluster, 3))]);
    assert_eq!(delta.dead_chains, vec![(IpFamily::V4, ChainRef::Lb(LbKind::Cluster, 2))]);
}

#[test]
fn a_removed_sticky_endpoint_loses_only_its_own_pairs() {
    use kproxy_nft::affinity::Pairs;
    use kproxy_nft::lowlevel::{RawData, RawElement};
    let a = state(vec![port(1, &[1, 2], false, None), port(2, &[3, 4], true, Some(30002)), port(5, &[6, 7], true, None)]);
    let b = state(vec![port(1, &[1], false, None), port(2, &[3, 4], true, Some(30002)), port(5, &[6, 7], true, None)]);
    let c = state(vec![port(1, &[1], false, None), port(2, &[3], true, Some(30002)), port(5, &[6, 7], true, None)]);
    assert!(Pairs::lost(&a.diff(&b)).is_empty(), "a non-sticky service loses no sticky pair");
    let lost = Pairs::lost(&b.diff(&c));
    // client 198.18.9.9 . 198.19.160.2 . tcp . 80 : 198.18.0.4 . 8080 (and the NodePort's).
    let entry = |svc: u8, ep: u8| RawElement {
        key: vec![198, 18, 9, 9, 198, 19, 160, svc, 6, 0, 0, 0, 0, 80, 0, 0],
        data: RawData::Bytes(vec![198, 18, 0, ep, 0x1f, 0x90, 0, 0]),
        ..RawElement::default()
    };
    let np = |ep: u8| RawElement {
        key: vec![198, 18, 9, 9, 6, 0, 0, 0, 0x75, 0x32, 0, 0],
        data: RawData::Bytes(vec![198, 18, 0, ep, 0x1f, 0x90, 0, 0]),
        ..RawElement::default()
    };
    assert!(lost.holds(IpFamily::V4, SetId::Affinity, &entry(2, 4)), "the removed endpoint of the changed service");
    assert!(lost.holds(IpFamily::V4, SetId::NodeportAffinity, &np(4)), "and of its NodePort");
    assert!(!lost.holds(IpFamily::V4, SetId::Affinity, &entry(2, 3)), "its kept endpoint");
    assert!(!lost.holds(IpFamily::V4, SetId::NodeportAffinity, &np(3)), "its kept endpoint on the NodePort");
    assert!(!lost.holds(IpFamily::V4, SetId::Affinity, &entry(5, 6)), "another sticky service");
    assert!(!lost.holds(IpFamily::V6, SetId::Affinity, &entry(2, 4)), "the other family");
    assert!(lost.touches(IpFamily::V4, SetId::Affinity) && !lost.touches(IpFamily::V6, SetId::Affinity));
    // Dropping stickiness loses every pair of the service; its entries would pin clients.
    let mut d = c.clone();
    for sp in d.services.values_mut() {
        sp.session_affinity = None;
    }
    assert!(Pairs::lost(&c.diff(&d)).holds(IpFamily::V4, SetId::Affinity, &entry(5, 6)));
    // iTP=Local: the ClusterIP balances over local endpoints only, so only those are sticky
    // there (an entry to another endpoint would bypass the policy).
    let mut local = port(7, &[8, 9], true, None);
    local.internal_traffic_policy = TrafficPolicy::Local;
    local.local_endpoints = vec![ep(8)];
    let valid = Pairs::of_state(&state(vec![local]));
    assert!(valid.holds(IpFamily::V4, SetId::Affinity, &entry(7, 8)));
    assert!(!valid.holds(IpFamily::V4, SetId::Affinity, &entry(7, 9)));
}

#[test]
fn rules_and_chains_do_not_grow_with_services() {
    let few = state((0..10).map(|s| port(s, &[s * 3, s * 3 + 1, s * 3 + 2], s % 2 == 0, Some(30000 + s as u16))).collect());
    let many = state((0..200).map(|s| port(s, &[s * 3, s * 3 + 1, s * 3 + 2], s % 2 == 0, Some(30000 + s as u16))).collect());
    let count = |s: &ProxyState| {
        let p = Plan::render(s);
        let rules: usize = p.families.iter().map(|f| f.skeleton.rules.len() + f.dynamic.values().map(Vec::len).sum::<usize>()).sum();
        let chains: usize = p.families.iter().map(|f| f.skeleton.chains.len() + f.dynamic.len()).sum();
        (rules, chains, p.elements.len())
    };
    let (r1, c1, e1) = count(&few);
    let (r2, c2, e2) = count(&many);
    assert_eq!((r1, c1), (r2, c2), "rules and chains are independent of the number of services");
    assert!(e2 > 10 * e1, "elements carry the services: {e1} vs {e2}");
}

#[test]
fn script_names_services_and_uses_shared_maps() {
    let s = state(vec![port(1, &[1, 2], true, Some(30001)), port(2, &[], false, None)]);
    let text = render_script(&s, &NftConfig::default());
    for line in [
        "add table ip kproxy",
        "add table ip6 kproxy",
        "add chain ip kproxy nat-prerouting { type nat hook prerouting priority -100 ; }",
        "add rule ip kproxy cluster-2 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @cluster-backends",
        "add rule ip kproxy nodeport-2 dnat ip to meta l4proto . th dport . numgen random mod 2 map @nodeport-backends",
        "198.19.160.1 . tcp . 80 comment \"ns/s1:p\" : goto cluster-2",
        "198.19.160.2 . tcp . 80 comment \"ns/s2:p\" : goto reject-chain",
        "198.19.160.1 . tcp . 80 comment \"ns/s1:p\" : jump affinity-30",
        "tcp . 30001 comment \"ns/s1:p\" : jump nodeport-affinity-30",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(text.contains("add map ip6 kproxy affinity {"), "IPv6 has its affinity map");
    assert!(text.contains("\nadd rule ip kproxy affinity-30 meta l4proto tcp update @affinity"), "{text}");
    let cfg = NftConfig { table_name: "cni".into(), ..NftConfig::default() };
    assert!(render_script(&s, &cfg).contains("add table ip cni"));
}

#[test]
fn every_set_is_declared_once_per_family() {
    let text = render_script(&state(vec![]), &NftConfig::default());
    for set in SetId::ALL {
        for fam in ["ip", "ip6"] {
            let kind = if set.is_map() { "map" } else { "set" };
            let n = text.matches(&format!("add {kind} {fam} kproxy {} {{", set.name())).count();
            assert_eq!(n, 1, "{fam} {}", set.name());
        }
    }
}

#[test]
fn only_the_ipv6_affinity_updates_are_beyond_nft_and_the_script_comments_them_out() {
    use kproxy_nft::skeleton::dynamic_rules;
    let v4 = dynamic_rules(IpFamily::V4, ChainRef::Affinity(30), &settings());
    let v6 = dynamic_rules(IpFamily::V6, ChainRef::Affinity(30), &settings());
    assert_eq!((v4.len(), v6.len()), (3, 3), "one update per protocol");
    assert!(v4.iter().all(|r| r.nft_can_compile()), "IPv4 keys are 16 bytes");
    assert!(v6.iter().all(|r| !r.nft_can_compile()), "IPv6 keys are 40 bytes");
    let mut out = String::new();
    kproxy_nft::script::rule_line(&mut out, IpFamily::V6, "kproxy", &v6[0]);
    assert!(out.starts_with("# programmed through netlink only"), "{out}");
    assert!(out.contains("\n# add rule ip6 kproxy affinity-30 meta l4proto tcp update @affinity"), "{out}");
    let mut out = String::new();
    kproxy_nft::script::rule_line(&mut out, IpFamily::V4, "kproxy", &v4[0]);
    assert!(out.starts_with("add rule ip kproxy affinity-30"), "{out}");
}
