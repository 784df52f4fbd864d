//! `deploy/grafana-dashboard.json` and `deploy/prometheusrule.yaml` reference only metrics
//! kproxy serves: every metric name in their PromQL must be a series name of the exposition
//! kproxy's metrics registry renders, so a renamed or dropped metric fails here instead of
//! leaving a blank panel or an alert that can never fire.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use kproxy_telemetry::metrics::Metrics;
use kproxy_telemetry::metrics_format::{series_names, Format};
use kproxy_core::backend::SyncKind;
use kproxy_core::model::{IpFamily, ProxyState};

/// Prefixes of every metric family kproxy serves; a PromQL token starting with one of them
/// is a metric name (labels, functions and keywords never do).
const PREFIXES: [&str; 4] = ["kubeproxy_", "kproxy_", "rest_client_", "process_"];

/// Prefixes of other exporters' metrics (node_exporter, cAdvisor, kube-state-metrics, the
/// kubelet, the API server, Go runtimes): kproxy's files must not depend on them.
const FOREIGN: [&str; 6] = ["node_", "container_", "kube_", "kubelet_", "apiserver_", "go_"];

fn deploy(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Parameters as files under a directory (the conntrack fill metrics read two of them).
struct Dir(PathBuf);

impl kproxy_conntrack::sysctl::Sysctl for Dir {
    fn read(&self, key: &str) -> std::io::Result<String> {
        std::fs::read_to_string(self.0.join(key)).map(|v| v.trim().to_string())
    }
    fn write(&self, key: &str, value: &str) -> std::io::Result<()> {
        std::fs::write(self.0.join(key), value)
    }
}

/// The series names kproxy's `/metrics` can contain, with a conntrack table present and
/// every labelled family given a series (an untouched family is not rendered at all).
fn served() -> BTreeSet<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let netfilter = dir.path().join("proc/sys/net/netfilter");
    std::fs::create_dir_all(&netfilter).expect("dirs");
    std::fs::write(netfilter.join("nf_conntrack_count"), "10").expect("write");
    std::fs::write(netfilter.join("nf_conntrack_max"), "100").expect("write");
    let metrics = Metrics::with_conntrack_sysctl(Box::new(Dir(dir.path().to_path_buf())));
    let now = SystemTime::now();
    metrics.record_sync(SyncKind::Full, Duration::from_millis(5), now, &[(now, IpFamily::V4)]);
    metrics.record_sync(SyncKind::Partial, Duration::from_millis(1), now, &[]);
    metrics.record_queued(now);
    metrics.record_sync_failure();
    metrics.record_no_local_endpoints(&ProxyState::default());
    metrics.record_conntrack_deleted(IpFamily::V4, 1);
    metrics.record_healthz(200);
    metrics.record_livez(200);
    metrics.rest_client().observe("GET", "198.18.0.1:6443", "200", 0.01);
    series_names(&metrics.encode_as(Format::PrometheusText))
}

/// Metric names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|token| PREFIXES.iter().any(|p| token.starts_with(p)))
        .map(str::to_string)
        .collect()
}

/// Every `expr` (panel targets) and `definition` (variables) string anywhere in a JSON value.
fn json_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => json_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_queries(v, out)),
        _ => {}
    }
}

fn assert_served(file: &str, queries: &[String], at_least: usize) {
    let served = served();
    let mut used = BTreeSet::new();
    for query in queries {
        let foreign: Vec<&str> = query
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|token| FOREIGN.iter().any(|p| token.starts_with(p)))
            .collect();
        assert!(foreign.is_empty(), "{file}: {foreign:?} in `{query}` are other exporters' metrics");
        let names = metric_names(query);
        assert!(!names.is_empty(), "{file}: a query that names no kproxy metric: {query}");
        let unknown: Vec<&String> = names.iter().filter(|n| !served.contains(*n)).collect();
        assert!(unknown.is_empty(), "{file}: {unknown:?} in `{query}` are not served by kproxy; it serves:\n{served:#?}");
        used.extend(names);
    }
    assert!(used.len() >= at_least, "{file}: only {} distinct metrics used: {used:?}", used.len());
}

#[test]
fn the_series_names_include_kube_proxy_rest_client_process_and_conntrack_metrics() {
    let served = served();
    for name in [
        "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
        "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
        "rest_client_requests_total",
        "rest_client_request_duration_seconds_bucket",
        "process_resident_memory_bytes",
        "kproxy_conntrack_entries",
        "kproxy_conntrack_entries_limit",
    ] {
        assert!(served.contains(name), "{name} missing from {served:#?}");
    }
    assert!(!served.contains("kubeproxy_sync_proxy_rules_nftables_sync_failures"), "counters carry _total");
}

#[test]
fn the_grafana_dashboard_uses_only_served_metrics() {
    let text = deploy("grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("grafana-dashboard.json is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| !p.is_empty()), "a dashboard with panels");
    let mut queries = Vec::new();
    json_queries(&dashboard, &mut queries);
    // Panel targets plus the instance variable's query.
    assert!(queries.len() >= 20, "{queries:#?}");
    assert_served("grafana-dashboard.json", &queries, 20);
}

#[test]
fn the_prometheus_rules_use_only_served_metrics_and_cover_the_four_failure_modes() {
    let rule: serde_json::Value = serde_saphyr::from_str(&deploy("prometheusrule.yaml")).expect("prometheusrule.yaml is YAML");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    let mut alerts = Vec::new();
    let mut queries = Vec::new();
    for group in rule["spec"]["groups"].as_array().expect("spec.groups") {
        for r in group["rules"].as_array().expect("rules") {
            alerts.push(r["alert"].as_str().expect("every rule is an alert").to_string());
            queries.push(r["expr"].as_str().expect("expr").to_string());
        }
    }
    assert_served("prometheusrule.yaml", &queries, 6);
    let uses = |metric: &str| queries.iter().any(|q| metric_names(q).contains(metric));
    // Sync failures, stale syncs, programming latency, conntrack fill.
    for metric in [
        "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
        "kubeproxy_network_programming_duration_seconds_bucket",
        "kproxy_conntrack_entries",
    ] {
        assert!(uses(metric), "no alert on {metric}: {alerts:?}");
    }
}
