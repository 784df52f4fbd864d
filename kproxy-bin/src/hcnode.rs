//! healthCheckNodePort servers: for every `externalTrafficPolicy: Local` LoadBalancer service
//! with a `healthCheckNodePort`, an HTTP server on that port tells the cloud load balancer
//! whether this node has local endpoints (upstream pkg/proxy/healthcheck/service_health.go).
//!
//! Any path answers, as upstream: 200 when the node has ready local endpoints and the proxy is
//! healthy (the `/healthz` rule: programmed in time, node not being deleted), else 503, with
//! body `{"service":{"namespace":..,"name":..},"localEndpoints":N,"serviceProxyHealthy":B}` and
//! header `X-Load-Balancing-Endpoint-Weight: N`.
//!
//! Servers are reconciled from the programmed [`ProxyState`] after each sync
//! ([`AfterSync`]): opened for new ports, closed for services that went away, and updated in
//! place (no reopen) when only the endpoint count changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hyper::header::HeaderValue;
use hyper::StatusCode;
use kproxy_core::model::{IpFamily, ProxyState, TrafficPolicy};
use parking_lot::Mutex;

use crate::health::ProxyHealth;
use crate::http_server::{respond, Handler, HttpServer};
use crate::sync_loop::AfterSync;

/// What one health check port reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    /// Namespace of the service.
    pub namespace: String,
    /// Name of the service.
    pub name: String,
    /// Ready endpoints on this node (distinct addresses, in the family that has most).
    pub local_endpoints: usize,
}

/// The health check ports `state` asks for, with what each should report.
pub fn wanted(state: &ProxyState) -> BTreeMap<u16, ServiceHealth> {
    /// Namespace, name, and per family the distinct ready local endpoint addresses.
    type Seen = (String, String, BTreeMap<IpFamily, BTreeSet<IpAddr>>);
    let mut acc: BTreeMap<u16, Seen> = BTreeMap::new();
    for sp in state.services.values() {
        let Some(port) = sp.health_check_node_port else { continue };
        if sp.external_traffic_policy != TrafficPolicy::Local {
            continue;
        }
        let entry =
            acc.entry(port).or_insert_with(|| (sp.name.namespace.clone(), sp.name.name.clone(), BTreeMap::new()));
        if (entry.0.as_str(), entry.1.as_str()) != (sp.name.namespace.as_str(), sp.name.name.as_str()) {
            // The API server allocates each health check port once; a clash means bad input.
            tracing::warn!(port, service = %sp.name, "healthCheckNodePort already used by {}/{}; ignoring", entry.0, entry.1);
            continue;
        }
        let ips = entry.2.entry(sp.family).or_default();
        ips.extend(sp.endpoints.iter().filter(|e| e.local && e.ready).map(|e| e.addr.ip()));
    }
    acc.into_iter()
        .map(|(port, (namespace, name, by_family))| {
            let local_endpoints = by_family.values().map(BTreeSet::len).max().unwrap_or(0);
            (port, ServiceHealth { namespace, name, local_endpoints })
        })
        .collect()
}

struct Served {
    info: Arc<Mutex<ServiceHealth>>,
    _servers: Vec<HttpServer>,
}

/// The set of running healthCheckNodePort servers.
pub struct HcNodeServers {
    health: Arc<ProxyHealth>,
    bind_ips: Vec<IpAddr>,
    runtime: tokio::runtime::Handle,
    served: BTreeMap<u16, Served>,
}

impl std::fmt::Debug for HcNodeServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HcNodeServers").field("ports", &self.ports()).field("bind_ips", &self.bind_ips).finish()
    }
}

impl HcNodeServers {
    /// Servers listening on each of `bind_ips` (usually `0.0.0.0`, or the NodePort addresses),
    /// spawned on `runtime`.
    pub fn new(health: Arc<ProxyHealth>, bind_ips: Vec<IpAddr>, runtime: tokio::runtime::Handle) -> HcNodeServers {
        HcNodeServers { health, bind_ips, runtime, served: BTreeMap::new() }
    }

    /// Ports currently served.
    pub fn ports(&self) -> Vec<u16> {
        self.served.keys().copied().collect()
    }

    /// Open, close and update servers to match `state`.
    pub fn reconcile(&mut self, state: &ProxyState) {
        let wanted = wanted(state);
        self.served.retain(|port, _| {
            let keep = wanted.contains_key(port);
            if !keep {
                tracing::info!(port, "Closing healthCheckNodePort server");
            }
            keep
        });
        let _runtime = self.runtime.enter();
        for (port, info) in wanted {
            if let Some(served) = self.served.get(&port) {
                *served.info.lock() = info;
                continue;
            }
            let shared = Arc::new(Mutex::new(info));
            let mut servers = Vec::new();
            for ip in &self.bind_ips {
                let addr = SocketAddr::new(*ip, port);
                match HttpServer::spawn(addr, handler(shared.clone(), self.health.clone())) {
                    Ok(server) => servers.push(server),
                    // Retried at the next sync; the port may be held by a process being replaced.
                    Err(err) => tracing::error!(%addr, error = %err, "Failed to start healthCheckNodePort server"),
                }
            }
            if !servers.is_empty() {
                let info = shared.lock().clone();
                tracing::info!(port, service = %format!("{}/{}", info.namespace, info.name), "Started healthCheckNodePort server");
                self.served.insert(port, Served { info: shared, _servers: servers });
            }
        }
    }
}

