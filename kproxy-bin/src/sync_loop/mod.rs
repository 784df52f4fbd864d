//! The sync loop: cluster events in, kernel programming out, at a bounded rate.
//!
//! Timing follows upstream's BoundedFrequencyRunner semantics:
//! - nothing is programmed before every watched kind has sent its initial list
//!   ([`ChangeSource::is_synced`]);
//! - changes are coalesced: events that arrive while a sync waits or runs are programmed
//!   together by the next one;
//! - two syncs never start less than `min_sync_period` apart;
//! - `sync_period` is both the retry interval after a failure and the longest time between two
//!   syncs (a periodic sync runs even when nothing changed);
//! - the first sync, the sync after any failure, and one sync every `full_sync_period`
//!   (default [`DEFAULT_FULL_SYNC_PERIOD`], 5 minutes) are full syncs: they re-create the
//!   backend's tables from the desired state, which repairs drift such as someone flushing
//!   or deleting our nftables table. Upstream does that hourly; our full syncs are cheap (one
//!   netlink transaction), so we repair sooner. Everything else is a partial sync of the
//!   change set.
//!
//! The backend is `&mut` and blocking: it is moved onto a tokio blocking thread for each sync
//! and moved back, so the async side never blocks and the backend is never shared. Hooks
//! ([`AfterSync`]: conntrack cleanup, healthCheckNodePort servers) run on that thread right
//! after each successful sync. On shutdown the loop simply stops: rules stay in place, as
//! kube-proxy leaves them.
//!
//! # Wiring (what `main` does)
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use kproxy_bin::{conntrack, hcnode, health, metrics, node_tuning, source::manifests, sync_loop};
//! use kproxy_core::backend::RecordingBackend;
//! use kproxy_core::event::ObjectKind;
//! use kproxy_core::tracker::ChangeTracker;
//!
//! # async fn wire() -> anyhow::Result<()> {
//! let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
//! conntrack::sysctl::apply(&conntrack::sysctl::FsSysctl::default(), &conntrack::sysctl::ConntrackTuning::default(), cpus);
//! node_tuning::apply_oom_score_adj(std::path::Path::new(node_tuning::OOM_SCORE_ADJ_PATH), -999);
//!
//! let timing = sync_loop::SyncTiming::new(Duration::from_secs(30), Duration::from_secs(1));
//! let metrics = Arc::new(metrics::Metrics::new());
//! let health = Arc::new(health::ProxyHealth::new(timing.sync_period * 2));
//! let _metrics_server = metrics::serve("127.0.0.1:10249".parse()?, metrics.clone())?;
//! let _health_server = health::serve("0.0.0.0:10256".parse()?, health.clone(), metrics.clone())?;
//! let hooks: Vec<Box<dyn sync_loop::AfterSync>> = vec![
//!     Box::new(conntrack::Reconciler::new(metrics.clone())),
//!     Box::new(hcnode::HcNodeServers::new(health.clone(), vec!["0.0.0.0".parse()?], tokio::runtime::Handle::current())),
//! ];
//!
//! let mut tracker = ChangeTracker::new(Default::default(), Default::default());
//! tracker.wait_for(&[ObjectKind::Service, ObjectKind::EndpointSlice]);
//! let (tx, rx) = tokio::sync::mpsc::channel(4096);
//! tokio::spawn(manifests::run(manifests::ManifestOptions::new("/etc/kproxy/manifests"), tx));
//! let ctx = sync_loop::SyncContext {
//!     backend_name: "dry-run", timing, metrics, health, hooks, once: false,
//!     node_name: "node-a".into(), require_node: false,
//! };
//! let (outcome, _backend) = sync_loop::SyncLoop::new(RecordingBackend::default(), tracker, ctx)
//!     .run(rx, sync_loop::shutdown_signal())
//!     .await;
//! outcome?;
//! # Ok(())
//! # }
//! ```

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use kproxy_core::backend::{ProxyBackend, SyncKind, SyncReport};
use kproxy_core::event::{ClusterEvent, ObjectKind, Update};
use kproxy_core::model::{ChangeSet, ProxyState};
use tokio::sync::mpsc::Receiver;

