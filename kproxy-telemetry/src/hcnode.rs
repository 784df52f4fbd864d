//! healthCheckNodePort servers: for every `externalTrafficPolicy: Local` LoadBalancer service
//! with a `healthCheckNodePort`, an HTTP server on that port tells the cloud load balancer
//! whether this node has local endpoints (upstream pkg/proxy/healthcheck/service_health.go).
//!
//! Any path answers, as upstream: 200 when the node has ready local endpoints and the proxy is
//! healthy (the `/healthz` rule: programmed in time, node not being deleted), else 503, with
//! body `{"service":{"namespace":..,"name":..},"localEndpoints":N,"serviceProxyHealthy":B}` and
//! header `X-Load-Balancing-Endpoint-Weight: N`.
//!
//! Servers are reconciled from the programmed [`ProxyState`] after each sync (the caller
//! calls [`HcNodeServers::reconcile`]; kproxy does it from a sync-loop hook): opened for new ports, closed for services that went away, and updated in
//! place (no reopen) when only the endpoint count changes.
//!
//! Where they listen ([`HcBind::NodePortAddresses`], the daemon's choice): on the addresses
//! NodePorts are served on, per family, as upstream's `nodePortAddresses` handling does:
//! every address of a family whose NodePorts match all addresses (`0.0.0.0`, `::`), else the
//! node's local addresses inside that family's networks (the primary node IPs for `primary`).
//! Both families are served; IPv6 sockets are IPv6-only so the two never collide.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hyper::header::HeaderValue;
use hyper::StatusCode;
use kproxy_core::model::{IpFamily, NodePortAddresses, ProxyState, TrafficPolicy};
use parking_lot::Mutex;

use crate::health::ProxyHealth;
use crate::http_server::{respond, Handler, HttpServer};

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

/// Where the servers listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HcBind {
    /// Exactly these addresses (tests, embedders with their own rule).
    Fixed(Vec<IpAddr>),
    /// The NodePort addresses of the programmed state's settings (see the module docs),
    /// re-evaluated at each sync against the node's current local addresses.
    NodePortAddresses,
}

/// The addresses to listen on for `nodePortAddresses` (`npa`), given the node IPs and the
/// node's local addresses: per family, the unspecified address when that family matches
/// every address, else the non-loopback local addresses inside its networks. `primary`
/// without any known node IP listens everywhere, as upstream (an empty list matches all).
pub fn bind_addrs(npa: &NodePortAddresses, node_ips: &[IpAddr], local: &[IpAddr]) -> Vec<IpAddr> {
    if *npa == NodePortAddresses::Primary && node_ips.is_empty() {
        return vec![IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])];
    }
    let mut out = Vec::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        let nets = npa.cidrs_for(family, node_ips);
        if nets.iter().any(|n| n.prefix_len() == 0) {
            out.push(match family {
                IpFamily::V4 => IpAddr::from([0u8; 4]),
                IpFamily::V6 => IpAddr::from([0u16; 8]),
            });
            continue;
        }
        let mut matching: Vec<IpAddr> = local
            .iter()
            .filter(|ip| !ip.is_loopback() && IpFamily::of(ip) == family && nets.iter().any(|n| n.contains(*ip)))
            .copied()
            .collect();
        matching.sort();
        matching.dedup();
        out.extend(matching);
    }
    out
}

/// The node's addresses (all interfaces), for [`HcBind::NodePortAddresses`].
fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        tracing::warn!("cannot list the node's addresses; healthCheckNodePort servers keep their addresses");
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let a = a.address?;
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
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
    bind: HcBind,
    /// The addresses the servers in `served` listen on.
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
    /// Servers listening where `bind` says, spawned on `runtime`.
    pub fn new(health: Arc<ProxyHealth>, bind: HcBind, runtime: tokio::runtime::Handle) -> HcNodeServers {
        HcNodeServers { health, bind, bind_ips: Vec::new(), runtime, served: BTreeMap::new() }
    }

    /// The addresses the servers listen on (after the last reconcile that had servers).
    pub fn bind_ips(&self) -> &[IpAddr] {
        &self.bind_ips
    }

    /// Ports currently served.
    pub fn ports(&self) -> Vec<u16> {
        self.served.keys().copied().collect()
    }

    /// Open, close and update servers to match `state`.
    pub fn reconcile(&mut self, state: &ProxyState) {
        let wanted = wanted(state);
        if !wanted.is_empty() {
            let ips = match &self.bind {
                HcBind::Fixed(ips) => ips.clone(),
                HcBind::NodePortAddresses => {
                    bind_addrs(&state.settings.node_port_addresses, &state.settings.node_ips, &local_addresses())
                }
            };
            if ips != self.bind_ips {
                if !self.served.is_empty() {
                    tracing::info!(from = ?self.bind_ips, to = ?ips, "healthCheckNodePort addresses changed; reopening the servers");
                }
                self.served.clear();
                self.bind_ips = ips;
            }
        }
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

    #[test]
    fn bind_addrs_follow_node_port_addresses_per_family() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = |s: &str| s.parse::<ipnet::IpNet>().unwrap();
        let local = [ip("127.0.0.1"), ip("198.19.0.7"), ip("198.19.1.7"), ip("::1"), ip("2001:db8:c::7"), ip("fe80::1")];
        let node_ips = [ip("198.19.0.7"), ip("2001:db8:c::7")];
        // primary: the node IPs of each family.
        assert_eq!(bind_addrs(&NodePortAddresses::Primary, &node_ips, &local), node_ips);
        // primary without node IPs: everywhere.
        assert_eq!(bind_addrs(&NodePortAddresses::Primary, &[], &local), [ip("0.0.0.0"), ip("::")]);
        // An IPv4 CIDR only: its local addresses, and every IPv6 address (a family without a
        // CIDR matches all of its addresses).
        let v4 = NodePortAddresses::Cidrs(vec![net("198.19.1.0/24")]);
        assert_eq!(bind_addrs(&v4, &node_ips, &local), [ip("198.19.1.7"), ip("::")]);
        // 0.0.0.0/0 and an IPv6 network: loopback never, link-local only if inside.
        let both = NodePortAddresses::Cidrs(vec![net("0.0.0.0/0"), net("2001:db8:c::/64")]);
        assert_eq!(bind_addrs(&both, &node_ips, &local), [ip("0.0.0.0"), ip("2001:db8:c::7")]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn servers_follow_the_state() {
        let health = Arc::new(ProxyHealth::new(Duration::from_secs(60)));
        let mut servers =
            HcNodeServers::new(health.clone(), HcBind::Fixed(vec!["127.0.0.1".parse().unwrap()]), tokio::runtime::Handle::current());
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
