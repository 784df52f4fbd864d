//! Prometheus metrics with kube-proxy's names and meaning (subsystem `kubeproxy`), served as
//! text on `metricsBindAddress` at `/metrics`.
//!
//! Built on `prometheus-client` (the Prometheus project's own Rust client): typed metrics,
//! lock-free updates from the sync loop, and an encoder that produces the OpenMetrics text
//! format Prometheus scrapes; we do not hand-format exposition text. Note that it appends
//! `_total` to counter names itself, so counters are registered without the suffix.
//!
//! Histogram buckets are upstream's (pkg/proxy/metrics): sync durations exponential from 1 ms
//! doubling 15 times; network programming 0, 0.25 s, 0.5 s, 1-59 s, 60-115 s by 5, 120-300 s
//! by 30.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use kproxy_core::backend::SyncKind;
use kproxy_core::model::{AddressKind, IpFamily, ProxyState, TrafficPolicy};
use kproxy_core::tracker::AddressIssueCounts;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::http_server::{not_found, respond, Handler, HttpServer};

/// Labels of a labelled metric: `(name, value)` pairs.
type Labels = Vec<(String, String)>;
/// A floating-point gauge (timestamps).
type FloatGauge = Gauge<f64, AtomicU64>;

/// Content type of the OpenMetrics text format.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every kproxy metric. Shared (`Arc`) between the sync loop, the health server, the
/// conntrack reconciler and the `/metrics` server.
pub struct Metrics {
    registry: Registry,
    sync_duration: Histogram,
    sync_full_duration: Histogram,
    sync_partial_duration: Histogram,
    network_programming_duration: Histogram,
    last_timestamp: FloatGauge,
    last_queued_timestamp: FloatGauge,
    endpoint_changes_total: Counter,
    endpoint_changes_pending: Gauge,
    service_changes_total: Counter,
    service_changes_pending: Gauge,
    no_local_endpoints: Family<Labels, Gauge>,
    sync_failures_total: Counter,
    conntrack_deleted_total: Family<Labels, Counter>,
    healthz_total: Family<Labels, Counter>,
    livez_total: Family<Labels, Counter>,
    address_conflicts: Family<Labels, Gauge>,
    addresses_not_allowed: Family<Labels, Gauge>,
    tampering_detected_total: Counter,
    tampering_repairs_total: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn sync_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Upstream's network programming buckets: 0, 0.25, 0.5, 1..=59, 60..=115 by 5, 120..=300 by 30.
fn network_programming_buckets() -> Vec<f64> {
    let mut buckets = vec![0.0, 0.25, 0.5];
    buckets.extend((1..=59).map(f64::from));
    buckets.extend((0..12).map(|i| 60.0 + 5.0 * f64::from(i)));
    buckets.extend((0..7).map(|i| 120.0 + 30.0 * f64::from(i)));
    buckets
}

fn seconds_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

fn family_label(family: IpFamily) -> Labels {
    let name = match family {
        IpFamily::V4 => "IPv4",
        IpFamily::V6 => "IPv6",
    };
    vec![("ip_family".to_string(), name.to_string())]
}

fn kind_label(kind: AddressKind) -> Labels {
    vec![("kind".to_string(), kind.as_str().to_string())]
}

/// A count as a gauge value (saturating: counts never reach i64::MAX).
fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register every metric (all zero).
    pub fn new() -> Metrics {
        // kube-proxy's own metrics carry the `kubeproxy_` prefix; the process metrics do not.
        let mut root = Registry::default();
        root.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        let registry = root.sub_registry_with_prefix("kubeproxy");
        let m = Metrics {
            sync_duration: sync_buckets(),
            sync_full_duration: sync_buckets(),
            sync_partial_duration: sync_buckets(),
            network_programming_duration: Histogram::new(network_programming_buckets()),
            last_timestamp: FloatGauge::default(),
            last_queued_timestamp: FloatGauge::default(),
            endpoint_changes_total: Counter::default(),
            endpoint_changes_pending: Gauge::default(),
            service_changes_total: Counter::default(),
            service_changes_pending: Gauge::default(),
            no_local_endpoints: Family::default(),
            sync_failures_total: Counter::default(),
            conntrack_deleted_total: Family::default(),
            healthz_total: Family::default(),
            livez_total: Family::default(),
            address_conflicts: Family::default(),
            addresses_not_allowed: Family::default(),
            tampering_detected_total: Counter::default(),
            tampering_repairs_total: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            m.sync_duration.clone(),
        );
        registry.register(
            "sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            m.sync_full_duration.clone(),
        );
        registry.register(
            "sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            m.sync_partial_duration.clone(),
        );
        registry.register(
            "network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            m.network_programming_duration.clone(),
        );
        registry.register(
            "sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            m.last_timestamp.clone(),
        );
        registry.register(
            "sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued",
            m.last_queued_timestamp.clone(),
        );
        registry.register(
            "sync_proxy_rules_endpoint_changes",
            "Cumulative proxy rules Endpoint changes",
            m.endpoint_changes_total.clone(),
        );
        registry.register(
            "sync_proxy_rules_endpoint_changes_pending",
            "Pending proxy rules Endpoint changes",
            m.endpoint_changes_pending.clone(),
        );
        registry.register(
            "sync_proxy_rules_service_changes",
            "Cumulative proxy rules Service changes",
            m.service_changes_total.clone(),
        );
        registry.register(
            "sync_proxy_rules_service_changes_pending",
            "Pending proxy rules Service changes",
            m.service_changes_pending.clone(),
        );
        // A gauge despite its name, as upstream: the current number of services with a Local
        // traffic policy and no local endpoints.
        registry.register(
            "sync_proxy_rules_no_local_endpoints_total",
            "Number of services with a Local traffic policy and no endpoints",
            m.no_local_endpoints.clone(),
        );
        registry.register(
            "sync_proxy_rules_nftables_sync_failures",
            "Number of failures programming the kernel (any backend)",
            m.sync_failures_total.clone(),
        );
        registry.register(
            "conntrack_reconciler_deleted_entries",
            "Cumulative conntrack flows deleted by conntrack reconciler",
            m.conntrack_deleted_total.clone(),
        );
        registry.register("proxy_healthz", "Cumulative proxy healthz HTTP status", m.healthz_total.clone());
        registry.register("proxy_livez", "Cumulative proxy livez HTTP status", m.livez_total.clone());
        // kproxy's own metrics (no upstream equivalent) carry the `kproxy_` prefix.
        let own = root.sub_registry_with_prefix("kproxy");
        own.register(
            "service_address_conflicts",
            "Addresses of Services not programmed because an older Service claims the same address, by kind of address",
            m.address_conflicts.clone(),
        );
        own.register(
            "service_addresses_not_allowed",
            "ExternalIPs and LoadBalancer IPs not programmed because they are outside --external-ip-allowed-cidrs / --load-balancer-ip-allowed-cidrs",
            m.addresses_not_allowed.clone(),
        );
        for kind in AddressKind::ALL {
            m.address_conflicts.get_or_create(&kind_label(kind)).set(0);
        }
        for kind in [AddressKind::ExternalIp, AddressKind::LoadBalancerIp] {
            m.addresses_not_allowed.get_or_create(&kind_label(kind)).set(0);
        }
        own.register(
            "ruleset_tampering_detected",
            "Commits by someone else that changed kproxy's nftables tables (or IPVS differences found by the periodic check)",
            m.tampering_detected_total.clone(),
        );
        own.register(
            "ruleset_tampering_repairs",
            "Full syncs that repaired kproxy's rules after someone else changed them",
            m.tampering_repairs_total.clone(),
        );
        Metrics { registry: root, ..m }
    }

