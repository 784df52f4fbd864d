//! Collecting the source's events and waiting (bounded) for the ones a test expects.

use std::time::{Duration, Instant};

use kproxy_core::event::{ClusterEvent, ObjectKind};
use tokio::sync::mpsc;

/// Events received from a source, kept in order, with bounded waits.
pub struct Events {
    rx: mpsc::Receiver<ClusterEvent>,
    /// Everything received so far.
    pub seen: Vec<ClusterEvent>,
}

impl Events {
    /// Wraps the receiving end of the source's channel.
    pub fn new(rx: mpsc::Receiver<ClusterEvent>) -> Self {
        Events { rx, seen: Vec::new() }
    }

    /// Waits until an event matching `pred` arrives (events before it are kept in `seen`);
    /// panics with `what` and the recent events after `timeout`.
    pub async fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&ClusterEvent) -> bool) -> ClusterEvent {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => {
                    self.seen.push(ev.clone());
                    if pred(&ev) {
                        return ev;
                    }
                }
                Ok(None) => panic!("source channel closed while waiting for {what}"),
                Err(_) => {
                    let tail: Vec<String> = self.seen.iter().rev().take(10).map(summary).collect();
                    panic!("timed out after {timeout:?} waiting for {what}; last events (newest first): {tail:#?}")
                }
            }
        }
    }

    /// Index into `seen` to search from with [`Events::wait_since`].
    pub fn mark(&self) -> usize {
        self.seen.len()
    }

    /// Like [`Events::wait_for`], but first looks at events already received since `mark`
    /// (for changes whose events may arrive in either order).
    pub async fn wait_since(
        &mut self,
        mark: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&ClusterEvent) -> bool,
    ) -> ClusterEvent {
        if let Some(ev) = self.seen[mark.min(self.seen.len())..].iter().find(|e| pred(e)) {
            return ev.clone();
        }
        self.wait_for(what, timeout, pred).await
    }

    /// Waits until every kind in `kinds` has sent `Synced` (counting only new events).
    pub async fn wait_synced(&mut self, kinds: &[ObjectKind], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let start = self.seen.len();
        loop {
            let missing: Vec<ObjectKind> = kinds
                .iter()
                .copied()
                .filter(|k| !self.seen[start..].contains(&ClusterEvent::Synced(*k)))
                .collect();
            if missing.is_empty() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            self.wait_for(&format!("Synced of {missing:?}"), left, |e| matches!(e, ClusterEvent::Synced(_))).await;
        }
    }
}

/// One line per event: kind, verb, namespace/name.
pub fn summary(ev: &ClusterEvent) -> String {
    use kproxy_core::event::Update;
    use kube::ResourceExt;
    fn up<K: kube::Resource>(u: &Update<K>) -> String {
        match u {
            Update::Upsert(o) => format!("upsert {}/{}", o.namespace().unwrap_or_default(), o.name_any()),
            Update::Delete { namespace, name } => format!("delete {namespace}/{name}"),
        }
    }
    match ev {
        ClusterEvent::Service(u) => format!("Service {}", up(u)),
        ClusterEvent::EndpointSlice(u) => format!("EndpointSlice {}", up(u)),
        ClusterEvent::ServiceCidr(u) => format!("ServiceCIDR {}", up(u)),
        ClusterEvent::Node(u) => format!("Node {}", up(u)),
        ClusterEvent::Synced(k) => format!("Synced({k:?})"),
    }
}

/// The name in an upsert/delete event of `kind`, if it is one.
pub fn name_of(ev: &ClusterEvent) -> Option<(ObjectKind, bool, String)> {
    use kproxy_core::event::Update;
    use kube::ResourceExt;
    fn up<K: kube::Resource>(u: &Update<K>) -> (bool, String) {
        match u {
            Update::Upsert(o) => (true, o.name_any()),
            Update::Delete { name, .. } => (false, name.clone()),
        }
    }
    let (kind, (upsert, name)) = match ev {
        ClusterEvent::Service(u) => (ObjectKind::Service, up(u)),
        ClusterEvent::EndpointSlice(u) => (ObjectKind::EndpointSlice, up(u)),
        ClusterEvent::ServiceCidr(u) => (ObjectKind::ServiceCidr, up(u)),
        ClusterEvent::Node(u) => (ObjectKind::Node, up(u)),
        ClusterEvent::Synced(_) => return None,
    };
    Some((kind, upsert, name))
}

/// True for an upsert of `kind` named `name`.
pub fn is_upsert(ev: &ClusterEvent, kind: ObjectKind, name: &str) -> bool {
    name_of(ev).is_some_and(|(k, up, n)| k == kind && up && n == name)
}

/// True for a delete of `kind` named `name`.
pub fn is_delete(ev: &ClusterEvent, kind: ObjectKind, name: &str) -> bool {
    name_of(ev).is_some_and(|(k, up, n)| k == kind && !up && n == name)
}
