//! Conntrack: sysctl tuning at start ([`sysctl`]) and, after each successful sync, deletion
//! of stale UDP entries ([`Reconciler`], deciding with [`kproxy_core::conntrack`], talking
//! ctnetlink with [`netlink`]).

pub mod netlink;
pub mod sysctl;

use std::sync::Arc;

use kproxy_core::model::{IpFamily, ProxyState};

use crate::metrics::Metrics;
use crate::sync_loop::AfterSync;
use kproxy_core::conntrack::{UdpTargets, Verdict};
use netlink::{ConntrackSocket, DeleteReport, NetlinkError};

/// Deletes stale UDP conntrack entries after each sync (an [`AfterSync`] hook), counting them
/// into `kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family}`.
///
/// The socket is opened on first use in the namespace of the thread running the hook (the
/// sync loop's blocking thread, i.e. the process's namespace) and kept. Failures are logged and
/// retried at the next sync; they never fail a sync.
#[derive(Debug)]
pub struct Reconciler {
    socket: Option<ConntrackSocket>,
    previous: UdpTargets,
    metrics: Arc<Metrics>,
}

/// What one reconciliation did, per family.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// UDP entries looked at.
    pub examined: usize,
    /// Entries found stale.
    pub stale: usize,
    /// The kernel's answers to the deletes.
    pub deletes: DeleteReport,
}

impl Reconciler {
    /// A reconciler that opens its socket lazily.
    pub fn new(metrics: Arc<Metrics>) -> Reconciler {
        Reconciler { socket: None, previous: UdpTargets::default(), metrics }
    }

    /// A reconciler using an already open socket (e.g. one opened inside a test namespace).
    pub fn with_socket(socket: ConntrackSocket, metrics: Arc<Metrics>) -> Reconciler {
        Reconciler { socket: Some(socket), previous: UdpTargets::default(), metrics }
    }

    /// Whether the conntrack dumps are filtered by the kernel (see [`ConntrackSocket::dump`]);
    /// `None` before the socket is opened.
    pub fn kernel_filters(&self) -> Option<bool> {
        self.socket.as_ref().map(ConntrackSocket::kernel_filters)
    }

    /// Delete the entries that are stale against `state`; returns what was done per family
    /// (nothing when the table was not even read).
    ///
    /// The table is only read when the UDP destinations or their serving endpoints changed
    /// since the last successful reconciliation: entries created since then were created by
    /// rules matching the same endpoints, so none of them can be stale. Periodic syncs and
    /// TCP-only changes therefore cost no conntrack dump.
    pub fn reconcile(&mut self, state: &ProxyState) -> Result<Vec<(IpFamily, ReconcileReport)>, NetlinkError> {
        let targets = UdpTargets::of(state);
        if targets == self.previous {
            return Ok(Vec::new());
        }
        let socket = match &mut self.socket {
            Some(socket) => socket,
            None => self.socket.insert(ConntrackSocket::open()?),
        };
        let mut reports = Vec::new();
        for (family, af) in [(IpFamily::V4, nix::libc::AF_INET), (IpFamily::V6, nix::libc::AF_INET6)] {
            let flows = socket.dump(af, kproxy_core::model::Protocol::Udp.number())?;
            let stale: Vec<_> =
                flows.iter().copied().filter(|f| targets.judge(&self.previous, f) == Verdict::Stale).collect();
            let deletes = if stale.is_empty() { DeleteReport::default() } else { socket.delete(&stale)? };
            for flow in &stale {
                tracing::debug!(%flow, "Deleting stale UDP conntrack entry");
            }
            for error in &deletes.errors {
                tracing::warn!(error = %error, "Failed to delete a stale conntrack entry");
            }
            if deletes.deleted > 0 {
                self.metrics.record_conntrack_deleted(family, deletes.deleted);
                tracing::info!(family = ?family, deleted = deletes.deleted, "Deleted stale UDP conntrack entries");
            }
            reports.push((family, ReconcileReport { examined: flows.len(), stale: stale.len(), deletes }));
        }
        self.previous = targets;
        Ok(reports)
    }
}

impl AfterSync for Reconciler {
    fn after_sync(&mut self, state: &ProxyState) {
        if let Err(err) = self.reconcile(state) {
            let mut message = err.to_string();
            if let Some(source) = std::error::Error::source(&err) {
                message = format!("{message}: {source}");
            }
            tracing::warn!(error = %message, "Conntrack cleanup of stale UDP entries failed; retrying after the next sync");
            // Reopen next time, in case the socket is what broke.
            self.socket = None;
        }
    }
}
