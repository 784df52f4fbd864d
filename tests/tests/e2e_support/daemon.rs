//! The kproxy daemon as a process inside a test network namespace.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{ApiRelay, E2eEnv};

/// Flags for a node namespace with the nftables backend and the plan's pod CIDR; the
/// metrics and health servers bind to the namespace's loopback.
pub const NFT_NODE_ARGS: &[&str] = &[
    "--proxy-mode=nftables",
    "--cluster-cidr=198.18.0.0/16",
    "--metrics-bind-address=127.0.0.1:10249",
    "--healthz-bind-address=127.0.0.1:10256",
];

/// The `kproxy` binary running inside a test network namespace against the harness's API
/// server: `--kubeconfig` is kproxy's ServiceAccount kubeconfig, `--master` the relay's
/// in-namespace URL, `--hostname-override` the node name; `args` adds the rest (config file,
/// mode, ...). Output goes to `<run dir>/kproxy-<node>.log`. Dropping it sends SIGTERM and
/// waits (bounded), then SIGKILLs.
pub struct KproxyDaemon {
    child: std::process::Child,
    /// The daemon's combined stdout/stderr.
    pub log: PathBuf,
}

impl KproxyDaemon {
    /// Starts `kproxy` (from [`kproxy_tests::kproxy_binary`]; `cargo xtask e2e` builds it and
    /// sets `KPROXY_BIN`) in `netns`.
    pub fn start(
        env: &E2eEnv,
        netns: &kproxy_tests::Netns,
        relay: &ApiRelay,
        node_name: &str,
        args: &[&str],
    ) -> Result<KproxyDaemon, String> {
        let mut full = vec![
            format!("--kubeconfig={}", env.kproxy_kubeconfig.display()),
            format!("--master={}", relay.url()),
            format!("--hostname-override={node_name}"),
        ];
        full.extend(args.iter().map(|a| a.to_string()));
        Self::start_with_args(env, netns, node_name, &full)
    }

    /// Starts `kproxy` in `netns` with exactly `args` (how it reaches the API server is up
    /// to them, e.g. a `--config` whose kubeconfig names the server); logs as [`Self::start`].
    pub fn start_with_args(
        env: &E2eEnv,
        netns: &kproxy_tests::Netns,
        node_name: &str,
        args: &[String],
    ) -> Result<KproxyDaemon, String> {
        let bin = kproxy_tests::kproxy_binary().map_err(|e| e.to_string())?;
        let log = env.run_dir.join(format!("kproxy-{node_name}.log"));
        let out = std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = netns.command(&bin);
        cmd.args(args)
            // As in a pod without in-cluster service variables: only the files say where the API is.
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd.spawn().map_err(|e| format!("starting {} in {}: {e}", bin.display(), netns.name()))?;
        Ok(KproxyDaemon { child, log })
    }

    /// Everything the daemon logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (polling every 100 ms, bounded by `timeout`) for a log line containing `needle`;
    /// fails early if the daemon exits.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log_text().lines().find(|l| l.contains(needle)) {
                return Ok(line.to_string());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("kproxy exited ({status}) before logging {needle:?}; log:\n{}", self.log_text()));
            }
            if Instant::now() >= deadline {
                return Err(format!("kproxy did not log {needle:?} within {timeout:?}; log:\n{}", self.log_text()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemon's process id (to show it was not restarted).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then wait up to `grace` for the exit status (SIGKILL after that).
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        // The pid fits: Linux pids are below 2^22.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().ok();
        None
    }
}

impl Drop for KproxyDaemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}
