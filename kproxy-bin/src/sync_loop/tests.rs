//! Sync loop tests with a fake tracker and a recording backend, in real (short) time.

use super::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kproxy_core::backend::{RecordedCall, RecordingBackend};
use kproxy_core::event::ObjectKind;
use kproxy_core::model::{Protocol, ServicePort};
use kproxy_core::tracker::{ChangeTotals, PendingChanges, TakenChanges, TriggerTime};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// A tracker that turns each Service into one TCP port, and needs Service + EndpointSlice synced.
#[derive(Default)]
struct FakeSource {
    synced: BTreeSet<ObjectKind>,
    current: ProxyState,
    /// Changed in place at each take, as the core tracker does (copied only if a snapshot is
    /// still held, which the loop must not do).
    taken: Arc<ProxyState>,
    pending: usize,
    total: u64,
}

fn port(name: &str, octet: u8) -> ServicePort {
    crate::test_fixtures::service_port("default", name, Protocol::Tcp, &format!("198.19.160.{octet}"), 80)
}

impl ChangeSource for FakeSource {
    type Diagnostic = String;

    fn apply(&mut self, event: ClusterEvent) -> Vec<String> {
        match event {
            ClusterEvent::Synced(kind) => {
                self.synced.insert(kind);
            }
            ClusterEvent::Service(Update::Upsert(svc)) => {
                let name = svc.metadata.name.unwrap_or_default();
                let p = port(&name, self.current.services.len() as u8 + 1);
                self.current.services.insert(p.key(), p);
                self.pending += 1;
                self.total += 1;
            }
            ClusterEvent::Service(Update::Delete { name, .. }) => {
                self.current.services.retain(|k, _| k.name.name != name);
                self.pending += 1;
                self.total += 1;
            }
            _ => return vec!["unsupported event".to_string()],
        }
        vec![]
    }

    fn is_synced(&self) -> bool {
        self.synced.contains(&ObjectKind::Service) && self.synced.contains(&ObjectKind::EndpointSlice)
    }

    fn take_changes(&mut self) -> TakenChanges {
        let changes = self.taken.diff(&self.current);
        Arc::make_mut(&mut self.taken).clone_from(&self.current);
        self.pending = 0;
        let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs_f64();
        let trigger = TriggerTime {
            namespace: "default".into(),
            service: "a".into(),
            unix_seconds: now,
            family: kproxy_core::model::IpFamily::V4,
        };
        TakenChanges { changes, trigger_times: vec![trigger] }
    }

    fn snapshot(&self) -> Arc<ProxyState> {
        Arc::clone(&self.taken)
    }

    fn pending(&self) -> PendingChanges {
        PendingChanges { services: self.pending, endpoints: 0 }
    }

    fn has_pending(&self) -> bool {
        self.pending > 0
    }

    fn totals(&self) -> ChangeTotals {
        ChangeTotals { services: self.total, endpoints: 0 }
    }
}

/// Shared view of what the backend did, with times.
#[derive(Default)]
struct Log {
    calls: Mutex<Vec<(Instant, RecordedCall)>>,
    fail_next: AtomicUsize,
    /// Address of each state the backend was handed.
    states: Mutex<Vec<usize>>,
    /// What the next `check` reports (then nothing), and how many checks ran.
    difference: Mutex<Option<String>>,
    checks: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
#[error("injected failure")]
struct Injected;

struct TestBackend {
    inner: RecordingBackend,
    log: Arc<Log>,
}

impl TestBackend {
    fn record(&self, state: &ProxyState) {
        self.log.states.lock().push(state as *const ProxyState as usize);
        let call = self.inner.calls.last().cloned().expect("a recorded call");
        self.log.calls.lock().push((Instant::now(), call));
    }

    fn maybe_fail(&self) -> Result<(), Injected> {
        let left = self.log.fail_next.load(Ordering::SeqCst);
        if left > 0 {
            self.log.fail_next.store(left - 1, Ordering::SeqCst);
            return Err(Injected);
        }
        Ok(())
    }
}

impl ProxyBackend for TestBackend {
    type Error = Injected;

    fn sync_full(&mut self, state: &ProxyState) -> Result<SyncReport, Injected> {
        self.maybe_fail()?;
        let r = self.inner.sync_full(state).map_err(|_| Injected)?;
        self.record(state);
        Ok(r)
    }

