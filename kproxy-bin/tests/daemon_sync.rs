//! The daemon's pieces wired as `main` wires them, without a kernel: the `--manifests` source
//! feeding the core's ChangeTracker through the sync loop into a RecordingBackend, with the
//! metrics and health servers on 127.0.0.1 ephemeral ports.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kproxy_telemetry::health::ProxyHealth;
use kproxy_telemetry::http_server::rfc3339;
use kproxy_telemetry::metrics::Metrics;
use kproxy_bin::source::manifests::{self, ManifestOptions};
use kproxy_bin::sync_loop::{AfterSync, Outcome, SyncContext, SyncLoop, SyncTiming};
use kproxy_core::backend::RecordingBackend;
use kproxy_core::event::ObjectKind;
use kproxy_core::model::{ProxySettings, ProxyState};
use kproxy_core::tracker::ChangeTracker;
use kproxy_core::translate::TranslateOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 198.19.160.10
  clusterIPs: [198.19.160.10]
  ipFamilies: [IPv4]
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: 8080
";

fn slice(trigger: SystemTime) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels:
    kubernetes.io/service-name: web
  annotations:
    endpoints.kubernetes.io/last-change-trigger-time: \"{}\"
addressType: IPv4
endpoints:
- addresses: [198.18.0.10]
  conditions: {{ready: true}}
  nodeName: node-a
- addresses: [198.18.0.11]
  conditions: {{ready: true}}
  nodeName: node-b
ports:
- name: http
  port: 8080
  protocol: TCP
",
        rfc3339(trigger)
    )
}

/// Reports each programmed state (service count, endpoints of the first port).
struct Probe(mpsc::UnboundedSender<(usize, usize)>);

impl AfterSync for Probe {
    fn after_sync(&mut self, state: &ProxyState) {
        let endpoints = state.services.values().next().map_or(0, |p| p.cluster_endpoints.len());
        let _ = self.0.send((state.services.len(), endpoints));
    }
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), fut).await.expect("HTTP answer in time");
    let status = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status");
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

async fn next_state(rx: &mut mpsc::UnboundedReceiver<(usize, usize)>, want: (usize, usize)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no sync programmed {want:?} in 5 s"))
            .expect("loop alive");
        if got == want {
            return;
        }
    }
}

fn metric(text: &str, name: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// `/metrics` once `name` has reached `at_least` (polled, bounded).
async fn metrics_after(addr: std::net::SocketAddr, name: &str, at_least: f64) -> String {
    for _ in 0..100 {
        let text = http_get(addr, "/metrics").await.1;
        if metric(&text, name) >= at_least {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name} did not reach {at_least} within 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_to_backend_with_metrics_and_health() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("service.yaml"), SERVICE).unwrap();
    let slice_path = dir.path().join("slice.yaml");
    std::fs::write(&slice_path, slice(SystemTime::now() - Duration::from_millis(300))).unwrap();

    let metrics = Arc::new(Metrics::new());
    let timing = SyncTiming::new(Duration::from_secs(30), Duration::from_millis(100));
    let health = Arc::new(ProxyHealth::new(timing.sync_period * 2));
    let metrics_server =
        kproxy_telemetry::metrics::serve("127.0.0.1:0".parse().unwrap(), metrics.clone(), Default::default()).unwrap();
    let health_server =
        kproxy_telemetry::health::serve("127.0.0.1:0".parse().unwrap(), health.clone(), metrics.clone()).unwrap();

    let mut tracker = ChangeTracker::new(
        ProxySettings { node_name: "node-a".into(), ..Default::default() },
        TranslateOptions::default(),
    );
    tracker.wait_for(&[ObjectKind::Service, ObjectKind::EndpointSlice]);
    let (probe_tx, mut programmed) = mpsc::unbounded_channel();
    let ctx = SyncContext {
        backend_name: "recording",
        timing,
        metrics: metrics.clone(),
        health: health.clone(),
        hooks: vec![Box::new(Probe(probe_tx))],
        once: false,
        node_name: "node-a".into(),
        require_node: false,
    };
    let (tx, rx) = mpsc::channel(1024);
    let source = tokio::spawn(manifests::run(
        ManifestOptions { poll_interval: Duration::from_millis(100), ..ManifestOptions::new(dir.path()) },
        tx,
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sync_loop = tokio::spawn(SyncLoop::new(RecordingBackend::default(), tracker, ctx).run(rx, async move {
        let _ = stop_rx.await;
    }));

    next_state(&mut programmed, (1, 2)).await;
    // Hooks run right after the backend, before the loop records the sync's metrics.
    let text =
        metrics_after(metrics_server.local_addr(), "kubeproxy_sync_full_proxy_rules_duration_seconds_count", 1.0).await;
    assert!(metric(&text, "kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"} ") > 1.0e9, "{text}");
    assert_eq!(metric(&text, "kubeproxy_sync_full_proxy_rules_duration_seconds_count"), 1.0);
    assert_eq!(metric(&text, "kubeproxy_network_programming_duration_seconds_count"), 1.0, "{text}");
    assert!(metric(&text, "kubeproxy_network_programming_duration_seconds_sum") >= 0.3, "{text}");
    let (status, body) = http_get(health_server.local_addr(), "/healthz").await;
    assert_eq!(status, 200, "{body}");

    // One endpoint goes away in the file: picked up and programmed as a partial sync.
    std::fs::write(
        &slice_path,
        slice(SystemTime::now())
            .replace("- addresses: [198.18.0.11]\n  conditions: {ready: true}\n  nodeName: node-b\n", ""),
    )
    .unwrap();
    next_state(&mut programmed, (1, 1)).await;
    // The Service file is removed: the service is withdrawn.
    std::fs::remove_file(dir.path().join("service.yaml")).unwrap();
    next_state(&mut programmed, (0, 0)).await;
    let text =
        metrics_after(metrics_server.local_addr(), "kubeproxy_sync_partial_proxy_rules_duration_seconds_count", 2.0)
            .await;
    assert!(metric(&text, "kubeproxy_sync_partial_proxy_rules_duration_seconds_count") >= 2.0, "{text}");
    assert!(metric(&text, "kubeproxy_sync_proxy_rules_service_changes_total") >= 2.0, "{text}");
    assert!(metric(&text, "kubeproxy_sync_proxy_rules_endpoint_changes_total") >= 2.0, "{text}");
    let (status, _) = http_get(health_server.local_addr(), "/livez").await;
    assert_eq!(status, 200);

    let _ = stop_tx.send(());
    let (result, backend) =
        tokio::time::timeout(Duration::from_secs(5), sync_loop).await.expect("stops").expect("no panic");
    assert_eq!(result.expect("clean stop"), Outcome::Stopped);
    let backend = backend.expect("backend handed back");
    let applied = backend.applied().expect("rules left in place on shutdown");
    assert_eq!(applied.settings.node_name, "node-a", "the tracker's settings reach the backend");
    source.abort();
}
