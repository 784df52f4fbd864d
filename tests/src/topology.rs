//! [`Topology`]: a node namespace with a pod bridge, pods, and external clients.
//!
//! ```text
//!  pod1 (eth0 198.18.0.11) --vp1--+                        +--ext-c1-- client1 (198.19.64.11)
//!  pod2 (eth0 198.18.0.12) --vp2--+-- kbr0 [node] ext0 -----+--ext-c2-- client2 (198.19.64.12)
//!  pod3 (eth0 198.18.0.13) --vp3--+   198.18.0.1   198.19.0.1
//! ```
//! `kbr0` and `ext0` are bridges inside the node namespace; each pod and each client has a
//! veth into one of them.
//! The node namespace forwards (ip_forward, IPv6 forwarding) between the pod bridge and the
//! uplink and has a default route out of the uplink; kproxy runs there.
//!
//! Pods hold host addresses (/32, /128) with an on-link default route to the bridge
//! address, so all their traffic, pod-to-pod included, is routed by the node: a DNATed
//! connection is seen by the node's conntrack in both directions, as on a routed CNI, and
//! nothing depends on the host kernel's bridge-netfilter settings (they are turned off in
//! the node namespace). No namespace follows ICMP redirects or rate-limits ICMP errors;
//! IPv6 DAD and bridge multicast snooping are off so a fresh topology answers at once.
//!
//! Clients route the service, node, ExternalIP and LB ranges via the node, but not pod
//! IPs. Addresses follow [`crate::plan`]. Nothing is connected to the root namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::plan::{self, BRIDGE, MAX_INDEX, UPLINK};
use crate::{require_root, HarnessError, Netns, ServerSpec, TestServer};

/// Builds a [`Topology`]; see the module docs for its shape.
#[derive(Debug, Clone)]
pub struct TopologyBuilder {
    pods: u8,
    clients: u8,
    serve: Option<ServerSpec>,
}

impl Default for TopologyBuilder {
    fn default() -> Self {
        TopologyBuilder {
            pods: 3,
            clients: 1,
            serve: None,
        }
    }
}

impl TopologyBuilder {
    /// Number of pod namespaces (default 3, at most [`plan::MAX_INDEX`]).
    pub fn pods(mut self, n: u8) -> Self {
        self.pods = n;
        self
    }

    /// Number of external client namespaces (default 1).
    pub fn clients(mut self, n: u8) -> Self {
        self.clients = n;
        self
    }

    /// Starts a test server with these ports in every pod, replying with the pod's name.
    pub fn serve(mut self, spec: ServerSpec) -> Self {
        self.serve = Some(spec);
        self
    }

    /// Creates the namespaces, links, addresses, routes and servers. On error everything
    /// created so far is deleted again. Panics if not root (see [`require_root`]).
    pub fn build(self) -> Result<Topology, HarnessError> {
        require_root();
        if self.pods > MAX_INDEX || self.clients > MAX_INDEX {
            return Err(HarnessError::Topology(format!(
                "at most {MAX_INDEX} pods and {MAX_INDEX} clients fit the address plan"
            )));
        }
        let mut topo = Topology {
            pods: Vec::new(),
            clients: Vec::new(),
            node: setup_node()?,
        };
        for _ in 0..self.pods {
            topo.add_pod(self.serve.as_ref())?;
        }
        for _ in 0..self.clients {
            topo.add_client()?;
        }
        Ok(topo)
    }
}

/// A node with pods and external clients; everything is deleted on drop.
#[derive(Debug)]
pub struct Topology {
    // Field order is drop order: servers and pods go first, the node last.
    /// Pod namespaces, `pods[k-1]` is pod k.
    pub pods: Vec<Pod>,
    /// External client namespaces.
    pub clients: Vec<Client>,
    /// The node namespace (where kproxy runs).
    pub node: Netns,
}

/// A pod namespace on the node's bridge.
#[derive(Debug)]
pub struct Pod {
    /// The pod's test server, if one was started by the builder.
    pub server: Option<TestServer>,
    /// `pod<k>`: also the name its test server replies with.
    pub name: String,
    /// 1-based index in the plan.
    pub index: u8,
    /// IPv4 address ([`plan::pod_ipv4`]).
    pub ipv4: Ipv4Addr,
    /// IPv6 address ([`plan::pod_ipv6`]).
    pub ipv6: Ipv6Addr,
    /// The pod's namespace.
    pub ns: Netns,
}

/// An external client namespace attached to the node's uplink.
#[derive(Debug)]
pub struct Client {
    /// `client<k>`.
    pub name: String,
    /// 1-based index in the plan.
    pub index: u8,
    /// IPv4 address ([`plan::client_ipv4`]).
    pub ipv4: Ipv4Addr,
    /// IPv6 address ([`plan::client_ipv6`]).
    pub ipv6: Ipv6Addr,
    /// The client's namespace.
    pub ns: Netns,
}

