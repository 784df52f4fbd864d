//! Taking over a node from kube-proxy (issue 9 item 1), with real rules and real packets:
//! a node namespace holds kube-proxy's iptables-mode rules in iptables-nft and
//! iptables-legacy (IPv4 and IPv6) and its nftables-mode `ip kube-proxy` table, all sending
//! the Service to an OLD endpoint, next to an admin's rules, kubelet's chains and a foreign
//! ipset. `kproxy --once` with the Service on a NEW endpoint must leave only its own rules
//! plus the foreign ones, byte for byte.

#[path = "takeover_support/mod.rs"]
mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use kproxy_tests::{kproxy_binary, nft_apply, tally, Netns, Proto, ServerSpec, Topology};
use support::*;

const T: Duration = Duration::from_millis(800);
const VIP: &str = "198.19.160.10";
const VIP6: &str = "2001:db8:b::10";
/// (save, restore, IPv6): the four places kube-proxy's iptables rules can be.
const VARIANTS: &[(&str, &str, bool)] = &[
    ("iptables-nft-save", "iptables-nft-restore", false),
    ("ip6tables-nft-save", "ip6tables-nft-restore", true),
    ("iptables-legacy-save", "iptables-legacy-restore", false),
    ("ip6tables-legacy-save", "ip6tables-legacy-restore", true),
];

fn run(mut cmd: Command, stdin: &str) -> String {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn restore(node: &Netns, tool: &str, script: &str) {
    let mut cmd = node.command(tool);
    cmd.arg("--noflush");
    run(cmd, script);
}

/// `*-save` without the comment lines (they carry a timestamp) and with the built-in
/// chains' packet counters zeroed (traffic moves them; the rules are what is compared).
fn save(node: &Netns, tool: &str) -> String {
    let text = run(node.command(tool), "");
    let zeroed = |l: &str| match (l.starts_with(':'), l.rfind(" [")) {
        (true, Some(at)) => format!("{} [0:0]\n", &l[..at]),
        _ => format!("{l}\n"),
    };
    text.lines().filter(|l| !l.starts_with('#')).map(zeroed).collect()
}

fn served_by(node: &Topology, vip: SocketAddr) -> Vec<String> {
    let t = tally(&node.pod(3).ns, Proto::Tcp, vip, 12, T).expect("enter pod namespace");
    assert_eq!(t.answered(), 12, "every request answered: {t}");
    t.by_server.keys().cloned().collect()
}

#[test]
fn kproxy_removes_kube_proxy_leftovers_of_every_mode_and_nothing_else() {
    let topo = Topology::builder().pods(3).serve(ServerSpec::tcp(&[8080])).build().expect("topology");
    let node = &topo.node;
    let (old, new) = (topo.pod(1), topo.pod(2));

    // The node before kube-proxy: admin and kubelet rules, recorded as the expected end state.
    for (_, restore_tool, v6) in VARIANTS {
        restore(node, restore_tool, &foreign_iptables(*v6));
    }
    nft_apply(node, FOREIGN_NFT).expect("admin nft table");
    node.exec(["ipset", "create", "admin-allow", "hash:ip"]).expect("foreign ipset");
    let expected: Vec<String> = VARIANTS.iter().map(|(s, _, _)| save(node, s)).collect();
    let expected_nft = node.exec(["nft", "list", "table", "inet", "filter"]).expect("nft list");

    // kube-proxy's leftovers: iptables mode in all four variants, nftables mode, IPVS ipsets.
    for (_, restore_tool, v6) in VARIANTS {
        let (vip, ep) = if *v6 { (VIP6.to_string(), old.ipv6.to_string()) } else { (VIP.to_string(), old.ipv4.to_string()) };
        restore(node, restore_tool, &kube_proxy_iptables(&vip, &ep, *v6));
    }
    nft_apply(node, &kube_proxy_nft(VIP, &old.ipv4.to_string())).expect("kube-proxy nft table");
    node.exec(["ipset", "create", "KUBE-CLUSTER-IP", "hash:ip,port"]).expect("kube-proxy ipset");
    let vip: SocketAddr = format!("{VIP}:80").parse().unwrap();
    assert_eq!(served_by(&topo, vip), [old.name.clone()], "the leftovers DNAT to the old endpoint");

    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = dir.path().join("web.yaml");
    std::fs::write(&manifest, web_manifest(VIP, &new.ipv4.to_string())).expect("manifest");
    let out = node
        .command(kproxy_binary().expect("kproxy binary"))
        .args(["--once", "--manifests", manifest.to_str().expect("utf-8")])
        .args(["--hostname-override", "node-1", "--cluster-cidr", "198.18.0.0/16"])
        .output()
        .expect("run kproxy");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kproxy --once failed:\n{log}");

    assert_eq!(served_by(&topo, vip), [new.name.clone()], "only the new endpoint answers:\n{log}");
    for ((save_tool, _, _), want) in VARIANTS.iter().zip(&expected) {
        assert_eq!(&save(node, save_tool), want, "{save_tool}: only the foreign rules are left\n{log}");
    }
    assert_eq!(node.exec(["nft", "list", "table", "inet", "filter"]).expect("nft list"), expected_nft);
    let tables = node.exec(["nft", "list", "tables"]).expect("nft list tables");
    assert!(!tables.contains("kube-proxy"), "kube-proxy's nft table is gone: {tables}");
    assert!(tables.contains("table ip kproxy"), "kproxy's own table is there: {tables}");
    assert_eq!(node.exec(["ipset", "list", "-n"]).expect("ipset list").trim(), "admin-allow");

    // Each removal logged once, naming it.
    for what in [
        "iptables-nft (IPv4) table nat: chain KUBE-SVC-WEB0000000000000",
        "iptables-legacy (IPv6) table filter: chain KUBE-FORWARD",
        "iptables-legacy (IPv4) table nat: rule -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "nftables table ip kube-proxy",
        "ipset KUBE-CLUSTER-IP",
    ] {
        // The message as klog's text format quotes it (`"..."`, inner quotes escaped).
        let quoted = format!("Removed kube-proxy leftover: {}\"", what.replace('\\', "\\\\").replace('"', "\\\""));
        let lines = log.lines().filter(|l| l.ends_with(&quoted)).count();
        assert_eq!(lines, 1, "{what} logged once:\n{log}");
    }
    assert!(!log.contains("ip6 kube-proxy"), "a table that was not there is not reported:\n{log}");
}

#[test]
fn a_clean_node_reports_nothing_and_opting_out_keeps_the_leftovers() {
    let node = Netns::new("tko-opt").expect("netns");
    restore(&node, "iptables-nft-restore", &kube_proxy_iptables(VIP, "198.18.0.11", false));
    let before = save(&node, "iptables-nft-save");
    let out = node
        .command(kproxy_binary().expect("kproxy binary"))
        .args(["--cleanup", "--remove-kube-proxy-leftovers=false"])
        .output()
        .expect("run kproxy");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(save(&node, "iptables-nft-save"), before, "opted out: nothing of kube-proxy's removed\n{log}");
    assert!(!log.contains("kube-proxy leftover"), "{log}");

    // --cleanup removes them; a second run finds nothing to remove.
    let out = node.command(kproxy_binary().expect("kproxy binary")).arg("--cleanup").output().expect("run kproxy");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("chain KUBE-SERVICES"), "{log}");
    assert!(!save(&node, "iptables-nft-save").contains("KUBE-"), "{log}");
    let out = node.command(kproxy_binary().expect("kproxy binary")).arg("--cleanup").output().expect("run kproxy");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !log.contains("kube-proxy leftover"), "{log}");
}
