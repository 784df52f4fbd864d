//! The real `kproxy` binary as a long-running daemon on `--manifests DIR` (no `--once`), in a
//! node namespace: files added, edited and removed are programmed incrementally, checked by
//! real traffic from a pod after each change; SIGTERM leaves the rules in place.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use kproxy_tests::{kproxy_binary, nft_text, tally, Netns, Proto, ServerSpec, Topology};

const T: Duration = Duration::from_millis(800);
/// How long one change may take to show in traffic. The source polls every 500 ms and the
/// sync loop waits at most minSyncPeriod (100 ms here); the rest is slack for a loaded CI host.
const CONVERGE: Duration = Duration::from_secs(8);

fn service(name: &str, vip: &str, endpoints: &[u8]) -> String {
    let eps: String = endpoints
        .iter()
        .map(|k| {
            format!(
                "- addresses: [\"198.18.0.{}\"]\n  conditions: {{ready: true}}\n  nodeName: node-1\n",
                10 + k
            )
        })
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: t}}\n\
         spec:\n  clusterIP: {vip}\n  clusterIPs: [\"{vip}\"]\n  ports:\n  - {{name: http, port: 80, targetPort: 8080, protocol: TCP}}\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: {name}-a\n  namespace: t\n  labels: {{kubernetes.io/service-name: {name}}}\n\
         addressType: IPv4\nports:\n- {{name: http, port: 8080, protocol: TCP}}\nendpoints:\n{eps}"
    )
}

/// Write through a temporary file and rename, as config management tools do.
fn write(dir: &Path, file: &str, text: &str) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).expect("write manifest");
    std::fs::rename(&tmp, dir.join(file)).expect("rename manifest");
}

/// Kills the daemon if a test fails before it is stopped.
struct Daemon(Option<Child>);

impl Daemon {
    fn start(node: &Netns, dir: &Path) -> Daemon {
        let child = node
            .command(kproxy_binary().expect("kproxy binary"))
            .args(["--manifests", dir.to_str().expect("utf-8 path")])
            .args(["--hostname-override", "node-1", "--cluster-cidr", "198.18.0.0/16"])
            .args(["--nftables-min-sync-period", "100ms"])
            .args(["--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kproxy");
        Daemon(Some(child))
    }

    /// SIGTERM; returns the exit status and what it logged.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.0.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "kproxy did not exit within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut log = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut log);
        }
        (status, log)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Poll until every one of 12 requests from `ns` is answered by a pod in `want` and all of
/// `want` answered; returns how long that took.
fn until_served_by(ns: &Netns, vip: SocketAddr, want: &[&str], what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let t = tally(ns, Proto::Tcp, vip, 12, T).expect("enter pod namespace");
        let servers: Vec<&str> = t.by_server.keys().map(String::as_str).collect();
        if t.answered() == 12 && servers == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < CONVERGE, "{what}: not converged within {CONVERGE:?}; last tally {t}");
        std::thread::sleep(Duration::from_millis(100));
    }
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

    let daemon = Daemon::start(&topo.node, dir.path());
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
