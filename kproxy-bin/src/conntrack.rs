//! Conntrack wiring: the [`kproxy_conntrack`] reconciler as an [`AfterSync`] hook, its report
//! recorded into the metrics and the logs. The sysctl tuning at start is called from
//! [`crate::daemon`].

use std::sync::Arc;

use kproxy_conntrack::{ReconcileReport, Reconciler};
use kproxy_core::model::{IpFamily, ProxyState};

use kproxy_telemetry::metrics::Metrics;
use crate::sync_loop::AfterSync;

/// Deletes stale UDP conntrack entries after each sync, counting them into
/// `kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family}`.
///
/// Runs on the sync loop's blocking thread, so a [`Reconciler::new`] opens its socket in the
/// process's network namespace. Failures are logged and retried at the next sync; they never
/// fail a sync.
#[derive(Debug)]
pub struct ConntrackCleanup {
    reconciler: Reconciler,
    metrics: Arc<Metrics>,
}

impl ConntrackCleanup {
    /// Run `reconciler` after each sync, recording into `metrics`.
    pub fn new(reconciler: Reconciler, metrics: Arc<Metrics>) -> ConntrackCleanup {
        ConntrackCleanup { reconciler, metrics }
    }

    /// The reconciler.
    pub fn reconciler(&self) -> &Reconciler {
        &self.reconciler
    }

    /// Reconcile against `state`, then record and log what was done.
    pub fn reconcile(
        &mut self,
        state: &ProxyState,
    ) -> Result<Vec<(IpFamily, ReconcileReport)>, kproxy_conntrack::Error> {
        let reports = self.reconciler.reconcile(state)?;
        for (family, report) in &reports {
            for error in &report.deletes.errors {
                tracing::warn!(error = %error, "Failed to delete a stale conntrack entry");
            }
            let deleted = report.deletes.deleted;
            if deleted > 0 {
                self.metrics.record_conntrack_deleted(*family, deleted);
                tracing::info!(family = ?family, deleted, "Deleted stale UDP conntrack entries");
            }
        }
        Ok(reports)
    }
}

impl AfterSync for ConntrackCleanup {
    fn after_sync(&mut self, state: &ProxyState) {
        if let Err(err) = self.reconcile(state) {
            let mut message = err.to_string();
            if let Some(source) = std::error::Error::source(&err) {
                message = format!("{message}: {source}");
            }
            tracing::warn!(error = %message, "Conntrack cleanup of stale UDP entries failed; retrying after the next sync");
        }
    }
}