impl AfterSync for HcNodeServers {
    fn after_sync(&mut self, state: &ProxyState) {
        self.reconcile(state);
    }
}

fn handler(info: Arc<Mutex<ServiceHealth>>, health: Arc<ProxyHealth>) -> Handler {
    Arc::new(move |_req| {
        let info = info.lock().clone();
        let proxy_healthy = health.healthz(Instant::now(), SystemTime::now()).status == StatusCode::OK;
        let status =
            if info.local_endpoints > 0 && proxy_healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        let body = serde_json::json!({
            "service": { "namespace": info.namespace, "name": info.name },
            "localEndpoints": info.local_endpoints,
            "serviceProxyHealthy": proxy_healthy,
        });
        let mut response = respond(status, "application/json", body.to_string());
        let headers = response.headers_mut();
        headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        headers.insert("x-load-balancing-endpoint-weight", HeaderValue::from(info.local_endpoints));
        response
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_server::test_client::get;
    use crate::test_fixtures::{endpoint, service_port, with_endpoints};
    use kproxy_core::model::{Protocol, ServicePort};
    use std::time::Duration;

    fn lb_local(name: &str, hc: u16, endpoints: Vec<kproxy_core::model::Endpoint>) -> ServicePort {
        let mut p = service_port("shop", name, Protocol::Tcp, "198.19.160.30", 443);
        p.node_port = Some(30443);
        p.load_balancer_ips = vec!["198.19.200.1".parse().unwrap()];
        p.external_traffic_policy = TrafficPolicy::Local;
        p.health_check_node_port = Some(hc);
        with_endpoints(p, endpoints)
    }

    fn state(ports: Vec<ServicePort>) -> ProxyState {
        ProxyState { services: ports.into_iter().map(|p| (p.key(), p)).collect(), ..Default::default() }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[test]
    fn wanted_counts_distinct_local_ready_endpoints() {
        let mut second_port = lb_local("web", 32000, vec![endpoint("198.18.0.10:8443", true, true)]);
        second_port.name.port = "alt".into();
        let s = state(vec![
            lb_local(
                "web",
                32000,
                vec![
                    endpoint("198.18.0.10:443", true, true),
                    endpoint("198.18.0.11:443", true, false),
                    endpoint("198.18.1.10:443", false, true),
                ],
            ),
            second_port,
        ]);
        let w = wanted(&s);
        assert_eq!(w.len(), 1);
        assert_eq!(w[&32000], ServiceHealth { namespace: "shop".into(), name: "web".into(), local_endpoints: 1 });
        let mut cluster = lb_local("other", 32001, vec![]);
        cluster.external_traffic_policy = TrafficPolicy::Cluster;
        assert!(wanted(&state(vec![cluster])).is_empty(), "eTP=Cluster has no health check port");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn servers_follow_the_state() {
        let health = Arc::new(ProxyHealth::new(Duration::from_secs(60)));
        let mut servers =
            HcNodeServers::new(health.clone(), vec!["127.0.0.1".parse().unwrap()], tokio::runtime::Handle::current());
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let two_local = state(vec![lb_local(
            "web",
            port,
            vec![endpoint("198.18.0.10:443", true, true), endpoint("198.18.0.12:443", true, true)],
        )]);
        // Reconcile runs on the sync loop's blocking thread in production.
        servers = tokio::task::spawn_blocking(move || {
            servers.reconcile(&two_local);
            servers
        })
        .await
        .unwrap();
        assert_eq!(servers.ports(), vec![port]);
        let a = get(addr, "/any/path").await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-load-balancing-endpoint-weight"), Some("2"));
        let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"service": {"namespace": "shop", "name": "web"}, "localEndpoints": 2, "serviceProxyHealthy": true})
        );

        // No local endpoints any more: 503, same server.
        servers.reconcile(&state(vec![lb_local("web", port, vec![endpoint("198.18.1.10:443", false, true)])]));
        let a = get(addr, "/").await;
        assert_eq!(a.status, 503);
        assert_eq!(a.header("x-load-balancing-endpoint-weight"), Some("0"));

        // Local endpoints but the node is going away: 503, serviceProxyHealthy false.
        servers.reconcile(&state(vec![lb_local("web", port, vec![endpoint("198.18.0.10:443", true, true)])]));
        health.sync_node(None);
        let a = get(addr, "/").await;
        assert_eq!(a.status, 503);
        assert!(a.body.contains("\"serviceProxyHealthy\":false"), "{}", a.body);

        // The service is gone: the port is closed.
        servers.reconcile(&ProxyState::default());
        assert!(servers.ports().is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect attempt bounded");
        assert!(refused.is_err(), "the health check port is still open");
    }
}
