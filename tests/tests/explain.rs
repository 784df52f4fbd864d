//! `kproxy explain` on a node namespace programmed by `kproxy --once` from manifests: a
//! healthy node (a dual-stack LoadBalancer Service with ready, terminating and remote
//! endpoints: destinations, endpoint categories, "in sync", exit 0, and the endpoints it
//! names are the ones real connections reach), then a broken one (an element deleted and a
//! stray one added with `nft`): explain names each difference and exits 1, another Service
//! stays in sync, and real traffic confirms the missing element. Also exit 3 for an unknown
//! Service and 2 for a bad target. The Service has loadBalancerSourceRanges, so the
//! concatenated-interval set (`firewall-allow`) is compared as the kernel lists it too.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use kproxy_tests::{kproxy_binary, tally, Netns, Proto, ServerSpec, Topology};
use serde_json::Value;

const T: Duration = Duration::from_millis(800);

/// Node, ServiceCIDR, `t/web` (LoadBalancer, dual-stack: pod1 ready and local, pod2
/// terminating (serving) and local, pod3 ready on another node) and `t/other` (ClusterIP,
/// pod1).
const MANIFESTS: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: node-1}
spec: {podCIDRs: ["198.18.0.0/24", "2001:db8:a::/64"]}
status:
  addresses:
  - {type: InternalIP, address: 198.19.0.1}
  - {type: InternalIP, address: "2001:db8:c::1"}
---
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: kubernetes}
spec: {cidrs: ["198.19.160.0/20", "2001:db8:b::/112"]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: t}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  clusterIP: 198.19.160.10
  clusterIPs: ["198.19.160.10", "2001:db8:b::10"]
  loadBalancerSourceRanges: ["198.19.64.0/24", "2001:db8:c:64::/64"]
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}
status:
  loadBalancer:
    ingress: [{ip: 198.19.200.5}, {ip: "2001:db8:c:200::5"}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-4, namespace: t, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: ["198.18.0.11"], conditions: {ready: true}, nodeName: node-1}
- {addresses: ["198.18.0.12"], conditions: {ready: false, serving: true, terminating: true}, nodeName: node-1}
- {addresses: ["198.18.0.13"], conditions: {ready: true}, nodeName: node-2}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-6, namespace: t, labels: {kubernetes.io/service-name: web}}
addressType: IPv6
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: ["2001:db8:a::11"], conditions: {ready: true}, nodeName: node-1}
- {addresses: ["2001:db8:a::12"], conditions: {ready: false, serving: true, terminating: true}, nodeName: node-1}
- {addresses: ["2001:db8:a::13"], conditions: {ready: true}, nodeName: node-2}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: t}
spec:
  clusterIP: 198.19.160.20
  clusterIPs: ["198.19.160.20"]
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other-4, namespace: t, labels: {kubernetes.io/service-name: other}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: ["198.18.0.11"], conditions: {ready: true}, nodeName: node-1}
"#;

/// The daemon's flags, the same for `--once` and `explain`.
fn flags(dir: &Path) -> Vec<String> {
    ["--manifests", dir.to_str().expect("utf-8 path"), "--hostname-override", "node-1", "--cluster-cidr", "198.18.0.0/16,2001:db8:a::/48"]
        .map(String::from)
        .to_vec()
}

fn kproxy(node: &Netns, args: &[String]) -> Output {
    node.command(kproxy_binary().expect("kproxy binary")).args(args).output().expect("run kproxy")
}

