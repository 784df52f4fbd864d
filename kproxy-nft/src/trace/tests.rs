//! The interpreter over tables programmed into the fake kernel (the real-packet agreement is
//! `tests/tests/nft_trace.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::*;

use super::*;
use crate::{NftBackend, NftConfig};

const NODE: &str = "198.18.0.2";

use crate::test_support::{ip, sp};

/// The `ip` table kproxy programs for these services.
fn table(ports: Vec<ServicePort>) -> TableDump {
    table_with(ports, LocalDetector::ClusterCidrs(vec!["198.18.128.0/20".parse().unwrap()]))
}

fn table_with(ports: Vec<ServicePort>, local_detector: LocalDetector) -> TableDump {
    let settings = ProxySettings {
        node_name: "n".into(),
        node_ips: vec![ip(NODE)],
        masquerade_bit: 14,
        local_detector,
        node_port_addresses: NodePortAddresses::Primary,
        ..ProxySettings::default()
    };
    let services: BTreeMap<_, _> = ports.into_iter().map(|s| (s.key(), s)).collect();
    let state = ProxyState { settings, service_cidrs: vec!["198.19.160.0/24".parse().unwrap()], services };
    let mut b = NftBackend::fake(NftConfig::default());
    b.sync_full(&state).expect("sync");
    TableDump::from_fake(b.kernel().table(crate::tx::TableFamily::Ip, "kproxy").expect("table"))
}

fn packet(src: &str, dst: &str, dport: u16) -> Packet {
    Packet { src: ip(src), dst: ip(dst), dport, protocol: Protocol::Tcp, iif: None, local_origin: src == NODE }
}

fn eps(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|e| SocketAddr::new(ip(e), 8080)).collect()
}

#[test]
fn clusterip_lists_every_endpoint_and_masquerades_only_outside_traffic() {
    let t = table(vec![sp("web", "198.19.160.10", &["198.18.128.11", "198.18.128.12", "198.18.128.13"], None)]);
    let from_pod = trace(&t, &packet("198.18.128.11", "198.19.160.10", 80), &[ip(NODE)]);
    assert_eq!(from_pod.verdict, Verdict::Dnat, "{:#?}", from_pod.path);
    assert_eq!(from_pod.endpoints, eps(&["198.18.128.11", "198.18.128.12", "198.18.128.13"]));
    // Hairpin: pod 11 may be sent to itself, then it is masqueraded.
    assert!(from_pod.masquerade, "{:#?}", from_pod.path);
    let from_other_pod = trace(&t, &packet("198.18.128.50", "198.19.160.10", 80), &[ip(NODE)]);
    assert!(!from_other_pod.masquerade, "{:#?}", from_other_pod.path);
    let outside = trace(&t, &packet("198.18.1.1", "198.19.160.10", 80), &[ip(NODE)]);
    assert_eq!(outside.verdict, Verdict::Dnat);
    assert!(outside.masquerade, "{:#?}", outside.path);
    let node = trace(&t, &packet(NODE, "198.19.160.10", 80), &[ip(NODE)]);
    assert_eq!((node.verdict, node.masquerade), (Verdict::Dnat, true), "{:#?}", node.path);
}

#[test]
fn no_endpoints_rejects_undefined_port_rejects_unallocated_address_drops_other_traffic_is_untouched() {
    let t = table(vec![
        sp("web", "198.19.160.10", &["198.18.128.11"], Some(30080)),
        sp("empty", "198.19.160.20", &[], None),
    ]);
    let n = [ip(NODE)];
    let r = |dst: &str, port| trace(&t, &packet("198.18.1.1", dst, port), &n);
    assert_eq!(r("198.19.160.20", 80).verdict, Verdict::Reject);
    assert_eq!(r("198.19.160.10", 81).verdict, Verdict::Reject);
    assert_eq!(r("198.19.160.99", 80).verdict, Verdict::Drop);
    let np = r(NODE, 30080);
    assert_eq!((np.verdict, np.endpoints.clone(), np.masquerade), (Verdict::Dnat, eps(&["198.18.128.11"]), true), "{:#?}", np.path);
    let other = r(NODE, 22);
    assert_eq!((other.verdict, other.endpoints.len(), other.masquerade), (Verdict::None, 0, false), "{:#?}", other.path);
}

#[test]
fn a_foreign_rule_is_reported_not_evaluated() {
    let mut t = table(vec![sp("web", "198.19.160.10", &["198.18.128.11"], None)]);
    let chain = t.chains.get_mut("nat-prerouting").unwrap();
    chain.rules.insert(0, table::DumpedRule { exprs: Vec::new(), foreign: Some("counter".into()), comment: None, handle: 9 });
    let r = trace(&t, &packet("198.18.1.1", "198.19.160.10", 80), &[ip(NODE)]);
    assert_eq!(r.verdict, Verdict::Dnat, "{:#?}", r.path);
    assert!(r.path.iter().any(|l| l.contains("foreign rule (not evaluated)")), "{:#?}", r.path);
}

#[test]
fn interface_based_local_detection_uses_the_given_input_interface() {
    let t = table_with(vec![sp("web", "198.19.160.10", &["198.18.128.11"], None)], LocalDetector::BridgeInterface("cbr0".into()));
    let mut p = packet("198.18.128.50", "198.19.160.10", 80);
    p.iif = Some("cbr0".into());
    let from_bridge = trace(&t, &p, &[ip(NODE)]);
    assert_eq!((from_bridge.verdict, from_bridge.masquerade), (Verdict::Dnat, false), "{:#?}", from_bridge.path);
    p.iif = Some("eth0".into());
    let from_eth0 = trace(&t, &p, &[ip(NODE)]);
    assert_eq!((from_eth0.verdict, from_eth0.masquerade), (Verdict::Dnat, true), "{:#?}", from_eth0.path);
    p.iif = None;
    let unknown = trace(&t, &p, &[ip(NODE)]);
    assert!(unknown.path.iter().any(|l| l.contains("input interface not given (--iif)")), "{:#?}", unknown.path);
}
