//! After each successful sync, delete the UDP conntrack entries the new state makes stale,
//! as upstream's conntrack reconciler does (pkg/proxy/conntrack/cleanup.go). The verdict is
//! [`kproxy_core::conntrack`]'s; this module only reads the table, asks, and deletes.

use kproxy_core::conntrack::{UdpTargets, Verdict};
use kproxy_core::model::{IpFamily, Protocol, ProxyState};

use crate::{ConntrackSocket, ConntrackTable, DeleteReport, Error};

/// Deletes stale UDP conntrack entries; call [`reconcile`](Reconciler::reconcile) after each
/// successful sync with the state just programmed.
///
/// Keeps the UDP destinations of the last successful reconciliation: a destination that was a
/// service then and is gone now makes its entries stale, and an unchanged set of destinations
/// means the table need not be read at all.
#[derive(Debug)]
pub struct Reconciler<T: ConntrackTable = ConntrackSocket> {
    table: Option<T>,
    /// How to (re)open the table; `None` when the caller handed one in.
    open: Option<fn() -> Result<T, Error>>,
    previous: UdpTargets,
}

/// What one reconciliation did for one IP family.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// UDP entries looked at.
    pub examined: usize,
    /// Entries found stale.
    pub stale: usize,
    /// The kernel's answers to the deletes.
    pub deletes: DeleteReport,
}

impl Reconciler<ConntrackSocket> {
    /// A reconciler that opens a ctnetlink socket on first use, in the network namespace of
    /// the thread calling [`reconcile`](Reconciler::reconcile), and opens a new one after a
    /// failure (in case the socket is what broke).
    pub fn new() -> Reconciler<ConntrackSocket> {
        Reconciler { table: None, open: Some(ConntrackSocket::open), previous: UdpTargets::default() }
    }
}

impl Default for Reconciler<ConntrackSocket> {
    fn default() -> Self {
        Reconciler::new()
    }
}

impl<T: ConntrackTable> Reconciler<T> {
    /// A reconciler using `table` for its whole life: e.g. a [`ConntrackSocket`] opened inside
    /// another network namespace, or a fake. It is kept after a failure.
    pub fn with_table(table: T) -> Reconciler<T> {
        Reconciler { table: Some(table), open: None, previous: UdpTargets::default() }
    }

    /// Whether the conntrack dumps are filtered by the kernel (see
    /// [`ConntrackTable::kernel_filters`]); `None` before the socket is opened.
    pub fn kernel_filters(&self) -> Option<bool> {
        self.table.as_ref().map(ConntrackTable::kernel_filters)
    }

    /// Delete the entries that are stale against `state`; returns what was done per family
    /// (nothing when the table was not even read).
    ///
    /// The table is only read when the UDP destinations or their serving endpoints changed
    /// since the last successful reconciliation: entries created since then were created by
    /// rules matching the same endpoints, so none of them can be stale. Periodic syncs and
    /// TCP-only changes therefore cost no conntrack dump. After an error the same changes are
    /// looked at again by the next call.
    pub fn reconcile(&mut self, state: &ProxyState) -> Result<Vec<(IpFamily, ReconcileReport)>, Error> {
        let targets = UdpTargets::of(state);
        if targets == self.previous {
            return Ok(Vec::new());
        }
        let result = self.reconcile_against(&targets);
        match &result {
            Ok(_) => self.previous = targets,
            Err(_) if self.open.is_some() => self.table = None,
            Err(_) => {}
        }
        result
    }

    fn reconcile_against(&mut self, targets: &UdpTargets) -> Result<Vec<(IpFamily, ReconcileReport)>, Error> {
        if let (None, Some(open)) = (&self.table, self.open) {
            self.table = Some(open()?);
        }
        let Some(table) = self.table.as_mut() else {
            unreachable!("the table is only dropped when there is an opener, which just ran");
        };
        let mut reports = Vec::new();
        for family in [IpFamily::V4, IpFamily::V6] {
            let flows = table.dump(family, Protocol::Udp)?;
            let stale: Vec<_> =
                flows.iter().copied().filter(|f| targets.judge(&self.previous, f) == Verdict::Stale).collect();
            for flow in &stale {
                tracing::debug!(%flow, "Deleting stale UDP conntrack entry");
            }
            let deletes = if stale.is_empty() { DeleteReport::default() } else { table.delete(&stale)? };
            reports.push((family, ReconcileReport { examined: flows.len(), stale: stale.len(), deletes }));
        }
        Ok(reports)
    }
}
