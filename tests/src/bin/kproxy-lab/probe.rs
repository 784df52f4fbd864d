//! Probes: a few requests from one namespace to one destination, reduced to an outcome that
//! can be compared between worlds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kproxy_tests::{serve::canonical, tcp_request, udp_request, ClientError, Netns, Proto};

/// Bound on each request (a DROP shows as this timeout). Generous: the machine is shared
/// and a loaded server answering late must not read as a drop.
const TIMEOUT: Duration = Duration::from_millis(600);
/// A probe whose first this many requests all time out is taken as dropped (each timeout
/// costs [`TIMEOUT`]); more than one, since a Service may have one endpoint that drops (a
/// pod reaching itself) among others that answer.
const EARLY_STOP: usize = 4;

/// Where a probe is sent from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The client pod on node-1 (no Service selects it).
    Pod,
    /// node-1 itself.
    Node,
    /// The external client on the underlay.
    Client,
}

/// One probe: who sends what where.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Index of the Service in the generated list.
    pub service: usize,
    /// The sender.
    pub from: Source,
    /// The destination.
    pub to: SocketAddr,
    /// TCP or UDP.
    pub proto: Proto,
    /// What the destination is ("clusterIP", "nodePort node-2", ...).
    pub what: String,
    /// The Service has ClientIP affinity: which endpoint is picked first is random, so only
    /// the number of distinct endpoints answering is compared.
    pub affinity: bool,
}

/// What a probe observed.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Endpoints that answered (or, under affinity, `"N distinct"`).
    pub servers: BTreeSet<String>,
    /// Source addresses the endpoints saw, by meaning: `sender` (not masqueraded), `node-i`
    /// (masqueraded to any address of node i: which one depends on the endpoint's side of
    /// the node, not on the proxy), or the address itself.
    pub peers: BTreeSet<String>,
    /// Some request was refused (REJECT / no listener).
    pub refused: bool,
    /// Every request timed out (DROP / no route).
    pub dropped: bool,
    /// Under affinity: the source each endpoint saw. Which endpoint a world sticks to is
    /// random, and masquerading depends on where the endpoint is, so only endpoints both
    /// worlds picked are compared.
    pub by_server: BTreeMap<String, BTreeSet<String>>,
    /// Requests that timed out while others were answered: shown, not compared (which
    /// endpoint a request lands on is random, and a loaded machine answers late).
    pub timeouts: usize,
    /// Other failures, described.
    pub errors: BTreeSet<String>,
}

impl Probe {
    /// Sends `count` requests from `ns`; with `early_stop`, stops after [`EARLY_STOP`]
    /// timeouts in a row and no answer.
    pub fn run(&self, ns: &Netns, count: usize, early_stop: bool) -> Outcome {
        let mut o = Outcome::default();
        let mut answered = 0;
        for n in 0..count {
            let r = match self.proto {
                Proto::Tcp => tcp_request(ns, self.to, TIMEOUT),
                Proto::Udp => udp_request(ns, self.to, TIMEOUT),
            };
            match r {
                Ok(reply) => {
                    answered += 1;
                    let peer = peer_class(self.from, canonical(reply.peer).ip());
                    if self.affinity {
                        o.by_server.entry(reply.server.clone()).or_default().insert(peer.clone());
                    }
                    o.servers.insert(reply.server);
                    o.peers.insert(peer);
                }
                Err(ClientError::Refused) => o.refused = true,
                Err(ClientError::Timeout) => o.timeouts += 1,
                Err(e) => {
                    o.errors.insert(e.to_string());
                }
            }
            if early_stop && n + 1 == EARLY_STOP && o.timeouts == EARLY_STOP {
                break;
            }
        }
        if answered == 0 && o.timeouts > 0 {
            o.dropped = true;
            o.timeouts = 0;
        }
        if self.affinity && !o.servers.is_empty() {
            o.servers = BTreeSet::from([format!("{} distinct", o.servers.len())]);
            o.peers.clear();
        }
        o
    }
}

/// What a peer address means for a probe from `from`.
fn peer_class(from: Source, peer: IpAddr) -> String {
    if peer == from.ip() {
        return "sender".into();
    }
    for i in 1..=crate::net::NODES {
        let bridge = IpAddr::from(std::net::Ipv4Addr::new(198, 18, i, 1));
        if peer == IpAddr::from(crate::net::node_ip(i)) || peer == bridge {
            return crate::net::node_name(i);
        }
    }
    peer.to_string()
}

impl Source {
    /// The sender's own address (what an endpoint sees without masquerading).
    pub fn ip(self) -> IpAddr {
        match self {
            Source::Pod => crate::net::CLIENT_POD_IP.into(),
            Source::Node => crate::net::node_ip(1).into(),
            Source::Client => crate::net::CLIENT_IP.into(),
        }
    }
}

impl PartialEq for Outcome {
    fn eq(&self, o: &Outcome) -> bool {
        let same_where_comparable =
            self.by_server.iter().all(|(server, peers)| o.by_server.get(server).is_none_or(|p| p == peers));
        same_where_comparable
            && (&self.servers, &self.peers, self.refused, self.dropped, &self.errors)
                == (&o.servers, &o.peers, o.refused, o.dropped, &o.errors)
    }
}

impl Outcome {
    /// Adds another observation of the same probe.
    pub fn merge(&mut self, other: Outcome) {
        self.servers.extend(other.servers);
        for (server, peers) in other.by_server {
            self.by_server.entry(server).or_default().extend(peers);
        }
        self.peers.extend(other.peers);
        self.refused |= other.refused;
        // Dropped only if nothing ever answered.
        let answered = !self.servers.is_empty();
        self.dropped = !answered && (self.dropped || other.dropped);
        self.timeouts += other.timeouts;
        self.errors.extend(other.errors);
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Pod => "client-pod",
            Source::Node => "node-1",
            Source::Client => "client",
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.servers.is_empty() {
            let s: Vec<&str> = self.servers.iter().map(String::as_str).collect();
            let p: Vec<String> = if self.by_server.is_empty() {
                self.peers.iter().cloned().collect()
            } else {
                self.by_server.iter().map(|(s, p)| format!("{s}:{}", p.iter().cloned().collect::<Vec<_>>().join("/"))).collect()
            };
            parts.push(format!("answered by [{}] seeing [{}]", s.join(" "), p.join(" ")));
        }
        if self.refused {
            parts.push("refused".into());
        }
        if self.dropped {
            parts.push("dropped".into());
        }
        if self.timeouts > 0 {
            parts.push(format!("({} requests timed out)", self.timeouts));
        }
        for e in &self.errors {
            parts.push(format!("error: {e}"));
        }
        f.write_str(&parts.join(", "))
    }
}
