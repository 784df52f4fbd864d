//! When syncs happen: the loop's timing settings and its own bookkeeping (no I/O), kept apart
//! so the timing rules can be tested.

use std::time::{Duration, Instant};

/// Default period of the drift-repairing full sync.
pub const DEFAULT_FULL_SYNC_PERIOD: Duration = Duration::from_secs(300);

/// Timing of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTiming {
    /// Retry interval after a failure, and the longest time between syncs (`syncPeriod`).
    pub sync_period: Duration,
    /// The shortest time between the starts of two syncs (`minSyncPeriod`).
    pub min_sync_period: Duration,
    /// How often a full sync repairs drift.
    pub full_sync_period: Duration,
}

impl SyncTiming {
    /// Timing from the configuration's `syncPeriod` and `minSyncPeriod`, with the default
    /// full-sync period.
    pub fn new(sync_period: Duration, min_sync_period: Duration) -> SyncTiming {
        SyncTiming { sync_period, min_sync_period, full_sync_period: DEFAULT_FULL_SYNC_PERIOD }
    }
}

/// The loop's own bookkeeping.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    pub(super) timing: SyncTiming,
    /// Start of the last sync attempt.
    pub(super) last_start: Option<Instant>,
    /// Start of the last successful full sync.
    pub(super) last_full: Option<Instant>,
    /// Something changed since the last sync started.
    pub(super) dirty: bool,
    /// The last attempt failed.
    pub(super) failed: bool,
    /// A partial sync failed: the full sync that follows it is due after minSyncPeriod, not
    /// syncPeriod (the kernel was not what the partial sync built on).
    pub(super) retry_now: bool,
    /// The next sync must be full (change notifications were lost), at its usual time.
    pub(super) full_requested: bool,
    /// Changes by someone else seen so far, and how many of them a successful full sync
    /// started after them has repaired.
    pub(super) tampered: u64,
    pub(super) repaired: u64,
}

impl Schedule {
    pub(super) fn new(timing: SyncTiming) -> Schedule {
        Schedule {
            timing,
            last_start: None,
            last_full: None,
            dirty: false,
            failed: false,
            retry_now: false,
            full_requested: false,
            tampered: 0,
            repaired: 0,
        }
    }

    /// Someone else changed the rules and no full sync started since has succeeded.
    pub(super) fn repair_pending(&self) -> bool {
        self.repaired < self.tampered
    }

    /// When the next sync is due, given the source is synced.
    pub(super) fn next_at(&self) -> Instant {
        let Some(last) = self.last_start else {
            return Instant::now();
        };
        let mut at = last + self.timing.sync_period;
        if self.dirty || self.retry_now || self.repair_pending() {
            at = at.min(last + self.timing.min_sync_period);
        }
        at
    }

    pub(super) fn full_due(&self, now: Instant) -> bool {
        self.failed
            || self.full_requested
            || self.repair_pending()
            || self.last_full.is_none_or(|full| now.saturating_duration_since(full) >= self.timing.full_sync_period)
    }
}

/// Sleeps until `deadline`, or forever without one.
pub(super) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