    fn sync_changes(&mut self, state: &ProxyState, changes: &ChangeSet) -> Result<SyncReport, Injected> {
        self.maybe_fail()?;
        let r = self.inner.sync_changes(state, changes).map_err(|_| Injected)?;
        self.record(state);
        Ok(r)
    }

    fn cleanup(&mut self) -> Result<(), Injected> {
        self.inner.cleanup().map_err(|_| Injected)
    }

    fn check(&mut self) -> Result<Option<String>, Injected> {
        self.log.checks.fetch_add(1, Ordering::SeqCst);
        Ok(self.log.difference.lock().take())
    }
}

/// Counts hook runs.
struct CountHook(Arc<AtomicUsize>);

impl AfterSync for CountHook {
    fn after_sync(&mut self, _state: &ProxyState) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Harness {
    log: Arc<Log>,
    health: Arc<ProxyHealth>,
    metrics: Arc<Metrics>,
    hooks: Arc<AtomicUsize>,
    tx: mpsc::Sender<ClusterEvent>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<(Result<Outcome, SyncLoopError>, Option<TestBackend>)>,
}

fn timing(sync_ms: u64, min_ms: u64, full_ms: u64) -> SyncTiming {
    SyncTiming {
        sync_period: Duration::from_millis(sync_ms),
        min_sync_period: Duration::from_millis(min_ms),
        full_sync_period: Duration::from_millis(full_ms),
    }
}

fn start(timing: SyncTiming, once: bool, fail_first: usize) -> Harness {
    start_loop(timing, once, fail_first, None)
}

/// As [`start`], the first sync waiting up to `node_wait` for node-a's Node object.
fn start_loop(timing: SyncTiming, once: bool, fail_first: usize, node_wait: Option<Duration>) -> Harness {
    let log = Arc::new(Log::default());
    log.fail_next.store(fail_first, Ordering::SeqCst);
    let metrics = Arc::new(Metrics::new());
    let hooks = Arc::new(AtomicUsize::new(0));
    let health = Arc::new(ProxyHealth::new(timing.sync_period * 2));
    let ctx = SyncContext {
        backend_name: "test",
        timing,
        metrics: metrics.clone(),
        health: health.clone(),
        hooks: vec![Box::new(CountHook(hooks.clone()))],
        once,
        node_name: "node-a".into(),
        require_node: true,
    };
    let backend = TestBackend { inner: RecordingBackend::default(), log: log.clone() };
    let mut sync_loop = SyncLoop::new(backend, FakeSource::default(), ctx);
    if let Some(bound) = node_wait {
        sync_loop = sync_loop.with_node_wait(bound);
    }
    let (tx, rx) = mpsc::channel(64);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sync_loop.run(rx, async move {
        let _ = stopped.await;
    }));
    Harness { log, health, metrics, hooks, tx, stop: Some(stop), task }
}

fn service(name: &str) -> ClusterEvent {
    ClusterEvent::Service(Update::Upsert(Service {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some("default".into()), ..Default::default() },
        ..Default::default()
    }))
}

impl Harness {
    async fn send(&self, event: ClusterEvent) {
        self.tx.send(event).await.expect("loop alive");
    }

    async fn initial_lists(&self) {
        self.send(service("a")).await;
        self.send(ClusterEvent::Synced(ObjectKind::Service)).await;
        self.send(ClusterEvent::Synced(ObjectKind::EndpointSlice)).await;
    }

    fn calls(&self) -> Vec<(Instant, RecordedCall)> {
        self.log.calls.lock().clone()
    }

    async fn stop(mut self) -> (Outcome, TestBackend) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let (result, backend) =
            tokio::time::timeout(Duration::from_secs(5), self.task).await.expect("loop stops").expect("no panic");
        (result.expect("loop ok"), backend.expect("backend returned"))
    }
}

async fn wait_for_calls(h: &Harness, n: usize, within: Duration) -> Vec<(Instant, RecordedCall)> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let calls = h.calls();
        if calls.len() >= n {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {n} backend calls within {within:?}, got {:?}", h.calls());
}