    /// Addresses currently skipped (`kproxy_service_address_conflicts{kind}`,
    /// `kproxy_service_addresses_not_allowed{kind}`).
    pub fn set_address_issues(&self, counts: &AddressIssueCounts) {
        for kind in AddressKind::ALL {
            let i = AddressIssueCounts::index(kind);
            self.address_conflicts.get_or_create(&kind_label(kind)).set(gauge_value(counts.conflicts[i]));
            if counts.not_allowed[i] > 0 || matches!(kind, AddressKind::ExternalIp | AddressKind::LoadBalancerIp) {
                self.addresses_not_allowed.get_or_create(&kind_label(kind)).set(gauge_value(counts.not_allowed[i]));
            }
        }
    }

    /// Someone else changed kproxy's rules (`kproxy_ruleset_tampering_detected_total`).
    pub fn record_tampering_detected(&self) {
        self.tampering_detected_total.inc();
    }

    /// A full sync repaired them (`kproxy_ruleset_tampering_repairs_total`).
    pub fn record_tampering_repair(&self) {
        self.tampering_repairs_total.inc();
    }

    /// The exposition text (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; encode only propagates fmt::Error from the writer.
        if let Err(err) = encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        out
    }

    /// A sync succeeded: durations, last timestamp, network programming latency for each
    /// EndpointSlice trigger time that the sync programmed.
    pub fn record_sync(&self, kind: SyncKind, took: Duration, finished: SystemTime, trigger_times: &[SystemTime]) {
        let secs = took.as_secs_f64();
        self.sync_duration.observe(secs);
        match kind {
            SyncKind::Full => self.sync_full_duration.observe(secs),
            SyncKind::Partial => self.sync_partial_duration.observe(secs),
        }
        self.last_timestamp.set(seconds_since_epoch(finished));
        for trigger in trigger_times {
            // A trigger time in the future (clock skew with the control plane) counts as 0.
            let latency = finished.duration_since(*trigger).unwrap_or_default();
            self.network_programming_duration.observe(latency.as_secs_f64());
        }
    }

    /// Programming the kernel failed.
    pub fn record_sync_failure(&self) {
        self.sync_failures_total.inc();
    }

    /// A sync was queued (something changed that needs programming).
    pub fn record_queued(&self, at: SystemTime) {
        self.last_queued_timestamp.set(seconds_since_epoch(at));
    }

    /// The tracker's cumulative change counts (the counters follow them; they never go down).
    pub fn record_change_totals(&self, totals: kproxy_core::tracker::ChangeTotals) {
        let bump = |counter: &Counter, total: u64| {
            let seen = counter.get();
            if total > seen {
                counter.inc_by(total - seen);
            }
        };
        bump(&self.service_changes_total, totals.services);
        bump(&self.endpoint_changes_total, totals.endpoints);
    }

    /// Changes received and not yet programmed.
    pub fn set_pending(&self, services: usize, endpoints: usize) {
        self.service_changes_pending.set(i64::try_from(services).unwrap_or(i64::MAX));
        self.endpoint_changes_pending.set(i64::try_from(endpoints).unwrap_or(i64::MAX));
    }

    /// Recount services with a Local policy and no local endpoints, from the programmed state
    /// (`traffic_policy` is `internal` or `external`, as upstream).
    pub fn record_no_local_endpoints(&self, state: &ProxyState) {
        let (mut internal, mut external) = (0i64, 0i64);
        for port in state.services.values() {
            if !port.local_endpoints.is_empty() || port.cluster_endpoints.is_empty() {
                // Upstream counts only services that have endpoints, just none local.
                continue;
            }
            if port.internal_traffic_policy == TrafficPolicy::Local {
                internal += 1;
            }
            if port.external_traffic_policy == TrafficPolicy::Local && port.has_external_destinations() {
                external += 1;
            }
        }
        let label = |v: &str| vec![("traffic_policy".to_string(), v.to_string())];
        self.no_local_endpoints.get_or_create(&label("internal")).set(internal);
        self.no_local_endpoints.get_or_create(&label("external")).set(external);
    }

    /// The conntrack reconciler deleted `count` entries of `family`.
    pub fn record_conntrack_deleted(&self, family: IpFamily, count: u64) {
        self.conntrack_deleted_total.get_or_create(&family_label(family)).inc_by(count);
    }

    /// A `/healthz` answer with this status code was sent.
    pub fn record_healthz(&self, code: u16) {
        self.healthz_total.get_or_create(&vec![("code".to_string(), code.to_string())]).inc();
    }

    /// A `/livez` answer with this status code was sent.
    pub fn record_livez(&self, code: u16) {
        self.livez_total.get_or_create(&vec![("code".to_string(), code.to_string())]).inc();
    }
}

