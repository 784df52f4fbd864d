//! The real `kproxy` daemon's metrics port, scraped over HTTP inside its node namespace:
//! upstream's `ip_family` labels on sync metrics, Prometheus text 0.0.4 by default and
//! OpenMetrics 1.0.0 on request, and client-go's `rest_client_*` metrics for the API requests
//! it makes (against a stand-in API server that refuses every request).

mod api_stub;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use api_stub::{Answer, ApiStub};
use kproxy_tests::{kproxy_binary, Netns};

const METRICS: &str = "127.0.0.1:10249";
/// How long the daemon may take to sync (or to make its first API requests).
const CONVERGE: Duration = Duration::from_secs(10);

/// The daemon, killed if a test fails before it ends.
struct Daemon(Child);

impl Daemon {
    fn start(node: &Netns, source: &[&str]) -> Daemon {
        let child = node
            .command(kproxy_binary().expect("kproxy binary"))
            .args(source)
            .args(["--hostname-override", "node-1", "--cluster-cidr", "198.18.0.0/16"])
            .args(["--metrics-bind-address", METRICS, "--healthz-bind-address", "127.0.0.1:10256"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kproxy");
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bounded `GET /metrics` from inside `ns`: (Content-Type, body).
fn scrape(ns: &Netns, accept: Option<&str>) -> std::io::Result<(String, String)> {
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    let raw = ns
        .run_in(move || -> std::io::Result<String> {
            let addr: SocketAddr = METRICS.parse().expect("metrics address");
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n").as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
        .expect("entering the node namespace")?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let content_type = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-type")))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Ok((content_type, body.to_string()))
}

/// The value of the sample line that starts with `series ` (name and labels, exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Scrape until `done` accepts the text (bounded by [`CONVERGE`]); returns the last text.
fn scrape_until(ns: &Netns, what: &str, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let last = scrape(ns, None).map(|(_, body)| body).unwrap_or_default();
        if done(&last) {
            return last;
        }
        assert!(start.elapsed() < CONVERGE, "{what}: not seen within {CONVERGE:?}; last scrape:\n{last}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_service(dir: &Path) {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\n\
        spec:\n  clusterIP: 198.19.160.10\n  clusterIPs: [\"198.19.160.10\"]\n  ports:\n  - {name: http, port: 80, protocol: TCP}\n";
    std::fs::write(dir.join("web.yaml"), text).expect("write manifest");
}

#[test]
fn sync_metrics_carry_ip_family_and_the_format_follows_accept() {
    let node = Netns::new("node").expect("node namespace");
    let dir = tempfile::tempdir().expect("temp dir");
    write_service(dir.path());
    let _daemon = Daemon::start(&node, &["--manifests", dir.path().to_str().expect("utf-8 path")]);

    let synced = |family: &str| format!("kubeproxy_sync_proxy_rules_duration_seconds_count{{ip_family=\"{family}\"}}");
    let text = scrape_until(&node, "a sync recorded under both families", |t| {
        ["IPv4", "IPv6"].iter().all(|f| sample(t, &synced(f)).is_some_and(|n| n >= 1.0))
    });
    for family in ["IPv4", "IPv6"] {
        let series = format!("kubeproxy_sync_proxy_rules_last_timestamp_seconds{{ip_family=\"{family}\"}}");
        let last = sample(&text, &series);
        assert!(last.is_some_and(|t| t > 1.0e9), "{series} is {last:?}:\n{text}");
        let series = format!("kubeproxy_sync_full_proxy_rules_duration_seconds_count{{ip_family=\"{family}\"}}");
        assert!(sample(&text, &series).is_some_and(|n| n >= 1.0), "{series}:\n{text}");
        let series = format!("kubeproxy_sync_proxy_rules_nftables_sync_failures_total{{ip_family=\"{family}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{series}:\n{text}");
    }
    // The node's conntrack table fill (kproxy's own gauges, read from the node's namespace).
    let limit = sample(&text, "kproxy_conntrack_entries_limit");
    assert!(limit.is_some_and(|l| l > 0.0), "kproxy_conntrack_entries_limit is {limit:?}:\n{text}");
    assert!(sample(&text, "kproxy_conntrack_entries").is_some(), "{text}");
    // No unlabelled sync duration series any more.
    assert_eq!(sample(&text, "kubeproxy_sync_proxy_rules_duration_seconds_count"), None, "{text}");

    // Default: the Prometheus text format 0.0.4.
    let (content_type, body) = scrape(&node, None).expect("scrape");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("# TYPE kubeproxy_sync_proxy_rules_service_changes_total counter\n"), "{body}");
    assert!(!body.contains("# EOF"), "{body}");
    // What Prometheus sends: OpenMetrics 1.0.0.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                  text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, body) = scrape(&node, Some(accept)).expect("scrape");
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(body.contains("# TYPE kubeproxy_sync_proxy_rules_service_changes counter\n"), "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
}

#[test]
fn api_requests_are_counted_and_timed_as_client_go_does() {
    let node = Netns::new("node").expect("node namespace");
    let forbidden = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden","reason":"Forbidden","code":403}"#;
    let stub = ApiStub::start(&node, move |_path| Answer::Once(403, forbidden.to_string()));
    let api = stub.addr();
    let daemon = Daemon::start(&node, &["--master", &format!("http://{api}")]);

    let host = api.to_string();
    let requests = format!("rest_client_requests_total{{code=\"403\",host=\"{host}\",method=\"GET\"}}");
    let timed = format!("rest_client_request_duration_seconds_count{{verb=\"GET\",host=\"{host}\"}}");
    let text = scrape_until(&node, "refused API requests in rest_client_requests_total", |t| {
        sample(t, &requests).is_some_and(|n| n >= 1.0) && sample(t, &timed).is_some_and(|n| n >= 1.0)
    });
    drop(daemon);
    let counted = sample(&text, &requests).unwrap_or_default();
    let answered = stub.served() as f64;
    assert!(counted <= answered, "counted {counted} requests, the API server answered only {answered}:\n{text}");
    assert!(text.contains("# TYPE rest_client_request_duration_seconds histogram"), "{text}");
    let le = format!("rest_client_request_duration_seconds_bucket{{le=\"60.0\",verb=\"GET\",host=\"{host}\"}}");
    assert!(sample(&text, &le).is_some_and(|n| n >= 1.0), "client-go's buckets, up to 60 s:\n{text}");
}
