//! What the sync loop needs from a change tracker, in the core's own types.

use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kproxy_core::event::ClusterEvent;
use kproxy_core::model::{IpFamily, ProxyState};
use kproxy_core::tracker::{
    AddressIssueCounts, AddressNotice, ChangeTotals, ChangeTracker, PendingChanges, TakenChanges, TriggerTime,
};

/// What the sync loop needs from the change tracker. The core's [`ChangeTracker`] implements
/// it; tests implement it with a fake.
pub trait ChangeSource: Send {
    /// A problem the tracker reports about an event (logged as a warning).
    type Diagnostic: Display;

    /// Feed one event.
    fn apply(&mut self, event: ClusterEvent) -> Vec<Self::Diagnostic>;

    /// Whether every watched kind has completed its initial list.
    fn is_synced(&self) -> bool;

    /// Take everything that changed since the last call.
    fn take_changes(&mut self) -> TakenChanges;

    /// Bring the state up to date without a change set, for a full sync (which programs the
    /// whole state anyway); returns the trigger times. The default builds the change set and
    /// drops it; the core tracker skips building it.
    fn take_state(&mut self) -> Vec<TriggerTime> {
        self.take_changes().trigger_times
    }

    /// The complete desired state as of the last take, shared with the backend for one sync.
    /// The loop drops it before the next take, so the source can change it in place.
    fn snapshot(&self) -> Arc<ProxyState>;

    /// Changes received and not yet taken.
    fn pending(&self) -> PendingChanges;

    /// Whether the next take may produce changes (events that changed nothing, such as a
    /// resync of identical objects, do not queue a sync).
    fn has_pending(&self) -> bool;

    /// Changes seen since the start (`sync_proxy_rules_*_changes_total`).
    fn totals(&self) -> ChangeTotals;

    /// Addresses that started or stopped being skipped (conflicts between Services, addresses
    /// outside the allow-lists) at the takes since the last call; each is logged once.
    fn take_address_notices(&mut self) -> Vec<AddressNotice> {
        Vec::new()
    }

    /// Addresses currently skipped, for the gauges.
    fn address_issues(&self) -> AddressIssueCounts {
        AddressIssueCounts::default()
    }
}

impl ChangeSource for ChangeTracker {
    type Diagnostic = kproxy_core::diagnostic::Diagnostic;

    fn apply(&mut self, event: ClusterEvent) -> Vec<Self::Diagnostic> {
        ChangeTracker::apply(self, event)
    }

    fn is_synced(&self) -> bool {
        ChangeTracker::is_synced(self)
    }

    fn take_changes(&mut self) -> TakenChanges {
        ChangeTracker::take_changes(self)
    }

    fn take_state(&mut self) -> Vec<TriggerTime> {
        ChangeTracker::take_state(self)
    }

    fn snapshot(&self) -> Arc<ProxyState> {
        ChangeTracker::snapshot(self)
    }

    fn pending(&self) -> PendingChanges {
        ChangeTracker::pending(self)
    }

    fn has_pending(&self) -> bool {
        ChangeTracker::has_pending(self)
    }

    fn totals(&self) -> ChangeTotals {
        ChangeTracker::totals(self)
    }

    fn take_address_notices(&mut self) -> Vec<AddressNotice> {
        ChangeTracker::take_address_notices(self)
    }

    fn address_issues(&self) -> AddressIssueCounts {
        ChangeTracker::address_issues(self).clone()
    }
}

/// Trigger-time annotations as wall-clock times (unparseable or pre-epoch ones dropped), for
/// `network_programming_duration_seconds`.
pub(crate) fn system_times(times: &[TriggerTime]) -> Vec<(SystemTime, IpFamily)> {
    times
        .iter()
        .filter(|t| t.unix_seconds.is_finite() && t.unix_seconds >= 0.0)
        .map(|t| (std::time::UNIX_EPOCH + Duration::from_secs_f64(t.unix_seconds), t.family))
        .collect()
}
