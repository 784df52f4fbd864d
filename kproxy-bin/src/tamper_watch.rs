//! Watching kproxy's nftables tables for changes by anyone else, on a thread of its own, and
//! reporting them to the sync loop as [`Drift`]. The decoding and matching are
//! [`kproxy_nft::watch`]'s; this only runs it.

use std::time::Duration;

use kproxy_nft::watch::{Seen, Watch};
use tokio::sync::mpsc;

use crate::sync_loop::Drift;

/// How long one wait for notifications lasts: also how soon the thread notices that the sync
/// loop is gone.
const WAIT: Duration = Duration::from_millis(500);
/// Reports buffered for the sync loop; more are dropped (one report is enough to repair).
const CHANNEL: usize = 64;

/// Opens the watch in the calling thread's network namespace and runs it on a new thread.
/// `tables` are the watched table names; commits from the sockets of `own_ports` are
/// kproxy's own. The thread ends when the receiver is dropped.
pub fn spawn(tables: &[&str], own_ports: &[u32]) -> Result<mpsc::Receiver<Drift>, kproxy_nft::watch::WatchError> {
    let mut watch = Watch::open(tables, own_ports)?;
    let (tx, rx) = mpsc::channel(CHANNEL);
    let spawned = std::thread::Builder::new().name("kproxy-nft-watch".into()).spawn(move || {
        // Bounded by the receiver: each pass waits at most WAIT, then checks it is still there.
        while !tx.is_closed() {
            let seen = match watch.wait(WAIT) {
                Ok(seen) => seen,
                Err(err) => {
                    tracing::error!(error = format!("{:#}", anyhow::Error::new(err)), "Watching kproxy's nftables tables stopped; changes by someone else are repaired only by the periodic full sync");
                    return;
                }
            };
            for s in seen {
                let drift = match s {
                    Seen::Foreign(commit) => Drift::Tampered(commit.to_string()),
                    Seen::Lost => Drift::Unknown("nftables change notifications were lost (receive buffer overflow)".into()),
                };
                // Full: reports are already waiting, and one full sync repairs them all.
                let _ = tx.try_send(drift);
            }
        }
    });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "Cannot start the thread watching kproxy's nftables tables; changes by someone else are repaired only by the periodic full sync");
    }
    Ok(rx)
}
