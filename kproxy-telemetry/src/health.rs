//! `/healthz` and `/livez` on `healthzBindAddress` (default `0.0.0.0:10256`), with upstream's
//! semantics (pkg/proxy/healthcheck/proxy_health.go):
//!
//! - the proxy is *healthy* unless an update was queued and not programmed within the health
//!   timeout (2 x syncPeriod), or nothing was ever programmed and the process has been up
//!   longer than that timeout. The second rule is kproxy's: upstream stays healthy while
//!   starting up however long that takes, so a node that never got its first sync (say, the
//!   API server unreachable after a reboot) looked alive while none of its Services worked;
//! - `/livez` answers 200 when healthy, else 503;
//! - `/healthz` also answers 503 when the Node is not eligible: missing (deleted), being
//!   deleted (`deletionTimestamp`), or tainted `ToBeDeletedByClusterAutoscaler`. The node
//!   counts as eligible until the first Node event says otherwise;
//! - `/healthz` also answers 503 from the moment someone else is seen changing kproxy's rules
//!   until a full sync has repaired them (kproxy's own; `/livez` ignores it, since restarting
//!   kproxy would not repair them sooner). The body says `"rulesetIntact": false` meanwhile.
//!
//! The JSON body is upstream's (`lastUpdated`, `currentTime`, plus `nodeEligible` on /healthz)
//! with a `healthy` field added; times are RFC 3339. As upstream, `lastUpdated` is the current
//! time when healthy (older releases reported the last sync-loop run there).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hyper::StatusCode;
use k8s_openapi::api::core::v1::Node;
use parking_lot::Mutex;

use crate::http_server::{not_found, respond, rfc3339, Handler, HttpServer};
use crate::metrics::Metrics;

/// The taint the Cluster Autoscaler puts on a node it is about to delete.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

#[derive(Debug)]
struct Inner {
    /// Last successful programming (monotonic, wall clock).
    last_updated: Option<(Instant, SystemTime)>,
    /// Oldest update queued since the last successful programming.
    oldest_queued: Option<Instant>,
    node_eligible: bool,
    /// Someone else changed kproxy's rules and they are not repaired yet.
    tampered: bool,
}

/// Shared health state: the sync loop reports into it, the HTTP handlers and the
/// healthCheckNodePort servers read it.
#[derive(Debug)]
pub struct ProxyHealth {
    timeout: Duration,
    /// When this health state (the process, in the daemon) started.
    started: Instant,
    inner: Mutex<Inner>,
}

/// One health answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthAnswer {
    /// 200 or 503.
    pub status: StatusCode,
    /// The JSON body.
    pub body: String,
}

impl ProxyHealth {
    /// Health state with the given timeout (kube-proxy uses 2 x syncPeriod).
    pub fn new(timeout: Duration) -> ProxyHealth {
        ProxyHealth::starting_at(timeout, Instant::now())
    }

    /// As [`ProxyHealth::new`], started at `started` (for tests).
    pub fn starting_at(timeout: Duration, started: Instant) -> ProxyHealth {
        ProxyHealth {
            timeout,
            started,
            inner: Mutex::new(Inner { last_updated: None, oldest_queued: None, node_eligible: true, tampered: false }),
        }
    }

    /// Something that needs programming was received (keeps the oldest such time).
    pub fn queued_update(&self, now: Instant) {
        self.inner.lock().oldest_queued.get_or_insert(now);
    }

    /// The kernel was programmed successfully with everything queued so far.
    pub fn updated(&self, now: Instant, wall: SystemTime) {
        let mut inner = self.inner.lock();
        inner.oldest_queued = None;
        inner.last_updated = Some((now, wall));
    }

