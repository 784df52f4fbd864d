//! A (re)started `kproxy` daemon whose node IPs come from its Node object
//! (`nodePortAddresses: primary`, no bindAddress) must not program the node without its
//! NodePorts: the API server (a stub in the node namespace) lists the Service and its
//! EndpointSlice at once but delivers the Node a moment later, on its watch. The first
//! ruleset kproxy commits already has the node IP in `nodeport-ips`, and a client reaches the
//! NodePort with real packets.

mod api_stub;

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use api_stub::{Answer, ApiStub};
use kproxy_tests::{kproxy_binary, tally, Proto, ServerSpec, Topology};

/// When the Node's ADDED event comes, after its watch starts.
const NODE_LATE: Duration = Duration::from_millis(1500);

fn list(kind: &str, api_version: &str, items: &[String]) -> String {
    format!(r#"{{"kind":"{kind}","apiVersion":"{api_version}","metadata":{{"resourceVersion":"1"}},"items":[{}]}}"#, items.join(","))
}

/// JSON written over several lines, as one line (a watch event is one line).
fn one_line(json: &str) -> String {
    json.lines().map(str::trim).collect()
}

fn api(path: &str, node_ip: &str, pod_ip: &str) -> Answer {
    let watch = path.contains("watch=true") || path.contains("watch=1");
    let service = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"t","uid":"u1","resourceVersion":"1"},
        "spec":{"type":"NodePort","clusterIP":"198.19.160.10","clusterIPs":["198.19.160.10"],"ipFamilies":["IPv4"],
        "ports":[{"name":"http","port":80,"targetPort":8080,"protocol":"TCP","nodePort":30080}]}}"#;
    let slice = format!(
        r#"{{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{{"name":"web-a","namespace":"t","uid":"u2",
        "resourceVersion":"1","labels":{{"kubernetes.io/service-name":"web"}}}},"addressType":"IPv4",
        "ports":[{{"name":"http","port":8080,"protocol":"TCP"}}],
        "endpoints":[{{"addresses":["{pod_ip}"],"conditions":{{"ready":true}},"nodeName":"node-1"}}]}}"#
    );
    let node = one_line(&format!(
        r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"node-1","uid":"u3","resourceVersion":"2"}},
        "status":{{"addresses":[{{"type":"InternalIP","address":"{node_ip}"}}]}}}}"#
    ));
    let p = path.split('?').next().unwrap_or(path);
    match (p, watch) {
        (_, true) if p == "/api/v1/nodes" => {
            Answer::Stream(vec![(NODE_LATE, format!(r#"{{"type":"ADDED","object":{node}}}"#))])
        }
        (_, true) => Answer::Stream(Vec::new()),
        ("/api/v1/services", false) => Answer::Once(200, list("ServiceList", "v1", &[one_line(service)])),
        ("/apis/discovery.k8s.io/v1/endpointslices", false) => {
            Answer::Once(200, list("EndpointSliceList", "discovery.k8s.io/v1", &[one_line(&slice)]))
        }
        ("/apis/networking.k8s.io/v1/servicecidrs", false) => {
            Answer::Once(200, list("ServiceCIDRList", "networking.k8s.io/v1", &[]))
        }
        // The Node is not listed yet: it arrives on the watch.
        ("/api/v1/nodes", false) => Answer::Once(200, list("NodeList", "v1", &[])),
        _ => Answer::Once(404, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#.into()),
    }
}

/// The daemon, killed when the test ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_restarted_daemon_programs_nodeports_from_its_first_sync() {
    let topo = Topology::builder().pods(1).clients(1).serve(ServerSpec::tcp(&[8080])).build().expect("topology");
    let node_ip = topo.node_ipv4().to_string();
    let pod_ip = topo.pod(1).ipv4.to_string();
    let stub = {
        let (node_ip, pod_ip) = (node_ip.clone(), pod_ip.clone());
        ApiStub::start(&topo.node, move |path| api(path, &node_ip, &pod_ip))
    };
    let log_dir = tempfile::tempdir().expect("temp dir");
    let log_path = log_dir.path().join("kproxy.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let started = Instant::now();
    let _daemon = Daemon(
        topo.node
            .command(kproxy_binary().expect("kproxy binary"))
            .args(["--master", &format!("http://{}", stub.addr())])
            .args(["--hostname-override", "node-1", "--cluster-cidr", "198.18.0.0/16"])
            .args(["--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start kproxy"),
    );

    // The first ruleset kproxy commits (polled; the Node comes NODE_LATE after its watch).
    let first = loop {
        let set = topo.node.exec(["nft", "list", "set", "ip", "kproxy", "nodeport-ips"]);
        if let Ok(text) = set {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "kproxy programmed nothing within 15 s; log:\n{}", log());
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(
        first.contains(&node_ip),
        "kproxy's first ruleset (after {:?}) has no NodePort address {node_ip}: it did not wait for the Node:\n{first}\nlog:\n{}",
        started.elapsed(),
        log()
    );
    // And it serves: a client reaches the NodePort on the node IP.
    let nodeport = SocketAddr::new(topo.node_ipv4().into(), 30080);
    let t = tally(&topo.client().ns, Proto::Tcp, nodeport, 6, Duration::from_millis(800)).expect("client namespace");
    assert_eq!(t.answered(), 6, "NodePort {nodeport}: {t}; log:\n{}", log());
    assert!(t.by_server.contains_key("pod1"), "{t}");
    assert!(stub.served() >= 8, "lists and watches of four kinds went through the stub");
}

