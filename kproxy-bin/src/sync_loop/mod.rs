//! The sync loop: cluster events in, kernel programming out, at a bounded rate.
//!
//! Timing follows upstream's BoundedFrequencyRunner semantics:
//! - nothing is programmed before every watched kind has sent its initial list
//!   ([`ChangeSource::is_synced`]);
//! - with [`SyncLoop::with_node_wait`], the first sync also waits, for a bounded time, for
//!   this node's Node object, whose facts (node IPs for `nodePortAddresses: primary` and the
//!   health checks, zone for topology hints, PodCIDR for `detectLocalMode: NodeCIDR`) would
//!   otherwise be missing from it: a restarted kproxy would briefly program a node without
//!   its NodePorts. Upstream waits for the Node the same way before it programs anything;
//!   past the bound kproxy programs without it and logs why (upstream gives up starting);
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
//! - a partial sync that fails is followed by a full one after `min_sync_period`, not
//!   `sync_period`: it failed because the kernel was not what the backend's record said;
//! - [`Drift`] events (see [`SyncLoop::with_drift`]: someone else changed kproxy's rules)
//!   are logged as warnings, counted, make `/healthz` unhealthy, and force a full sync after
//!   `min_sync_period`; its success ends the unhealthy state. For kernels without change
//!   notifications (IPVS), [`SyncLoop::with_check`] compares the kernel with what was
//!   programmed every few seconds and reports differences the same way.
//!
//! The desired state exists once, in the [`ChangeSource`] (the core's tracker): each sync lends
//! the backend and hooks a shared snapshot of it and drops that before the next take, so the
//! tracker updates it in place and nothing copies it (backends keep only their own record).
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
//! use kproxy_bin::{conntrack, node_tuning, source::manifests, sync_loop};
//! use kproxy_telemetry::{hcnode, health, metrics};
//! use kproxy_core::backend::RecordingBackend;
//! use kproxy_core::event::ObjectKind;
//! use kproxy_core::tracker::ChangeTracker;
//!
//! # async fn wire() -> anyhow::Result<()> {
//! let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
//! use kproxy_conntrack::{sysctl, tuning};
//! tuning::apply(&sysctl::node(), &tuning::ConntrackTuning::default(), cpus);
//! node_tuning::apply_oom_score_adj(std::path::Path::new(node_tuning::OOM_SCORE_ADJ_PATH), -999);
//!
//! let timing = sync_loop::SyncTiming::new(Duration::from_secs(30), Duration::from_secs(1));
//! let metrics = Arc::new(metrics::Metrics::new());
//! let health = Arc::new(health::ProxyHealth::new(timing.sync_period * 2));
//! let _metrics_server = metrics::serve("127.0.0.1:10249".parse()?, metrics.clone(), Default::default())?;
//! let _health_server = health::serve("0.0.0.0:10256".parse()?, health.clone(), metrics.clone())?;
//! let hooks: Vec<Box<dyn sync_loop::AfterSync>> = vec![
//!     Box::new(conntrack::ConntrackCleanup::new(kproxy_conntrack::Reconciler::new(), metrics.clone())),
//!     Box::new(hcnode::HcNodeServers::new(health.clone(), hcnode::HcBind::NodePortAddresses, tokio::runtime::Handle::current())),
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

mod drift;
mod schedule;
mod signal;
mod source;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kproxy_core::backend::{ProxyBackend, SyncKind, SyncReport};
use kproxy_core::event::{ClusterEvent, ObjectKind, Update};
use kproxy_core::model::{ChangeSet, IpFamily, ProxyState};
use tokio::sync::mpsc::Receiver;

use kproxy_telemetry::health::ProxyHealth;
use kproxy_telemetry::metrics::Metrics;
use schedule::{sleep_until_opt, Schedule};
use source::system_times;

pub use drift::Drift;
pub use schedule::{SyncTiming, DEFAULT_FULL_SYNC_PERIOD};
pub use signal::shutdown_signal;
pub use source::ChangeSource;

/// How long after one of kproxy's own syncs lost change notifications are presumed to be
/// its own (see [`Drift::Unknown`]).
const OWN_FLOOD: Duration = Duration::from_secs(2);

/// How long the first sync waits for this node's Node object by default: upstream's bound for
/// finding the node's IPs from the Node before it carries on without them (kube-proxy's
/// `getNodeIPs` retries with backoff from 1 s, doubling, 6 tries: about 30 s; the newer
/// NodeManager polls for up to 5 minutes, then fails to start). The daemon caps it at
/// syncPeriod, so it stays under `/livez`'s 2 x syncPeriod and the wait never fails a
/// liveness probe.
pub const DEFAULT_NODE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Something to do on the backend's thread right after each successful sync.
pub trait AfterSync: Send {
    /// `state` is what was just programmed.
    fn after_sync(&mut self, state: &ProxyState);
}

