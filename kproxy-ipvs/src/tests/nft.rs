//! The nftables table of IPVS mode: rules, sets, per-port updates.

use super::*;

#[test]
fn nft_rules_do_not_grow_with_services_elements_do() {
    use crate::nft_sets::{bytes, Part};
    let mut p = port("web", "198.19.160.10", &["198.18.1.2:8080"]);
    p.node_port = Some(30080);
    let mut local = port("local", "198.19.160.11", &["198.18.1.3:80"]);
    local.external_ips = vec![ip("198.19.99.1")];
    local.external_traffic_policy = TrafficPolicy::Local;
    let mut s = state(vec![p.clone(), local]);
    s.settings.masquerade_bit = 14;
    s.settings.local_detector = LocalDetector::ClusterCidrs(vec!["198.18.0.0/16".parse().unwrap()]);
    let [(_, v4), (_, v6)] = crate::nft::render(&s, &[ip("198.19.0.2")]);
    let texts: Vec<&str> = v4.services.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "ip saddr != 198.18.0.0/16 ip daddr . meta l4proto . th dport @cluster-masq meta mark set meta mark | 0x4000",
            "ip daddr . meta l4proto . th dport @external-masq meta mark set meta mark | 0x4000",
        ]
    );
    let keys = |set: &str| -> Vec<Vec<u8>> {
        v4.elements
            .get(set)
            .map(|v| v.iter().map(|e| e.key.clone()).collect())
            .unwrap_or_default()
    };
    let dpt = |a: &str, port: u16| {
        bytes(&[
            Part::Addr(ip(a)),
            Part::Proto(Protocol::Tcp),
            Part::Port(port),
        ])
    };
    assert_eq!(
        keys("cluster-masq"),
        [dpt("198.19.160.10", 80), dpt("198.19.160.11", 80)]
    );
    assert_eq!(
        keys("external-masq"),
        [dpt("198.19.0.2", 30080)],
        "eTP=Local ExternalIP is not marked"
    );
    assert_eq!(keys("short-circuit"), [dpt("198.19.99.1", 80)]);
    assert!(
        keys("no-local-endpoints").is_empty(),
        "local has a local endpoint"
    );
    assert_eq!(
        dpt("198.19.0.2", 30080),
        [198, 19, 0, 2, 6, 0, 0, 0, 0x75, 0x80, 0, 0]
    );
    let post: Vec<&str> = v4.postrouting.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(
        post,
        [
            "meta mark & 0x00004000 != 0x00000000 masquerade fully-random",
            "ip saddr . ip daddr @hairpin masquerade fully-random",
        ]
    );
    assert_eq!(keys("hairpin").len(), 2);
    assert!(v6.elements.values().all(|v| v.is_empty()));
    // A thousand more services: the same rules, more elements.
    let mut big = s.clone();
    for i in 0..1000u32 {
        let mut q = p.clone();
        q.name.name = format!("svc{i}");
        q.cluster_ip = ip(&format!("198.19.{}.{}", 161 + i / 250, i % 250 + 1));
        q.node_port = Some(31000 + i as u16);
        big.services.insert(q.key(), q);
    }
    let [(_, b4), _] = crate::nft::render(&big, &[ip("198.19.0.2")]);
    assert_eq!(b4.services, v4.services);
    assert_eq!(b4.input, v4.input);
    assert_eq!(b4.nat_prerouting, v4.nat_prerouting);
    assert_eq!(b4.elements["cluster-masq"].len(), 1002);
}

#[test]
fn nft_source_ranges_and_their_node_ip_exception() {
    let mut fw = port("fw", "198.19.160.21", &["198.18.1.2:8080"]);
    fw.load_balancer_ips = vec![ip("198.19.200.6")];
    fw.load_balancer_source_ranges = vec!["198.19.0.0/24".parse().unwrap()];
    let mut s = state(vec![fw]);
    let lb = "ip daddr 198.19.200.6 meta l4proto tcp th dport 80";
    let [(_, v4), _] = crate::nft::render(&s, &[]);
    let texts: Vec<String> = v4.services.iter().map(|r| r.text.clone()).collect();
    assert_eq!(
        texts[1..],
        [
            format!("{lb} ip saddr 198.19.0.0/24 accept"),
            format!("{lb} drop")
        ],
        "no node IP in the range: no exception"
    );
    s.settings.node_ips = vec![ip("198.19.0.2")];
    let [(_, v4), _] = crate::nft::render(&s, &[]);
    let texts: Vec<String> = v4.services.iter().map(|r| r.text.clone()).collect();
    assert_eq!(
        texts[1..],
        [
            format!("{lb} ip saddr 198.19.0.0/24 accept"),
            format!("{lb} ip saddr 198.19.200.6 accept"),
            format!("{lb} drop"),
        ]
    );
}

#[test]
fn nft_rendering_updates_per_port_and_reports_changes() {
    let a = port("a", "198.19.160.10", &["198.18.1.2:80", "198.18.1.3:80"]);
    let b = port("b", "198.19.160.11", &["198.18.1.2:80", "198.18.1.3:80"]);
    let s1 = state(vec![a.clone(), b.clone()]);
    let mut r = crate::nft::Rendering::build(&s1, &[]);
    // a loses 198.18.1.3, still used by b: no hairpin change, no ClusterIP rule (no detector).
    let a2 = port("a", "198.19.160.10", &["198.18.1.2:80"]);
    let s2 = state(vec![a2.clone(), b.clone()]);
    assert!(!r.update(&s2.settings, &a2.key(), Some(&a2), &[]));
    assert_eq!(r.rules(&s2.settings), crate::nft::render(&s2, &[]));
    // b goes too: 198.18.1.3 has no user left, its hairpin rule goes.
    let s3 = state(vec![a2.clone()]);
    assert!(r.update(&s3.settings, &b.key(), None, &[]));
    assert_eq!(r.rules(&s3.settings), crate::nft::render(&s3, &[]));
    // An ExternalIP with eTP=Cluster adds a rule.
    let mut a3 = a2.clone();
    a3.external_ips = vec![ip("198.19.99.1")];
    let s4 = state(vec![a3.clone()]);
    assert!(r.update(&s4.settings, &a3.key(), Some(&a3), &[]));
    assert_eq!(r.rules(&s4.settings), crate::nft::render(&s4, &[]));
}

