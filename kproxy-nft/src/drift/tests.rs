//! The drift check against tables committed through the backend into the fake kernel.

use std::collections::BTreeMap;

use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::*;

use super::*;
use crate::tx::{RawData, RawElement, TableFamily, NFT_GOTO};
use crate::{NftBackend, NftConfig};

use crate::test_support::{ip, sp};

fn state(ports: Vec<ServicePort>) -> ProxyState {
    let settings = ProxySettings {
        node_name: "n".into(),
        node_ips: vec![ip("198.18.0.2"), ip("2001:db8::2")],
        masquerade_bit: 14,
        local_detector: LocalDetector::ClusterCidrs(vec!["198.18.128.0/20".parse().unwrap(), "2001:db8:1::/64".parse().unwrap()]),
        node_port_addresses: NodePortAddresses::Primary,
        ..ProxySettings::default()
    };
    let services: BTreeMap<_, _> = ports.into_iter().map(|s| (s.key(), s)).collect();
    ProxyState { settings, service_cidrs: vec!["198.19.160.0/24".parse().unwrap()], services }
}

fn services() -> ProxyState {
    let mut v6 = sp("six", "2001:db8:ff::10", &["2001:db8:1::5"], Some(30081));
    v6.session_affinity = Some(SessionAffinity { timeout_seconds: 60 });
    let mut web = sp("web", "198.19.160.10", &["198.18.128.5", "198.18.128.6"], Some(30080));
    web.external_ips = vec![ip("198.18.10.1")];
    web.external_traffic_policy = TrafficPolicy::Local;
    state(vec![web, sp("empty", "198.19.160.11", &[], None), v6])
}

/// The tables the backend commits for `state`, as the fake kernel holds them.
fn committed(state: &ProxyState) -> NftBackend<crate::lowlevel::FakeKernel> {
    let mut b = NftBackend::fake(NftConfig::default());
    b.sync_full(state).expect("sync");
    b
}

fn dump(b: &NftBackend<crate::lowlevel::FakeKernel>, family: IpFamily) -> Option<TableDump> {
    b.kernel().table(TableFamily::from(family), "kproxy").map(TableDump::from_fake)
}

fn differences(state: &ProxyState, b: &NftBackend<crate::lowlevel::FakeKernel>) -> Vec<String> {
    check_with(state, "kproxy", |f| Ok(dump(b, f))).expect("check").iter().map(ToString::to_string).collect()
}

#[test]
fn what_the_backend_commits_is_in_sync() {
    let s = services();
    assert_eq!(differences(&s, &committed(&s)), Vec::<String>::new());
}

#[test]
fn a_missing_and_a_stray_element_are_named_one_by_one() {
    let s = services();
    let b = committed(&s);
    let desired = desired_table(&Plan::render(&s), IpFamily::V4);
    let mut actual = dump(&b, IpFamily::V4).unwrap();
    let map = actual.sets.get_mut("service-ips").unwrap();
    let before = map.elements.len();
    // 198.19.160.10 . tcp . 80 (ClusterIP of ns/web)
    map.elements.retain(|e| e.key != vec![198, 19, 160, 10, 6, 0, 0, 0, 0, 80, 0, 0]);
    assert_eq!(map.elements.len(), before - 1);
    map.elements.push(RawElement {
        key: vec![198, 19, 160, 10, 6, 0, 0, 0, 0, 81, 0, 0],
        data: RawData::Verdict(NFT_GOTO, Some("cluster-2".into())),
        ..RawElement::default()
    });
    let got: Vec<String> = compare(IpFamily::V4, "kproxy", &desired, Some(&actual), &[]).iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        vec![
            "missing: element 198.19.160.10 . tcp . 80 : goto cluster-2 in map ip kproxy service-ips (comment \"ns/web:p\")",
            "extra: element 198.19.160.10 . tcp . 81 : goto cluster-2 in map ip kproxy service-ips",
        ]
    );
}

#[test]
fn a_changed_value_is_the_old_element_extra_and_the_new_one_missing() {
    let s = services();
    let mut changed = s.clone();
    let web = changed.services.values_mut().find(|p| p.name.name == "web").unwrap();
    web.cluster_endpoints.pop();
    web.local_endpoints.pop();
    let b = committed(&changed);
    let diffs = check_with(&s, "kproxy", |f| Ok(dump(&b, f))).unwrap();
    let texts: Vec<String> = diffs.iter().map(ToString::to_string).collect();
    assert!(texts.contains(&"missing: element 198.19.160.10 . tcp . 80 : goto cluster-2 in map ip kproxy service-ips (comment \"ns/web:p\")".to_string()), "{texts:#?}");
    assert!(texts.contains(&"extra: element 198.19.160.10 . tcp . 80 : goto cluster-1 in map ip kproxy service-ips".to_string()), "{texts:#?}");
    assert!(texts.contains(&"missing: element 198.19.160.10 . tcp . 80 . 1 : 198.18.128.6 . 8080 in map ip kproxy cluster-backends (comment \"ns/web:p\")".to_string()), "{texts:#?}");
    // The endpoint's mentions let a caller pick the differences of one Service.
    let Object::Element { mentions, .. } = &diffs.iter().find(|d| d.to_string().starts_with("missing: element 198.19.160.10 . tcp . 80 . 1")).unwrap().object else { panic!() };
    assert_eq!(mentions.addrs, vec![ip("198.19.160.10"), ip("198.18.128.6")]);
    assert_eq!(mentions.port, Some((Protocol::Tcp, 80)));
}

