//! `kproxy doctor -o json` in a node namespace (issue 11): a healthy node (the real daemon on
//! manifests) has every check ok; deliberately broken nodes fail the check named for the
//! breakage, with what was seen. Each node state is real (routes, CNI file, iptables and
//! nftables rules, conntrack entries, a closed API port), except the conntrack limit: a
//! network namespace cannot change nf_conntrack_max (read-only, global, 262144 here) and
//! filling the global table is not an option, so that test inserts real entries and hands
//! doctor a small limit (`--kproxy-conntrack-max`, a hidden flag that replaces only the read
//! of the limit). Doctor is read-only: each broken test checks that the breakage is still there
//! after doctor ran.

mod daemon_support;
#[allow(dead_code)] // the takeover tests use the rest
#[path = "takeover_support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use daemon_support::{node_args, service, Daemon};
use kproxy_tests::{kproxy_binary, nft_apply, Netns, ServerSpec, Topology};

/// Both families' pod ranges, as the topology's bridge has them.
const CLUSTER_CIDR: &str = "198.18.0.0/16,2001:db8:a::/48";
/// Every check a valid configuration runs.
const CHECKS: &[&str] = &[
    "config",
    "cluster-cidr",
    "node-port-addresses",
    "kernel-features",
    "kube-proxy-leftovers",
    "kproxy-tables",
    "conntrack",
    "stale-udp-conntrack",
    "api",
    "api-throttling",
    "daemon-health",
];

fn kproxy(node: &Netns) -> Command {
    kproxy_with(node, &[])
}

/// The binary with `first` (a subcommand) before the daemon's usual flags.
fn kproxy_with(node: &Netns, first: &[&str]) -> Command {
    let mut cmd = node.command(kproxy_binary().expect("kproxy binary"));
    cmd.args(first);
    node_args(&mut cmd).args(["--cluster-cidr", CLUSTER_CIDR]);
    cmd
}

/// A CNI configuration directory with one bridge conflist naming `subnets`.
fn cni_dir(subnets: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let ranges: Vec<String> = subnets.iter().map(|s| format!("[{{\"subnet\":\"{s}\"}}]")).collect();
    let conf = format!(
        "{{\"cniVersion\":\"1.0.0\",\"name\":\"pods\",\"plugins\":[{{\"type\":\"bridge\",\"bridge\":\"kbr0\",\"ipam\":{{\"type\":\"host-local\",\"ranges\":[{}]}}}}]}}",
        ranges.join(",")
    );
    std::fs::write(dir.path().join("10-pods.conflist"), conf).expect("write conflist");
    dir
}

/// `kproxy --once` on `manifests`: kproxy's tables programmed, nothing running.
fn program_once(node: &Netns, manifests: &Path, extra: &[&str]) {
    let out = kproxy(node).args(["--once", "--manifests", manifests.to_str().unwrap()]).args(extra).output().expect("run kproxy --once");
    assert!(out.status.success(), "kproxy --once failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// What one doctor run printed and returned.
struct Doctor {
    code: i32,
    json: serde_json::Value,
    stdout: String,
    took: Duration,
}

impl Doctor {
    fn check(&self, id: &str) -> &serde_json::Value {
        let checks = self.json["checks"].as_array().expect("checks array");
        checks.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no check {id} in:\n{}", self.stdout))
    }

    fn verdict(&self, id: &str) -> &str {
        self.check(id)["verdict"].as_str().expect("verdict string")
    }

    fn seen(&self, id: &str) -> &str {
        self.check(id)["seen"].as_str().expect("seen string")
    }

    /// `id` has `verdict` and its `seen` contains each of `needles`.
    fn expect(&self, id: &str, verdict: &str, needles: &[&str]) {
        assert_eq!(self.verdict(id), verdict, "check {id}; doctor printed:\n{}", self.stdout);
        for n in needles {
            assert!(self.seen(id).contains(n), "check {id}: {n:?} not in what it saw; doctor printed:\n{}", self.stdout);
        }
        if verdict != "ok" {
            assert!(!self.check(id)["action"].as_str().unwrap_or("").is_empty(), "check {id}: no action:\n{}", self.stdout);
        }
    }
}

/// `kproxy doctor -o json` in `node` with the daemon's flags plus `args`.
fn doctor(node: &Netns, args: &[&str]) -> Doctor {
    // The host's /etc/cni/net.d is not the test node's: an empty directory unless `args`
    // name one (the last --cni-conf-dir wins).
    let no_cni = tempfile::tempdir().expect("temp dir");
    let start = Instant::now();
    let out = kproxy_with(node, &["doctor", "-o", "json", "--cni-conf-dir", no_cni.path().to_str().unwrap()]).args(args).output().expect("run kproxy doctor");
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or_default();
    let json = serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr)));
    Doctor { code: out.status.code().expect("exit code"), json, stdout, took }
}

