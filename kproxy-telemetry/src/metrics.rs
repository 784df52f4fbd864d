//! Prometheus metrics with kube-proxy's names, labels and meaning (subsystem `kubeproxy`),
//! plus client-go's `rest_client_*` and the `process_*` metrics, served on
//! `metricsBindAddress` at `/metrics` in the Prometheus text format 0.0.4, or OpenMetrics
//! 1.0.0 when the scraper asks for it (see `metrics_format`).
//!
//! Built on `prometheus-client` (the Prometheus project's own Rust client): typed metrics,
//! lock-free updates from the sync loop, and an encoder that produces the OpenMetrics text
//! format; we do not hand-format exposition text. Note that it appends `_total` to counter
//! names itself, so counters are registered without the suffix.
//!
//! `ip_family` (`IPv4`, `IPv6`) labels the metrics upstream labels with it. Upstream runs one
//! proxier per family and each records its own sync; kproxy programs both families in one
//! transaction, so a sync (or a failure) is recorded once under each family, which is what
//! a dual-stack kube-proxy shows. Network programming latency is labelled with the family of
//! the EndpointSlice whose change it measures.
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
use crate::metrics_format::{openmetrics_to_prometheus_text, Format};
use crate::rest_metrics::RestClientMetrics;

/// Labels of a labelled metric: `(name, value)` pairs.
type Labels = Vec<(String, String)>;
/// A floating-point gauge (timestamps).
type FloatGauge = Gauge<f64, AtomicU64>;

/// A histogram family (its buckets come from the constructor).
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The families kproxy programs in every sync (both tables, always).
const FAMILIES: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

/// Every kproxy metric. Shared (`Arc`) between the sync loop, the health server, the
/// conntrack reconciler and the `/metrics` server.
pub struct Metrics {
    registry: Registry,
    sync_duration: HistogramFamily,
    sync_full_duration: HistogramFamily,
    sync_partial_duration: HistogramFamily,
    network_programming_duration: HistogramFamily,
    last_timestamp: Family<Labels, FloatGauge>,
    last_queued_timestamp: Family<Labels, FloatGauge>,
    endpoint_changes_total: Counter,
    endpoint_changes_pending: Gauge,
    service_changes_total: Counter,
    service_changes_pending: Gauge,
    no_local_endpoints: Family<Labels, Gauge>,
    sync_failures_total: Family<Labels, Counter>,
    rest_client: Arc<RestClientMetrics>,
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
    // Upstream's: 1 ms doubling, 15 buckets.
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

fn network_programming_histogram() -> Histogram {
    Histogram::new(network_programming_buckets())
}

fn seconds_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

fn family_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "IPv4",
        IpFamily::V6 => "IPv6",
    }
}

fn family_label(family: IpFamily) -> Labels {
    vec![("ip_family".to_string(), family_name(family).to_string())]
}