impl Topology {
    /// A builder with 3 pods and 1 client, no servers.
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder::default()
    }

    /// Pod `k` (1-based). Panics if there is no such pod (a test bug).
    pub fn pod(&self, k: u8) -> &Pod {
        self.pods
            .get(usize::from(k).wrapping_sub(1))
            .unwrap_or_else(|| panic!("topology has no pod {k}"))
    }

    /// The first external client. Panics if the topology has none (a test bug).
    pub fn client(&self) -> &Client {
        self.clients
            .first()
            .unwrap_or_else(|| panic!("topology has no external client"))
    }

    /// The node's IPv4 address (`198.19.0.1`), what NodePorts are reached at.
    pub fn node_ipv4(&self) -> Ipv4Addr {
        plan::NODE_IP_V4
    }

    /// The node's IPv6 address (`2001:db8:c::1`).
    pub fn node_ipv6(&self) -> Ipv6Addr {
        plan::NODE_IP_V6
    }

    /// Adds one more pod (the next index), optionally with a test server.
    pub fn add_pod(&mut self, serve: Option<&ServerSpec>) -> Result<&Pod, HarnessError> {
        let k = next_index(self.pods.len())?;
        let name = format!("pod{k}");
        let ns = new_netns(&name)?;
        let (ipv4, ipv6) = (plan::pod_ipv4(k), plan::pod_ipv6(k));
        let port = format!("vp{k}");
        attach_veth(&self.node, &port, &ns, BRIDGE)?;
        // Host addresses (/32, /128) and an on-link gateway: all pod traffic, also to other
        // pods, is routed by the node, so conntrack sees both directions of every
        // DNATed connection whatever the bridge-netfilter settings.
        configure_eth0(&ns, (ipv4, 32), (ipv6, 128))?;
        let gw4 = plan::POD_GW_V4.to_string();
        ns.exec([
            "ip", "route", "add", "default", "via", &gw4, "dev", "eth0", "onlink",
        ])?;
        let gw6 = plan::POD_GW_V6.to_string();
        ns.exec([
            "ip", "-6", "route", "add", "default", "via", &gw6, "dev", "eth0", "onlink",
        ])?;
        let server = match serve {
            Some(spec) => Some(TestServer::start(&ns, &name, spec)?),
            None => None,
        };
        self.pods.push(Pod {
            server,
            name,
            index: k,
            ipv4,
            ipv6,
            ns,
        });
        Ok(self
            .pods
            .last()
            .unwrap_or_else(|| unreachable!("just pushed")))
    }

    /// Adds one more external client (the next index).
    pub fn add_client(&mut self) -> Result<&Client, HarnessError> {
        let k = next_index(self.clients.len())?;
        let name = format!("client{k}");
        let ns = new_netns(&name)?;
        let (ipv4, ipv6) = (plan::client_ipv4(k), plan::client_ipv6(k));
        let port = format!("ext-c{k}");
        attach_veth(&self.node, &port, &ns, UPLINK)?;
        configure_eth0(&ns, (ipv4, 24), (ipv6, 64))?;
        // The node's address is not in the client's subnet: reach it on-link.
        let gw4 = plan::NODE_IP_V4.to_string();
        for route in plan::CLIENT_ROUTES_V4 {
            ns.exec([
                "ip", "route", "add", route, "via", &gw4, "dev", "eth0", "onlink",
            ])?;
        }
        let gw6 = plan::NODE_IP_V6.to_string();
        for route in plan::CLIENT_ROUTES_V6 {
            ns.exec([
                "ip", "-6", "route", "add", route, "via", &gw6, "dev", "eth0", "onlink",
            ])?;
        }
        self.clients.push(Client {
            name,
            index: k,
            ipv4,
            ipv6,
            ns,
        });
        Ok(self
            .clients
            .last()
            .unwrap_or_else(|| unreachable!("just pushed")))
    }
}

impl Pod {
    /// `ipv4:port`.
    pub fn addr_v4(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.ipv4), port)
    }
    /// `[ipv6]:port`.
    pub fn addr_v6(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(self.ipv6), port)
    }
    /// Starts (another) test server in this pod, replying with the pod's name.
    pub fn start_server(&self, spec: &ServerSpec) -> Result<TestServer, HarnessError> {
        TestServer::start(&self.ns, &self.name, spec)
    }
}

fn next_index(existing: usize) -> Result<u8, HarnessError> {
    u8::try_from(existing + 1)
        .ok()
        .filter(|k| *k <= MAX_INDEX)
        .ok_or_else(|| {
            HarnessError::Topology(format!(
                "at most {MAX_INDEX} pods/clients fit the address plan"
            ))
        })
}

