//! etcd and kube-apiserver as child processes on 127.0.0.1, with generated credentials.
//!
//! Everything lives in one run directory (certificates, kubeconfigs, etcd data, logs).
//! [`Cluster`] stops both processes when dropped (API server first: it hangs on shutdown
//! while etcd is gone), so an early return or panic in the harness leaves nothing running.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::build::Binaries;
use crate::cmd;

/// Inside the plan's ServiceCIDR range (198.19.160.0/20).
pub const SERVICE_CIDR: &str = "198.19.160.0/20";
/// What the API server advertises for the `kubernetes` Service (never contacted: the
/// harness and tests use 127.0.0.1; a loopback address is not allowed in Endpoints).
const ADVERTISE_ADDRESS: &str = "198.19.0.250";
/// Bound on each readiness wait.
const READY_TIMEOUT: &str = "90s";
/// How long etcd gets to exit after SIGTERM before SIGKILL.
const ETCD_STOP_GRACE: Duration = Duration::from_secs(10);
/// kube-apiserver stops listening at once on SIGTERM but then waits for open watches to
/// end (minutes); nothing of value is lost by cutting that short.
const APISERVER_STOP_GRACE: Duration = Duration::from_secs(3);

/// The running (or stopped) control plane.
pub struct Cluster {
    bins: Binaries,
    dir: PathBuf,
    etcd_port: u16,
    etcd_peer_port: u16,
    api_port: u16,
    etcd: Option<Child>,
    apiserver: Option<Child>,
}

impl Cluster {
    /// Generates credentials in `dir` and picks free ports; starts nothing yet.
    pub fn prepare(bins: Binaries, dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let certs = dir.join("pki");
        cmd::status(Command::new(&bins.kit).arg("certs").arg("--dir").arg(&certs))?;
        let c = Cluster {
            bins,
            dir: dir.to_path_buf(),
            etcd_port: free_port()?,
            etcd_peer_port: free_port()?,
            api_port: free_port()?,
            etcd: None,
            apiserver: None,
        };
        cmd::status(
            Command::new(&c.bins.kit).arg("kubeconfig").arg("--dir").arg(&certs).arg("--server").arg(c.url()),
        )?;
        Ok(c)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Admin (system:masters) kubeconfig.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("pki").join("admin.kubeconfig")
    }

    /// kproxy's kubeconfig (its ServiceAccount token), written by [`Cluster::bootstrap`].
    pub fn kproxy_kubeconfig(&self) -> PathBuf {
        self.dir.join("kproxy.kubeconfig")
    }