/// What the metrics server answers besides `/metrics`, fixed for the process's lifetime (a
/// configuration change makes kproxy exit, see `config_watch`).
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    /// `/proxyMode`: the backend in use, as upstream names its modes (`nftables`, `ipvs`).
    pub proxy_mode: String,
    /// `/configz`: the effective configuration as JSON, under upstream's key
    /// `kubeproxy.config.k8s.io`.
    pub configz: String,
}

impl ServerInfo {
    /// `/proxyMode` and `/configz` for `mode` and the effective configuration.
    pub fn new(mode: &str, config: &kproxy_core::config::KubeProxyConfiguration) -> ServerInfo {
        let configz = serde_json::json!({ "kubeproxy.config.k8s.io": config }).to_string();
        ServerInfo { proxy_mode: mode.to_string(), configz }
    }
}

/// Serve `/metrics`, a plain `/healthz` answering `ok`, `/proxyMode` and `/configz`, as
/// upstream's metrics server does, on `addr` (upstream default `127.0.0.1:10249`). Call from
/// a tokio runtime.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>, info: ServerInfo) -> std::io::Result<HttpServer> {
    let info = Arc::new(info);
    let handler: Handler = Arc::new(move |req| match req.uri().path() {
        "/metrics" => respond(StatusCode::OK, OPENMETRICS_CONTENT_TYPE, metrics.encode()),
        // As upstream's metrics server, a plain liveness answer for the process itself.
        "/healthz" => respond(StatusCode::OK, "text/plain; charset=utf-8", "ok"),
        "/proxyMode" => respond(StatusCode::OK, "text/plain; charset=utf-8", info.proxy_mode.clone()),
        "/configz" => respond(StatusCode::OK, "application/json", info.configz.clone()),
        _ => not_found(),
    });
    HttpServer::spawn(addr, handler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_server::test_client::get;

    fn sample_line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
    }

    #[test]
    fn names_match_upstream() {
        let m = Metrics::new();
        m.record_change_totals(kproxy_core::tracker::ChangeTotals { services: 1, endpoints: 1 });
        m.record_sync_failure();
        m.record_healthz(200);
        m.record_livez(503);
        m.record_conntrack_deleted(IpFamily::V4, 3);
        m.record_no_local_endpoints(&ProxyState::default());
        let text = m.encode();
        for name in [
            "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
            "kubeproxy_sync_full_proxy_rules_duration_seconds_count",
            "kubeproxy_sync_partial_proxy_rules_duration_seconds_count",
            "kubeproxy_network_programming_duration_seconds_bucket",
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds ",
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds ",
            "kubeproxy_sync_proxy_rules_endpoint_changes_total 1",
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending 0",
            "kubeproxy_sync_proxy_rules_service_changes_total 1",
            "kubeproxy_sync_proxy_rules_service_changes_pending 0",
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy=\"internal\"} 0",
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total 1",
            "kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family=\"IPv4\"} 3",
            "kubeproxy_proxy_healthz_total{code=\"200\"} 1",
            "kubeproxy_proxy_livez_total{code=\"503\"} 1",
        ] {
            sample_line(&text, name);
        }
    }

    #[test]
    fn address_gauges_start_at_zero_and_follow_the_counts() {
        let m = Metrics::new();
        let text = m.encode();
        sample_line(&text, "kproxy_service_address_conflicts{kind=\"node_port\"} 0");
        sample_line(&text, "kproxy_service_addresses_not_allowed{kind=\"load_balancer_ip\"} 0");
        let mut counts = AddressIssueCounts::default();
        counts.conflicts[AddressIssueCounts::index(AddressKind::ClusterIp)] = 2;
        counts.not_allowed[AddressIssueCounts::index(AddressKind::ExternalIp)] = 3;
        m.set_address_issues(&counts);
        let text = m.encode();
        sample_line(&text, "kproxy_service_address_conflicts{kind=\"cluster_ip\"} 2");
        sample_line(&text, "kproxy_service_addresses_not_allowed{kind=\"external_ip\"} 3");
        m.set_address_issues(&AddressIssueCounts::default());
        sample_line(&m.encode(), "kproxy_service_address_conflicts{kind=\"cluster_ip\"} 0");
    }

    #[test]
    fn network_programming_latency_lands_in_upstream_buckets() {
        let buckets = network_programming_buckets();
        assert_eq!(buckets.len(), 3 + 59 + 12 + 7);
        assert_eq!(buckets[3], 1.0);
        assert_eq!(*buckets.last().unwrap(), 300.0);
        let m = Metrics::new();
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        m.record_sync(SyncKind::Partial, Duration::from_millis(3), now, &[now - Duration::from_millis(700)]);
        let text = m.encode();
        assert_eq!(
            sample_line(&text, "kubeproxy_network_programming_duration_seconds_bucket{le=\"0.5\"}"),
            "kubeproxy_network_programming_duration_seconds_bucket{le=\"0.5\"} 0"
        );
        assert_eq!(
            sample_line(&text, "kubeproxy_network_programming_duration_seconds_bucket{le=\"1.0\"}"),
            "kubeproxy_network_programming_duration_seconds_bucket{le=\"1.0\"} 1"
        );
        assert_eq!(
            sample_line(&text, "kubeproxy_sync_partial_proxy_rules_duration_seconds_count"),
            "kubeproxy_sync_partial_proxy_rules_duration_seconds_count 1"
        );
        assert_eq!(
            sample_line(&text, "kubeproxy_sync_full_proxy_rules_duration_seconds_count"),
            "kubeproxy_sync_full_proxy_rules_duration_seconds_count 0"
        );
        assert_eq!(
            sample_line(&text, "kubeproxy_sync_proxy_rules_last_timestamp_seconds "),
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds 1000.0"
        );
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let m = Arc::new(Metrics::new());
        m.record_change_totals(kproxy_core::tracker::ChangeTotals { services: 1, endpoints: 0 });
        let mut config = kproxy_core::config::KubeProxyConfiguration::default();
        config.cluster_cidr = "198.18.0.0/16".into();
        let info = ServerInfo::new("nftables", &config);
        let server = serve("127.0.0.1:0".parse().unwrap(), m.clone(), info).expect("bind");
        let answer = get(server.local_addr(), "/metrics").await;
        assert_eq!(answer.status, 200);
        assert!(answer.header("content-type").unwrap().starts_with("application/openmetrics-text"));
        assert!(answer.body.contains("kubeproxy_sync_proxy_rules_service_changes_total 1"), "{}", answer.body);
        for name in ["process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ", "process_start_time_seconds "] {
            assert!(answer.body.lines().any(|l| l.starts_with(name)), "{name}missing:\n{}", answer.body);
        }
        assert!(answer.body.trim_end().ends_with("# EOF"), "{}", answer.body);
        let ok = get(server.local_addr(), "/healthz").await;
        assert_eq!((ok.status, ok.body.as_str()), (200, "ok"));
        assert_eq!(get(server.local_addr(), "/other").await.status, 404);
        let mode = get(server.local_addr(), "/proxyMode").await;
        assert_eq!((mode.status, mode.body.as_str()), (200, "nftables"));
        let configz = get(server.local_addr(), "/configz").await;
        assert_eq!(configz.status, 200);
        let v: serde_json::Value = serde_json::from_str(&configz.body).expect("JSON");
        let c = &v["kubeproxy.config.k8s.io"];
        assert_eq!(c["clusterCIDR"], "198.18.0.0/16", "{}", configz.body);
        assert_eq!(c["kind"], "KubeProxyConfiguration", "{}", configz.body);
    }
}
