//! When each change reached the kernel: `nft monitor` in the daemon's namespace, every
//! IPv4 address on its lines matched against the endpoint addresses still awaited.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{HarnessError, Netns};

/// Addresses awaited (with the time they were written) and the latencies of those seen.
#[derive(Default)]
struct Shared {
    pending: HashMap<Ipv4Addr, Instant>,
    /// (written at, write -> kernel).
    seen: Vec<(Instant, Duration)>,
    /// Times `nft monitor` said it lost notifications (its socket buffer overflowed).
    lost: usize,
}

/// `nft monitor` running in a namespace, matched against awaited addresses.
pub struct Monitor {
    child: Child,
    shared: Arc<Mutex<Shared>>,
}

impl Monitor {
    /// Starts `nft monitor` in `ns`.
    pub fn start(ns: &Netns) -> Result<Monitor, HarnessError> {
        let mut cmd = ns.command("nft");
        cmd.args(["monitor"]).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|source| HarnessError::Spawn { cmd: "nft monitor".into(), source })?;
        let out = child.stdout.take().expect("stdout is piped");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            // Ends when `nft monitor` is killed (EOF).
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let now = Instant::now();
                let mut s = s.lock().expect("monitor lock");
                if line.starts_with("# ERROR") {
                    s.lost += 1;
                }
                for a in ipv4_tokens(&line) {
                    if let Some(written) = s.pending.remove(&a) {
                        s.seen.push((written, now.saturating_duration_since(written)));
                    }
                }
            }
        });
        Ok(Monitor { child, shared })
    }

    /// Awaits `addr`, written at `at`.
    pub fn expect(&self, addr: Ipv4Addr, at: Instant) {
        self.shared.lock().expect("monitor lock").pending.insert(addr, at);
    }

    /// How many awaited addresses have not shown up yet.
    pub fn pending(&self) -> usize {
        self.shared.lock().expect("monitor lock").pending.len()
    }

    /// Takes the latencies seen so far: (written at, write -> kernel).
    pub fn take_seen(&self) -> Vec<(Instant, Duration)> {
        std::mem::take(&mut self.shared.lock().expect("monitor lock").seen)
    }

    /// How often `nft monitor` reported lost notifications.
    pub fn lost(&self) -> usize {
        self.shared.lock().expect("monitor lock").lost
    }

    /// Stops awaiting the addresses that `listing` (e.g. `nft list ruleset`) holds, without a
    /// latency (for when notifications were lost); returns how many.
    pub fn reconcile(&self, listing: &str) -> usize {
        let mut s = self.shared.lock().expect("monitor lock");
        ipv4_tokens(listing).filter(|a| s.pending.remove(a).is_some()).count()
    }

    /// Waits until nothing is awaited any more, at most `timeout`; returns what is still awaited.
    pub fn drain(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let left = self.pending();
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every dotted-quad IPv4 address in `line` (`198.18.0.5:8080` gives 198.18.0.5).
fn ipv4_tokens(line: &str) -> impl Iterator<Item = Ipv4Addr> + '_ {
    line.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter_map(|t| t.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_found_whole_not_as_prefixes() {
        let line = "add rule ip kproxy ep-X dnat to 198.18.0.50:8080; add element ip kproxy m { 198.19.1.5 . 80 }";
        let got: Vec<Ipv4Addr> = ipv4_tokens(line).collect();
        assert_eq!(got, vec![Ipv4Addr::new(198, 18, 0, 50), Ipv4Addr::new(198, 19, 1, 5)]);
    }
}
