//! The in-memory plan: kproxy's fixed sets, the chains rules can jump to, and set elements.
//!
//! Everything here is plain data, independent of how it reaches the kernel: [`crate::script`]
//! prints it as an nft script and [`crate::transaction`] turns it into kernel operations. The shape
//! (which sets exist, which rules exist) is fixed by [`crate::skeleton`]; only elements and the
//! per-endpoint-count chains ([`ChainRef::Lb`]) vary with services.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use kproxy_core::model::{IpFamily, Protocol};

/// `ip` or `ip6`, as nft spells the family's payload expressions and tables.
pub fn ip_word(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

/// Length in bytes of an address of the family.
pub fn addr_len(family: IpFamily) -> u32 {
    match family {
        IpFamily::V4 => 4,
        IpFamily::V6 => 16,
    }
}

/// One of kproxy's named sets and maps (the same names in the `ip` and the `ip6` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetId {
    /// Pod networks of the local detector (`ClusterCidrs` / `NodeCidrs`), interval set.
    PodCidrs,
    /// Every ClusterIP: packets to one of them that were not DNATed are rejected.
    ClusterIps,
    /// ServiceCIDRs: packets to unallocated IPs inside them are dropped. Interval set.
    ServiceCidrs,
    /// Where NodePorts listen: node IPs (`primary`) or `nodePortAddresses` CIDRs. Interval set.
    NodeportIps,
    /// `endpoint . endpoint` pairs: an endpoint reaching itself through a service is masqueraded.
    Hairpin,
    /// `ip . proto . port : verdict`: dispatch of ClusterIPs, ExternalIPs and LB IPs.
    ServiceIps,
    /// `proto . port : verdict`: dispatch of NodePorts.
    ServiceNodeports,
    /// `ip . proto . port : verdict`: REJECT (no endpoints) or DROP (no local endpoints).
    NoEndpointServices,
    /// `proto . port : verdict`: the same for NodePorts.
    NoEndpointNodeports,
    /// `ip . proto . port` of LB IPs that have loadBalancerSourceRanges.
    FirewallIps,
    /// `ip . proto . port . source-range`: allowed sources of those LB IPs. Interval set.
    FirewallAllow,
    /// `ip . proto . port . index : endpoint` for the cluster endpoints of a destination.
    ClusterBackends,
    /// The same for the local endpoints (iTP/eTP=Local).
    LocalBackends,
    /// `proto . port . index : endpoint`: NodePort cluster endpoints.
    NodeportBackends,
    /// `proto . port . index : endpoint`: NodePort local endpoints (eTP=Local).
    NodeportLocalBackends,
    /// `ip . proto . port : verdict`: eTP=Local external destinations, for pod/node sources.
    ExternalShortCircuit,
    /// `proto . port : verdict`: eTP=Local NodePorts, for pod/node sources.
    NodeportShortCircuit,
    /// Dynamic `client . ip . proto . port : endpoint` map (sessionAffinity).
    Affinity,
    /// `ip . proto . port : jump affinity-T`: destinations with sessionAffinity.
    AffinityServices,
    /// Dynamic `client . proto . nodePort : endpoint` map (NodePort sessionAffinity, whatever
    /// address the NodePort was reached on).
    NodeportAffinity,
    /// `proto . nodePort : jump nodeport-affinity-T`: NodePorts with sessionAffinity.
    AffinityNodeports,
    /// Every ExternalIP and LB IP (with `cluster-ips`: the addresses whose connections are
    /// not NodePort connections).
    ExternalIps,
}

impl SetId {
    /// Every set, in declaration order.
    pub const ALL: [SetId; 22] = [
        SetId::PodCidrs,
        SetId::ClusterIps,
        SetId::ServiceCidrs,
        SetId::NodeportIps,
        SetId::Hairpin,
        SetId::ServiceIps,
        SetId::ServiceNodeports,
        SetId::NoEndpointServices,
        SetId::NoEndpointNodeports,
        SetId::FirewallIps,
        SetId::FirewallAllow,
        SetId::ClusterBackends,
        SetId::LocalBackends,
        SetId::NodeportBackends,
        SetId::NodeportLocalBackends,
        SetId::ExternalShortCircuit,
        SetId::NodeportShortCircuit,
        SetId::Affinity,
        SetId::AffinityServices,
        SetId::NodeportAffinity,
        SetId::AffinityNodeports,
        SetId::ExternalIps,
    ];

