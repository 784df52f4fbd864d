//! healthCheckNodePort servers of a running daemon answer on both families, on the addresses
//! NodePorts are served on (`nodePortAddresses: primary` -> the Node's InternalIPs), and not
//! on the node's other addresses. The real binary in a throw-away namespace (root).

#[path = "daemon_support/netns.rs"]
mod netns;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netns::Netns;

const HC_PORT: u16 = 30911;

const MANIFESTS: &str = r#"apiVersion: v1
kind: Node
metadata: {name: node-1}
status:
  addresses:
  - {type: InternalIP, address: 198.19.0.7}
  - {type: InternalIP, address: "2001:db8:c::7"}
---
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: shop}
spec:
  type: LoadBalancer
  clusterIP: 198.19.160.20
  clusterIPs: [198.19.160.20]
  ipFamilies: [IPv4]
  externalTrafficPolicy: Local
  healthCheckNodePort: 30911
  ports: [{name: http, port: 80, nodePort: 30080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: lb-1
  namespace: shop
  labels: {kubernetes.io/service-name: lb}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [198.18.0.10]
  conditions: {ready: true}
  nodeName: node-1
"#;

/// `GET /` from inside the namespace: the status line, or the connect error.
fn get(ns: &Netns, addr: SocketAddr) -> Result<String, String> {
    ns.enter(|| {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    })
}

#[test]
fn health_check_node_port_answers_on_both_families_of_the_node_ips() {
    let ns = Netns::new("kp-hcnode").expect("a network namespace (run as root)");
    ns.run("ip", &["link", "set", "lo", "up"]).unwrap();
    ns.run("ip", &["link", "add", "br0", "type", "bridge"]).unwrap();
    ns.run("ip", &["link", "set", "br0", "up"]).unwrap();
    for addr in ["198.19.0.7/24", "198.19.1.7/24"] {
        ns.run("ip", &["addr", "add", addr, "dev", "br0"]).unwrap();
    }
    ns.run("ip", &["-6", "addr", "add", "2001:db8:c::7/64", "dev", "br0", "nodad"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.yaml"), MANIFESTS).unwrap();

    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), env!("CARGO_BIN_EXE_kproxy"), "--hostname-override=node-1"])
        .args(["--cluster-cidr=198.18.0.0/16", "--metrics-bind-address=", "--healthz-bind-address=127.0.0.1:10256"])
        .arg("--manifests")
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kproxy");
    let v4: SocketAddr = format!("198.19.0.7:{HC_PORT}").parse().unwrap();
    let v6: SocketAddr = format!("[2001:db8:c::7]:{HC_PORT}").parse().unwrap();
    let started = Instant::now();
    let mut first = get(&ns, v4);
    while first.is_err() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        first = get(&ns, v4);
    }
    let results = [(v4, first), (v6, get(&ns, v6))];
    let other: SocketAddr = format!("198.19.1.7:{HC_PORT}").parse().unwrap();
    let not_served = get(&ns, other);
    let _ = child.kill();
    let _ = child.wait();
    for (addr, result) in results {
        let text = result.unwrap_or_else(|e| panic!("{addr}: {e}"));
        assert!(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"), "{addr}: {text}");
        assert!(text.contains("\"localEndpoints\":1"), "{addr}: {text}");
    }
    let err = not_served.expect_err("198.19.1.7 is not a NodePort address: nothing listens there");
    assert!(err.contains("refused"), "{err}");
}
