//! One "world" of the lab: an underlay, node namespaces with pod bridges and pods, and an
//! external client, all in namespaces this process created (deleted on drop).
//!
//! Every world has the same addresses, so a probe in the kproxy world and the same probe in
//! the kube-proxy world differ only in the proxy that handled it.
//!
//! | what                 | address                                   |
//! |----------------------|-------------------------------------------|
//! | node i (underlay)    | 198.19.0.(10+i)/24 on `eth0`              |
//! | node i pod CIDR      | 198.18.i.0/24, bridge `kbr0` 198.18.i.1    |
//! | pod k on node i      | 198.18.i.(10+k)/32                         |
//! | client pod on node 1 | 198.18.1.10/32 (no server, no Service selects it) |
//! | external client      | 198.19.64.11/24, 198.19.0.0/16 via node 1  |
//! | nodes' default route | via 198.19.0.1 (absent: unrouted = dropped) |

use std::net::Ipv4Addr;

use kproxy_tests::{add_bridge, attach_veth, new_netns, HarnessError, Netns, ServerSpec, TestServer};

/// Nodes per world.
pub const NODES: u8 = 3;
/// Pods per node.
pub const PODS_PER_NODE: u8 = 2;
/// The TCP port every pod's server listens on (the Services' TCP targetPort).
pub const POD_TCP: u16 = 8080;
/// The UDP port every pod's server listens on (the Services' UDP targetPort).
pub const POD_UDP: u16 = 5353;
/// The client pod's address: a pod on node 1 that no Service selects, so a probe from it
/// never lands on itself (which endpoint a request picks is random; hairpin is its own
/// question).
pub const CLIENT_POD_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
/// The external client's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 64, 11);
/// The nodes' default gateway: an underlay address nothing holds.
const DEFAULT_ROUTER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The underlay bridge (in the world's underlay namespace).
const UNDERLAY_BRIDGE: &str = "ul0";

/// `node-i`: the Node object and `--hostname-override` of node `i` in every world.
pub fn node_name(i: u8) -> String {
    format!("node-{i}")
}

/// Node `i`'s underlay address.
pub fn node_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 0, 10 + i)
}

/// Node `i`'s pod CIDR.
pub fn pod_cidr(i: u8) -> String {
    format!("198.18.{i}.0/24")
}

/// Pod `k` of node `i`: its name (also what its server answers with) and address.
pub fn pod(i: u8, k: u8) -> (String, Ipv4Addr) {
    (format!("pod-{i}-{k}"), Ipv4Addr::new(198, 18, i, 10 + k))
}

/// A node namespace and its pods.
pub struct Node {
    /// 1-based index.
    pub index: u8,
    /// The node's network namespace (where its proxy runs).
    pub ns: Netns,
    /// The pods' namespaces, in index order.
    pub pods: Vec<Netns>,
}

/// One copy of the cluster network.
pub struct World {
    /// Dropped first: the servers, then the namespaces.
    servers: Vec<TestServer>,
    /// `kproxy` or `kube-proxy-nftables`: names the world in output.
    pub label: String,
    /// The nodes, in index order.
    pub nodes: Vec<Node>,
    /// The external client on the underlay.
    pub client: Netns,
    /// The client pod on node 1 (see [`CLIENT_POD_IP`]).
    pub client_pod: Netns,
    /// Holds the underlay bridge; nothing runs in it.
    pub underlay: Netns,
}

impl World {
    /// Creates the namespaces, links, addresses, routes and pod servers.
    pub fn build(label: &str) -> Result<World, HarnessError> {
        let underlay = new_netns(&format!("{label}-ul"))?;
        underlay.exec(["ip", "link", "add", UNDERLAY_BRIDGE, "type", "bridge"])?;
        underlay.exec(["ip", "link", "set", UNDERLAY_BRIDGE, "up"])?;
        let client = new_netns(&format!("{label}-client"))?;
        let client_pod = new_netns(&format!("{label}-client-pod"))?;
        let mut world = World {
            servers: Vec::new(),
            label: label.to_string(),
            nodes: Vec::new(),
            client,
            client_pod,
            underlay,
        };
        attach_veth(&world.underlay, "client", &world.client, UNDERLAY_BRIDGE)?;
        let c = &world.client;
        c.exec(["ip", "addr", "add", &format!("{CLIENT_IP}/24"), "dev", "eth0"])?;
        c.exec(["ip", "link", "set", "eth0", "up"])?;
        c.exec(["ip", "route", "add", "198.19.0.0/24", "dev", "eth0"])?;
        // Services' LB IPs and ExternalIPs are reached through node 1, as an external
        // router would send them to one node.
        c.exec(["ip", "route", "add", "198.19.0.0/16", "via", &node_ip(1).to_string()])?;
        for i in 1..=NODES {
            let node = world.add_node(i)?;
            world.nodes.push(node);
        }
        Ok(world)
    }

    fn add_node(&mut self, i: u8) -> Result<Node, HarnessError> {
        let ns = new_netns(&format!("{}-n{i}", self.label))?;
        ns.sysctl("net.ipv4.conf.default.send_redirects", "0")?;
        ns.sysctl("net.ipv4.conf.all.send_redirects", "0")?;
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        attach_veth(&self.underlay, &format!("n{i}"), &ns, UNDERLAY_BRIDGE)?;
        ns.exec(["ip", "addr", "add", &format!("{}/24", node_ip(i)), "dev", "eth0"])?;
        ns.exec(["ip", "link", "set", "eth0", "up"])?;
        ns.exec(["ip", "route", "add", "198.19.64.0/24", "dev", "eth0"])?;
        // As on a real node: a default route (to an underlay router that does not exist), so
        // the node's own connections to Service IPs get routed and then DNATed.
        ns.exec(["ip", "route", "add", "default", "via", &DEFAULT_ROUTER.to_string(), "dev", "eth0"])?;
        for j in (1..=NODES).filter(|&j| j != i) {
            ns.exec(["ip", "route", "add", &pod_cidr(j), "via", &node_ip(j).to_string()])?;
        }
        let gw = Ipv4Addr::new(198, 18, i, 1);
        add_bridge(&ns, "kbr0", &format!("{gw}/24"), &format!("2001:db8:a:{i}::1/64"))?;
        if i == 1 {
            plug_pod(&ns, "vp0", &self.client_pod, CLIENT_POD_IP, gw)?;
        }
        let mut pods = Vec::new();
        for k in 1..=PODS_PER_NODE {
            let (name, ip) = pod(i, k);
            let p = new_netns(&format!("{}-{name}", self.label))?;
            plug_pod(&ns, &format!("vp{k}"), &p, ip, gw)?;
            self.servers.push(TestServer::start(&p, &name, &ServerSpec { tcp: vec![POD_TCP], udp: vec![POD_UDP] })?);
            pods.push(p);
        }
        Ok(Node { index: i, ns, pods })
    }
}

/// Plugs pod namespace `p` into `node`'s bridge as `port`, with `ip`/32 and an on-link
/// default route via the bridge `gw` (all pod traffic is routed by the node).
fn plug_pod(node: &Netns, port: &str, p: &Netns, ip: Ipv4Addr, gw: Ipv4Addr) -> Result<(), HarnessError> {
    attach_veth(node, port, p, "kbr0")?;
    p.exec(["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
    p.exec(["ip", "link", "set", "eth0", "up"])?;
    p.exec(["ip", "route", "add", "default", "via", &gw.to_string(), "dev", "eth0", "onlink"])?;
    Ok(())
}
