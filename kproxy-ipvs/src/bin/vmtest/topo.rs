//! The test topology inside the VM, all in namespaces this process creates:
//!
//! ```text
//!   ext (198.19.64.10, 2001:db8:c::100)
//!     | veth
//!   node (eth0 198.19.0.2 + 198.19.64.1, 2001:db8:c::2; br0 198.18.0.1/16, 2001:db8:a::1/64;
//!     |   kube-ipvs0 created by the backend)
//!     | bridge br0
//!   pod-0 .. pod-N (198.18.1.(2+i), 2001:db8:a::(2+i)), each running TCP and UDP servers on
//!   port 8080 that answer "<pod name> <peer address>".
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use crate::netns::Netns;

/// Port every pod server listens on (TCP and UDP).
pub const POD_PORT: u16 = 8080;
/// The node's address on the external link (NodePort address).
pub const NODE_IP: &str = "198.19.0.2";
/// The node's IPv6 address.
pub const NODE_IP6: &str = "2001:db8:c::2";
/// The node's address on the pod bridge: what masqueraded traffic comes from.
pub const BRIDGE_IP: &str = "198.18.0.1";
/// The external client.
pub const EXT_IP: &str = "198.19.64.10";
/// The external client, IPv6.
pub const EXT_IP6: &str = "2001:db8:c::100";
/// The per-namespace switch of br_netfilter for IPv4.
pub const BR_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
const TIMEOUT: Duration = Duration::from_secs(3);

/// The namespaces of one test topology (deleted on drop, pods first).
pub struct Topology {
    /// Pods, in order.
    pub pods: Vec<Netns>,
    /// The external client.
    pub ext: Netns,
    /// The node (where IPVS is programmed).
    pub node: Netns,
}

/// Address of pod `i`.
pub fn pod_ip(i: usize) -> IpAddr {
    format!("198.18.1.{}", 2 + i)
        .parse()
        .expect("valid literal")
}

/// IPv6 address of pod `i`.
pub fn pod_ip6(i: usize) -> IpAddr {
    format!("2001:db8:a::{}", 2 + i)
        .parse()
        .expect("valid literal")
}

/// Name pod `i` answers with.
pub fn pod_name(i: usize) -> String {
    format!("pod-{i}")
}

impl Topology {
    /// Build the topology with `n` pods (`pod-i` at [`pod_ip`] / [`pod_ip6`]) and start
    /// their servers.
    pub fn new(n: usize) -> Result<Topology, String> {
        let pods: Vec<(String, IpAddr, IpAddr)> = (0..n)
            .map(|i| (pod_name(i), pod_ip(i), pod_ip6(i)))
            .collect();
        Topology::with_pods(&pods)
    }

    /// Build the topology with the given pods (name, IPv4, IPv6) and start their servers.
    pub fn with_pods(pods: &[(String, IpAddr, IpAddr)]) -> Result<Topology, String> {
        let node = Netns::new("node")?;
        let ext = Netns::new("ext")?;
        node.ip("link add br0 type bridge")?;
        node.ip("link set br0 up")?;
        node.ip("addr add 198.18.0.1/16 dev br0")?;
        node.ip("addr add 2001:db8:a::1/64 dev br0 nodad")?;
        node.ip(&format!(
            "link add eth0 type veth peer name eth0 netns {}",
            ext.name
        ))?;
        node.ip("link set eth0 up")?;
        node.ip(&format!("addr add {NODE_IP}/24 dev eth0"))?;
        node.ip("addr add 198.19.64.1/24 dev eth0")?;
        node.ip(&format!("addr add {NODE_IP6}/64 dev eth0 nodad"))?;
        ext.ip("link set eth0 up")?;
        ext.ip(&format!("addr add {EXT_IP}/24 dev eth0"))?;
        ext.ip(&format!("addr add {EXT_IP6}/64 dev eth0 nodad"))?;
        ext.ip("route add default via 198.19.64.1")?;
        ext.ip(&format!("-6 route add default via {NODE_IP6}"))?;
        node.run(|| std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1"))?
            .map_err(|e| format!("ipv6 forwarding: {e}"))?;
        // As on Kubernetes nodes: bridged pod traffic goes through the IP hooks (br_netfilter),
        // and pod ports are in hairpin mode (a pod reaching itself through a service gets its
        // reply back out of the port it came in).
        node.run(|| std::fs::write(BR_NF_CALL_IPTABLES, "1"))?
            .map_err(|e| format!("{BR_NF_CALL_IPTABLES} (br_netfilter loaded?): {e}"))?;
        let mut topo = Topology {
            pods: Vec::new(),
            ext,
            node,
        };
        for (i, (name, v4, v6)) in pods.iter().enumerate() {
            let pod = Netns::new(&format!("pod{i}"))?;
            topo.node.ip(&format!(
                "link add vp{i} type veth peer name eth0 netns {}",
                pod.name
            ))?;
            topo.node.ip(&format!("link set vp{i} master br0 up"))?;
            topo.node
                .ip(&format!("link set vp{i} type bridge_slave hairpin on"))?;
            pod.ip("link set eth0 up")?;
            pod.ip(&format!("addr add {v4}/16 dev eth0"))?;
            pod.ip(&format!("addr add {v6}/64 dev eth0 nodad"))?;
            pod.ip("route add default via 198.18.0.1")?;
            pod.ip("-6 route add default via 2001:db8:a::1")?;
            start_servers(&pod, name.clone())?;
            topo.pods.push(pod);
        }
        Ok(topo)
    }
}

fn canonical(peer: SocketAddr) -> IpAddr {
    peer.ip().to_canonical()
}

/// TCP and UDP servers on `[::]:8080` (dual stack) answering `"<name> <peer>"`.
pub fn start_servers(pod: &Netns, name: String) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let n = name.clone();
    let tx2 = tx.clone();
    pod.spawn(move || {
        let listener = match TcpListener::bind(("::", POD_PORT)) {
            Ok(l) => {
                let _ = tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = tx.send(Err(format!("tcp bind: {e}")));
                return;
            }
        };
        for stream in listener.incoming().flatten() {
            let n = n.clone();
            std::thread::spawn(move || serve_tcp(stream, &n));
        }
    });
    pod.spawn(move || {
        let sock = match UdpSocket::bind(("::", POD_PORT)) {
            Ok(s) => {
                let _ = tx2.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = tx2.send(Err(format!("udp bind: {e}")));
                return;
            }
        };
        let mut buf = [0u8; 512];
        while let Ok((_, peer)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(format!("{name} {}\n", canonical(peer)).as_bytes(), peer);
        }
    });
    for _ in 0..2 {
        rx.recv_timeout(TIMEOUT)
            .map_err(|_| "server did not start".to_string())??;
    }
    Ok(())
}