#[test]
fn a_missing_table_is_one_difference_per_family() {
    let s = services();
    let got: Vec<String> = check_with(&s, "kproxy", |_| Ok(None)).unwrap().iter().map(ToString::to_string).collect();
    assert_eq!(got, vec!["missing: table ip kproxy", "missing: table ip6 kproxy"]);
}

#[test]
fn structure_differences_are_named() {
    let s = services();
    let b = committed(&s);
    let plan = Plan::render(&s);
    let desired = desired_table(&plan, IpFamily::V6);
    let mut actual = dump(&b, IpFamily::V6).unwrap();
    actual.sets.remove("hairpin");
    actual.sets.insert("foreign".into(), Default::default());
    actual.chains.insert("mine".into(), Default::default());
    let (name, chain) = actual.chains.iter_mut().find(|(_, c)| c.rules.len() >= 2).unwrap();
    let name = name.clone();
    chain.rules.swap(0, 1);
    let removed = actual.chains.get_mut("nat-prerouting").unwrap().rules.remove(0);
    actual.chains.get_mut("nat-output").unwrap().rules.push(crate::trace::table::DumpedRule { foreign: Some("counter".into()), exprs: vec![], ..removed });
    let got: Vec<String> = compare(IpFamily::V6, "kproxy", &desired, Some(&actual), &rule_texts(&plan, IpFamily::V6)).iter().map(ToString::to_string).collect();
    let text = &plan.families[1].skeleton.rules.iter().find(|r| r.chain == "nat-prerouting").unwrap().text;
    assert!(got.contains(&format!("missing: rule in chain ip6 kproxy nat-prerouting: {text}")), "{got:#?}");
    assert!(got.iter().any(|g| g.starts_with("extra: rule in chain ip6 kproxy nat-output: a rule with a `counter` expression")), "{got:#?}");
    assert!(got.iter().any(|g| g.starts_with(&format!("reordered: rule in chain ip6 kproxy {name}"))) || name == "nat-prerouting", "{got:#?}");
    assert!(got.contains(&"missing: set ip6 kproxy hairpin".to_string()), "{got:#?}");
    assert!(got.contains(&"extra: set ip6 kproxy foreign".to_string()), "{got:#?}");
    assert!(got.contains(&"extra: chain ip6 kproxy mine".to_string()), "{got:#?}");
}

#[test]
fn affinity_entries_the_packet_path_adds_are_not_drift() {
    let s = services();
    let b = committed(&s);
    let desired = desired_table(&Plan::render(&s), IpFamily::V6);
    let mut actual = dump(&b, IpFamily::V6).unwrap();
    let mut key = ip6_bytes("2001:db8:1::9");
    key.extend(ip6_bytes("2001:db8:ff::10"));
    key.extend([6, 0, 0, 0, 0, 80, 0, 0]);
    actual.sets.get_mut("affinity").unwrap().elements.push(RawElement { key, ..RawElement::default() });
    assert!(compare(IpFamily::V6, "kproxy", &desired, Some(&actual), &[]).is_empty());
}

fn ip6_bytes(s: &str) -> Vec<u8> {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets().to_vec()
}

#[test]
fn elements_read_back_as_nft_lists_them() {
    let range = RawElement {
        key: vec![198, 18, 10, 1, 6, 0, 0, 0, 0, 80, 0, 0, 203, 0, 113, 0],
        key_end: Some(vec![198, 18, 10, 1, 6, 0, 0, 0, 0, 80, 0, 0, 203, 0, 113, 255]),
        ..RawElement::default()
    };
    assert_eq!(describe(SetId::FirewallAllow, IpFamily::V4, &range).0, "198.18.10.1 . tcp . 80 . 203.0.113.0-203.0.113.255");
    let end = RawElement { key: vec![198, 19, 161, 0], flags: 1, ..RawElement::default() };
    assert_eq!(describe(SetId::ServiceCidrs, IpFamily::V4, &end).0, "198.19.161.0 (interval end)");
    let np = RawElement { key: vec![17, 0, 0, 0, 0x75, 0x30, 0, 0], data: RawData::Verdict(0, None), ..RawElement::default() };
    let (text, m) = describe(SetId::NoEndpointNodeports, IpFamily::V6, &np);
    assert_eq!(text, "udp . 30000 : drop");
    assert_eq!(m.port, Some((Protocol::Udp, 30000)));
    // A key of another shape than kproxy declares is shown as bytes, not misread.
    let odd = RawElement { key: vec![1, 2, 3], ..RawElement::default() };
    assert_eq!(describe(SetId::ClusterIps, IpFamily::V4, &odd).0, "0x010203");
}