    /// The set's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            SetId::PodCidrs => "pod-cidrs",
            SetId::ClusterIps => "cluster-ips",
            SetId::ServiceCidrs => "service-cidrs",
            SetId::NodeportIps => "nodeport-ips",
            SetId::Hairpin => "hairpin",
            SetId::ServiceIps => "service-ips",
            SetId::ServiceNodeports => "service-nodeports",
            SetId::NoEndpointServices => "no-endpoint-services",
            SetId::NoEndpointNodeports => "no-endpoint-nodeports",
            SetId::FirewallIps => "firewall-ips",
            SetId::FirewallAllow => "firewall-allow",
            SetId::ClusterBackends => "cluster-backends",
            SetId::LocalBackends => "local-backends",
            SetId::NodeportBackends => "nodeport-backends",
            SetId::NodeportLocalBackends => "nodeport-local-backends",
            SetId::ExternalShortCircuit => "external-short-circuit",
            SetId::NodeportShortCircuit => "nodeport-short-circuit",
            SetId::Affinity => "affinity",
            SetId::AffinityServices => "affinity-services",
            SetId::NodeportAffinity => "nodeport-affinity",
            SetId::AffinityNodeports => "affinity-nodeports",
            SetId::ExternalIps => "external-ips",
        }
    }

    /// Whether the set exists in a family's table (today every set exists in both).
    pub fn exists_in(self, _family: IpFamily) -> bool {
        true
    }

    /// Whether the set holds intervals (elements are ranges).
    pub fn is_interval(self) -> bool {
        matches!(self, SetId::PodCidrs | SetId::ServiceCidrs | SetId::NodeportIps | SetId::FirewallAllow)
    }

    /// The nft declaration body (between the braces), for the script.
    pub fn declaration(self, family: IpFamily) -> String {
        let a = match family {
            IpFamily::V4 => "ipv4_addr",
            IpFamily::V6 => "ipv6_addr",
        };
        let ip = ip_word(family);
        match self {
            SetId::PodCidrs | SetId::ServiceCidrs | SetId::NodeportIps => format!("type {a} ; flags interval ;"),
            SetId::ClusterIps | SetId::ExternalIps => format!("type {a} ;"),
            SetId::Hairpin => format!("type {a} . {a} ;"),
            SetId::ServiceIps
            | SetId::NoEndpointServices
            | SetId::ExternalShortCircuit
            | SetId::AffinityServices => format!("type {a} . inet_proto . inet_service : verdict ;"),
            SetId::ServiceNodeports
            | SetId::NoEndpointNodeports
            | SetId::NodeportShortCircuit
            | SetId::AffinityNodeports => {
                "type inet_proto . inet_service : verdict ;".to_string()
            }
            SetId::FirewallIps => format!("type {a} . inet_proto . inet_service ;"),
            SetId::FirewallAllow => format!("type {a} . inet_proto . inet_service . {a} ; flags interval ;"),
            SetId::ClusterBackends | SetId::LocalBackends => format!(
                "typeof {ip} daddr . meta l4proto . th dport . numgen random mod 2 : {ip} daddr . th dport ;"
            ),
            SetId::NodeportBackends | SetId::NodeportLocalBackends => {
                format!("typeof meta l4proto . th dport . numgen random mod 2 : {ip} daddr . th dport ;")
            }
            SetId::Affinity => format!(
                "type {a} . {a} . inet_proto . inet_service : {a} . inet_service ; size 1048576 ; flags dynamic,timeout ;"
            ),
            SetId::NodeportAffinity => format!(
                "type {a} . inet_proto . inet_service : {a} . inet_service ; size 1048576 ; flags dynamic,timeout ;"
            ),
        }
    }

    /// Whether the declaration is a map (has data).
    pub fn is_map(self) -> bool {
        self.declaration(IpFamily::V4).contains(':')
    }
}

