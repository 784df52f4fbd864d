//! The real `kproxy` binary as a long-running daemon on `--manifests DIR` (no `--once`), in a
//! node namespace: files added, edited and removed are programmed incrementally, checked by
//! real traffic from a pod after each change; SIGTERM leaves the rules in place. Two Services
//! claiming one address: the older owns it, and the other takes over as soon as it goes
//! (issue 12 item 2); ExternalIPs outside `--external-ip-allowed-cidrs` are not programmed
//! (CVE-2020-8554, issue 12 item 7).

mod daemon_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use daemon_support::{node_args, service, Daemon, T};
use kproxy_tests::{kproxy_binary, nft_text, tally, Netns, Proto, ServerSpec, Topology};

/// How long one change may take to show in traffic. The source polls every 500 ms and the
/// sync loop waits at most minSyncPeriod (100 ms here); the rest is slack for a loaded CI host.
const CONVERGE: Duration = Duration::from_secs(8);

fn start(node: &Netns, dir: &Path) -> Daemon {
    start_with(node, dir, &[])
}

fn start_with(node: &Netns, dir: &Path, extra: &[&str]) -> Daemon {
    let mut cmd = node.command(kproxy_binary().expect("kproxy binary"));
    cmd.args(["--manifests", dir.to_str().expect("utf-8 path")]);
    node_args(&mut cmd).args(extra);
    Daemon::spawn(&mut cmd)
}

fn write(dir: &Path, file: &str, text: &str) {
    daemon_support::write(dir, file, text.as_bytes());
}

/// Poll until every one of 12 requests from `ns` is answered by a pod in `want` and all of
/// `want` answered; returns how long that took.
fn until_served_by(ns: &Netns, vip: SocketAddr, want: &[&str], what: &str) -> Duration {
    daemon_support::until_served_by_n(ns, vip, want, 12, CONVERGE, what)
}

