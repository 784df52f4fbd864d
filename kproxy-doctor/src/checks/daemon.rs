//! The API server (reachable, throttled?) and the running daemon's own view (`/healthz`,
//! `/metrics`).

use crate::{ApiProbe, Check, DaemonFacts, Settings};

/// Sum of the samples of metric `name` whose labels contain every one of `labels`
/// (`key="value"` pairs), in Prometheus text; `None` when there is no such sample.
pub fn sample_sum(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once('}') {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
        };
        if !labels.iter().all(|l| label_text.split(',').any(|p| p == *l)) {
            continue;
        }
        if let Some(v) = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

/// `api`: the API server answers with the daemon's kubeconfig, and this node's Node exists.
pub fn api(s: &Settings, probe: Option<&ApiProbe>) -> Check {
    const ID: &str = "api";
    if !s.uses_api {
        return Check::ok(ID, "--manifests: no API server in use");
    }
    let Some(p) = probe else { return Check::warn(ID, "the API server was not probed", "rerun doctor with the daemon's kubeconfig") };
    match (&p.version, &p.node_pod_cidrs) {
        (Err(e), _) => Check::fail(
            ID,
            format!("API server {} did not answer: {e}", p.server),
            "check the kubeconfig's server URL and credentials (--kubeconfig / clientConnection.kubeconfig, --master), the network path and certificates; meanwhile kproxy keeps the last rules and retries",
        ),
        (Ok(v), Ok(None)) => Check::warn(
            ID,
            format!("API server {} answered ({v}, {} ms), but Node {} does not exist", p.server, p.latency_ms, p.node_name),
            "kproxy waits for its Node (addresses, podCIDR, zone): set --hostname-override to the Node's name",
        ),
        (Ok(v), Err(e)) => Check::warn(
            ID,
            format!("API server {} answered ({v}, {} ms), but reading Node {} failed: {e}", p.server, p.latency_ms, p.node_name),
            "grant the node's credentials get/list/watch on nodes (deploy/rbac)",
        ),
        (Ok(v), Ok(Some(_))) => Check::ok(ID, format!("API server {} answered ({v}, {} ms); Node {} exists", p.server, p.latency_ms, p.node_name)),
    }
}

/// `api-throttling`: from the daemon's `rest_client_requests_total` since its start, the
/// average request rate against `qps`, and server-side throttling (HTTP 429).
pub fn throttling(s: &Settings, d: &DaemonFacts) -> Check {
    const ID: &str = "api-throttling";
    if !s.uses_api {
        return Check::ok(ID, "--manifests: no API client");
    }
    let qps = if s.qps == 0.0 { 5.0 } else { s.qps as f64 };
    if qps < 0.0 {
        return Check::ok(ID, "client-side rate limit disabled (negative qps)");
    }
    let Some(Ok(text)) = &d.metrics else {
        return Check::warn(ID, "not observed: the daemon's /metrics did not answer", "run doctor while kproxy runs (metricsBindAddress) to see its API request rate");
    };
    let total = sample_sum(text, "rest_client_requests_total", &[]).unwrap_or(0.0);
    let throttled = sample_sum(text, "rest_client_requests_total", &["code=\"429\""]).unwrap_or(0.0);
    let started = sample_sum(text, "process_start_time_seconds", &[]).unwrap_or(d.now);
    let uptime = (d.now - started).max(1.0);
    let rate = total / uptime;
    let seen = format!("{total:.0} API requests in {uptime:.0} s ({rate:.2}/s) against qps {qps} burst {}", s.burst);
    let raise = "raise clientConnection.qps / burst (--kube-api-qps, --kube-api-burst); the seed guide's 'performance problems' row";
    if throttled > 0.0 {
        Check::warn(ID, format!("{seen}; {throttled:.0} answered 429 (the API server throttles)"), "the API server's priority and fairness limits this client: check its flow schemas, then qps/burst")
    } else if rate >= 0.8 * qps {
        Check::warn(ID, format!("{seen}: the client-side limit is (nearly) reached, requests wait"), raise)
    } else {
        Check::ok(ID, seen)
    }
}

/// `daemon-health`: the daemon's `/healthz` (healthy, lastUpdated, rulesetIntact) and its
/// sync metrics.
pub fn health(s: &Settings, d: &DaemonFacts) -> Check {
    const ID: &str = "daemon-health";
    let Some(addr) = s.healthz else {
        return Check::warn(ID, "healthzBindAddress is empty: no /healthz to ask", "set healthzBindAddress to see the daemon's health here");
    };
    let (status, body) = match &d.healthz {
        Some(Ok(answer)) => answer,
        Some(Err(e)) => {
            return Check::warn(
                ID,
                format!("no kproxy daemon answers on {addr}: {e}"),
                "start kproxy (DaemonSet or systemd) if it should run here; its rules stay programmed but nothing follows Service changes",
            )
        }
        None => return Check::warn(ID, "/healthz not asked", "rerun doctor as root"),
    };
    let field = |k: &str| body.get(k).map(|v| v.to_string().trim_matches('"').to_string()).unwrap_or_else(|| "?".into());
    let mut seen = format!("{addr}/healthz: HTTP {status}, healthy={}, lastUpdated={}, rulesetIntact={}", field("healthy"), field("lastUpdated"), field("rulesetIntact"));
    if let Some(Ok(text)) = &d.metrics {
        if let Some(last) = sample_sum(text, "kubeproxy_sync_proxy_rules_last_timestamp_seconds", &["ip_family=\"IPv4\""]) {
            seen.push_str(&format!("; last sync {:.0} s ago", (d.now - last).max(0.0)));
        }
        if let Some(failures) = sample_sum(text, "kubeproxy_sync_proxy_rules_nftables_sync_failures_total", &[]) {
            seen.push_str(&format!("; {failures:.0} failed syncs since start"));
        }
    }
    if *status != 200 || body.get("healthy").and_then(|v| v.as_bool()) == Some(false) {
        return Check::fail(
            ID,
            seen,
            "the daemon has not programmed a queued change in time, never synced, or its Node is gone: read its log (Error syncing proxy rules, Failed to list)",
        );
    }
    Check::ok(ID, seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;

    const METRICS: &str = "# HELP x\nrest_client_requests_total{code=\"200\",host=\"h\",method=\"GET\"} 30\n\
        rest_client_requests_total{code=\"429\",host=\"h\",method=\"GET\"} 2\nprocess_start_time_seconds 1000\n\
        kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"} 1090\n";

    #[test]
    fn parses_samples() {
        assert_eq!(sample_sum(METRICS, "rest_client_requests_total", &[]), Some(32.0));
        assert_eq!(sample_sum(METRICS, "rest_client_requests_total", &["code=\"429\""]), Some(2.0));
        assert_eq!(sample_sum(METRICS, "process_start_time_seconds", &[]), Some(1000.0));
        assert_eq!(sample_sum(METRICS, "nothing", &[]), None);
    }

    fn api_settings() -> Settings {
        Settings { uses_api: true, qps: 5.0, burst: 10, healthz: Some("127.0.0.1:10256".parse().unwrap()), ..Settings::default() }
    }

    #[test]
    fn throttling_from_metrics() {
        let d = |text: &str, now| DaemonFacts { healthz: None, metrics: Some(Ok(text.into())), now };
        assert_eq!(throttling(&api_settings(), &d(METRICS, 1100.0)).verdict, Verdict::Warn); // 429s
        let calm = "rest_client_requests_total{code=\"200\"} 30\nprocess_start_time_seconds 1000\n";
        assert_eq!(throttling(&api_settings(), &d(calm, 1100.0)).verdict, Verdict::Ok);
        assert_eq!(throttling(&api_settings(), &d(calm, 1005.0)).verdict, Verdict::Warn); // 6/s
        assert_eq!(throttling(&Settings::default(), &d(calm, 1005.0)).verdict, Verdict::Ok);
    }

    #[test]
    fn api_and_health() {
        let probe = |version: Result<String, String>| ApiProbe {
            server: "https://198.18.0.1:1".into(),
            version,
            latency_ms: 2000,
            node_pod_cidrs: Ok(None),
            node_name: "node-1".into(),
        };
        let down = api(&api_settings(), Some(&probe(Err("connection refused".into()))));
        assert_eq!(down.verdict, Verdict::Fail);
        assert!(down.seen.contains("https://198.18.0.1:1") && down.seen.contains("connection refused"), "{}", down.seen);
        assert_eq!(api(&api_settings(), Some(&probe(Ok("v1.34.4".into())))).verdict, Verdict::Warn);
        assert_eq!(api(&Settings::default(), None).verdict, Verdict::Ok);
        let d = |healthz| DaemonFacts { healthz: Some(healthz), metrics: Some(Ok(METRICS.into())), now: 1100.0 };
        let good = health(&api_settings(), &d(Ok((200, serde_json::json!({"healthy": true, "rulesetIntact": true})))));
        assert_eq!(good.verdict, Verdict::Ok);
        assert!(good.seen.contains("last sync 10 s ago"), "{}", good.seen);
        assert_eq!(health(&api_settings(), &d(Ok((503, serde_json::json!({"healthy": false}))))).verdict, Verdict::Fail);
        assert_eq!(health(&api_settings(), &d(Err("connection refused".into()))).verdict, Verdict::Warn);
    }
}
