//! Real traffic through the real API server: the `kproxy` daemon (nftables mode) runs in the
//! node namespace of a [`Topology`] (3 pods with test servers, 1 external client) with its
//! own ServiceAccount via [`ApiRelay`]; the test writes a Node, a Service and an
//! EndpointSlice through the API (admin client) and checks with packets, after each change
//! (bounded retries until converged):
//!
//! 1. ClusterIP from a pod spreads over the 3 endpoints;
//! 2. endpoints scaled down to one and up again: traffic follows;
//! 3. type NodePort: the external client reaches it at the node IP (masqueraded);
//! 4. externalTrafficPolicy Local with endpoints (pods 2, 3) on another node only: external
//!    traffic is dropped (timeouts) while pods still reach the ClusterIP; with one local endpoint the
//!    external client reaches only it, client IP preserved (upstream-reference.md);
//! 5. API server restarted and etcd killed briefly: after a change kproxy converges without
//!    restarting (same pid) and traffic follows;
//! 6. `/healthz` (bound to the node IP inside the node namespace) answers 200 with the
//!    upstream JSON; `/metrics` has the sync and network programming histograms;
//! 7. Service deleted: nothing answers any more (refused or dropped).
//!
//! Addresses come from [`kproxy_tests::plan`]. Needs root. Run with
//! `cargo xtask e2e --test e2e_traffic` (ignored under plain `cargo test`).

