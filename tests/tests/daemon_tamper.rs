//! Someone else changes kproxy's rules while the daemon runs: it notices through nftables'
//! change notifications, logs a warning naming the change, counts it, reports `/healthz` 503,
//! and repairs the table with a full sync within about a second. Each tampering is done with
//! `nft` inside the node namespace; the repaired table is compared with the one before
//! (`nft -j list table`, handles and element order aside) and checked with real traffic.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use kproxy_tests::{kproxy_binary, tally, Netns, Proto, ServerSpec, Topology};
use serde_json::Value;

const T: Duration = Duration::from_millis(800);
/// How long the first programming may take (the manifest source polls every 500 ms).
const CONVERGE: Duration = Duration::from_secs(8);
/// How long a repair may take: the watch reports at once, the full sync waits at most
/// minSyncPeriod (1 s here, so that `/healthz` 503 lasts long enough to be seen).
const REPAIR: Duration = Duration::from_secs(3);
const HEALTHZ: &str = "127.0.0.1:10256";
const METRICS: &str = "127.0.0.1:10249";
const VIP: &str = "198.19.160.10";

fn manifest() -> String {
    let eps: String = [11, 12]
        .iter()
        .map(|o| format!("- addresses: [\"198.18.0.{o}\"]\n  conditions: {{ready: true}}\n  nodeName: node-1\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: t}}\n\
         spec:\n  clusterIP: {VIP}\n  clusterIPs: [\"{VIP}\"]\n  ports:\n  - {{name: http, port: 80, targetPort: 8080, protocol: TCP}}\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: web-a\n  namespace: t\n  labels: {{kubernetes.io/service-name: web}}\n\
         addressType: IPv4\nports:\n- {{name: http, port: 8080, protocol: TCP}}\nendpoints:\n{eps}"
    )
}

/// The daemon, killed if a test fails before it is stopped; its log goes to a file so that
/// it never blocks on a full pipe and can be read while it runs.
struct Daemon {
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(node: &Netns, dir: &Path) -> Daemon {
        let log = dir.join("kproxy.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = node
            .command(kproxy_binary().expect("kproxy binary"))
            .args(["--manifests", dir.join("manifests").to_str().expect("utf-8 path")])
            .args(["--hostname-override", "node-1", "--cluster-cidr", "198.18.0.0/16"])
            .args(["--nftables-min-sync-period", "1s"])
            .args(["--metrics-bind-address", METRICS, "--healthz-bind-address", HEALTHZ])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start kproxy");
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bounded HTTP/1.0 GET from inside `ns`: (status, body); status 0 if it failed.
fn http_get(ns: &Netns, addr: &str, path: &str) -> (u16, String) {
    let addr: SocketAddr = addr.parse().expect("address");
    let raw = ns
        .run_in(|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
        .expect("enter the node namespace");
    let Ok(raw) = raw else { return (0, String::new()) };
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    (head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), body.to_string())
}

fn counter(ns: &Netns, name: &str) -> f64 {
    let (_, text) = http_get(ns, METRICS, "/metrics");
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// `nft -j list table ip kproxy` without handles and with set elements sorted: what kproxy
/// programmed, independent of the order the kernel lists hashed elements in. `None` if the
/// table does not exist.
fn table(ns: &Netns) -> Option<Value> {
    let out = ns.command("nft").args(["-j", "list", "table", "ip", "kproxy"]).output().expect("run nft");
    if !out.status.success() {
        return None;
    }
    let mut v: Value = serde_json::from_slice(&out.stdout).expect("nft -j output is JSON");
    canonical(&mut v);
    Some(v)
}

fn canonical(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("handle");
            for (k, inner) in map.iter_mut() {
                canonical(inner);
                if k == "elem" {
                    if let Value::Array(items) = inner {
                        items.sort_by_key(|i| i.to_string());
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(canonical),
        _ => {}
    }
}

fn until_served(ns: &Netns, what: &str) -> Duration {
    let vip: SocketAddr = format!("{VIP}:80").parse().unwrap();
    let start = Instant::now();
    loop {
        let t = tally(ns, Proto::Tcp, vip, 12, T).expect("enter pod namespace");
        let servers: Vec<&str> = t.by_server.keys().map(String::as_str).collect();
        if t.answered() == 12 && servers == ["pod1", "pod2"] {
            return start.elapsed();
        }
        assert!(start.elapsed() < CONVERGE, "{what}: the service does not answer from both pods; last tally {t}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tampering_with_kproxys_table_is_logged_counted_and_repaired_within_a_second() {
    let topo = Topology::builder().pods(3).serve(ServerSpec::tcp(&[8080])).build().expect("topology");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("manifests")).expect("manifest dir");
    std::fs::write(dir.path().join("manifests/web.yaml"), manifest()).expect("write manifest");
    let daemon = Daemon::start(&topo.node, dir.path());
    let client = &topo.pod(3).ns;
    until_served(client, "initial programming");
    let baseline = table(&topo.node).expect("kproxy's table exists");

    let cases: [(&str, String, &str); 5] = [
        ("delete the table", "delete table ip kproxy".into(), "deleted table ip kproxy"),
        ("flush the table", "flush table ip kproxy".into(), "rules in chain ip kproxy"),
        ("flush a map", "flush map ip kproxy cluster-backends".into(), "elements in set ip kproxy cluster-backends"),
        (
            "delete one element",
            format!("delete element ip kproxy service-ips {{ {VIP} . tcp . 80 }}"),
            "deleted 1 element in set ip kproxy service-ips",
        ),
        (
            "insert a stray rule",
            format!("insert rule ip kproxy services ip daddr {VIP} drop"),
            "added 1 rule in chain ip kproxy services",
        ),
    ];
    let mut unhealthy_seen = Vec::new();
    for (i, (what, command, logged)) in cases.iter().enumerate() {
        let t0 = Instant::now();
        let out = topo.node.command("nft").arg(command).output().expect("run nft");
        // Not compared with the baseline here: the repair may already be done.
        assert!(out.status.success(), "{what}: `nft {command}` failed: {}", String::from_utf8_lossy(&out.stderr));
        // Bounded: REPAIR, polling /healthz and the table.
        let mut saw_503 = false;
        let took = loop {
            let (status, body) = http_get(&topo.node, HEALTHZ, "/healthz");
            if status == 503 {
                assert!(body.contains("\"rulesetIntact\":false"), "{what}: 503 for another reason: {body}");
                saw_503 = true;
            }
            if status == 200 && table(&topo.node).as_ref() == Some(&baseline) {
                break t0.elapsed();
            }
            assert!(
                t0.elapsed() < REPAIR,
                "{what}: not repaired within {REPAIR:?} (/healthz {status} {body}); log:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        eprintln!("{what}: repaired after {took:?}; /healthz 503 seen: {saw_503}");
        unhealthy_seen.push(saw_503);
        until_served(client, what);
        let log = daemon.log();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("Someone else changed kproxy's rules")).collect();
        assert_eq!(warnings.len(), i + 1, "{what}: expected one warning per tampering; log:\n{log}");
        assert!(warnings[i].contains(logged), "{what}: the warning does not name the change ({logged}): {}", warnings[i]);
        assert!(warnings[i].contains("`nft`"), "{what}: the warning does not name the process: {}", warnings[i]);
        assert_eq!(counter(&topo.node, "kproxy_ruleset_tampering_detected_total"), (i + 1) as f64, "{what}");
        assert_eq!(counter(&topo.node, "kproxy_ruleset_tampering_repairs_total"), (i + 1) as f64, "{what}");
    }
    // Each tampering after the first comes less than minSyncPeriod after the previous repair,
    // so the repair waits and /healthz must be seen unhealthy meanwhile.
    assert!(unhealthy_seen[1..].iter().all(|s| *s), "/healthz was not seen 503 while tampered: {unhealthy_seen:?}");
    // kproxy's own syncs are never mistaken for tampering (they ran throughout).
    let log = daemon.log();
    assert!(log.contains("Repaired kproxy's rules"), "{log}");
    for line in log.lines().filter(|l| l.contains("Someone else changed")) {
        eprintln!("{line}");
    }
}