fn sync_histograms() -> HistogramFamily {
    Family::new_with_constructor(sync_buckets as fn() -> Histogram)
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
    /// Create and register every metric (all zero); conntrack fill is read from this node.
    pub fn new() -> Metrics {
        Metrics::with_conntrack_sysctl(Box::new(kproxy_conntrack::sysctl::node()))
    }

    /// As [`Metrics::new`], reading the conntrack table's fill through `sysctl`.
    pub fn with_conntrack_sysctl(sysctl: Box<dyn kproxy_conntrack::sysctl::Sysctl + Send + Sync>) -> Metrics {
        // kube-proxy's own metrics carry the `kubeproxy_` prefix; the process, rest_client and
        // kproxy's conntrack metrics do not.
        let mut root = Registry::default();
        root.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        root.register_collector(Box::new(crate::conntrack_metrics::ConntrackCollector::new(sysctl)));
        let rest_client = Arc::new(RestClientMetrics::default());
        rest_client.register(&mut root);
        let registry = root.sub_registry_with_prefix("kubeproxy");
        let m = Metrics {
            sync_duration: sync_histograms(),
            sync_full_duration: sync_histograms(),
            sync_partial_duration: sync_histograms(),
            network_programming_duration: Family::new_with_constructor(network_programming_histogram as fn() -> Histogram),
            last_timestamp: Family::default(),
            last_queued_timestamp: Family::default(),
            endpoint_changes_total: Counter::default(),
            endpoint_changes_pending: Gauge::default(),
            service_changes_total: Counter::default(),
            service_changes_pending: Gauge::default(),
            no_local_endpoints: Family::default(),
            sync_failures_total: Family::default(),
            rest_client,
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
            "Cumulative proxy nftables sync failures (any backend: failures programming the kernel)",
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
        let m = Metrics { registry: root, ..m };
        // Upstream's labelled series exist from the start (a family that never failed shows
        // 0 failures, not nothing), so alerts on them have a series to evaluate.
        for family in FAMILIES {
            let label = family_label(family);
            drop(m.sync_failures_total.get_or_create(&label));
            drop(m.sync_duration.get_or_create(&label));
            drop(m.sync_full_duration.get_or_create(&label));
            drop(m.sync_partial_duration.get_or_create(&label));
        }
        m
    }

    /// The handle the API client records its requests into (`rest_client_*`).
    pub fn rest_client(&self) -> Arc<RestClientMetrics> {
        Arc::clone(&self.rest_client)
    }

    /// The exposition text in `format`.
    pub fn encode_as(&self, format: Format) -> String {
        match format {
            Format::OpenMetrics => self.encode(),
            Format::PrometheusText => openmetrics_to_prometheus_text(&self.encode()),
        }
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
    /// EndpointSlice trigger time (and the slice's family) that the sync programmed.
    pub fn record_sync(&self, kind: SyncKind, took: Duration, finished: SystemTime, trigger_times: &[(SystemTime, IpFamily)]) {
        let secs = took.as_secs_f64();
        for family in FAMILIES {
            let label = family_label(family);
            self.sync_duration.get_or_create(&label).observe(secs);
            match kind {
                SyncKind::Full => self.sync_full_duration.get_or_create(&label).observe(secs),
                SyncKind::Partial => self.sync_partial_duration.get_or_create(&label).observe(secs),
            }
            self.last_timestamp.get_or_create(&label).set(seconds_since_epoch(finished));
        }
        for (trigger, family) in trigger_times {
            // A trigger time in the future (clock skew with the control plane) counts as 0.
            let latency = finished.duration_since(*trigger).unwrap_or_default();
            self.network_programming_duration.get_or_create(&family_label(*family)).observe(latency.as_secs_f64());
        }
    }

    /// Programming the kernel failed.
    pub fn record_sync_failure(&self) {
        for family in FAMILIES {
            self.sync_failures_total.get_or_create(&family_label(family)).inc();
        }
    }

    /// A sync was queued (something changed that needs programming).
    pub fn record_queued(&self, at: SystemTime) {
        for family in FAMILIES {
            self.last_queued_timestamp.get_or_create(&family_label(family)).set(seconds_since_epoch(at));
        }
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

    /// Recount services with a Local policy and no local endpoints, from the programmed state,
    /// per family (labels `ip_family` and `traffic_policy` = `internal` or `external`, as
    /// upstream).
    pub fn record_no_local_endpoints(&self, state: &ProxyState) {
        // [internal, external] per family, in FAMILIES order.
        let mut counts = [[0i64; 2]; 2];
        for port in state.services.values() {
            if !port.local_endpoints.is_empty() || port.cluster_endpoints.is_empty() {
                // Upstream counts only services that have endpoints, just none local.
                continue;
            }
            let count = &mut counts[usize::from(port.family == IpFamily::V6)];
            if port.internal_traffic_policy == TrafficPolicy::Local {
                count[0] += 1;
            }
            if port.external_traffic_policy == TrafficPolicy::Local && port.has_external_destinations() {
                count[1] += 1;
            }
        }
        for (family, [internal, external]) in FAMILIES.into_iter().zip(counts) {
            let label = |policy: &str| {
                vec![
                    ("ip_family".to_string(), family_name(family).to_string()),
                    ("traffic_policy".to_string(), policy.to_string()),
                ]
            };
            self.no_local_endpoints.get_or_create(&label("internal")).set(internal);
            self.no_local_endpoints.get_or_create(&label("external")).set(external);
        }
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

/// Serve `/metrics` (format negotiated from `Accept`), a plain `/healthz` answering `ok`,
/// `/proxyMode` and `/configz`, as upstream's metrics server does, on `addr` (upstream default
/// `127.0.0.1:10249`). Call from a tokio runtime.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>, info: ServerInfo) -> std::io::Result<HttpServer> {
    let info = Arc::new(info);
    let handler: Handler = Arc::new(move |req| match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            respond(StatusCode::OK, format.content_type(), metrics.encode_as(format))
        }
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
    use crate::http_server::test_client::{get, get_with};

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
        m.record_queued(UNIX_EPOCH + Duration::from_secs(7));
        let done = UNIX_EPOCH + Duration::from_secs(10);
        m.record_sync(SyncKind::Full, Duration::from_millis(1), done, &[(done - Duration::from_secs(1), IpFamily::V4)]);
        let text = m.encode();
        for name in [
            "kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.001\",ip_family=\"IPv4\"} 1",
            "kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family=\"IPv6\"} 1",
            "kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"} 0",
            "kubeproxy_network_programming_duration_seconds_count{ip_family=\"IPv4\"} 1",
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family=\"IPv4\"} 7.0",
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family=\"IPv6\"} 7.0",
            "kubeproxy_sync_proxy_rules_endpoint_changes_total 1",
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending 0",
            "kubeproxy_sync_proxy_rules_service_changes_total 1",
            "kubeproxy_sync_proxy_rules_service_changes_pending 0",
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family=\"IPv4\",traffic_policy=\"internal\"} 0",
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family=\"IPv6\",traffic_policy=\"external\"} 0",
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family=\"IPv4\"} 1",
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family=\"IPv6\"} 1",
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
        m.record_sync(SyncKind::Partial, Duration::from_millis(3), now, &[(now - Duration::from_millis(700), IpFamily::V6)]);
        let text = m.encode();
        assert_eq!(
            sample_line(&text, "kubeproxy_network_programming_duration_seconds_bucket{le=\"0.5\",ip_family=\"IPv6\"}"),
            "kubeproxy_network_programming_duration_seconds_bucket{le=\"0.5\",ip_family=\"IPv6\"} 0"
        );
        assert_eq!(
            sample_line(&text, "kubeproxy_network_programming_duration_seconds_bucket{le=\"1.0\",ip_family=\"IPv6\"}"),
            "kubeproxy_network_programming_duration_seconds_bucket{le=\"1.0\",ip_family=\"IPv6\"} 1"
        );
        assert!(!text.contains("kubeproxy_network_programming_duration_seconds_count{ip_family=\"IPv4\"}"), "{text}");
        for family in ["IPv4", "IPv6"] {
            let labelled = |name: &str| format!("{name}{{ip_family=\"{family}\"}}");
            for (name, value) in [
                ("kubeproxy_sync_partial_proxy_rules_duration_seconds_count", "1"),
                ("kubeproxy_sync_full_proxy_rules_duration_seconds_count", "0"),
                ("kubeproxy_sync_proxy_rules_duration_seconds_count", "1"),
                ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "1000.0"),
            ] {
                let prefix = labelled(name);
                assert_eq!(sample_line(&text, &format!("{prefix} ")), format!("{prefix} {value}"));
            }
        }
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let m = Arc::new(Metrics::new());
        m.record_change_totals(kproxy_core::tracker::ChangeTotals { services: 1, endpoints: 0 });
        let mut config = kproxy_core::config::KubeProxyConfiguration::default();
        config.cluster_cidr = "198.18.0.0/16".into();
        let info = ServerInfo::new("nftables", &config);
        let server = serve("127.0.0.1:0".parse().unwrap(), m.clone(), info).expect("bind");
        // Without Accept: Prometheus text 0.0.4, counters' families named with `_total`.
        let answer = get(server.local_addr(), "/metrics").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
        assert!(answer.body.contains("kubeproxy_sync_proxy_rules_service_changes_total 1"), "{}", answer.body);
        assert!(
            answer.body.contains("# TYPE kubeproxy_sync_proxy_rules_service_changes_total counter\n"),
            "{}",
            answer.body
        );
        for name in ["process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ", "process_start_time_seconds "] {
            assert!(answer.body.lines().any(|l| l.starts_with(name)), "{name}missing:\n{}", answer.body);
        }
        assert!(!answer.body.contains("# EOF"), "{}", answer.body);
        // Asked for OpenMetrics (as Prometheus asks): OpenMetrics 1.0.0, ending in `# EOF`.
        let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let answer = get_with(server.local_addr(), "/metrics", &[("Accept", accept)]).await;
        assert_eq!(answer.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
        assert!(answer.body.contains("# TYPE kubeproxy_sync_proxy_rules_service_changes counter\n"), "{}", answer.body);
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