mod e2e_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use e2e_support::{endpoint_slice, node, service, ApiRelay, E2eEnv, KproxyDaemon, Scratch};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_tests::{plan, tally, Netns, Proto, ServerSpec, Tally, Topology};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// Port the pods' test servers listen on (the slice's endpoint port).
const POD_PORT: u16 = 8080;
/// The Service's port.
const SVC_PORT: u16 = 80;
/// How long each check may take to converge (the machine is shared and loaded).
const CONVERGE: Duration = Duration::from_secs(20);
/// Per-request timeout when an answer is expected.
const T: Duration = Duration::from_secs(2);
/// Per-request timeout when a drop (timeout) is expected.
const T_DROP: Duration = Duration::from_millis(700);
/// The node the eTP=Local step puts the endpoints on (not ours).
const OTHER_NODE: &str = "e2e-traffic-other-node";
/// Where `/healthz` listens: the node's own address, inside the node namespace.
const HEALTHZ_PORT: u16 = 10256;
/// Where `/metrics` listens: the node namespace's loopback.
const METRICS: &str = "127.0.0.1:10249";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real API server: run `cargo xtask e2e`"]
async fn traffic_follows_api_changes_through_the_daemon() {
    let started = Instant::now();
    let env = E2eEnv::require();
    kproxy_tests::require_root();
    let scratch = Scratch::new(&env, "traffic").await;
    let pp = PostParams::default();
    let node_name = format!("e2e-traffic-{}", std::process::id());
    Api::<Node>::all(scratch.admin.clone())
        .create(&pp, &node(&node_name, &plan::NODE_IP_V4.to_string()))
        .await
        .expect("create node");

    let topo = Topology::builder().pods(3).clients(1).serve(ServerSpec::tcp(&[POD_PORT])).build().expect("topology");
    let relay = ApiRelay::start(&topo.node, &env.url).expect("relay");
    let healthz = SocketAddr::new(plan::NODE_IP_V4.into(), HEALTHZ_PORT);
    let mut daemon = KproxyDaemon::start(
        &env,
        &topo.node,
        &relay,
        &node_name,
        &[
            "--proxy-mode=nftables",
            &format!("--cluster-cidr={}", plan::POD_CIDR_V4),
            "--nftables-min-sync-period=100ms",
            &format!("--metrics-bind-address={METRICS}"),
            &format!("--healthz-bind-address={healthz}"),
        ],
    )
    .expect("start kproxy");
    let pid = daemon.pid();
    let line = daemon.wait_log("Successfully retrieved node IP", Duration::from_secs(60)).expect("node IP line");
    assert!(line.contains(&plan::NODE_IP_V4.to_string()), "node IP line lacks {}: {line}", plan::NODE_IP_V4);

    let me = node_name.as_str();
    let all: Vec<(u8, &str)> = (1..=3).map(|k| (k, me)).collect();
    let svc = scratch.services.create(&pp, &service(&scratch.ns, "web", SVC_PORT.into(), &[])).await.expect("create service");
    scratch.slices.create(&pp, &slice(&scratch.ns, &all)).await.expect("create slice");
    let vip = cluster_ip(&svc);
    let cluster = SocketAddr::new(vip.into(), SVC_PORT);
    let pod1 = &topo.pod(1).ns;
    let client = &topo.client().ns;
    let gateway = std::net::IpAddr::from(plan::POD_GW_V4);
    let node = &topo.node;

    // (1) ClusterIP from a pod: spread over the three endpoints, pod source preserved.
    let t = converge(node, "1: ClusterIP spreads over pods 1-3", || {
        let r = send(pod1, cluster, 30, T);
        let ok = r.answered() == 30 && servers(&r) == names(&[1, 2, 3]);
        (ok, r)
    });
    assert_eq!(t.by_peer.get(&topo.pod(1).ipv4.into()).copied().unwrap_or(0), 30 - hits(&t, "pod1"), "1: {t}");

    // (2) Scale down to pod2 only, then up again.
    patch_slice(&scratch, &[(2, me)]).await;
    converge(node, "2: scaled down to pod2", || {
        let r = send(pod1, cluster, 12, T);
        (r.answered() == 12 && servers(&r) == names(&[2]), r)
    });
    patch_slice(&scratch, &all).await;
    converge(node, "2: scaled up to pods 1-3", || {
        let r = send(pod1, cluster, 30, T);
        (r.answered() == 30 && servers(&r) == names(&[1, 2, 3]), r)
    });

    // (3) NodePort: the external client reaches it at the node IP, masqueraded (eTP=Cluster).
    let svc = patch_service(&scratch, json!({ "spec": { "type": "NodePort" } })).await;
    let node_port = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .and_then(|p| p.node_port)
        .expect("allocated nodePort");
    let np = SocketAddr::new(plan::NODE_IP_V4.into(), u16::try_from(node_port).expect("nodePort fits u16"));
    let t = converge(node, "3: NodePort from the external client spreads", || {
        let r = send(client, np, 30, T);
        (r.answered() == 30 && servers(&r) == names(&[1, 2, 3]), r)
    });
    assert_eq!(t.by_peer.get(&gateway).copied(), Some(30), "3: eTP=Cluster external traffic is masqueraded: {t}");

    // (4) eTP=Local, every endpoint on another node: external traffic is DROPped; pods still
    // reach the ClusterIP (cluster endpoints). Then one local endpoint (pod3): the external
    // client reaches only it, not masqueraded.
    // pod1 is left out: it is on this node, and an endpoint listed on another node cannot
    // hairpin through this node's rules (kproxy only adds local endpoints to its hairpin set).
    patch_slice(&scratch, &[(2, OTHER_NODE), (3, OTHER_NODE)]).await;
    patch_service(&scratch, json!({ "spec": { "externalTrafficPolicy": "Local" } })).await;
    converge(node, "4: eTP=Local without local endpoints drops external traffic", || {
        let r = send(client, np, 3, T_DROP);
        (r.timeouts == 3, r)
    });
    converge(node, "4: pods still reach the ClusterIP (cluster endpoints)", || {
        let r = send(pod1, cluster, 20, T);
        (r.answered() == 20 && servers(&r) == names(&[2, 3]), r)
    });
    patch_slice(&scratch, &[(2, OTHER_NODE), (3, me)]).await;
    let t = converge(node, "4: eTP=Local reaches the local endpoint only", || {
        let r = send(client, np, 12, T);
        (r.answered() == 12 && servers(&r) == names(&[3]), r)
    });
    assert_eq!(t.by_peer.get(&topo.client().ipv4.into()).copied(), Some(12), "4: eTP=Local keeps the client IP: {t}");

    // (5) The control plane goes away and comes back; kproxy keeps running and follows the
    // next change.
    control(&env, "restart-apiserver").await;
    control(&env, "kill-etcd").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    control(&env, "start-etcd").await;
    patch_service(&scratch, json!({ "spec": { "externalTrafficPolicy": "Cluster" } })).await;
    patch_slice(&scratch, &[(1, me)]).await;
    // Both writes must be seen: the slice (pod1 only) and the Service (eTP=Cluster, so the
    // external client is masqueraded again).
    converge(node, "5: after the outage, ClusterIP and NodePort go to pod1 only, eTP=Cluster", || {
        let mut r = send(pod1, cluster, 10, T);
        let ext = send(client, np, 10, T);
        let masqueraded = ext.by_peer.get(&gateway).copied() == Some(10);
        r.merge(ext);
        (r.answered() == 20 && servers(&r) == names(&[1]) && masqueraded, r)
    });
    assert!(daemon.is_running(), "5: kproxy exited; log:\n{}", daemon.log_text());
    assert_eq!(daemon.pid(), pid, "5: kproxy was restarted");

    // (6) Health and metrics, queried from inside the node namespace.
    let (status, body) = http_get(&topo.node, healthz, "/healthz");
    assert_eq!(status, 200, "6: /healthz: {body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("6: /healthz body is not JSON ({e}): {body}"));
    for key in ["lastUpdated", "currentTime"] {
        assert!(health.get(key).and_then(|v| v.as_str()).is_some_and(|s| !s.is_empty()), "6: /healthz lacks {key}: {body}");
    }
    assert_eq!(health.get("healthy"), Some(&json!(true)), "6: /healthz: {body}");
    let metrics_addr: SocketAddr = METRICS.parse().expect("metrics address");
    let (status, metrics) = http_get(&topo.node, metrics_addr, "/metrics");
    assert_eq!(status, 200, "6: /metrics:\n{metrics}");
    for name in [
        "kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"}",
        "kubeproxy_network_programming_duration_seconds_count{ip_family=\"IPv4\"}",
    ] {
        let count = sample(&metrics, name);
        assert!(count.is_some_and(|c| c > 0.0), "6: /metrics: {name} is {count:?}:\n{metrics}");
    }

    // (7) Delete the Service: neither the ClusterIP nor the NodePort answers any more.
    scratch.services.delete("web", &DeleteParams::default()).await.expect("delete service");
    converge(node, "7: deleted Service answers nothing", || {
        let mut r = send(pod1, cluster, 3, T_DROP);
        r.merge(send(client, np, 3, T_DROP));
        (r.answered() == 0 && r.errors.is_empty(), r)
    });
    assert!(daemon.is_running(), "kproxy exited; log:\n{}", daemon.log_text());
    assert_eq!(daemon.pid(), pid, "kproxy was restarted");
    let status = daemon.stop(Duration::from_secs(10));
    println!("e2e_traffic: all steps passed in {:?}; kproxy stopped on SIGTERM: {status:?}", started.elapsed());
}