fn manifests(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("svc.yaml"), text).expect("write manifest");
    dir
}

fn wait_healthy(node: &Netns) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = node.exec(["curl", "-sS", "--max-time", "2", "http://127.0.0.1:10256/healthz"]).unwrap_or_default();
        if body.contains("\"healthy\":true") && !body.contains("0001-01-01") {
            return;
        }
        assert!(Instant::now() < deadline, "daemon not healthy within 10 s: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn healthy_node_with_the_daemon_running_is_all_ok() {
    let topo = Topology::builder().pods(2).serve(ServerSpec::tcp(&[8080])).build().expect("topology");
    let dir = manifests(&service("web", "198.19.160.10", &[1, 2]));
    let cni = cni_dir(&["198.18.0.0/16", "2001:db8:a::/64"]);
    let daemon = Daemon::spawn(kproxy(&topo.node).args(["--manifests", dir.path().to_str().unwrap()]));
    wait_healthy(&topo.node);

    let d = doctor(&topo.node, &["--manifests", dir.path().to_str().unwrap(), "--cni-conf-dir", cni.path().to_str().unwrap()]);
    let ids: Vec<&str> = d.json["checks"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, CHECKS, "{}", d.stdout);
    for id in CHECKS {
        assert_eq!(d.verdict(id), "ok", "check {id}; doctor printed:\n{}", d.stdout);
    }
    assert_eq!((d.code, d.json["verdict"].as_str()), (0, Some("ok")), "{}", d.stdout);
    d.expect("cluster-cidr", "ok", &["CNI subnet 198.18.0.0/16", "CNI subnet 2001:db8:a::/64", "route 198.18.0.0/16 dev kbr0"]);
    d.expect("kproxy-tables", "ok", &["ip kproxy", "ip6 kproxy", "in sync with the sources", "rulesetIntact=true"]);
    d.expect("daemon-health", "ok", &["HTTP 200", "healthy=true", "last sync"]);
    eprintln!("healthy node: doctor took {:?}\n{}", d.took, d.stdout);
    assert!(d.took < Duration::from_secs(10), "doctor took {:?}", d.took);
    let (status, log) = daemon.stop();
    assert!(status.success(), "daemon: {status:?}\n{log}");
}

#[test]
fn wrong_cluster_cidr_against_the_cni_configuration_and_the_pod_routes() {
    let topo = Topology::builder().pods(1).build().expect("topology");
    let dir = manifests(&service("web", "198.19.160.10", &[1]));
    program_once(&topo.node, dir.path(), &[]);
    let m = dir.path().to_str().unwrap();
    let cni = cni_dir(&["198.18.0.0/24"]);
    let wrong = "198.18.128.0/17,2001:db8:a::/48";

    let d = doctor(&topo.node, &["--manifests", m, "--cni-conf-dir", cni.path().to_str().unwrap(), "--cluster-cidr", wrong]);
    d.expect("cluster-cidr", "fail", &["clusterCIDR 198.18.128.0/17,2001:db8:a::/48", "CNI subnet 198.18.0.0/24", "10-pods.conflist"]);
    assert_eq!(d.code, 2, "{}", d.stdout);
    eprintln!("wrong clusterCIDR:\n{}", d.stdout);

    // No CNI file: the route to the pod bridge still shows it (a warning: a bridge could hold
    // something else); the uplink bridge carries the default route and is not a pod bridge.
    let empty = tempfile::tempdir().expect("temp dir");
    let d = doctor(&topo.node, &["--manifests", m, "--cni-conf-dir", empty.path().to_str().unwrap(), "--cluster-cidr", wrong]);
    d.expect("cluster-cidr", "warn", &["route 198.18.0.0/16 dev kbr0"]);
    assert!(!d.seen("cluster-cidr").contains("ext0"), "{}", d.stdout);
    let d = doctor(&topo.node, &["--manifests", m, "--cni-conf-dir", empty.path().to_str().unwrap()]);
    d.expect("cluster-cidr", "ok", &["route 198.18.0.0/16 dev kbr0", "no CNI configuration in"]);
}