    /// The node's object changed (`Some`) or was deleted (`None`).
    pub fn sync_node(&self, node: Option<&Node>) {
        let eligible = node.is_some_and(|node| {
            let deleting = node.metadata.deletion_timestamp.is_some();
            let tainted = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|taints| taints.iter().any(|t| t.key == TO_BE_DELETED_TAINT));
            !deleting && !tainted
        });
        self.inner.lock().node_eligible = eligible;
    }

    /// Someone else changed kproxy's rules: `/healthz` is 503 until [`ProxyHealth::ruleset_repaired`].
    pub fn ruleset_tampered(&self) {
        self.inner.lock().tampered = true;
    }

    /// A full sync repaired kproxy's rules after [`ProxyHealth::ruleset_tampered`].
    pub fn ruleset_repaired(&self) {
        self.inner.lock().tampered = false;
    }

    /// Whether kproxy's rules are as it programmed them, as far as it knows.
    pub fn ruleset_intact(&self) -> bool {
        !self.inner.lock().tampered
    }

    /// Whether the node is eligible (not deleted, not being deleted).
    pub fn node_eligible(&self) -> bool {
        self.inner.lock().node_eligible
    }

    /// The proxy's own health, ignoring the Node (what `/livez` reports).
    pub fn is_healthy(&self, now: Instant) -> bool {
        let inner = self.inner.lock();
        if inner.last_updated.is_none() && now.saturating_duration_since(self.started) >= self.timeout {
            // Never programmed within the timeout: not alive in any useful sense.
            return false;
        }
        match inner.oldest_queued {
            None => true,
            Some(queued) => now.saturating_duration_since(queued) < self.timeout,
        }
    }

    fn last_updated_wall(&self) -> Option<SystemTime> {
        self.inner.lock().last_updated.map(|(_, wall)| wall)
    }

    /// The `/livez` answer at `now` / `wall`.
    pub fn livez(&self, now: Instant, wall: SystemTime) -> HealthAnswer {
        let healthy = self.is_healthy(now);
        let last = if healthy { Some(wall) } else { self.last_updated_wall() };
        let body = serde_json::json!({
            "lastUpdated": last.map(rfc3339).unwrap_or_else(zero_time),
            "currentTime": rfc3339(wall),
            "healthy": healthy,
        });
        HealthAnswer { status: status_of(healthy), body: body.to_string() }
    }

    /// The `/healthz` answer at `now` / `wall`: `/livez` plus node eligibility.
    pub fn healthz(&self, now: Instant, wall: SystemTime) -> HealthAnswer {
        let node_eligible = self.node_eligible();
        let intact = self.ruleset_intact();
        let healthy = self.is_healthy(now) && node_eligible && intact;
        let last = if healthy { Some(wall) } else { self.last_updated_wall() };
        let body = serde_json::json!({
            "lastUpdated": last.map(rfc3339).unwrap_or_else(zero_time),
            "currentTime": rfc3339(wall),
            "nodeEligible": node_eligible,
            "rulesetIntact": intact,
            "healthy": healthy,
        });
        HealthAnswer { status: status_of(healthy), body: body.to_string() }
    }
}

/// Go's zero `time.Time`, which upstream prints when nothing was ever programmed.
fn zero_time() -> String {
    "0001-01-01T00:00:00Z".to_string()
}