/// The Service's IPv4 ClusterIP.
fn cluster_ip(svc: &Service) -> Ipv4Addr {
    let ip = svc.spec.as_ref().and_then(|s| s.cluster_ip.clone()).expect("allocated ClusterIP");
    ip.parse().unwrap_or_else(|e| panic!("ClusterIP {ip:?}: {e}"))
}

/// Slice `web-1` of Service `web` with pods `k` on the given nodes, stamped with the
/// EndpointSlice controller's trigger-time annotation (for network_programming_duration).
fn slice(ns: &str, pods: &[(u8, &str)]) -> EndpointSlice {
    let ips: Vec<String> = pods.iter().map(|(k, _)| plan::pod_ipv4(*k).to_string()).collect();
    let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    let mut s = endpoint_slice(ns, "web-1", "web", &refs);
    for (ep, (_, node)) in s.endpoints.iter_mut().zip(pods) {
        ep.node_name = Some((*node).to_string());
    }
    s.metadata.annotations = Some([(TRIGGER_TIME.to_string(), kproxy_telemetry::http_server::rfc3339(SystemTime::now()))].into());
    s
}

const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Replaces slice `web-1`'s endpoints (JSON merge patch; retried while the API recovers).
async fn patch_slice(scratch: &Scratch, pods: &[(u8, &str)]) {
    let s = slice(&scratch.ns, pods);
    let patch = json!({ "metadata": { "annotations": s.metadata.annotations }, "endpoints": s.endpoints });
    retry_api("patch slice", || {
        let (api, patch) = (scratch.slices.clone(), patch.clone());
        async move { api.patch("web-1", &PatchParams::default(), &Patch::Merge(&patch)).await }
    })
    .await;
}

