//! The real `kproxy` daemon as a child process, for the hostile-manifest and capability tests:
//! started from a prepared command, killed if a test fails, and stopped with SIGTERM to
//! collect what it logged. Also the service manifests these tests serve traffic through.

#![allow(dead_code)] // each test file uses part of it

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kproxy_tests::{tally, Netns, Proto};

/// One request's timeout.
pub const T: Duration = Duration::from_millis(800);

/// A Service with a ClusterIP and port 80, and its slice with endpoints `198.18.0.(10 + k)`.
pub fn service(name: &str, vip: &str, endpoints: &[u8]) -> String {
    let eps: String = endpoints
        .iter()
        .map(|k| format!("- addresses: [\"198.18.0.{}\"]\n  conditions: {{ready: true}}\n  nodeName: node-1\n", 10 + k))
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: t}}\n\
         spec:\n  clusterIP: {vip}\n  clusterIPs: [\"{vip}\"]\n  ports:\n  - {{name: http, port: 80, targetPort: 8080, protocol: TCP}}\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: {name}-a\n  namespace: t\n  labels: {{kubernetes.io/service-name: {name}}}\n\
         addressType: IPv4\nports:\n- {{name: http, port: 8080, protocol: TCP}}\nendpoints:\n{eps}"
    )
}

/// Write through a temporary dot-file and rename, as config management tools do.
pub fn write(dir: &Path, file: &str, text: &[u8]) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).expect("write manifest");
    std::fs::rename(&tmp, dir.join(file)).expect("rename manifest");
}

/// The usual daemon arguments for node `node-1` with the pod CIDR 198.18.0.0/16.
pub fn node_args(cmd: &mut Command) -> &mut Command {
    cmd.args(["--hostname-override", "node-1", "--cluster-cidr", "198.18.0.0/16"])
        .args(["--nftables-min-sync-period", "100ms"])
        .args(["--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256"])
}

/// A running daemon; killed on drop if a test fails before [`Daemon::stop`].
pub struct Daemon(Option<Child>);

impl Daemon {
    /// Spawn `cmd` with stderr captured.
    pub fn spawn(cmd: &mut Command) -> Daemon {
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start kproxy");
        Daemon(Some(child))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    /// SIGTERM; the exit status and what it logged.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.0.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // It may have exited already (the caller then sees its status).
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
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

/// Poll until 8 requests from `ns` to `vip` are all answered by pods in `want` (all of them
/// answering), within `limit`; returns how long that took.
pub fn until_served_by(ns: &Netns, vip: SocketAddr, want: &[&str], limit: Duration, what: &str) -> Duration {
    until_served_by_n(ns, vip, want, 8, limit, what)
}

/// [`until_served_by`] with `requests` requests per round.
pub fn until_served_by_n(ns: &Netns, vip: SocketAddr, want: &[&str], requests: usize, limit: Duration, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let t = tally(ns, Proto::Tcp, vip, requests, T).expect("enter pod namespace");
        let servers: Vec<&str> = t.by_server.keys().map(String::as_str).collect();
        if t.answered() == requests && servers == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not served by {want:?} within {limit:?}; last tally {t}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Lines of `log` containing `needle`.
pub fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}