fn status_of(healthy: bool) -> StatusCode {
    if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Serve `/healthz` and `/livez` on `addr`, counting answers into `proxy_healthz_total` and
/// `proxy_livez_total`. Call from a tokio runtime.
pub fn serve(addr: SocketAddr, health: Arc<ProxyHealth>, metrics: Arc<Metrics>) -> std::io::Result<HttpServer> {
    let handler: Handler = Arc::new(move |req| {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let answer = match req.uri().path() {
            "/healthz" => {
                let a = health.healthz(now, wall);
                metrics.record_healthz(a.status.as_u16());
                a
            }
            "/livez" => {
                let a = health.livez(now, wall);
                metrics.record_livez(a.status.as_u16());
                a
            }
            _ => return not_found(),
        };
        let mut response = respond(answer.status, "application/json", answer.body);
        response.headers_mut().insert("x-content-type-options", hyper::header::HeaderValue::from_static("nosniff"));
        response
    });
    HttpServer::spawn(addr, handler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_server::test_client::get;
    use k8s_openapi::api::core::v1::{NodeSpec, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    const TIMEOUT: Duration = Duration::from_secs(60);

    fn json(body: &str) -> serde_json::Value {
        serde_json::from_str(body).expect("JSON body")
    }

    #[test]
    fn healthy_while_starting_and_until_queued_update_is_late() {
        let h = ProxyHealth::new(TIMEOUT);
        let t0 = Instant::now();
        let wall = SystemTime::now();
        assert!(h.is_healthy(t0));
        h.queued_update(t0);
        assert!(h.is_healthy(t0 + TIMEOUT - Duration::from_secs(1)));
        // A later queued update does not move the oldest one.
        h.queued_update(t0 + Duration::from_secs(30));
        assert!(!h.is_healthy(t0 + TIMEOUT));
        let a = h.livez(t0 + TIMEOUT, wall);
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(&a.body)["healthy"], false);
        assert_eq!(json(&a.body)["lastUpdated"], "0001-01-01T00:00:00Z");
        h.updated(t0 + TIMEOUT, wall);
        assert!(h.is_healthy(t0 + TIMEOUT * 10));
        assert_eq!(h.livez(t0 + TIMEOUT * 10, wall).status, StatusCode::OK);
    }

    #[test]
    fn never_programmed_within_the_timeout_is_unhealthy() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let h = ProxyHealth::starting_at(TIMEOUT, t0);
        // Starting up, nothing queued (no source answered yet): healthy, as upstream ...
        assert!(h.is_healthy(t0 + TIMEOUT - Duration::from_secs(1)));
        // ... but not for longer than the timeout (upstream would still say 200 here).
        assert!(!h.is_healthy(t0 + TIMEOUT));
        assert_eq!(h.livez(t0 + TIMEOUT, wall).status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(h.healthz(t0 + TIMEOUT, wall).status, StatusCode::SERVICE_UNAVAILABLE);
        // The first successful sync, however late, makes it healthy.
        h.updated(t0 + TIMEOUT * 2, wall);
        assert!(h.is_healthy(t0 + TIMEOUT * 3));
        assert_eq!(h.livez(t0 + TIMEOUT * 3, wall).status, StatusCode::OK);
    }

    #[test]
    fn healthz_follows_the_node() {
        let h = ProxyHealth::new(TIMEOUT);
        let (now, wall) = (Instant::now(), SystemTime::now());
        assert_eq!(h.healthz(now, wall).status, StatusCode::OK);
        let mut node = Node::default();
        h.sync_node(Some(&node));
        assert_eq!(h.healthz(now, wall).status, StatusCode::OK);
        node.metadata = ObjectMeta {
            deletion_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
            ..Default::default()
        };
        h.sync_node(Some(&node));
        let a = h.healthz(now, wall);
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(&a.body)["nodeEligible"], false);
        // /livez ignores the node.
        assert_eq!(h.livez(now, wall).status, StatusCode::OK);
        let tainted = Node {
            spec: Some(NodeSpec {
                taints: Some(vec![Taint {
                    key: TO_BE_DELETED_TAINT.into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        h.sync_node(Some(&tainted));
        assert!(!h.node_eligible());
        h.sync_node(Some(&Node::default()));
        assert!(h.node_eligible());
        h.sync_node(None);
        assert_eq!(h.healthz(now, wall).status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn healthz_is_unhealthy_while_the_ruleset_is_tampered_with() {
        let h = ProxyHealth::new(TIMEOUT);
        let (now, wall) = (Instant::now(), SystemTime::now());
        h.ruleset_tampered();
        let a = h.healthz(now, wall);
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(&a.body)["rulesetIntact"], false);
        assert_eq!(h.livez(now, wall).status, StatusCode::OK, "/livez ignores tampering");
        h.ruleset_repaired();
        let a = h.healthz(now, wall);
        assert_eq!((a.status, json(&a.body)["rulesetIntact"].clone()), (StatusCode::OK, serde_json::json!(true)));
    }

    #[tokio::test]
    async fn serves_healthz_and_livez_over_http() {
        let health = Arc::new(ProxyHealth::new(TIMEOUT));
        let metrics = Arc::new(Metrics::new());
        let server = serve("127.0.0.1:0".parse().unwrap(), health.clone(), metrics.clone()).expect("bind");
        let a = get(server.local_addr(), "/healthz").await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("content-type"), Some("application/json"));
        let body = json(&a.body);
        assert_eq!(body["nodeEligible"], true);
        assert_eq!(body["healthy"], true);
        assert_eq!(body["lastUpdated"], body["currentTime"]);
        health.sync_node(None);
        assert_eq!(get(server.local_addr(), "/healthz").await.status, 503);
        assert_eq!(get(server.local_addr(), "/livez").await.status, 200);
        let text = metrics.encode();
        assert!(text.contains("kubeproxy_proxy_healthz_total{code=\"200\"} 1"), "{text}");
        assert!(text.contains("kubeproxy_proxy_healthz_total{code=\"503\"} 1"), "{text}");
        assert!(text.contains("kubeproxy_proxy_livez_total{code=\"200\"} 1"), "{text}");
    }
}