#[tokio::test]
async fn no_sync_before_initial_lists_then_a_full_sync() {
    let h = start(timing(10_000, 0, 60_000), false, 0);
    h.send(service("a")).await;
    h.send(ClusterEvent::Synced(ObjectKind::Service)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.calls().is_empty(), "synced before EndpointSlices were listed: {:?}", h.calls());
    h.send(ClusterEvent::Synced(ObjectKind::EndpointSlice)).await;
    let calls = wait_for_calls(&h, 1, Duration::from_secs(2)).await;
    assert_eq!(calls[0].1, RecordedCall::Full { services: 1 });
    assert_eq!(h.hooks.load(Ordering::SeqCst), 1);
    let (outcome, backend) = h.stop().await;
    assert_eq!(outcome, Outcome::Stopped);
    // Shutdown leaves the rules in place: no cleanup call.
    assert!(!backend.inner.calls.contains(&RecordedCall::Cleanup));
    assert_eq!(backend.inner.applied().map(|s| s.services.len()), Some(1));
}

#[tokio::test]
async fn changes_are_coalesced_and_min_sync_period_is_respected() {
    let min = Duration::from_millis(300);
    let h = start(timing(10_000, 300, 60_000), false, 0);
    h.initial_lists().await;
    wait_for_calls(&h, 1, Duration::from_secs(2)).await;
    for name in ["b", "c", "d", "e"] {
        h.send(service(name)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = wait_for_calls(&h, 2, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls_after = h.calls();
    assert_eq!(calls_after.len(), 2, "four quick changes must make one partial sync: {calls_after:?}");
    assert_eq!(calls[1].1, RecordedCall::Partial { changed: 4 });
    let gap = calls[1].0 - calls[0].0;
    assert!(gap >= min - Duration::from_millis(5), "syncs only {gap:?} apart, minSyncPeriod is {min:?}");
    let states = h.log.states.lock().clone();
    assert!(states.windows(2).all(|w| w[0] == w[1]), "every sync is handed the source's one state, never a copy: {states:?}");
    let text = h.metrics.encode();
    assert!(text.contains("kubeproxy_sync_proxy_rules_service_changes_total 5"), "{text}");
    assert!(text.contains("kubeproxy_sync_proxy_rules_service_changes_pending 0"), "{text}");
    assert!(text.contains("kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"} 1"), "{text}");
    h.stop().await;
}

#[tokio::test]
async fn failure_is_retried_after_sync_period_with_a_full_sync() {
    let h = start(timing(400, 0, 60_000), false, 1);
    h.initial_lists().await;
    let t0 = Instant::now();
    let calls = wait_for_calls(&h, 1, Duration::from_secs(3)).await;
    assert_eq!(calls[0].1, RecordedCall::Full { services: 1 });
    assert!(calls[0].0 - t0 >= Duration::from_millis(350), "retried after {:?}, before syncPeriod", calls[0].0 - t0);
    let text = h.metrics.encode();
    assert!(text.contains("kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family=\"IPv6\"} 1"), "{text}");
    h.stop().await;
}

#[tokio::test]
async fn a_failed_partial_sync_is_followed_by_a_full_one() {
    let h = start(timing(300, 0, 60_000), false, 0);
    h.initial_lists().await;
    wait_for_calls(&h, 1, Duration::from_secs(2)).await;
    h.log.fail_next.store(1, Ordering::SeqCst);
    h.send(service("b")).await;
    let calls = wait_for_calls(&h, 2, Duration::from_secs(3)).await;
    assert_eq!(calls[1].1, RecordedCall::Full { services: 2 });
    h.stop().await;
}

#[tokio::test]
async fn periodic_syncs_and_periodic_full_resync() {
    // syncPeriod 100 ms: syncs keep coming without changes; every 250 ms one is full.
    let h = start(timing(100, 0, 250), false, 0);
    h.initial_lists().await;
    let calls = wait_for_calls(&h, 5, Duration::from_secs(3)).await;
    let fulls = calls.iter().filter(|(_, c)| matches!(c, RecordedCall::Full { .. })).count();
    assert!(fulls >= 2, "expected a periodic full resync among {calls:?}");
    assert!(calls.iter().any(|(_, c)| matches!(c, RecordedCall::Partial { changed: 0 })), "{calls:?}");
    h.stop().await;
}

#[tokio::test]
async fn once_mode_syncs_and_returns() {
    let h = start(timing(10_000, 1_000, 60_000), true, 0);
    h.initial_lists().await;
    let (result, backend) =
        tokio::time::timeout(Duration::from_secs(3), h.task).await.expect("returns").expect("no panic");
    assert_eq!(result.expect("ok"), Outcome::SyncedOnce);
    assert_eq!(backend.expect("backend").inner.calls, vec![RecordedCall::Full { services: 1 }]);
}

#[tokio::test]
async fn once_mode_reports_a_failed_sync() {
    let h = start(timing(10_000, 1_000, 60_000), true, 1);
    h.initial_lists().await;
    let (result, _) = tokio::time::timeout(Duration::from_secs(3), h.task).await.expect("returns").expect("no panic");
    let err = result.expect_err("the sync failed");
    assert!(err.to_string().contains("injected failure"), "{err}");
}

#[tokio::test]
async fn closed_source_before_sync_is_an_error_after_sync_is_not() {
    let h = start(timing(10_000, 0, 60_000), false, 0);
    h.send(service("a")).await;
    let Harness { tx, task, stop, .. } = h;
    drop(tx);
    let (result, _) = tokio::time::timeout(Duration::from_secs(3), task).await.expect("returns").expect("no panic");
    assert!(matches!(result, Err(SyncLoopError::SourceEndedBeforeSynced)));
    drop(stop);

    let h = start(timing(10_000, 0, 60_000), false, 0);
    h.initial_lists().await;
    let Harness { tx, task, stop, log, .. } = h;
    drop(tx);
    let (result, _) = tokio::time::timeout(Duration::from_secs(3), task).await.expect("returns").expect("no panic");
    assert_eq!(result.expect("ok"), Outcome::SourceClosed);
    assert_eq!(log.calls.lock().len(), 1, "the last state is programmed before returning");
    drop(stop);
}

fn node(name: &str, deleting: bool) -> ClusterEvent {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let deletion_timestamp = deleting.then(|| Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    ClusterEvent::Node(Update::Upsert(k8s_openapi::api::core::v1::Node {
        metadata: ObjectMeta { name: Some(name.into()), deletion_timestamp, ..Default::default() },
        ..Default::default()
    }))
}

#[tokio::test]
async fn healthz_follows_this_node_only() {
    let h = start(timing(10_000, 0, 60_000), false, 0);
    let eligible = |h: &Harness| h.health.node_eligible();
    let settle = || tokio::time::sleep(Duration::from_millis(50));
    assert!(eligible(&h), "eligible while starting");
    h.send(ClusterEvent::Synced(ObjectKind::Node)).await;
    settle().await;
    assert!(!eligible(&h), "the Node list did not contain node-a");
    h.send(node("node-a", false)).await;
    settle().await;
    assert!(eligible(&h));
    h.send(node("node-b", true)).await;
    settle().await;
    assert!(eligible(&h), "another node being deleted does not matter");
    h.send(node("node-a", true)).await;
    settle().await;
    assert!(!eligible(&h), "node-a is being deleted");
    h.send(node("node-a", false)).await;
    h.send(ClusterEvent::Node(Update::Delete { namespace: String::new(), name: "node-a".into() })).await;
    settle().await;
    assert!(!eligible(&h), "node-a was deleted");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_keep_happening_during_an_event_flood() {
    let h = start(timing(10_000, 50, 60_000), false, 0);
    h.initial_lists().await;
    wait_for_calls(&h, 1, Duration::from_secs(2)).await;
    let tx = h.tx.clone();
    let flood = tokio::spawn(async move {
        let end = Instant::now() + Duration::from_millis(800);
        let mut n = 0u32;
        while Instant::now() < end {
            // Re-upserting the same few services keeps the channel full without growing the state.
            if tx.send(service(&format!("flood-{}", n % 8))).await.is_err() {
                break;
            }
            n += 1;
        }
        n
    });
    let sent = flood.await.unwrap();
    let calls = h.calls();
    assert!(sent > 1000, "the flood was too thin to prove anything ({sent} events)");
    assert!(calls.len() >= 4, "only {} syncs during an 800 ms flood with minSyncPeriod 50 ms: {calls:?}", calls.len());
    h.stop().await;
}

#[test]
fn schedule_rules() {
    let t = timing(30_000, 1_000, 3_600_000);
    let mut s = Schedule::new(t);
    assert!(s.full_due(Instant::now()), "first sync is full");
    let start = Instant::now();
    s.last_start = Some(start);
    s.last_full = Some(start);
    assert_eq!(s.next_at(), start + t.sync_period, "idle: periodic sync after syncPeriod");
    s.dirty = true;
    assert_eq!(s.next_at(), start + t.min_sync_period, "dirty: after minSyncPeriod");
    assert!(!s.full_due(start + Duration::from_secs(60)));
    assert!(s.full_due(start + t.full_sync_period));
    s.failed = true;
    assert!(s.full_due(start), "after a failure");
}

fn start_with_drift(timing: SyncTiming) -> (Harness, mpsc::Sender<Drift>) {
    start_with(timing, |l| l)
}

fn start_with(
    timing: SyncTiming,
    wire: impl FnOnce(SyncLoop<TestBackend, FakeSource>) -> SyncLoop<TestBackend, FakeSource>,
) -> (Harness, mpsc::Sender<Drift>) {
    let log = Arc::new(Log::default());
    let metrics = Arc::new(Metrics::new());
    let hooks = Arc::new(AtomicUsize::new(0));
    let health = Arc::new(ProxyHealth::new(timing.sync_period * 2));
    let ctx = SyncContext {
        backend_name: "test",
        timing,
        metrics: metrics.clone(),
        health: health.clone(),
        hooks: vec![Box::new(CountHook(hooks.clone()))],
        once: false,
        node_name: "node-a".into(),
        require_node: false,
    };
    let backend = TestBackend { inner: RecordingBackend::default(), log: log.clone() };
    let (drift_tx, drift_rx) = mpsc::channel(8);
    let sync_loop = wire(SyncLoop::new(backend, FakeSource::default(), ctx).with_drift(drift_rx));
    let (tx, rx) = mpsc::channel(64);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sync_loop.run(rx, async move {
        let _ = stopped.await;
    }));
    (Harness { log, health, metrics, hooks, tx, stop: Some(stop), task }, drift_tx)
}

#[tokio::test]
async fn tampering_forces_a_full_sync_after_min_sync_period_and_healthz_follows() {
    // syncPeriod 60 s: only the tampering report can cause the second sync.
    let (h, drift) = start_with_drift(timing(60_000, 300, 3_600_000));
    h.initial_lists().await;
    wait_for_calls(&h, 1, Duration::from_secs(2)).await;
    let t0 = Instant::now();
    drift.send(Drift::Tampered("`nft` (pid 1) deleted table ip kproxy".into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!h.health.ruleset_intact(), "/healthz must be unhealthy until repaired");
    let calls = wait_for_calls(&h, 2, Duration::from_secs(2)).await;
    assert_eq!(calls[1].1, RecordedCall::Full { services: 1 });
    assert!(calls[1].0 - t0 < Duration::from_secs(1), "repaired only after {:?}", calls[1].0 - t0);
    assert!(h.health.ruleset_intact(), "repaired: /healthz healthy again");
    let text = h.metrics.encode();
    assert!(text.contains("kproxy_ruleset_tampering_detected_total 1"), "{text}");
    assert!(text.contains("kproxy_ruleset_tampering_repairs_total 1"), "{text}");
    // Lost right after kproxy's own sync: presumed its own, the next sync stays partial.
    drift.send(Drift::Unknown("lost".into())).await.unwrap();
    h.send(service("b")).await;
    let calls = wait_for_calls(&h, 3, Duration::from_secs(2)).await;
    assert_eq!(calls[2].1, RecordedCall::Partial { changed: 1 });
    // Lost later: the next sync is full, but not sooner.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    drift.send(Drift::Unknown("lost".into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.calls().len(), 3, "lost notifications alone must not force a sync: {:?}", h.calls());
    h.send(service("c")).await;
    let calls = wait_for_calls(&h, 4, Duration::from_secs(2)).await;
    assert_eq!(calls[3].1, RecordedCall::Full { services: 3 });
    h.stop().await;
}

#[tokio::test]
async fn a_failed_partial_sync_is_retried_full_after_min_sync_period_not_sync_period() {
    let h = start(timing(60_000, 200, 3_600_000), false, 0);
    h.initial_lists().await;
    wait_for_calls(&h, 1, Duration::from_secs(2)).await;
    h.log.fail_next.store(1, Ordering::SeqCst);
    h.send(service("b")).await;
    let t0 = Instant::now();
    let calls = wait_for_calls(&h, 2, Duration::from_secs(3)).await;
    assert_eq!(calls[1].1, RecordedCall::Full { services: 2 });
    assert!(calls[1].0 - t0 < Duration::from_secs(2), "the full retry came after {:?}", calls[1].0 - t0);
    h.stop().await;
}

#[tokio::test]
async fn a_periodic_check_finding_a_difference_forces_a_full_sync() {
    let (h, _drift) = start_with(timing(60_000, 100, 3_600_000), |l| l.with_check(Duration::from_millis(150)));
    h.initial_lists().await;
    wait_for_calls(&h, 1, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(h.log.checks.load(Ordering::SeqCst) >= 1, "no periodic check ran");
    assert_eq!(h.calls().len(), 1, "a check that finds nothing changes nothing: {:?}", h.calls());
    *h.log.difference.lock() = Some("virtual server tcp 198.19.160.10:80 is missing".into());
    let calls = wait_for_calls(&h, 2, Duration::from_secs(2)).await;
    assert_eq!(calls[1].1, RecordedCall::Full { services: 1 });
    let text = h.metrics.encode();
    assert!(text.contains("kproxy_ruleset_tampering_detected_total 1"), "{text}");
    assert!(text.contains("kproxy_ruleset_tampering_repairs_total 1"), "{text}");
    assert!(h.health.ruleset_intact());
    h.stop().await;
}

fn node_with_ip(name: &str, internal_ip: &str) -> ClusterEvent {
    use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};
    let address = NodeAddress { type_: "InternalIP".into(), address: internal_ip.into() };
    ClusterEvent::Node(Update::Upsert(Node {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        status: Some(NodeStatus { addresses: Some(vec![address]), ..Default::default() }),
        ..Default::default()
    }))
}

/// A restarted kproxy with `nodePortAddresses: primary` and no bindAddress learns its node IPs
/// from the Node object: the first sync must wait for it, or it programs the node without its
/// NodePorts until the next sync.
#[tokio::test]
async fn the_first_sync_waits_for_the_node_and_programs_its_ips() {
    use kproxy_core::model::{NodePortAddresses, ProxySettings};
    use kproxy_core::tracker::ChangeTracker;
    let settings = ProxySettings {
        node_name: "node-a".into(),
        node_port_addresses: NodePortAddresses::Primary,
        ..ProxySettings::default()
    };
    let mut tracker = ChangeTracker::new(settings, Default::default());
    tracker.wait_for(&[ObjectKind::Service, ObjectKind::EndpointSlice]);
    let ctx = SyncContext {
        backend_name: "test",
        timing: timing(10_000, 0, 60_000),
        metrics: Arc::new(Metrics::new()),
        health: Arc::new(ProxyHealth::new(Duration::from_secs(20))),
        hooks: Vec::new(),
        once: true,
        node_name: "node-a".into(),
        require_node: true,
    };
    let sync_loop = SyncLoop::new(RecordingBackend::default(), tracker, ctx).with_node_wait(Duration::from_secs(20));
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(sync_loop.run(rx, std::future::pending::<()>()));
    tx.send(ClusterEvent::Synced(ObjectKind::Service)).await.expect("loop alive");
    tx.send(ClusterEvent::Synced(ObjectKind::EndpointSlice)).await.expect("loop alive");
    tx.send(ClusterEvent::Synced(ObjectKind::Node)).await.expect("loop alive");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!task.is_finished(), "programmed before this node's Node object arrived");
    tx.send(node_with_ip("node-b", "198.19.0.2")).await.expect("loop alive");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished(), "another node's Node object does not end the wait");
    let arrived = Instant::now();
    tx.send(node_with_ip("node-a", "198.19.0.1")).await.expect("loop alive");
    let (outcome, backend) = tokio::time::timeout(Duration::from_secs(5), task).await.expect("syncs").expect("no panic");
    assert!(arrived.elapsed() < Duration::from_secs(2), "the Node's arrival ends the wait at once");
    assert_eq!(outcome.expect("loop ok"), Outcome::SyncedOnce);
    let state = backend.as_ref().and_then(|b| b.applied()).expect("programmed");
    assert_eq!(state.settings.node_ips, vec!["198.19.0.1".parse::<std::net::IpAddr>().unwrap()]);
}

#[tokio::test]
async fn the_wait_for_the_node_is_bounded() {
    let bound = Duration::from_millis(500);
    let h = start_loop(timing(10_000, 0, 60_000), false, 0, Some(bound));
    let t0 = Instant::now();
    h.initial_lists().await;
    h.send(ClusterEvent::Synced(ObjectKind::Node)).await;
    let calls = wait_for_calls(&h, 1, Duration::from_secs(3)).await;
    let waited = calls[0].0 - t0;
    assert!(waited >= bound - Duration::from_millis(20), "programmed after {waited:?}, before the {bound:?} bound");
    assert_eq!(calls[0].1, RecordedCall::Full { services: 1 });
    h.stop().await;
}