#[test]
fn nft_rules_filter_vips_short_circuit_and_drop_etp_local() {
    use crate::nft_sets::{bytes, Part};
    let mut remote = port("remote", "198.19.160.20", &["198.18.1.4:8080"]);
    remote.local_endpoints.clear();
    remote.external_traffic_policy = TrafficPolicy::Local;
    remote.load_balancer_ips = vec![ip("198.19.200.5")];
    remote.node_port = Some(30092);
    let mut s = state(vec![remote]);
    s.settings.masquerade_bit = 14;
    s.settings.node_ips = vec![ip("198.19.0.2")];
    s.settings.local_detector = LocalDetector::ClusterCidrs(vec!["198.18.0.0/16".parse().unwrap()]);
    let [(_, v4), _] = crate::nft::render(&s, &[ip("198.19.0.2")]);
    let texts = |rules: &[kproxy_nft::lowlevel::Rule]| -> Vec<String> {
        rules.iter().map(|r| r.text.clone()).collect()
    };
    let key = "ip daddr . meta l4proto . th dport";
    assert_eq!(
        texts(&v4.nat_prerouting),
        [
            format!("ip saddr 198.18.0.0/16 dnat ip to {key} map @short-circuit"),
            format!("{key} @no-local-endpoints drop"),
        ]
    );
    assert_eq!(
        texts(&v4.nat_output),
        [format!(
            "meta mark set meta mark | 0x4000 dnat ip to {key} map @short-circuit"
        )]
    );
    assert_eq!(
        texts(&v4.input),
        [
            format!("{key} @service-ports accept"),
            "fib daddr type local meta l4proto . th dport @node-ports accept".to_string(),
            "ip daddr @vips ct state new reject".to_string(),
        ]
    );
    let dpt = |a: &str, port: u16| {
        bytes(&[
            Part::Addr(ip(a)),
            Part::Proto(Protocol::Tcp),
            Part::Port(port),
        ])
    };
    let sc = &v4.elements["short-circuit"];
    assert_eq!(
        sc.iter().map(|e| e.key.clone()).collect::<Vec<_>>(),
        [dpt("198.19.0.2", 30092), dpt("198.19.200.5", 80)]
    );
    let target = kproxy_nft::lowlevel::RawData::Bytes(bytes(&[
        Part::Addr(ip("198.19.160.20")),
        Part::Port(80),
    ]));
    assert!(sc.iter().all(|e| e.data == target));
    assert_eq!(v4.elements["no-local-endpoints"].len(), 2);
    // The VIPs, but not the node IP.
    let vips: Vec<Vec<u8>> = v4.elements["vips"].iter().map(|e| e.key.clone()).collect();
    assert_eq!(vips, [vec![198, 19, 160, 20], vec![198, 19, 200, 5]]);
}

#[test]
fn nft_endpoint_changes_are_element_updates_only() {
    let mut a = port("a", "198.19.160.10", &["198.18.1.2:80"]);
    a.node_port = Some(30080);
    let s1 = state(vec![a.clone()]);
    let mut r = crate::nft::Rendering::build(&s1, &[ip("198.19.0.2")]);
    let (_, rules_changed) = r.take_pending();
    assert!(rules_changed, "a new rendering replaces the table");
    let mut a2 = a.clone();
    a2.cluster_endpoints = vec!["198.18.1.3:80".parse().unwrap()];
    a2.local_endpoints = a2.cluster_endpoints.clone();
    assert!(r.update(&s1.settings, &a2.key(), Some(&a2), &[ip("198.19.0.2")]));
    let (pending, rules_changed) = r.take_pending();
    assert!(!rules_changed);
    // The hairpin element of the old endpoint deleted, the new one added.
    let changes: Vec<(&str, bool)> = pending
        .iter()
        .map(|(_, (set, _, _), add)| (*set, *add))
        .collect();
    assert_eq!(changes, [("hairpin", true), ("hairpin", false)]);
}

#[test]
fn nft_part_transactions_pass_the_fake_kernels_rules() {
    use kproxy_nft::lowlevel::FakeKernel;
    let mut p = port("web", "198.19.160.10", &["198.18.1.2:8080"]);
    p.node_port = Some(30080);
    let mut local = port("local", "198.19.160.11", &["198.18.1.3:80"]);
    local.external_ips = vec![ip("198.19.99.1")];
    local.external_traffic_policy = TrafficPolicy::Local;
    let mut a = state(vec![p.clone()]);
    a.settings.local_detector = LocalDetector::ClusterCidrs(vec!["198.18.0.0/16".parse().unwrap()]);
    let mut b = state(vec![p, local]);
    b.settings = a.settings.clone();
    let npa = [ip("198.19.0.2")];
    let mut part = crate::nft::NftPart::with_kernel(Box::new(FakeKernel::new()));
    assert!(part.sync_full(&a, &npa).expect("full sync: every reference resolves") > 0);
    let n = part.sync_changes(&b, &a.diff(&b), &npa).expect("partial sync");
    assert!(n > 0, "the new service changed the table");
    part.sync_changes(&a, &b.diff(&a), &npa).expect("and back: deletes find their elements");
    part.cleanup().expect("cleanup");
}
