//! nftables backend: `--dry-run` script == netlink ruleset (`nft -j list ruleset` of both, in
//! two fresh namespaces), cleanup leaves other tables alone, a restart replaces the tables
//! without breaking established connections, SCTP rules render, a configurable table name,
//! and a bare namespace (loopback only) syncs.

mod nft_support;

use std::time::Duration;

use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::{IpFamily, Protocol, SessionAffinity, TrafficPolicy};
use kproxy_nft::{render_script, NftBackend, NftConfig};
use kproxy_tests::{nft_apply, nft_json, require_root, tcp_connect, Netns};
use nft_support::*;

/// A state using every feature, both families.
fn rich_state() -> kproxy_core::model::ProxyState {
    let mut ports = Vec::new();
    for fam in [IpFamily::V4, IpFamily::V6] {
        for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
            let mut sp = with_endpoints(service("rich", p, &vip(fam, 10), 80), &[(1, true), (2, false), (3, true)]);
            sp.node_port = Some(30100 + p.number() as u16);
            ports.push(sp);
        }
        let mut local = with_endpoints(service("local", Protocol::Tcp, &vip(fam, 11), 443), &[(1, true), (2, false)]);
        local.external_traffic_policy = TrafficPolicy::Local;
        local.internal_traffic_policy = TrafficPolicy::Local;
        local.session_affinity = Some(SessionAffinity { timeout_seconds: 10800 });
        local.node_port = Some(30443);
        local.external_ips = vec![match fam {
            IpFamily::V4 => "198.19.99.7".parse().unwrap(),
            IpFamily::V6 => "2001:db8:c:99::7".parse().unwrap(),
        }];
        local.load_balancer_ips = vec![match fam {
            IpFamily::V4 => "198.19.200.7".parse().unwrap(),
            IpFamily::V6 => "2001:db8:c:200::7".parse().unwrap(),
        }];
        local.load_balancer_source_ranges = vec![match fam {
            IpFamily::V4 => "198.19.64.0/24".parse().unwrap(),
            IpFamily::V6 => "2001:db8:c:64::/64".parse().unwrap(),
        }];
        ports.push(local);
        ports.push(service("empty", Protocol::Tcp, &vip(fam, 12), 80));
    }
    state(ports)
}

/// The listing without handles (they differ between a fresh load and a replace).
fn listing(ns: &Netns) -> serde_json::Value {
    let mut v = nft_json(ns).expect("nft -j list ruleset");
    strip(&mut v);
    v
}