/// The node namespace: pod bridge, uplink bridge, forwarding on.
/// A namespace whose interfaces come up ready and that answers deterministically: no
/// duplicate address detection, so link-local addresses are not "tentative" for the first
/// second (set before any link exists, so every interface inherits it from "default"),
/// no ICMP redirects followed, and no ICMP rate limit.
/// A new namespace set up as every topology namespace is: no DAD, no ICMP redirects
/// accepted, no ICMP rate limit (so a REJECT is always seen as one).
pub fn new_netns(label: &str) -> Result<Netns, HarnessError> {
    let ns = Netns::new(label)?;
    for scope in ["all", "default"] {
        ns.sysctl(&format!("net.ipv6.conf.{scope}.accept_dad"), "0")?;
        // The node forwards some traffic out the interface it came in on (pod to pod,
        // client to an unknown address) and then sends ICMP redirects; a namespace that
        // followed one would bypass the node and its rules from then on.
        ns.sysctl(&format!("net.ipv4.conf.{scope}.accept_redirects"), "0")?;
        ns.sysctl(&format!("net.ipv6.conf.{scope}.accept_redirects"), "0")?;
    }
    // No per-destination ICMP rate limit (1/s after a burst of 6): a test sending a few
    // requests to a REJECTed port would otherwise see some of them time out instead.
    ns.sysctl("net.ipv4.icmp_ratelimit", "0")?;
    ns.sysctl("net.ipv6.icmp.ratelimit", "0")?;
    Ok(ns)
}

fn setup_node() -> Result<Netns, HarnessError> {
    let node = new_netns("node")?;
    // Before the bridges exist, so they inherit it: no ICMP redirects to pods.
    node.sysctl("net.ipv4.conf.default.send_redirects", "0")?;
    let v4 = |ip: Ipv4Addr, len: u8| format!("{ip}/{len}");
    let v6 = |ip: Ipv6Addr, len: u8| format!("{ip}/{len}");
    add_bridge(
        &node,
        BRIDGE,
        &v4(plan::POD_GW_V4, plan::POD_PREFIX_V4),
        &v6(plan::POD_GW_V6, plan::POD_PREFIX_V6),
    )?;
    add_bridge(
        &node,
        UPLINK,
        &v4(plan::NODE_IP_V4, 24),
        &v6(plan::NODE_IP_V6, 64),
    )?;
    node.exec(["ip", "route", "add", plan::CLIENT_CIDR_V4, "dev", UPLINK])?;
    node.exec([
        "ip",
        "-6",
        "route",
        "add",
        plan::CLIENT_CIDR_V6,
        "dev",
        UPLINK,
    ])?;
    // Real nodes have a default route; without one, traffic the node itself sends to a
    // service IP fails routing before the output hook could DNAT it. It points at the
    // uplink, so an unknown destination ends as "host unreachable", not a silent loss.
    node.exec(["ip", "route", "add", "default", "dev", UPLINK])?;
    node.exec(["ip", "-6", "route", "add", "default", "dev", UPLINK])?;
    node.sysctl("net.ipv4.ip_forward", "1")?;
    node.sysctl("net.ipv4.conf.all.send_redirects", "0")?;
    // Bridged frames must not go through the IP hooks a second time (bridge-netfilter,
    // built into some kernels and on by default): pods are routed, not bridged, and a
    // DNAT to another pod on the same bridge breaks for IPv6 under br_netfilter. The
    // keys exist only when br_netfilter is present; without it the behaviour is the same.
    for key in [
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
    ] {
        if node.exec(["sysctl", "-n", key]).is_ok() {
            node.sysctl(key, "0")?;
        }
    }
    node.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    Ok(node)
}

/// A bridge `name` in `node` with the given addresses (`a.b.c.d/len`), up.
pub fn add_bridge(node: &Netns, name: &str, v4: &str, v6: &str) -> Result<(), HarnessError> {
    // No multicast snooping: until a pod's MLD report is seen the bridge would hold back
    // neighbour solicitations, and the first IPv6 packets of a fresh topology get lost.
    node.exec([
        "ip",
        "link",
        "add",
        name,
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ])?;
    node.exec(["ip", "addr", "add", v4, "dev", name])?;
    // nodad: no 1-2 s wait for duplicate address detection, nothing else can claim it.
    node.exec(["ip", "addr", "add", v6, "dev", name, "nodad"])?;
    node.exec(["ip", "link", "set", name, "up"])?;
    Ok(())
}

/// Creates veth `node_end` in the node, plugged into `bridge` and up, with its peer as
/// `eth0` in `ns`.
pub fn attach_veth(node: &Netns, node_end: &str, ns: &Netns, bridge: &str) -> Result<(), HarnessError> {
    node.exec([
        "ip",
        "link",
        "add",
        node_end,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns.name(),
    ])?;
    node.exec(["ip", "link", "set", node_end, "master", bridge, "up"])?;
    Ok(())
}

fn configure_eth0(ns: &Netns, v4: (Ipv4Addr, u8), v6: (Ipv6Addr, u8)) -> Result<(), HarnessError> {
    ns.exec([
        "ip",
        "addr",
        "add",
        &format!("{}/{}", v4.0, v4.1),
        "dev",
        "eth0",
    ])?;
    ns.exec([
        "ip",
        "addr",
        "add",
        &format!("{}/{}", v6.0, v6.1),
        "dev",
        "eth0",
        "nodad",
    ])?;
    ns.exec(["ip", "link", "set", "eth0", "up"])?;
    Ok(())
}