use crate::health::ProxyHealth;
use crate::metrics::Metrics;
use std::sync::Arc;

/// Default period of the drift-repairing full sync.
pub const DEFAULT_FULL_SYNC_PERIOD: Duration = Duration::from_secs(300);

/// Changes taken from a [`ChangeSource`] for one sync.
#[derive(Debug, Default)]
pub struct TakenChanges {
    /// What changed since the previous take.
    pub changes: ChangeSet,
    /// `endpoints.kubernetes.io/last-change-trigger-time` of the EndpointSlices (and Service
    /// creation times) behind these changes, for `network_programming_duration_seconds`.
    pub trigger_times: Vec<SystemTime>,
}

/// Changes received and not yet taken.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Services changed.
    pub services: usize,
    /// EndpointSlices changed.
    pub endpoints: usize,
}

/// What the sync loop needs from the change tracker (`kproxy_core`'s `ChangeTracker`
/// implements it through a thin adapter).
pub trait ChangeSource: Send {
    /// A problem the tracker reports about an event (logged as a warning).
    type Diagnostic: Display;

    /// Feed one event.
    fn apply(&mut self, event: ClusterEvent) -> Vec<Self::Diagnostic>;

    /// Whether every watched kind has completed its initial list.
    fn is_synced(&self) -> bool;

    /// Take everything that changed since the last call.
    fn take_changes(&mut self) -> TakenChanges;

    /// Bring [`ChangeSource::state`] up to date without a change set, for a full sync (which
    /// programs the whole state anyway); returns the trigger times. The default builds the
    /// change set and drops it; the core tracker skips building it.
    fn take_state(&mut self) -> Vec<SystemTime> {
        self.take_changes().trigger_times
    }

    /// The complete desired state as of the last take.
    fn state(&self) -> &ProxyState;

    /// Changes received and not yet taken.
    fn pending(&self) -> Pending;

    /// Whether the next take may produce changes (events that changed nothing, such as a
    /// resync of identical objects, do not queue a sync).
    fn has_pending(&self) -> bool;

    /// Changes seen since the start (`sync_proxy_rules_*_changes_total`).
    fn totals(&self) -> Totals;
}

/// Cumulative change counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Service events that changed something.
    pub services: u64,
    /// EndpointSlice events that changed something.
    pub endpoints: u64,
}

/// The core's tracker, as the sync loop sees it.
impl ChangeSource for kproxy_core::tracker::ChangeTracker {
    type Diagnostic = kproxy_core::diagnostic::Diagnostic;

    fn apply(&mut self, event: ClusterEvent) -> Vec<Self::Diagnostic> {
        kproxy_core::tracker::ChangeTracker::apply(self, event)
    }

    fn is_synced(&self) -> bool {
        kproxy_core::tracker::ChangeTracker::is_synced(self)
    }

    fn take_changes(&mut self) -> TakenChanges {
        let taken = kproxy_core::tracker::ChangeTracker::take_changes(self);
        TakenChanges { changes: taken.changes, trigger_times: system_times(&taken.trigger_times) }
    }

    fn take_state(&mut self) -> Vec<SystemTime> {
        system_times(&kproxy_core::tracker::ChangeTracker::take_state(self))
    }

    fn state(&self) -> &ProxyState {
        kproxy_core::tracker::ChangeTracker::state(self)
    }

    fn pending(&self) -> Pending {
        let p = kproxy_core::tracker::ChangeTracker::pending(self);
        Pending { services: p.services, endpoints: p.endpoints }
    }

    fn has_pending(&self) -> bool {
        kproxy_core::tracker::ChangeTracker::has_pending(self)
    }

    fn totals(&self) -> Totals {
        let t = kproxy_core::tracker::ChangeTracker::totals(self);
        Totals { services: t.services, endpoints: t.endpoints }
    }
}

/// Trigger-time annotations as wall-clock times (unparseable or pre-epoch ones dropped).
fn system_times(times: &[kproxy_core::tracker::TriggerTime]) -> Vec<SystemTime> {
    times
        .iter()
        .filter(|t| t.unix_seconds.is_finite() && t.unix_seconds >= 0.0)
        .map(|t| std::time::UNIX_EPOCH + Duration::from_secs_f64(t.unix_seconds))
        .collect()
}

