//! One kind's watch loop: list, watch, reconnect with backoff, relist on 410 Gone (all by
//! kube-runtime's watcher), forwarding [`ClusterEvent`]s until the receiver goes away.

use std::pin::pin;

use futures::StreamExt;
use kproxy_core::event::{ClusterEvent, ObjectKind};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::mpsc::Sender;

use super::tracker::Tracker;
use super::watched::Watched;

/// Watches `api` until `tx` is closed. Never gives up on errors: they are logged with the
/// kind's grep-able warning and the watcher retries with exponential backoff (0.8 s to 30 s,
/// as client-go's reflector), so the source survives an unreachable API server.
pub async fn run_watch<K: Watched>(
    api: Api<K>,
    config: watcher::Config,
    tx: Sender<ClusterEvent>,
    mut observe: impl FnMut(&ClusterEvent) + Send,
) {
    let mut stream = pin!(watcher(api, config).default_backoff());
    let mut tracker = Tracker::default();
    let mut synced = false;
    let mut failing = false;
    loop {
        let item = tokio::select! {
            _ = tx.closed() => return,
            item = stream.next() => item,
        };
        // The watcher stream is endless; `None` would mean kube changed that contract.
        let Some(item) = item else {
            tracing::error!(kind = ?K::KIND, "Watch stream ended unexpectedly; no further updates for this kind");
            return;
        };
        match item {
            Ok(event) => {
                if failing {
                    tracing::info!(kind = ?K::KIND, "Watch re-established");
                    failing = false;
                }
                for out in tracker.handle(event) {
                    synced |= matches!(out, ClusterEvent::Synced(_));
                    observe(&out);
                    if tx.send(out).await.is_err() {
                        return;
                    }
                }
            }
            Err(err) => {
                if K::KIND == ObjectKind::ServiceCidr && !synced && is_not_found(&err) {
                    // Clusters before networking.k8s.io/v1 ServiceCIDR (Kubernetes 1.33) do not
                    // serve it: treat it as empty rather than never syncing.
                    tracing::warn!(error = %err, "ServiceCIDR API (networking.k8s.io/v1) is not served; treating it as empty");
                    let _ = tx.send(ClusterEvent::Synced(K::KIND)).await;
                    return;
                }
                failing = true;
                if is_gone(&err) {
                    // Routine after an API server restart or etcd compaction: the watcher
                    // relists (and the tracker reports what vanished). Not an operator problem.
                    tracing::info!(kind = ?K::KIND, error = %err, "Watch expired (410 Gone); relisting");
                } else {
                    tracing::warn!(error = %err, "{}", K::LIST_FAILED);
                }
            }
        }
    }
}

/// A watch that can no longer resume from its resourceVersion.
fn is_gone(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

fn is_not_found(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::InitialListFailed(kube::Error::Api(status)) => status.code == 404,
        _ => false,
    }
}