fn strip(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("handle");
            m.remove("metainfo");
            m.values_mut().for_each(strip);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// Removes the rules of the listing for which `pick(family, chain)` holds; returns how many.
fn remove_rules(listing: &mut serde_json::Value, pick: impl Fn(&str, &str) -> bool) -> usize {
    let items = listing["nftables"].as_array_mut().expect("nft -j lists an nftables array");
    let before = items.len();
    items.retain(|item| {
        let rule = &item["rule"];
        !(rule.is_object() && pick(rule["family"].as_str().unwrap_or(""), rule["chain"].as_str().unwrap_or("")))
    });
    before - items.len()
}

#[test]
fn dry_run_script_loads_to_the_same_ruleset_as_netlink() {
    require_root();
    let s = rich_state();
    let by_script = Netns::new("nft-script").unwrap();
    let by_netlink = Netns::new("nft-netlink").unwrap();
    nft_apply(&by_script, &render_script(&s, &NftConfig::default())).expect("nft -f of the dry-run script");
    let _b = program(&by_netlink, &s);
    let (a, mut b) = (listing(&by_script), listing(&by_netlink));
    // The IPv6 affinity updates are the only rules the script carries as comments (nft 1.0.6
    // cannot compile them, see README): one per protocol in the one `affinity-10800` chain.
    let removed = remove_rules(&mut b, |family, chain| {
        family == "ip6" && (chain.starts_with("affinity-") || chain.starts_with("nodeport-affinity-"))
    });
    assert_eq!(removed, 6, "the netlink path programs the IPv6 affinity updates (3 service, 3 NodePort)");
    assert_eq!(a, b, "nft -j list ruleset differs between the script and the netlink path");
    let text = kproxy_tests::nft_text(&by_netlink).unwrap();
    assert!(text.contains("sctp . 80"), "SCTP service rendered:\n{text}");
    assert!(text.contains("meta l4proto tcp update @affinity"), "the listing keeps the protocol of the affinity updates:\n{text}");
    // The IPv4 table as nft lists it reloads as is and gives the same table back.
    let ip_table = |ns: &Netns| ns.exec(["nft", "-j", "list", "table", "ip", "kproxy"]).expect("nft -j list table ip kproxy");
    let listed = by_netlink.exec(["nft", "list", "table", "ip", "kproxy"]).expect("nft list table ip kproxy");
    let reloaded = Netns::new("nft-reload").unwrap();
    nft_apply(&reloaded, &listed).expect("nft -f of the IPv4 listing");
    let parse = |t: String| {
        let mut v: serde_json::Value = serde_json::from_str(&t).expect("nft -j output is JSON");
        strip(&mut v);
        v
    };
    assert_eq!(parse(ip_table(&reloaded)), parse(ip_table(&by_netlink)), "the reloaded IPv4 listing differs");
    assert!(text.contains("comment \"default/rich:p\""), "elements name their service:\n{text}");
}

#[test]
fn cleanup_removes_only_kproxys_tables_and_restart_keeps_connections() {
    let t = topology(2);
    nft_apply(&t.node, "table inet other {\n chain c { type filter hook input priority 0; }\n}\n").unwrap();
    let s = state(vec![with_endpoints(service("web", Protocol::Tcp, &vip(IpFamily::V4, 10), 80), &[(1, true), (2, true)])]);
    let mut b = program(&t.node, &s);
    // An established connection through the service...
    let mut session = tcp_connect(&t.pod(1).ns, sa(&vip(IpFamily::V4, 10), 80), T).expect("connecting through the ClusterIP");
    // ...survives a new process replacing the tables (a restart).
    let mut restarted = program(&t.node, &s);
    let reply = session.request().expect("request on the established connection after restart");
    assert!(reply.server.starts_with("pod"), "{reply:?}");
    assert_eq!(send(&t.pod(1).ns, kproxy_tests::Proto::Tcp, sa(&vip(IpFamily::V4, 10), 80), 4, T).answered(), 4);
    // Cleanup: kproxy's tables go, the other table stays; a second cleanup is fine.
    restarted.cleanup().expect("cleanup");
    b.cleanup().expect("second cleanup");
    let text = kproxy_tests::nft_text(&t.node).unwrap();
    assert!(text.contains("table inet other"), "{text}");
    assert!(!text.contains("kproxy"), "{text}");
}

#[test]
fn table_name_is_configurable_and_instances_coexist() {
    require_root();
    let ns = Netns::new("nft-names").unwrap();
    let s = state(vec![with_endpoints(service("web", Protocol::Tcp, &vip(IpFamily::V4, 10), 80), &[(1, true)])]);
    let mut a = ns.run_in(|| NftBackend::new(NftConfig::default())).unwrap().unwrap();
    let mut b = ns
        .run_in(|| NftBackend::new(NftConfig { table_name: "cni-proxy".into(), ..NftConfig::default() }))
        .unwrap()
        .unwrap();
    a.sync_full(&s).unwrap();
    b.sync_full(&s).unwrap();
    let text = kproxy_tests::nft_text(&ns).unwrap();
    assert!(text.contains("table ip kproxy") && text.contains("table ip cni-proxy"), "{text}");
    b.cleanup().unwrap();
    let text = kproxy_tests::nft_text(&ns).unwrap();
    assert!(text.contains("table ip kproxy") && !text.contains("cni-proxy"), "{text}");
}

#[test]
fn a_failed_batch_names_the_object_and_keeps_the_previous_ruleset() {
    require_root();
    let ns = Netns::new("nft-fail").unwrap();
    let good = state(vec![with_endpoints(service("web", Protocol::Tcp, &vip(IpFamily::V4, 10), 80), &[(1, true)])]);
    let mut b = program(&ns, &good);
    let before = listing(&ns);
    // A table name the kernel refuses (longer than NFT_NAME_MAXLEN) fails the whole batch.
    let mut bad = ns
        .run_in(|| NftBackend::new(NftConfig { table_name: "x".repeat(300), ..NftConfig::default() }))
        .unwrap()
        .unwrap();
    let err = bad.sync_full(&good).expect_err("an over-long table name must fail");
    let source = std::error::Error::source(&err).map(|e| e.to_string()).unwrap_or_default();
    eprintln!("failed batch reported as: {err}: {source}");
    assert!(
        source.starts_with(&format!("the kernel rejected `add table {}`", "x".repeat(300))),
        "the error names the failing message: {source}"
    );
    assert_eq!(listing(&ns), before, "the previous ruleset is intact");
    b.sync_full(&good).unwrap();
}

#[test]
fn a_bare_namespace_with_only_loopback_syncs() {
    require_root();
    let ns = Netns::new("nft-bare").unwrap();
    let s = rich_state();
    let mut b = program(&ns, &s);
    let changes = s.diff(&state(vec![]));
    b.sync_changes(&state(vec![]), &changes).expect("partial sync to empty");
    std::thread::sleep(Duration::from_millis(10));
}