/// The healthCheckNodePort servers follow what was just programmed.
impl AfterSync for kproxy_telemetry::hcnode::HcNodeServers {
    fn after_sync(&mut self, state: &ProxyState) {
        self.reconcile(state);
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

/// What moves to the blocking thread and back for each sync. No state: the source's snapshot
/// travels with the sync and is dropped when it ends.
struct Worker<B> {
    backend: B,
    hooks: Vec<Box<dyn AfterSync>>,
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
    drift: Option<Receiver<Drift>>,
    check_period: Option<Duration>,
    last_check: Option<Instant>,
    /// When the last sync ended.
    last_end: Option<Instant>,
    /// How long the first sync may wait for this node's Node object (see `with_node_wait`).
    node_wait: Option<std::time::Duration>,
    /// While the first sync waits for the Node: until when.
    node_wait_until: Option<Instant>,
}

impl<B, S> SyncLoop<B, S>
where
    B: ProxyBackend + Send + 'static,
    S: ChangeSource,
{
    /// A loop programming `backend` from what `source` tracks.
    pub fn new(backend: B, source: S, ctx: SyncContext) -> SyncLoop<B, S> {
        SyncLoop {
            worker: Some(Worker { backend, hooks: ctx.hooks }),
            source,
            schedule: Schedule::new(ctx.timing),
            backend_name: ctx.backend_name,
            metrics: ctx.metrics,
            health: ctx.health,
            once: ctx.once,
            node_name: ctx.node_name,
            require_node: ctx.require_node,
            node_seen: false,
            drift: None,
            check_period: None,
            last_check: None,
            last_end: None,
            node_wait: None,
            node_wait_until: None,
        }
    }

    /// Also run the backend's [`ProxyBackend::check`] every `period` while idle; a
    /// difference it finds is handled as a [`Drift::Tampered`] report.
    pub fn with_check(mut self, period: Duration) -> SyncLoop<B, S> {
        self.check_period = Some(period);
        self
    }

    /// Also listen to `drift`: reports of changes to the kernel state made by someone else
    /// (see [`Drift`]). Without it, drift is repaired only by the periodic full sync.
    pub fn with_drift(mut self, drift: Receiver<Drift>) -> SyncLoop<B, S> {
        self.drift = Some(drift);
        self
    }

    /// Hold the first sync until this node's Node object has arrived, or for at most `bound`
    /// after [`SyncLoop::run`] starts ([`DEFAULT_NODE_WAIT`] is upstream's bound). For an API
    /// server source, where the Node's facts complete the configuration.
    pub fn with_node_wait(mut self, bound: std::time::Duration) -> Self {
        self.node_wait = Some(bound);
        self
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
        self.node_wait_until = self.node_wait.map(|bound| Instant::now() + bound);
        loop {
            let node_gate = self.node_gate();
            let listed = self.source.is_synced();
            let synced = listed && node_gate.is_none();
            if !open {
                // A source that ends stops any wait for the Node: program what it sent.
                if !listed {
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
            // Waiting for the Node: wake at the bound to give up waiting (see `node_gate`).
            let wake = if listed { deadline.or(node_gate) } else { None };
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
                () = sleep_until_opt(self.check_at()) => self.check().await?,
                drift = drift::recv(self.drift.as_mut()) => match drift {
                    Some(drift) => self.drifted(drift),
                    // The watcher ended (it logged why): periodic full syncs remain.
                    None => self.drift = None,
                },
                () = sleep_until_opt(wake) => {
                    // The Node wait's bound only re-evaluates the gate at the top of the loop.
                    if synced {
                        if let Some(outcome) = self.sync().await? {
                            return Ok(outcome);
                        }
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

    fn drifted(&mut self, drift: Drift) {
        match drift {
            Drift::Tampered(what) => {
                tracing::warn!(backend = self.backend_name, "Someone else changed kproxy's rules: {what}; repairing them with a full sync");
                self.metrics.record_tampering_detected();
                self.health.ruleset_tampered();
                self.schedule.tampered += 1;
            }
            // kproxy's own large commits are what overflows the watch socket: a loss right
            // after one of its syncs is presumed to be its own notifications. Otherwise each
            // full sync would overflow it and make the next sync full too, for ever.
            Drift::Unknown(why) if self.last_end.is_some_and(|end| end.elapsed() < OWN_FLOOD) => {
                tracing::debug!(backend = self.backend_name, "{why}, right after kproxy's own sync: presumed to be its own");
            }
            Drift::Unknown(why) => {
                tracing::warn!(backend = self.backend_name, "{why}: a change by someone else may have been missed; the next sync will be full");
                self.schedule.full_requested = true;
            }
        }
    }

    /// While the first sync waits for this node's Node object: the instant the wait ends.
    /// `None` once the Node has arrived, the bound has passed (logged once), or a sync ran.
    fn node_gate(&mut self) -> Option<Instant> {
        let until = self.node_wait_until?;
        if self.node_seen || self.schedule.last_start.is_some() {
            self.node_wait_until = None;
            return None;
        }
        if Instant::now() >= until {
            tracing::warn!(
                node = %self.node_name,
                waited = ?self.node_wait.unwrap_or_default(),
                "This node's Node object has not arrived; programming without its IPs, zone and PodCIDR \
                 (NodePorts on primary node addresses and topology hints are added when it does)"
            );
            self.node_wait_until = None;
            return None;
        }
        Some(until)
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
        let trigger_times = system_times(&trigger_times);
        self.report_addresses();
        self.schedule.last_start = Some(start);
        self.schedule.dirty = false;
        self.schedule.retry_now = false;
        // A full sync repairs whatever someone else changed before it started.
        let repairs = full.then_some(self.schedule.tampered);
        if full {
            self.schedule.full_requested = false;
        }
        // The tracker's own state, shared for this sync: nothing is copied, and both
        // references are gone when this function returns, before the next take.
        let state = self.source.snapshot();
        tracing::info!(
            backend = self.backend_name,
            kind = if full { "full" } else { "partial" },
            services = state.services.len(),
            changed = if full { pending.services + pending.endpoints } else { changes.services.len() },
            "Syncing proxy rules"
        );
        let lent = Arc::clone(&state);
        let result = self
            .on_worker(move |worker| {
                let result = if full {
                    worker.backend.sync_full(&lent)
                } else {
                    worker.backend.sync_changes(&lent, &changes)
                }
                .map_err(|err| error_chain(&err));
                if result.is_ok() {
                    for hook in &mut worker.hooks {
                        hook.after_sync(&lent);
                    }
                }
                result
            })
            .await?;
        self.last_end = Some(Instant::now());
        let outcome = match result {
            Ok(report) => {
                self.succeeded(&state, &report, start, &trigger_times);
                if let Some(repairs) = repairs.filter(|r| *r > self.schedule.repaired) {
                    self.repaired(repairs);
                }
                self.once.then_some(Outcome::SyncedOnce)
            }
            Err(message) => {
                // A failed partial sync built on a kernel state that was not there: a full sync
                // follows at once. A failed full sync waits syncPeriod.
                self.schedule.retry_now = !full;
                let retry_in = if full { self.schedule.timing.sync_period } else { self.schedule.timing.min_sync_period };
                tracing::error!(backend = self.backend_name, error = %message, ?retry_in, "Error syncing proxy rules; retrying with a full sync");
                self.metrics.record_sync_failure();
                self.health.queued_update(start);
                self.schedule.failed = true;
                if self.once {
                    return Err(SyncLoopError::OnceSyncFailed { backend: self.backend_name, message });
                }
                None
            }
        };
        Ok(outcome)
    }

    /// Runs `f` on the backend's worker on a blocking thread (the backend blocks on the
    /// kernel) and puts the worker back.
    async fn on_worker<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Worker<B>) -> R + Send + 'static,
    ) -> Result<R, SyncLoopError> {
        // The worker is only ever absent while it runs here, and runs are sequential.
        let Some(mut worker) = self.worker.take() else { unreachable!("sync loop worker missing outside a run") };
        let joined = tokio::task::spawn_blocking(move || {
            let result = f(&mut worker);
            (worker, result)
        })
        .await;
        let (worker, result) =
            joined.map_err(|source| SyncLoopError::BackendPanicked { backend: self.backend_name, source })?;
        self.worker = Some(worker);
        Ok(result)
    }

    /// The periodic check of the kernel's state ([`ProxyBackend::check`]).
    async fn check(&mut self) -> Result<(), SyncLoopError> {
        self.last_check = Some(Instant::now());
        let found = self.on_worker(|worker| worker.backend.check().map_err(|err| error_chain(&err))).await?;
        match found {
            Ok(Some(difference)) => self.drifted(Drift::Tampered(difference)),
            Ok(None) => {}
            Err(message) => tracing::warn!(
                backend = self.backend_name,
                error = %message,
                "Checking the kernel's state against the programmed one failed; the periodic full sync still repairs any difference"
            ),
        }
        Ok(())
    }

    /// When the next periodic check is due: `check_period` after the later of the last check
    /// and the last sync, once something was programmed.
    fn check_at(&self) -> Option<Instant> {
        let period = self.check_period?;
        self.schedule.last_full?;
        let base = self.last_check.max(self.schedule.last_start)?;
        Some(base + period)
    }

    /// A full sync that started after `repairs` changes by someone else succeeded.
    fn repaired(&mut self, repairs: u64) {
        self.schedule.repaired = repairs;
        self.metrics.record_tampering_repair();
        if !self.schedule.repair_pending() {
            self.health.ruleset_repaired();
            tracing::info!(backend = self.backend_name, "Repaired kproxy's rules after someone else changed them");
        }
    }

    fn succeeded(&mut self, state: &ProxyState, report: &SyncReport, start: Instant, triggers: &[(SystemTime, IpFamily)]) {
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

impl<B, S> SyncLoop<B, S>
where
    S: ChangeSource,
{
    /// Log what the last take decided about contested and disallowed addresses (once per
    /// start and end, not per sync) and update the gauges.
    fn report_addresses(&mut self) {
        for notice in self.source.take_address_notices() {
            if notice.ended {
                tracing::info!(service = %notice.service, kind = notice.kind.as_str(), "{notice}");
            } else {
                tracing::warn!(service = %notice.service, kind = notice.kind.as_str(), "{notice}");
            }
        }
        self.metrics.set_address_issues(&self.source.address_issues());
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

#[cfg(test)]
mod tests;