/// `kproxy explain TARGET -o json`: exit code, the JSON of the last stdout line, and all
/// the output (for messages).
fn explain(node: &Netns, dir: &Path, target: &str) -> (i32, Value, String) {
    let mut args = vec!["explain".to_string(), target.to_string(), "-o".into(), "json".into()];
    args.extend(flags(dir));
    let out = kproxy(node, &args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    let json = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    (out.status.code().expect("exit code"), json, all)
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array().expect("an array").iter().map(|x| x.as_str().expect("a string").to_string()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The port object of one family.
fn port<'a>(report: &'a Value, family: &str) -> &'a Value {
    report["ports"].as_array().expect("ports").iter().find(|p| p["family"] == family).unwrap_or_else(|| panic!("no {family} port in {report}"))
}

#[test]
fn explain_a_healthy_then_a_broken_node() {
    let topo = Topology::builder().pods(3).serve(ServerSpec::tcp(&[8080])).build().expect("topology");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("all.yaml"), MANIFESTS).expect("manifests");
    let mut once = vec!["--once".to_string()];
    once.extend(flags(dir.path()));
    let out = kproxy(&topo.node, &once);
    assert!(out.status.success(), "kproxy --once failed:\n{}", String::from_utf8_lossy(&out.stderr));

    // Healthy: everything in place, exit 0.
    let (code, r, text) = explain(&topo.node, dir.path(), "t/web");
    assert_eq!(code, 0, "explain of a healthy node:\n{text}");
    assert_eq!(r["service"], "t/web");
    assert_eq!(r["in_sync"], true, "{text}");
    assert_eq!(r["drift"], serde_json::json!([]), "{text}");
    for (family, [p1, p2, p3], cip, node, lb) in [
        ("IPv4", ["198.18.0.11:8080", "198.18.0.12:8080", "198.18.0.13:8080"], "198.19.160.10:80", "198.19.0.1:30080", "198.19.200.5:80"),
        ("IPv6", ["[2001:db8:a::11]:8080", "[2001:db8:a::12]:8080", "[2001:db8:a::13]:8080"], "[2001:db8:b::10]:80", "[2001:db8:c::1]:30080", "[2001:db8:c:200::5]:80"),
    ] {
        let p = port(&r, family);
        let dests: BTreeSet<String> = p["destinations"].as_array().unwrap().iter().map(|d| format!("{} {}", d["kind"].as_str().unwrap(), d["address"].as_str().unwrap())).collect();
        assert_eq!(dests, set(&[&format!("ClusterIP {cip}"), &format!("NodePort {node}"), &format!("LoadBalancerIP {lb}")]), "{family}: {text}");
        let c = &p["categories"];
        assert_eq!(strings(&c["ready"]), set(&[p1, p3]), "{family}");
        assert_eq!(strings(&c["serving"]), set(&[p1, p2, p3]), "{family}");
        assert_eq!(strings(&c["terminating"]), set(&[p2]), "{family}");
        assert_eq!(strings(&c["local"]), set(&[p1, p2]), "{family}");
        assert_eq!(strings(&c["remote"]), set(&[p3]), "{family}");
        // Ready endpoints exist, so the terminating one gets no traffic; eTP=Cluster.
        assert_eq!(strings(&p["policies"]["internal"]["endpoints"]), set(&[p1, p3]), "{family}");
        assert_eq!(strings(&p["policies"]["external"]["endpoints"]), set(&[p1, p3]), "{family}");
        assert_eq!(strings(&p["local_endpoints"]), set(&[p1]), "{family}");
        assert!(p["masquerade"]["external"].as_str().unwrap().starts_with("always"), "{family}: {text}");
        assert_eq!(p["load_balancer_source_ranges"].as_array().map(Vec::len), Some(1), "{family}: {text}");
    }
    assert!(text.contains("kernel: in sync"), "{text}");
    eprintln!("--- kproxy explain t/web (healthy):\n{text}");

    // The endpoints explain names for the LoadBalancer IP are the ones real connections
    // from outside reach (pod1 and pod3, never the terminating pod2).
    let lb: SocketAddr = "198.19.200.5:80".parse().unwrap();
    let t = tally(&topo.client().ns, Proto::Tcp, lb, 24, T).expect("client namespace");
    assert_eq!(t.answered(), 24, "{t}");
    assert_eq!(t.by_server.keys().cloned().collect::<BTreeSet<_>>(), set(&["pod1", "pod3"]), "{t}");

    // A destination names its Service; an unknown Service is exit 3, a bad target exit 2.
    let (code, r, text) = explain(&topo.node, dir.path(), "198.19.200.5:80/tcp");
    assert_eq!((code, r["service"].as_str()), (0, Some("t/web")), "{text}");
    let (code, _, text) = explain(&topo.node, dir.path(), "t/nope");
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("no Service t/nope"), "{text}");
    let (code, _, text) = explain(&topo.node, dir.path(), "nonsense");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("NAMESPACE/NAME"), "{text}");
    let missing = kproxy(&topo.node, &["explain".to_string()]);
    assert_eq!(missing.status.code(), Some(2), "no target: {}", String::from_utf8_lossy(&missing.stderr));

    // Broken: one element deleted in each family, and a stray one added.
    let cip: SocketAddr = "198.19.160.10:80".parse().unwrap();
    assert_eq!(tally(&topo.pod(2).ns, Proto::Tcp, cip, 4, T).expect("pod").answered(), 4, "ClusterIP served before the damage");
    for cmd in [
        "delete element ip kproxy service-ips { 198.19.160.10 . tcp . 80 }",
        "add element ip kproxy service-ips { 198.19.160.10 . tcp . 81 : goto cluster-2 }",
        "delete element ip6 kproxy cluster-ips { 2001:db8:b::10 }",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        topo.node.exec(std::iter::once("nft").chain(args)).unwrap_or_else(|e| panic!("nft {cmd}: {e}"));
    }
    let (code, r, text) = explain(&topo.node, dir.path(), "t/web");
    assert_eq!(code, 1, "explain of a broken node:\n{text}");
    assert_eq!(r["in_sync"], false);
    assert_eq!(
        strings(&r["drift"]),
        set(&[
            "missing: element 198.19.160.10 . tcp . 80 : goto cluster-2 in map ip kproxy service-ips (comment \"t/web:http\")",
            "extra: element 198.19.160.10 . tcp . 81 : goto cluster-2 in map ip kproxy service-ips",
            "missing: element 2001:db8:b::10 in set ip6 kproxy cluster-ips (comment \"t/web\")",
        ]),
        "{text}"
    );
    assert!(text.contains("kernel: DRIFT, 3 difference(s)"), "{text}");
    eprintln!("--- kproxy explain t/web (broken):\n{text}");
    // Another Service is untouched: in sync, exit 0.
    let (code, r, text) = explain(&topo.node, dir.path(), "t/other");
    assert_eq!((code, &r["in_sync"]), (0, &Value::Bool(true)), "{text}");
    // The kernel agrees with "missing": the ClusterIP is no longer DNATed (the
    // cluster-ips check rejects it).
    let t = tally(&topo.pod(2).ns, Proto::Tcp, cip, 4, T).expect("pod");
    assert_eq!(t.answered(), 0, "ClusterIP still served without its service-ips element: {t}");
}