/// Merge-patches Service `web` (retried while the API recovers); returns the result.
async fn patch_service(scratch: &Scratch, patch: serde_json::Value) -> Service {
    retry_api("patch service", || {
        let (api, patch) = (scratch.services.clone(), patch.clone());
        async move { api.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await }
    })
    .await
}

/// Retries an API write for up to 90 s (the API server or etcd may just be coming back).
async fn retry_api<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                println!("{what}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{what}: still failing after 90 s: {e}"),
        }
    }
}

/// Runs a harness control command.
async fn control(env: &E2eEnv, command: &str) {
    let env = env.clone();
    let cmd = command.to_string();
    let t0 = Instant::now();
    tokio::task::spawn_blocking(move || env.control(&cmd))
        .await
        .expect("control thread")
        .unwrap_or_else(|e| panic!("harness {command}: {e}"));
    println!("harness {command}: done in {:?}", t0.elapsed());
}

/// `count` TCP requests from `ns` to `addr`.
fn send(ns: &Netns, addr: SocketAddr, count: usize, timeout: Duration) -> Tally {
    tally(ns, Proto::Tcp, addr, count, timeout).unwrap_or_else(|e| panic!("requests to {addr} from {}: {e}", ns.name()))
}

/// Repeats `check` (blocking traffic) until it reports success, for at most [`CONVERGE`];
/// fails with the last outcome and the node's ruleset. Returns the successful tally.
fn converge(node: &Netns, step: &str, mut check: impl FnMut() -> (bool, Tally)) -> Tally {
    tokio::task::block_in_place(|| {
        let t0 = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (ok, t) = check();
            if ok {
                println!("{step}: converged after {:?} ({attempts} attempts): {t}", t0.elapsed());
                return t;
            }
            if t0.elapsed() >= CONVERGE {
                let ruleset = node.exec(["nft", "list", "ruleset"]).unwrap_or_else(|e| e.to_string());
                panic!("{step}: not converged within {CONVERGE:?} ({attempts} attempts); last: {t}\nruleset:\n{ruleset}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

/// The set of servers that answered.
fn servers(t: &Tally) -> BTreeSet<String> {
    t.by_server.keys().cloned().collect()
}

/// `pod<k>` names.
fn names(pods: &[u8]) -> BTreeSet<String> {
    pods.iter().map(|k| format!("pod{k}")).collect()
}

/// Replies from one server.
fn hits(t: &Tally, server: &str) -> usize {
    t.by_server.get(server).copied().unwrap_or(0)
}

/// The value of an unlabelled Prometheus sample `name`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A bounded HTTP/1.0 GET from inside `ns`: (status code, body).
fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> (u16, String) {
    let raw = tokio::task::block_in_place(|| {
        ns.run_in(|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
    })
    .unwrap_or_else(|e| panic!("entering {}: {e}", ns.name()))
    .unwrap_or_else(|e| panic!("GET http://{addr}{path} in {}: {e}", ns.name()));
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("GET {path}: no status line in {raw:?}"));
    (status, body.to_string())
}
