//! The `kproxy` processes of a soak: the daemon in the node namespace (log to a file, so a
//! full pipe can never stall it) and the `--once` run it is compared with.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{SoakConfig, SoakError};
use crate::{HarnessError, Netns};

/// The running daemon; killed on drop if not stopped.
pub(super) struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

/// The flags both runs share: the same node, cluster CIDR and sync settings.
fn command(ns: &Netns, kproxy: &Path, manifests: &Path, config: &SoakConfig) -> Command {
    let mut cmd = ns.command(kproxy);
    cmd.arg("--manifests").arg(manifests);
    cmd.args(["--hostname-override", "node-1", "--cluster-cidr", "198.18.0.0/16"]);
    if let Some(period) = &config.min_sync_period {
        cmd.args(["--nftables-min-sync-period", period]);
    }
    cmd
}

impl Daemon {
    /// Starts the daemon in `ns`, logging to `log`.
    pub(super) fn start(ns: &Netns, kproxy: &Path, manifests: &Path, log: &Path, config: &SoakConfig) -> Result<Daemon, SoakError> {
        let file = std::fs::File::create(log).map_err(|source| SoakError::Write { dir: log.to_path_buf(), source })?;
        let mut cmd = command(ns, kproxy, manifests, config);
        cmd.args(["--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256"]);
        cmd.stdout(Stdio::null()).stderr(file);
        let child = cmd
            .spawn()
            .map_err(|source| HarnessError::Spawn { cmd: format!("{} --manifests ...", kproxy.display()), source })?;
        Ok(Daemon { child: Some(child), log: log.to_path_buf() })
    }

    /// An error if the daemon has exited.
    pub(super) fn check_running(&mut self) -> Result<(), SoakError> {
        let child = self.child.as_mut().expect("running");
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(SoakError::Daemon(format!("exited early with {status}; log tail:\n{}", self.log_tail()))),
            Err(e) => Err(SoakError::Daemon(format!("waiting for it failed: {e}"))),
        }
    }

    /// The daemon's resident memory, MB (`VmRSS` in `/proc/PID/status`; `ip netns exec`
    /// execs kproxy, so the child's pid is kproxy's).
    pub(super) fn rss_mb(&self) -> Result<f64, SoakError> {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| SoakError::Daemon(format!("reading /proc/{pid}/status: {e}")))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .ok_or_else(|| SoakError::Daemon(format!("no VmRSS in /proc/{pid}/status")))
    }

    /// The last lines of the daemon's log.
    pub(super) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then wait (at most 10 s); true if it exited with status 0.
    pub(super) fn stop(mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_err() {
            return false;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// `kproxy --once` of `manifests` in `ns` (a fresh namespace), to completion.
    pub(super) fn once(ns: &Netns, kproxy: &Path, manifests: &Path, config: &SoakConfig) -> Result<(), SoakError> {
        let out = command(ns, kproxy, manifests, config)
            .arg("--once")
            .stdout(Stdio::null())
            .output()
            .map_err(|source| HarnessError::Spawn { cmd: format!("{} --once", kproxy.display()), source })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(SoakError::Daemon(format!("`kproxy --once` failed with {}: {err}", out.status)));
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