#[test]
fn leftover_kube_proxy_rules_fail_and_stay() {
    let topo = Topology::builder().pods(1).build().expect("topology");
    let dir = manifests(&service("web", "198.19.160.10", &[1]));
    program_once(&topo.node, dir.path(), &["--remove-kube-proxy-leftovers=false"]);
    let mut restore = topo.node.command("iptables-nft-restore");
    restore.arg("--noflush").stdin(std::process::Stdio::piped());
    let mut child = restore.spawn().expect("iptables-nft-restore");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), support::kube_proxy_iptables("198.19.160.10", "198.18.0.99", false).as_bytes()).unwrap();
    assert!(child.wait().expect("wait").success(), "iptables-nft-restore failed");
    nft_apply(&topo.node, &support::kube_proxy_nft("198.19.160.10", "198.18.0.99")).expect("load table ip kube-proxy");

    let d = doctor(&topo.node, &["--manifests", dir.path().to_str().unwrap()]);
    d.expect("kube-proxy-leftovers", "fail", &["iptables-nft (IPv4) table nat: chains", "KUBE-SERVICES", "jump rules", "nftables table ip kube-proxy"]);
    assert_eq!(d.code, 2, "{}", d.stdout);
    // Read-only: everything is still there.
    let saved = topo.node.exec(["iptables-nft-save", "-t", "nat"]).expect("iptables-nft-save");
    assert!(saved.contains(":KUBE-SERVICES") && saved.contains("-j KUBE-SERVICES"), "doctor removed kube-proxy's rules:\n{saved}");
    topo.node.exec(["nft", "list", "table", "ip", "kube-proxy"]).expect("doctor removed table ip kube-proxy");
}

#[test]
fn missing_kproxy_table_and_an_invalid_configuration() {
    let topo = Topology::builder().pods(1).build().expect("topology");
    let dir = manifests(&service("web", "198.19.160.10", &[1]));
    program_once(&topo.node, dir.path(), &[]);
    let m = dir.path().to_str().unwrap();

    // Drift first: one element gone from the kernel is named, against the sources.
    topo.node.exec(["nft", "delete element ip kproxy service-ips { 198.19.160.10 . tcp . 80 }"]).expect("delete element");
    let d = doctor(&topo.node, &["--manifests", m]);
    d.expect("kproxy-tables", "fail", &["1 difference(s) from the sources", "missing: element 198.19.160.10 . tcp . 80", "service-ips"]);
    assert_eq!(d.code, 2, "{}", d.stdout);

    topo.node.exec(["nft", "delete", "table", "ip", "kproxy"]).expect("delete table ip kproxy");

    let d = doctor(&topo.node, &["--manifests", m]);
    d.expect("kproxy-tables", "fail", &["table ip kproxy missing", "present: ip6 kproxy"]);
    d.expect("kernel-features", "ok", &["ip6 kproxy"]);
    assert_eq!(d.code, 2, "{}", d.stdout);
    assert!(topo.node.exec(["nft", "list", "table", "ip", "kproxy"]).is_err(), "doctor must not recreate the table");

    // A configuration error is a located failure, and the kernel checks still run.
    let conf = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(conf.path(), "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\nconntrack:\n  maxPerCore: lots\n").unwrap();
    let d = doctor(&topo.node, &["--manifests", m, "--config", conf.path().to_str().unwrap()]);
    let file = conf.path().display().to_string();
    d.expect("config", "fail", &[&format!("{file}:5:")]);
    d.expect("kproxy-tables", "fail", &["table ip kproxy missing"]);
    assert_eq!(d.code, 2, "{}", d.stdout);
}

#[test]
fn unreachable_api_server_fails_fast_with_its_address() {
    let topo = Topology::builder().pods(1).build().expect("topology");
    // Nothing listens on this port inside the node namespace: connection refused.
    let kubeconfig = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        kubeconfig.path(),
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:6999\", insecure-skip-tls-verify: true}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    let d = doctor(&topo.node, &["--kubeconfig", kubeconfig.path().to_str().unwrap()]);
    d.expect("api", "fail", &["https://127.0.0.1:6999", "Connection refused"]);
    d.expect("stale-udp-conntrack", "warn", &["API server did not answer"]);
    // Nothing programmed here: the kernel check ran kproxy's ruleset in check mode only.
    d.expect("kernel-features", "ok", &["check mode", "nothing committed"]);
    let ruleset = topo.node.exec(["nft", "list", "ruleset"]).expect("nft list ruleset");
    assert!(ruleset.trim().is_empty(), "doctor's check mode left rules behind:\n{ruleset}");
    assert!(!d.seen("cluster-cidr").contains("not found"), "a Node that was never asked for is not 'not found':\n{}", d.stdout);
    assert_eq!(d.code, 2, "{}", d.stdout);
    eprintln!("no API (closed port): doctor took {:?}\n{}", d.took, d.stdout);
    assert!(d.took < Duration::from_secs(15), "doctor took {:?} against a closed port", d.took);

    // A server that never answers (SYNs dropped in the node namespace): bounded by the probe.
    nft_apply(&topo.node, "table ip blackhole {\n chain out {\n type filter hook output priority 0;\n tcp dport 6999 drop\n }\n}\n").expect("drop rule");
    let d = doctor(&topo.node, &["--kubeconfig", kubeconfig.path().to_str().unwrap()]);
    d.expect("api", "fail", &["https://127.0.0.1:6999"]);
    eprintln!("no API (dropped): doctor took {:?}\n{}", d.took, d.stdout);
    assert!(d.took < Duration::from_secs(15), "doctor took {:?} against a silent server", d.took);
}