/// Something to do on the backend's thread right after each successful sync.
pub trait AfterSync: Send {
    /// `state` is what was just programmed.
    fn after_sync(&mut self, state: &ProxyState);
}

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

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The shutdown future completed (SIGTERM/SIGINT); rules were left in place.
    Stopped,
    /// The event channel closed (the source ended) after a last sync of what it sent.
    SourceClosed,
    /// `--once`: the initial sync succeeded.
    SyncedOnce,
}

/// Why the loop could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SyncLoopError {
    /// `--once`: the one sync failed.
    #[error("the {backend} backend failed to program the rules: {message}")]
    OnceSyncFailed {
        /// Backend name.
        backend: &'static str,
        /// The backend's error, with its causes.
        message: String,
    },
    /// The source ended before every kind completed its initial list.
    #[error("the event source ended before the initial lists were complete; nothing was programmed")]
    SourceEndedBeforeSynced,
    /// The blocking thread running the backend panicked; the backend is lost.
    #[error("the {backend} backend panicked while syncing: {source}")]
    BackendPanicked {
        /// Backend name.
        backend: &'static str,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Everything the loop reports into.
pub struct SyncContext {
    /// Backend name for logs (`nftables`, `ipvs`, `dry-run`).
    pub backend_name: &'static str,
    /// Timing.
    pub timing: SyncTiming,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Health state for `/healthz`, `/livez` and the healthCheckNodePort servers.
    pub health: Arc<ProxyHealth>,
    /// Run after each successful sync, in order.
    pub hooks: Vec<Box<dyn AfterSync>>,
    /// `--once`: stop after the first successful sync.
    pub once: bool,
    /// Which Node object is this node's, for `/healthz` (its deletion makes the node
    /// ineligible). Empty: every Node event counts.
    pub node_name: String,
    /// Whether a Node list without this node's object means the node is missing (`/healthz`
    /// 503). Set when watching an API server; the manifest source usually has no Node.
    pub require_node: bool,
}

/// What moves to the blocking thread and back for each sync.
struct Worker<B> {
    backend: B,
    desired: ProxyState,
    hooks: Vec<Box<dyn AfterSync>>,
}

/// The loop's own bookkeeping (no I/O), kept apart so the timing rules can be tested.
#[derive(Debug, Clone)]
struct Schedule {
    timing: SyncTiming,
    /// Start of the last sync attempt.
    last_start: Option<Instant>,
    /// Start of the last successful full sync.
    last_full: Option<Instant>,
    /// Something changed since the last sync started.
    dirty: bool,
    /// The last attempt failed.
    failed: bool,
}

impl Schedule {
    fn new(timing: SyncTiming) -> Schedule {
        Schedule { timing, last_start: None, last_full: None, dirty: false, failed: false }
    }

    /// When the next sync is due, given the source is synced.
    fn next_at(&self) -> Instant {
        let Some(last) = self.last_start else {
            return Instant::now();
        };
        let mut at = last + self.timing.sync_period;
        if self.dirty {
            at = at.min(last + self.timing.min_sync_period);
        }
        at
    }

    fn full_due(&self, now: Instant) -> bool {
        self.failed
            || self.last_full.is_none_or(|full| now.saturating_duration_since(full) >= self.timing.full_sync_period)
    }
}

/// The sync loop. Build with [`SyncLoop::new`], then [`SyncLoop::run`].
pub struct SyncLoop<B, S> {
    worker: Option<Worker<B>>,
    source: S,
    schedule: Schedule,
    backend_name: &'static str,
    metrics: Arc<Metrics>,
    health: Arc<ProxyHealth>,
    once: bool,
    node_name: String,
    require_node: bool,
    node_seen: bool,
}

impl<B, S> SyncLoop<B, S>
where
    B: ProxyBackend + Send + 'static,
    S: ChangeSource,
{
    /// A loop programming `backend` from what `source` tracks.
    pub fn new(backend: B, source: S, ctx: SyncContext) -> SyncLoop<B, S> {
        SyncLoop {
            worker: Some(Worker { backend, desired: ProxyState::default(), hooks: ctx.hooks }),
            source,
            schedule: Schedule::new(ctx.timing),
            backend_name: ctx.backend_name,
            metrics: ctx.metrics,
            health: ctx.health,
            once: ctx.once,
            node_name: ctx.node_name,
            require_node: ctx.require_node,
            node_seen: false,
        }
    }

    /// Run until `shutdown` completes, the event channel closes, or (`--once`) the first sync.
    /// Returns the backend too, so a caller can run `cleanup` or inspect it in tests.
    pub async fn run(
        mut self,
        mut events: Receiver<ClusterEvent>,
        shutdown: impl Future<Output = ()>,
    ) -> (Result<Outcome, SyncLoopError>, Option<B>) {
        let result = self.run_inner(&mut events, shutdown).await;
        (result, self.worker.map(|w| w.backend))
    }

    async fn run_inner(
        &mut self,
        events: &mut Receiver<ClusterEvent>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Outcome, SyncLoopError> {
        tokio::pin!(shutdown);
        let mut open = true;
        loop {
            let synced = self.source.is_synced();
            if !open {
                if !synced {
                    return Err(SyncLoopError::SourceEndedBeforeSynced);
                }
                if self.schedule.dirty || self.schedule.last_start.is_none() {
                    // Program what the source sent last, respecting minSyncPeriod.
                    tokio::time::sleep_until(self.schedule.next_at().into()).await;
                    if let Some(outcome) = self.sync().await? {
                        return Ok(outcome);
                    }
                }
                return Ok(Outcome::SourceClosed);
            }
            let deadline = synced.then(|| self.schedule.next_at());
            // A due sync goes first: under a sustained flood of events the event branch below
            // would always be ready and the timer would never win.
            if deadline.is_some_and(|at| at <= Instant::now()) {
                if let Some(outcome) = self.sync().await? {
                    return Ok(outcome);
                }
                continue;
            }
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    tracing::info!("Stopping the sync loop; leaving the proxy rules in place");
                    return Ok(Outcome::Stopped);
                }
                event = events.recv() => match event {
                    Some(event) => {
                        self.handle(event);
                        // Coalesce whatever else is already queued (bounded, to stay responsive).
                        for _ in 0..1024 {
                            match events.try_recv() {
                                Ok(event) => self.handle(event),
                                Err(_) => break,
                            }
                        }
                        self.metrics.set_pending(self.source.pending().services, self.source.pending().endpoints);
                    }
                    None => open = false,
                },
                () = sleep_until_opt(deadline) => {
                    if let Some(outcome) = self.sync().await? {
                        return Ok(outcome);
                    }
                }
            }
        }
    }

    fn handle(&mut self, event: ClusterEvent) {
        self.track_node(&event);
        for diagnostic in self.source.apply(event) {
            tracing::warn!("{diagnostic}");
        }
        self.metrics.record_change_totals(self.source.totals());
        if self.source.is_synced() && self.source.has_pending() {
            self.schedule.dirty = true;
            // As upstream, updates count towards health only once initialised.
            if self.schedule.last_start.is_some() {
                self.health.queued_update(Instant::now());
            }
            self.metrics.record_queued(SystemTime::now());
        }
    }

    /// Keep `/healthz`'s node eligibility up to date.
    fn track_node(&mut self, event: &ClusterEvent) {
        let ours = |name: &str| self.node_name.is_empty() || self.node_name == name;
        match event {
            ClusterEvent::Node(Update::Upsert(node)) if ours(node.metadata.name.as_deref().unwrap_or_default()) => {
                self.node_seen = true;
                self.health.sync_node(Some(node));
            }
            ClusterEvent::Node(Update::Delete { name, .. }) if ours(name) => {
                self.node_seen = false;
                tracing::warn!(node = %name, "This node's Node object was deleted; /healthz reports unhealthy");
                self.health.sync_node(None);
            }
            ClusterEvent::Synced(ObjectKind::Node) if self.require_node && !self.node_seen => {
                tracing::warn!(node = %self.node_name, "This node's Node object does not exist; /healthz reports unhealthy");
                self.health.sync_node(None);
            }
            _ => {}
        }
    }

    /// One sync. `Ok(Some(_))` ends the loop (`--once`).
    async fn sync(&mut self) -> Result<Option<Outcome>, SyncLoopError> {
        let start = Instant::now();
        let full = self.schedule.full_due(start);
        let pending = self.source.pending();
        // A full sync programs the whole state: no change set is built for it.
        let (changes, trigger_times) = if full {
            (ChangeSet::default(), self.source.take_state())
        } else {
            let taken = self.source.take_changes();
            (taken.changes, taken.trigger_times)
        };
        self.schedule.last_start = Some(start);
        self.schedule.dirty = false;
        // The worker is only ever absent while a sync runs, and syncs are sequential.
        let Some(mut worker) = self.worker.take() else { unreachable!("sync loop worker missing outside a sync") };
        if full {
            // A fresh copy: whatever the previous syncs did, a full sync programs exactly the
            // tracker's state (this also picks up settings the tracker started with).
            worker.desired = self.source.state().clone();
        } else {
            worker.desired.apply(&changes);
        }
        tracing::info!(
            backend = self.backend_name,
            kind = if full { "full" } else { "partial" },
            services = worker.desired.services.len(),
            changed = if full { pending.services + pending.endpoints } else { changes.services.len() },
            "Syncing proxy rules"
        );
        let joined = tokio::task::spawn_blocking(move || {
            let result = if full {
                worker.backend.sync_full(&worker.desired)
            } else {
                worker.backend.sync_changes(&worker.desired, &changes)
            }
            .map_err(|err| error_chain(&err));
            if result.is_ok() {
                for hook in &mut worker.hooks {
                    hook.after_sync(&worker.desired);
                }
            }
            (worker, result)
        })
        .await;
        let (worker, result) =
            joined.map_err(|source| SyncLoopError::BackendPanicked { backend: self.backend_name, source })?;
        let outcome = match result {
            Ok(report) => {
                self.succeeded(&worker.desired, &report, start, &trigger_times);
                self.once.then_some(Outcome::SyncedOnce)
            }
            Err(message) => {
                tracing::error!(backend = self.backend_name, error = %message, retry_in = ?self.schedule.timing.sync_period, "Error syncing proxy rules");
                self.metrics.record_sync_failure();
                self.health.queued_update(start);
                self.schedule.failed = true;
                if self.once {
                    self.worker = Some(worker);
                    return Err(SyncLoopError::OnceSyncFailed { backend: self.backend_name, message });
                }
                None
            }
        };
        self.worker = Some(worker);
        Ok(outcome)
    }

    fn succeeded(&mut self, state: &ProxyState, report: &SyncReport, start: Instant, triggers: &[SystemTime]) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let took = now.saturating_duration_since(start);
        self.metrics.record_sync(report.kind, took, wall, triggers);
        self.metrics.record_no_local_endpoints(state);
        let pending = self.source.pending();
        self.metrics.set_pending(pending.services, pending.endpoints);
        if !self.schedule.dirty {
            self.health.updated(now, wall);
        }
        if report.kind == SyncKind::Full {
            self.schedule.last_full = Some(start);
        }
        self.schedule.failed = false;
        for warning in &report.warnings {
            tracing::warn!(backend = self.backend_name, "{warning}");
        }
        tracing::debug!(backend = self.backend_name, kind = ?report.kind, operations = report.operations, ?took, "Synced proxy rules");
    }
}

/// `error: cause: cause`, so one log line explains the failure.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Completes on SIGTERM or SIGINT (the shutdown future for [`SyncLoop::run`]). If a handler
/// cannot be installed, the error is logged and only the other signal is awaited.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("Received SIGTERM"),
                _ = int.recv() => tracing::info!("Received SIGINT"),
            }
        }
        (Ok(mut one), Err(err)) | (Err(err), Ok(mut one)) => {
            tracing::error!(error = %err, "cannot install a signal handler");
            one.recv().await;
        }
        (Err(err), Err(_)) => {
            tracing::error!(error = %err, "cannot install signal handlers; stop kproxy with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
#[path = "sync_loop_tests.rs"]
mod tests;
