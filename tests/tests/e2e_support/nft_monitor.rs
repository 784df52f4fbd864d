//! Watching a namespace's nftables changes as they happen (`nft monitor`), to time
//! when a change reached the kernel without polling.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `nft monitor` inside the namespace, its lines forwarded with their arrival time.
pub struct NftMonitor {
    child: std::process::Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl NftMonitor {
    /// Starts `nft monitor` in `ns` (before the changes to watch).
    pub fn start(ns: &kproxy_tests::Netns) -> NftMonitor {
        let mut child = ns.command("nft").args(["monitor"]).stdout(Stdio::piped()).spawn().expect("nft monitor");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        NftMonitor { child, lines }
    }

    /// Time at which a monitor line containing `needle` arrived (bounded wait).
    pub fn wait(&self, needle: &str, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((t, line)) if line.contains(needle) => return Ok(t),
                Ok(_) => {}
                Err(_) => return Err(format!("no nft change mentioning {needle} within {timeout:?}")),
            }
        }
    }
}

impl Drop for NftMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