    /// CA certificate that signed the serving certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("pki").join("ca.crt")
    }

    /// Starts etcd (no-op if running).
    pub fn start_etcd(&mut self) -> Result<(), String> {
        if self.etcd.is_some() {
            return Ok(());
        }
        let client = format!("http://127.0.0.1:{}", self.etcd_port);
        let peer = format!("http://127.0.0.1:{}", self.etcd_peer_port);
        let mut c = Command::new(&self.bins.etcd);
        c.args(["--name", "e2e", "--data-dir"])
            .arg(self.dir.join("etcd-data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("e2e={peer}")])
            // Test data: durability across power loss does not matter, latency does.
            .args(["--unsafe-no-fsync", "--log-level", "warn"]);
        self.etcd = Some(spawn_logged(&mut c, &self.dir.join("etcd.log"))?);
        Ok(())
    }

    /// Starts kube-apiserver and waits (bounded) until `/readyz` says ok.
    pub fn start_apiserver(&mut self) -> Result<(), String> {
        if self.apiserver.is_none() {
            let pki = self.dir.join("pki");
            let p = |f: &str| pki.join(f).display().to_string();
            let mut c = Command::new(&self.bins.apiserver);
            c.arg(format!("--etcd-servers=http://127.0.0.1:{}", self.etcd_port))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={}", self.api_port))
                .arg(format!("--advertise-address={ADVERTISE_ADDRESS}"))
                .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
                .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
                .arg(format!("--client-ca-file={}", p("ca.crt")))
                .arg("--service-account-issuer=https://kubernetes.default.svc")
                .arg(format!("--service-account-key-file={}", p("sa.pub")))
                .arg(format!("--service-account-signing-key-file={}", p("sa.key")))
                .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
                .arg("--authorization-mode=Node,RBAC")
                // As kubeadm and every real cluster: kube-proxy (and kproxy) run privileged.
                .arg("--allow-privileged=true")
                .arg(format!("--cert-dir={}", self.dir.join("apiserver-certs").display()));
            self.apiserver = Some(spawn_logged(&mut c, &self.dir.join("apiserver.log"))?);
        }
        self.wait_ready()
    }

    /// Polls `/readyz` with the admin credentials (bounded by [`READY_TIMEOUT`]).
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let out = Command::new(&self.bins.kit)
            .args(["wait-ready", "--timeout", READY_TIMEOUT, "--kubeconfig"])
            .arg(self.admin_kubeconfig())
            .output()
            .map_err(|e| format!("running e2e-kit wait-ready: {e}"))?;
        if let Some(child) = self.etcd.as_mut() {
            if let Ok(Some(st)) = child.try_wait() {
                self.etcd = None;
                return Err(format!("etcd exited ({st}); see {}", self.dir.join("etcd.log").display()));
            }
        }
        if let Some(child) = self.apiserver.as_mut() {
            if let Ok(Some(st)) = child.try_wait() {
                self.apiserver = None;
                return Err(format!("kube-apiserver exited ({st}); see {}", self.dir.join("apiserver.log").display()));
            }
        }
        if !out.status.success() {
            return Err(format!(
                "{} (see {})",
                String::from_utf8_lossy(&out.stderr).trim(),
                self.dir.join("apiserver.log").display()
            ));
        }
        println!("apiserver: /readyz ok after {:.1?}", started.elapsed());
        Ok(())
    }

    /// Creates kproxy's ServiceAccount, ClusterRole and binding (from `deploy/rbac.yaml`
    /// when it exists, so the tests prove the shipped RBAC is enough; else e2e-kit's
    /// built-in copy of upstream's system:node-proxier rules) and writes its kubeconfig.
    pub fn bootstrap(&self) -> Result<(), String> {
        let mut c = Command::new(&self.bins.kit);
        c.arg("bootstrap")
            .arg("--kubeconfig")
            .arg(self.admin_kubeconfig())
            .arg("--out")
            .arg(self.kproxy_kubeconfig());
        let manifest = cmd::root().join("deploy").join("rbac.yaml");
        if manifest.is_file() {
            c.arg("--manifest").arg(manifest);
        }
        cmd::status(&mut c)
    }

    /// Stops kube-apiserver (SIGTERM, then SIGKILL after a grace period).
    pub fn stop_apiserver(&mut self) {
        if let Some(child) = self.apiserver.take() {
            stop(child, "kube-apiserver", APISERVER_STOP_GRACE);
        }
    }

    /// Stops etcd (SIGTERM, then SIGKILL after a grace period).
    pub fn stop_etcd(&mut self) {
        if let Some(child) = self.etcd.take() {
            stop(child, "etcd", ETCD_STOP_GRACE);
        }
    }

    /// Kills etcd at once (SIGKILL), as a crash would.
    pub fn kill_etcd(&mut self) {
        if let Some(mut child) = self.etcd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_apiserver();
        self.stop_etcd();
    }
}

/// A free TCP port on 127.0.0.1 (asks the kernel, then releases it for the child).
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| format!("finding a free port: {e}"))
}

extern "C" {
    /// glibc's prctl(2) wrapper (xtask is std only, so no libc crate).
    fn prctl(option: i32, ...) -> i32;
}
const PR_SET_PDEATHSIG: i32 = 1;
const SIGKILL: i32 = 9;

pub(crate) fn spawn_logged(c: &mut Command, log: &Path) -> Result<Child, String> {
    // If the harness itself is killed (CI timeout, SIGKILL), Drop never runs: have the kernel
    // kill the child when the spawning thread dies. Spawning threads (main, control) live
    // until the harness stops the processes itself.
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            if prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("opening {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| format!("opening {}: {e}", log.display()))?;
    let line = cmd::describe(c);
    c.stdin(Stdio::null()).stdout(out).stderr(err).spawn().map_err(|e| format!("starting `{line}`: {e}"))
}

/// SIGTERM (through `kill(1)`: xtask is std only), bounded wait, then SIGKILL.
pub(crate) fn stop(mut child: Child, what: &str, grace: Duration) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("apiserver: {what} still running {grace:?} after SIGTERM; killing it");
    let _ = child.kill();
    let _ = child.wait();
}
