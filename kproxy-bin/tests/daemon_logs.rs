//! The log lines operators grep for (the seed's list): "Syncing proxy rules" (info) per sync, an
//! error line naming the backend when programming the kernel fails, and the shutdown line.
//! Its own test binary, so the global subscriber sees every callsite.

use std::sync::Arc;
use std::time::Duration;

use kproxy_telemetry::health::ProxyHealth;
use kproxy_telemetry::metrics::Metrics;
use kproxy_bin::sync_loop::{Outcome, SyncContext, SyncLoop, SyncTiming};
use kproxy_core::backend::{ProxyBackend, RecordingBackend, SyncReport};
use kproxy_core::event::{ClusterEvent, ObjectKind};
use kproxy_core::model::{ChangeSet, ProxyState};
use kproxy_core::tracker::ChangeTracker;
use parking_lot::Mutex;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("netlink commit refused: Operation not permitted")]
struct Refused;

/// Fails its first sync, then records.
struct FailOnce {
    failed: bool,
    inner: RecordingBackend,
}

impl ProxyBackend for FailOnce {
    type Error = Refused;

    fn sync_full(&mut self, state: &ProxyState) -> Result<SyncReport, Refused> {
        if !std::mem::replace(&mut self.failed, true) {
            return Err(Refused);
        }
        self.inner.sync_full(state).map_err(|_| Refused)
    }

    fn sync_changes(&mut self, state: &ProxyState, changes: &ChangeSet) -> Result<SyncReport, Refused> {
        self.inner.sync_changes(state, changes).map_err(|_| Refused)
    }

    fn cleanup(&mut self) -> Result<(), Refused> {
        self.inner.cleanup().map_err(|_| Refused)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_error_and_shutdown_lines() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).init();

    let mut tracker = ChangeTracker::new(Default::default(), Default::default());
    tracker.wait_for(&[ObjectKind::Service]);
    let timing = SyncTiming::new(Duration::from_millis(200), Duration::ZERO);
    let ctx = SyncContext {
        backend_name: "nftables",
        timing,
        metrics: Arc::new(Metrics::new()),
        health: Arc::new(ProxyHealth::new(timing.sync_period * 2)),
        hooks: vec![],
        once: false,
        node_name: String::new(),
        require_node: false,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let backend = FailOnce { failed: false, inner: RecordingBackend::default() };
    let task = tokio::spawn(SyncLoop::new(backend, tracker, ctx).run(rx, async move {
        let _ = stop_rx.await;
    }));
    tx.send(ClusterEvent::Synced(ObjectKind::Service)).await.unwrap();
    // The first sync fails, the retry after syncPeriod succeeds.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let _ = stop_tx.send(());
    let (result, backend) = tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    assert_eq!(result.unwrap(), Outcome::Stopped);
    assert!(backend.unwrap().inner.applied().is_some(), "the retry programmed the rules");

    let text = String::from_utf8(captured.0.lock().clone()).unwrap();
    let error = text
        .lines()
        .find(|l| l.contains("Error syncing proxy rules"))
        .unwrap_or_else(|| panic!("no error line:\n{text}"));
    assert!(error.contains("ERROR"), "{error}");
    assert!(error.contains("backend=\"nftables\""), "{error}");
    assert!(error.contains("netlink commit refused: Operation not permitted"), "{error}");
    let syncs = text.lines().filter(|l| l.contains(" INFO ") && l.contains("Syncing proxy rules")).count();
    assert!(syncs >= 2, "one info line per sync attempt:\n{text}");
    assert!(text.contains("leaving the proxy rules in place"), "{text}");
}