fn serve_tcp(mut stream: TcpStream, name: &str) {
    let Ok(peer) = stream.peer_addr() else { return };
    if stream
        .write_all(format!("{name} {}\n", canonical(peer)).as_bytes())
        .is_err()
    {
        return;
    }
    let Ok(read) = stream.try_clone() else { return };
    for line in BufReader::new(read).lines() {
        let Ok(line) = line else { return };
        if stream
            .write_all(format!("{name} {line}\n").as_bytes())
            .is_err()
        {
            return;
        }
    }
}

/// An answer: which pod, and the client address it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Pod name.
    pub pod: String,
    /// Peer address the pod saw.
    pub peer: String,
}

fn parse_answer(line: &str) -> Result<Answer, String> {
    let mut it = line.split_whitespace();
    match (it.next(), it.next()) {
        (Some(pod), Some(peer)) => Ok(Answer {
            pod: pod.into(),
            peer: peer.into(),
        }),
        _ => Err(format!("malformed answer {line:?}")),
    }
}

/// An open TCP connection from a namespace, with its greeting.
pub struct Conn {
    /// The greeting.
    pub answer: Answer,
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Send a line and read the echo's pod name.
    pub fn echo(&mut self, line: &str) -> Result<String, String> {
        self.reader
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("echo write: {e}"))?;
        let mut reply = String::new();
        self.reader
            .read_line(&mut reply)
            .map_err(|e| format!("echo read: {e}"))?;
        Ok(reply.split_whitespace().next().unwrap_or("").to_string())
    }
}

/// Connect over TCP from `ns` to `addr` (bounded by a timeout) and read the greeting.
pub fn tcp_open(ns: &Netns, addr: SocketAddr) -> Result<Conn, String> {
    ns.run(move || {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        Ok(Conn {
            answer: parse_answer(&line)?,
            reader,
        })
    })?
}

/// One TCP query (connect, greeting, close).
pub fn tcp_query(ns: &Netns, addr: SocketAddr) -> Result<Answer, String> {
    tcp_open(ns, addr).map(|c| c.answer)
}

/// One UDP query from `ns`.
pub fn udp_query(ns: &Netns, addr: SocketAddr) -> Result<Answer, String> {
    ns.run(move || {
        let bind: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .expect("literal");
        let sock = UdpSocket::bind(bind).map_err(|e| format!("udp bind: {e}"))?;
        sock.set_read_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        sock.connect(addr)
            .map_err(|e| format!("udp connect {addr}: {e}"))?;
        sock.send(b"q")
            .map_err(|e| format!("udp send {addr}: {e}"))?;
        let mut buf = [0u8; 512];
        let n = sock
            .recv(&mut buf)
            .map_err(|e| format!("udp recv from {addr}: {e}"))?;
        parse_answer(&String::from_utf8_lossy(&buf[..n]))
    })?
}