/// Inserts `n` UDP conntrack entries from pod 1's address in the node namespace.
fn insert_udp_entries(node: &Netns, dst: &str, reply_src: &str, n: u16) {
    for k in 0..n {
        let sport = (40000 + k).to_string();
        node.exec([
            "conntrack", "-I", "-p", "udp", "-s", "198.18.0.11", "-d", dst, "--sport", &sport, "--dport", "53",
            "--reply-src", reply_src, "--reply-dst", "198.18.0.11", "--reply-port-src", "53", "--reply-port-dst", &sport,
            "--timeout", "120",
        ])
        .expect("conntrack -I");
    }
}

#[test]
fn conntrack_near_full_fails() {
    let topo = Topology::builder().pods(1).build().expect("topology");
    let dir = manifests(&service("web", "198.19.160.10", &[1]));
    program_once(&topo.node, dir.path(), &[]);
    let m = dir.path().to_str().unwrap();
    // Real entries between two pod-range addresses (no service involved).
    insert_udp_entries(&topo.node, "198.18.0.50", "198.18.0.50", 20);
    let count: u64 = topo.node.exec(["cat", "/proc/sys/net/netfilter/nf_conntrack_count"]).unwrap().trim().parse().unwrap();
    assert!(count >= 20, "only {count} conntrack entries");

    let d = doctor(&topo.node, &["--manifests", m]);
    d.expect("conntrack", "ok", &[&format!("{count} of ")]);
    let d = doctor(&topo.node, &["--manifests", m, "--kproxy-conntrack-max", &(count + 1).to_string()]);
    d.expect("conntrack", "fail", &[&format!("{count} of {}", count + 1), "drops new connections"]);
    assert_eq!(d.code, 2, "{}", d.stdout);
    let d = doctor(&topo.node, &["--manifests", m, "--kproxy-conntrack-max", &(count * 10 / 8).to_string()]);
    d.expect("conntrack", "warn", &[]);
}

#[test]
fn stale_udp_entry_of_a_service_without_endpoints_fails_and_stays() {
    let topo = Topology::builder().pods(1).build().expect("topology");
    let dns = "apiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: t}\n\
               spec:\n  clusterIP: 198.19.160.30\n  clusterIPs: [\"198.19.160.30\"]\n  ports:\n  - {name: dns, port: 53, targetPort: 53, protocol: UDP}\n";
    let dir = manifests(dns);
    program_once(&topo.node, dir.path(), &[]);
    let m = dir.path().to_str().unwrap();
    let d = doctor(&topo.node, &["--manifests", m]);
    d.expect("stale-udp-conntrack", "ok", &[]);

    // A client's flow still DNATed to an endpoint that is gone (the state a black-holed
    // client is in after its endpoint went away while the daemon was down).
    insert_udp_entries(&topo.node, "198.19.160.30", "198.18.0.77", 1);
    let d = doctor(&topo.node, &["--manifests", m]);
    d.expect("stale-udp-conntrack", "fail", &["1 UDP conntrack entries", "198.19.160.30", "198.18.0.77"]);
    assert_eq!(d.code, 2, "{}", d.stdout);
    let listed = topo.node.exec(["conntrack", "-L", "-p", "udp", "--orig-dst", "198.19.160.30"]).expect("conntrack -L");
    assert!(listed.contains("198.18.0.77"), "doctor deleted the entry:\n{listed}");
}

#[test]
fn ipvs_mode_on_a_kernel_without_ipvs_fails_the_kernel_check() {
    // This kernel has no IPVS (the IPVS tests run in a VM): a real node missing its modules.
    assert!(!Path::new("/proc/net/ip_vs").exists(), "this test expects a kernel without IPVS");
    let topo = Topology::builder().pods(1).build().expect("topology");
    let dir = manifests(&service("web", "198.19.160.10", &[1]));
    let d = doctor(&topo.node, &["--manifests", dir.path().to_str().unwrap(), "--proxy-mode", "ipvs"]);
    d.expect("kernel-features", "fail", &["IPVS does not answer"]);
    assert!(d.check("kernel-features")["action"].as_str().unwrap().contains("modprobe ip_vs"), "{}", d.stdout);
    d.expect("kproxy-tables", "fail", &["table ip kproxy-ipvs missing"]);
    assert_eq!(d.code, 2, "{}", d.stdout);
}