fn until_unanswered(ns: &Netns, vip: SocketAddr, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let t = tally(ns, Proto::Tcp, vip, 4, T).expect("enter pod namespace");
        if t.answered() == 0 {
            return start.elapsed();
        }
        assert!(start.elapsed() < CONVERGE, "{what}: still answered after {CONVERGE:?}: {t}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn running_daemon_follows_manifest_files_added_edited_and_removed() {
    let topo = Topology::builder().pods(3).serve(ServerSpec::tcp(&[8080])).build().expect("topology");
    let dir = tempfile::tempdir().expect("temp dir");
    let web: SocketAddr = "198.19.160.10:80".parse().unwrap();
    let api: SocketAddr = "198.19.160.11:80".parse().unwrap();
    write(dir.path(), "web.yaml", &service("web", "198.19.160.10", &[1, 2]));

    let daemon = start(&topo.node, dir.path());
    let client = &topo.pod(3).ns;
    let took = until_served_by(client, web, &["pod1", "pod2"], "initial read");
    eprintln!("initial manifests programmed and serving after {took:?}");

    write(dir.path(), "web.yaml", &service("web", "198.19.160.10", &[2]));
    let took = until_served_by(client, web, &["pod2"], "endpoint removed by an edit");
    eprintln!("edit (endpoint removed) took {took:?}");

    write(dir.path(), "api.yaml", &service("api", "198.19.160.11", &[1, 3]));
    let took = until_served_by(client, api, &["pod1", "pod3"], "file added");
    eprintln!("new file took {took:?}");
    until_served_by(client, web, &["pod2"], "other service untouched by the new file");

    std::fs::remove_file(dir.path().join("web.yaml")).expect("remove web.yaml");
    let took = until_unanswered(client, web, "file removed");
    // Includes the timed-out probes themselves (each unanswered request waits T).
    eprintln!("removed file: no answers observed after {took:?}");
    until_served_by(client, api, &["pod1", "pod3"], "remaining service after a removal");

    let (status, log) = daemon.stop();
    assert!(status.success(), "kproxy exit status {status:?} after SIGTERM; log:\n{log}");
    assert!(log.contains("Syncing proxy rules"), "expected the sync log line; log:\n{log}");
    // Rules stay after SIGTERM, as kube-proxy leaves them.
    let ruleset = nft_text(&topo.node).expect("nft list ruleset");
    assert!(ruleset.contains("t/api:http"), "kproxy's rules were removed on SIGTERM:\n{ruleset}");
    until_served_by(client, api, &["pod1", "pod3"], "after SIGTERM");
}

/// `service`, with a `metadata.creationTimestamp`.
fn service_created(name: &str, vip: &str, endpoints: &[u8], created: &str) -> String {
    service(name, vip, endpoints).replacen("namespace: t}", &format!("namespace: t, creationTimestamp: \"{created}\"}}"), 1)
}

/// The value of sample `line_prefix` (name and labels) on the daemon's `/metrics`.
fn metric(node: &Netns, line_prefix: &str) -> Option<f64> {
    let text = node
        .exec(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:10249/metrics"])
        .expect("GET /metrics");
    text.lines().find_map(|l| l.strip_prefix(line_prefix)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Every one of `rounds` tallies of 8 requests is answered, by `want` only.
fn stays_served_by(ns: &Netns, vip: SocketAddr, want: &[&str], rounds: usize, what: &str) {
    for _ in 0..rounds {
        let t = tally(ns, Proto::Tcp, vip, 8, T).expect("enter pod namespace");
        let servers: Vec<&str> = t.by_server.keys().map(String::as_str).collect();
        assert!(t.answered() == 8 && servers == want, "{what}: expected only {want:?}, got {t}");
        std::thread::sleep(Duration::from_millis(150));
    }
}

const CONFLICT_WARNING: &str = "is also claimed by Service";

#[test]
fn two_services_on_one_cluster_ip_the_older_owns_it_and_the_other_takes_over_at_once() {
    let topo = Topology::builder().pods(3).serve(ServerSpec::tcp(&[8080])).build().expect("topology");
    let dir = tempfile::tempdir().expect("temp dir");
    let vip: SocketAddr = "198.19.160.20:80".parse().unwrap();
    write(dir.path(), "old.yaml", &service_created("old", "198.19.160.20", &[1], "2026-01-01T00:00:00Z"));
    let daemon = start(&topo.node, dir.path());
    let client = &topo.pod(3).ns;
    until_served_by(client, vip, &["pod1"], "the first service");

    // A younger Service claims the same ClusterIP:port, written later: the older keeps it.
    write(dir.path(), "new.yaml", &service_created("new", "198.19.160.20", &[2], "2026-02-01T00:00:00Z"));
    // Time for the source's poll (500 ms) and a sync; then traffic must still go to pod1 only.
    std::thread::sleep(Duration::from_millis(1500));
    stays_served_by(client, vip, &["pod1"], 6, "the older service owns the address");
    let conflicts = "kproxy_service_address_conflicts{kind=\"cluster_ip\"}";
    assert_eq!(metric(&topo.node, conflicts), Some(1.0));
    // More syncs of the younger one (an endpoint change) do not repeat the warning.
    write(dir.path(), "new.yaml", &service_created("new", "198.19.160.20", &[2, 3], "2026-02-01T00:00:00Z"));
    std::thread::sleep(Duration::from_millis(1500));
    stays_served_by(client, vip, &["pod1"], 3, "after the younger service changed");

    // The owner goes: the younger one takes over without waiting for a resync.
    std::fs::remove_file(dir.path().join("old.yaml")).expect("remove old.yaml");
    let took = until_served_by(client, vip, &["pod2", "pod3"], "hand-over after the owner was removed");
    eprintln!("hand-over after removing the owner took {took:?}");
    assert_eq!(metric(&topo.node, conflicts), Some(0.0));

    let (status, log) = daemon.stop();
    assert!(status.success(), "kproxy exit status {status:?}; log:\n{log}");
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(CONFLICT_WARNING)).collect();
    assert_eq!(warnings.len(), 1, "expected one conflict warning; log:\n{log}");
    assert!(warnings[0].contains("t/new") && warnings[0].contains("t/old"), "the warning names both: {}", warnings[0]);
}

#[test]
fn external_ips_outside_the_allow_list_are_not_programmed() {
    let topo = Topology::builder().pods(2).serve(ServerSpec::tcp(&[8080])).build().expect("topology");
    let dir = tempfile::tempdir().expect("temp dir");
    let allowed: SocketAddr = "198.18.200.1:80".parse().unwrap();
    let outside: SocketAddr = "198.18.201.1:80".parse().unwrap();
    let text = service("ext", "198.19.160.30", &[1])
        .replacen("  ports:\n", "  externalIPs: [\"198.18.200.1\", \"198.18.201.1\"]\n  ports:\n", 1);
    write(dir.path(), "ext.yaml", &text);
    let daemon = start_with(&topo.node, dir.path(), &["--external-ip-allowed-cidrs", "198.18.200.0/24"]);
    let client = &topo.pod(2).ns;
    until_served_by(client, allowed, &["pod1"], "the allowed ExternalIP");
    let t = tally(client, Proto::Tcp, outside, 4, T).expect("enter pod namespace");
    assert_eq!(t.answered(), 0, "the ExternalIP outside the allow-list was DNATed: {t}");
    let ruleset = nft_text(&topo.node).expect("nft list ruleset");
    assert!(ruleset.contains("198.18.200.1") && !ruleset.contains("198.18.201.1"), "ruleset:\n{ruleset}");
    assert_eq!(metric(&topo.node, "kproxy_service_addresses_not_allowed{kind=\"external_ip\"}"), Some(1.0));

    let (status, log) = daemon.stop();
    assert!(status.success(), "kproxy exit status {status:?}; log:\n{log}");
    let warnings = log.lines().filter(|l| l.contains("198.18.201.1") && l.contains("--external-ip-allowed-cidrs")).count();
    assert_eq!(warnings, 1, "expected one warning about 198.18.201.1; log:\n{log}");
}