/// The kinds of per-endpoint-count chains: one chain `KIND-N` per kind and endpoint count N in
/// use. See README for what each does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LbKind {
    /// ClusterIP, iTP=Cluster; also the short-circuit target of eTP=Local external IPs.
    Cluster,
    /// ClusterIP, iTP=Local.
    Local,
    /// ExternalIP / LB IP, eTP=Cluster: always masqueraded.
    External,
    /// ExternalIP / LB IP, eTP=Local: pod/node sources short-circuited, others local.
    ExternalLocal,
    /// NodePort, eTP=Cluster: always masqueraded.
    Nodeport,
    /// NodePort, eTP=Local.
    NodeportLocal,
    /// NodePort short-circuit target (pod/node sources of an eTP=Local NodePort).
    NodeportDirect,
}

impl LbKind {
    /// Chain name prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            LbKind::Cluster => "cluster",
            LbKind::Local => "local",
            LbKind::External => "external",
            LbKind::ExternalLocal => "external-local",
            LbKind::Nodeport => "nodeport",
            LbKind::NodeportLocal => "nodeport-local",
            LbKind::NodeportDirect => "nodeport-direct",
        }
    }
}

/// A chain that set elements can point to (created when first referenced, deleted when the
/// last reference goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChainRef {
    /// `KIND-N`: endpoint choice among N endpoints.
    Lb(LbKind, u32),
    /// `affinity-T`: records the chosen endpoint for T seconds.
    Affinity(u32),
    /// `nodeport-affinity-T`: records the endpoint chosen for a NodePort for T seconds.
    NodeportAffinity(u32),
    /// `reject-chain` (fixed, always present).
    Reject,
}

impl ChainRef {
    /// The chain's name.
    pub fn name(self) -> String {
        match self {
            ChainRef::Lb(kind, n) => format!("{}-{}", kind.prefix(), n),
            ChainRef::Affinity(t) => format!("affinity-{t}"),
            ChainRef::NodeportAffinity(t) => format!("nodeport-affinity-{t}"),
            ChainRef::Reject => "reject-chain".to_string(),
        }
    }

    /// Whether this chain is created on demand (not part of the skeleton).
    pub fn is_dynamic(self) -> bool {
        !matches!(self, ChainRef::Reject)
    }
}

/// A verdict stored in a verdict map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// `goto CHAIN`.
    Goto(ChainRef),
    /// `jump CHAIN`.
    Jump(ChainRef),
    /// `drop`.
    Drop,
}

impl Verdict {
    /// The chain the verdict refers to, if any.
    pub fn chain(self) -> Option<ChainRef> {
        match self {
            Verdict::Goto(c) | Verdict::Jump(c) => Some(c),
            Verdict::Drop => None,
        }
    }
}

/// The key of a set element. Each variant is the key shape of some sets (see [`SetId`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// One address.
    Addr(IpAddr),
    /// A network (interval sets).
    Net(IpNet),
    /// `addr . addr`.
    AddrPair(IpAddr, IpAddr),
    /// `addr . proto . port`.
    Dest(IpAddr, Protocol, u16),
    /// `proto . port`.
    Port(Protocol, u16),
    /// `addr . proto . port . index`.
    DestSlot(IpAddr, Protocol, u16, u32),
    /// `proto . port . index`.
    PortSlot(Protocol, u16, u32),
    /// `addr . proto . port . network` (interval on the network).
    DestPortNet(IpAddr, Protocol, u16, IpNet),
}

/// The data of a map element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// A set element (no data).
    None,
    /// A verdict.
    Verdict(Verdict),
    /// `addr . port` of an endpoint.
    Endpoint(SocketAddr),
}

/// One element of one set of one family's table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Element {
    /// Table family.
    pub family: IpFamily,
    /// Set.
    pub set: SetId,
    /// Key.
    pub key: Key,
    /// Data.
    pub value: Value,
    /// `ns/name:port` of the service that owns it (empty for node-wide elements).
    pub comment: Arc<str>,
}

/// Where the identity of an element lives: family, set and key.
pub type ElementId = (IpFamily, SetId, Key);

impl Element {
    /// The element's identity.
    pub fn id(&self) -> ElementId {
        (self.family, self.set, self.key)
    }
}
