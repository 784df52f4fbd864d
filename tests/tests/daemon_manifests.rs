//! The real `kproxy` binary as a long-running daemon on `--manifests DIR` (no `--once`), in a
//! node namespace: files added, edited and removed are programmed incrementally, checked by
//! real traffic from a pod after each change; SIGTERM leaves the rules in place.

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
    let mut cmd = node.command(kproxy_binary().expect("kproxy binary"));
    cmd.args(["--manifests", dir.to_str().expect("utf-8 path")]);
    Daemon::spawn(node_args(&mut cmd))
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
