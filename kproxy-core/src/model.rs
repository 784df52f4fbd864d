//! The desired proxy state: what a backend must program, independent of how.
//!
//! A [`ProxyState`] is a snapshot: every service port (per IP family) with its destinations
//! (ClusterIP, ExternalIPs, LoadBalancer IPs, NodePort) and its already-categorised endpoints,
//! plus node-wide [`ProxySettings`]. A [`ChangeSet`] is the difference between two snapshots;
//! applying it to the older one gives the newer one ([`ProxyState::apply`]).
//!
//! All collections are ordered (`BTreeMap`, sorted `Vec`s) so that equal states compare equal
//! and render identically.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// Layer-4 protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Lower-case name as nft and IPVS tools print it (`tcp`, `udp`, `sctp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// IANA protocol number (6, 17, 132).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// The family of a network.
    pub fn of_net(net: &IpNet) -> IpFamily {
        match net {
            IpNet::V4(_) => IpFamily::V4,
            IpNet::V6(_) => IpFamily::V6,
        }
    }
}

/// What kind of destination an address is for a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressKind {
    /// `spec.clusterIPs` with a port.
    ClusterIp,
    /// `spec.ports[].nodePort`.
    NodePort,
    /// `spec.externalIPs` with a port.
    ExternalIp,
    /// `status.loadBalancer.ingress[].ip` with a port.
    LoadBalancerIp,
}

impl AddressKind {
    /// Every kind, in order (for metrics that report zeros too).
    pub const ALL: [AddressKind; 4] =
        [AddressKind::ClusterIp, AddressKind::NodePort, AddressKind::ExternalIp, AddressKind::LoadBalancerIp];

    /// Label value for metrics: `cluster_ip`, `node_port`, `external_ip`, `load_balancer_ip`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::ClusterIp => "cluster_ip",
            AddressKind::NodePort => "node_port",
            AddressKind::ExternalIp => "external_ip",
            AddressKind::LoadBalancerIp => "load_balancer_ip",
        }
    }

    /// The name an operator knows it by: `ClusterIP`, `NodePort`, `ExternalIP`, `LoadBalancer IP`.
    pub fn field(self) -> &'static str {
        match self {
            AddressKind::ClusterIp => "ClusterIP",
            AddressKind::NodePort => "NodePort",
            AddressKind::ExternalIp => "ExternalIP",
            AddressKind::LoadBalancerIp => "LoadBalancer IP",
        }
    }
}

/// Identity of a service port, as upstream's `ServicePortName`: namespace, service name,
/// port name and protocol. Displayed as `namespace/name:port` (port name may be empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// `spec.ports[].name` (empty for a single unnamed port).
    pub port: String,
    /// Protocol of the port.
    pub protocol: Protocol,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

/// Key of a service port in a [`ProxyState`]: the port's identity and the IP family of this
/// instance (a dual-stack service port appears once per family).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortKey {
    /// Identity of the service port.
    pub name: ServicePortName,
    /// Family of this instance.
    pub family: IpFamily,
}

/// `spec.internalTrafficPolicy` / `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum TrafficPolicy {
    /// Use every usable endpoint in the cluster.
    #[default]
    Cluster,
    /// Use only endpoints on this node.
    Local,
}

/// `sessionAffinity: ClientIP`: a client keeps the endpoint it first got for `timeout_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionAffinity {
    /// `sessionAffinityConfig.clientIP.timeoutSeconds` (upstream default 10800).
    pub timeout_seconds: u32,
}

/// One endpoint of a service port, after duplicates across EndpointSlices were merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Address and (resolved target) port.
    pub addr: SocketAddr,
    /// The endpoint's `nodeName` is this node.
    pub local: bool,
    /// `conditions.ready` (unset counts as true, as upstream).
    pub ready: bool,
    /// `conditions.serving` (unset counts as true, as upstream).
    pub serving: bool,
    /// `conditions.terminating` (unset counts as false).
    pub terminating: bool,
}

/// Desired state of one service port in one IP family.
///
/// Endpoint lists are already categorised following upstream's `CategorizeEndpoints`
/// (readiness, terminating fallback, topology hints / trafficDistribution, locality); a
/// backend only has to pick among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Identity (also in the key; kept here so a port can be handled on its own).
    pub name: ServicePortName,
    /// Family of every address below.
    pub family: IpFamily,
    /// The ClusterIP of this family.
    pub cluster_ip: IpAddr,
    /// `spec.ports[].port`.
    pub port: u16,
    /// `spec.ports[].nodePort`, for NodePort and LoadBalancer services.
    pub node_port: Option<u16>,
    /// `spec.externalIPs` of this family, sorted.
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip` of this family (ipMode Proxy skipped), sorted.
    pub load_balancer_ips: Vec<IpAddr>,
    /// `spec.loadBalancerSourceRanges` of this family, sorted; empty: no filtering.
    pub load_balancer_source_ranges: Vec<IpNet>,
    /// `sessionAffinity: ClientIP`, if set.
    pub session_affinity: Option<SessionAffinity>,
    /// `spec.internalTrafficPolicy`.
    pub internal_traffic_policy: TrafficPolicy,
    /// `spec.externalTrafficPolicy` (only meaningful with external destinations).
    pub external_traffic_policy: TrafficPolicy,
    /// `spec.healthCheckNodePort` for eTP=Local LoadBalancer services.
    pub health_check_node_port: Option<u16>,
    /// Every known endpoint of this family, merged and sorted (for conntrack cleanup and
    /// graceful termination, which need to know about non-ready ones too).
    pub endpoints: Vec<Endpoint>,
    /// Endpoints for cluster-wide traffic: ready ones (topology-filtered), else the serving
    /// and terminating ones. Sorted.
    pub cluster_endpoints: Vec<SocketAddr>,
    /// The same rule restricted to endpoints on this node. Sorted.
    pub local_endpoints: Vec<SocketAddr>,
}

impl ServicePort {
    /// A ClusterIP-only service port with default policies and no endpoints yet: the starting
    /// point for embedders and tests that build states by hand (set the other fields after).
    pub fn new(name: ServicePortName, cluster_ip: IpAddr, port: u16) -> ServicePort {
        ServicePort {
            name,
            family: IpFamily::of(&cluster_ip),
            cluster_ip,
            port,
            node_port: None,
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            load_balancer_source_ranges: Vec::new(),
            session_affinity: None,
            internal_traffic_policy: TrafficPolicy::Cluster,
            external_traffic_policy: TrafficPolicy::Cluster,
            health_check_node_port: None,
            endpoints: Vec::new(),
            cluster_endpoints: Vec::new(),
            local_endpoints: Vec::new(),
        }
    }

    /// The key of this port in a [`ProxyState`].
    pub fn key(&self) -> ServicePortKey {
        ServicePortKey { name: self.name.clone(), family: self.family }
    }

    /// Endpoints for traffic to the ClusterIP (internal traffic).
    pub fn internal_endpoints(&self) -> &[SocketAddr] {
        match self.internal_traffic_policy {
            TrafficPolicy::Cluster => &self.cluster_endpoints,
            TrafficPolicy::Local => &self.local_endpoints,
        }
    }

    /// Endpoints for traffic to the NodePort, ExternalIPs and LoadBalancer IPs.
    pub fn external_endpoints(&self) -> &[SocketAddr] {
        match self.external_traffic_policy {
            TrafficPolicy::Cluster => &self.cluster_endpoints,
            TrafficPolicy::Local => &self.local_endpoints,
        }
    }

    /// Whether the port can be reached other than through its ClusterIP.
    pub fn has_external_destinations(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.load_balancer_ips.is_empty()
    }

    /// Whether external traffic that is not short-circuited must be masqueraded
    /// (eTP=Cluster): eTP=Local preserves the client address.
    pub fn masquerade_external(&self) -> bool {
        self.external_traffic_policy == TrafficPolicy::Cluster
    }

    /// Whether the service has no usable endpoint at all: every destination REJECTs.
    pub fn has_no_endpoints(&self) -> bool {
        self.cluster_endpoints.is_empty()
    }
}

/// Which NodePort addresses a NodePort listens on (`nodePortAddresses`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodePortAddresses {
    /// Empty list or `primary`: the node's primary IPs ([`ProxySettings::node_ips`]) only.
    #[default]
    Primary,
    /// Local addresses inside these networks (loopback excluded). `0.0.0.0/0` / `::/0`
    /// mean every local address of that family.
    Cidrs(Vec<IpNet>),
}

impl NodePortAddresses {
    /// The networks NodePorts of `family` listen in, as upstream's per-family
    /// `NewNodePortAddresses`: `Primary` gives the node IPs of that family as host networks;
    /// `Cidrs` gives the CIDRs of that family, or every address of the family (`0.0.0.0/0`,
    /// `::/0`) when the list names none of it (so `["0.0.0.0/0"]` still serves IPv6
    /// NodePorts on every IPv6 address). Loopback exclusion is the backend's job.
    pub fn cidrs_for(&self, family: IpFamily, node_ips: &[IpAddr]) -> Vec<IpNet> {
        match self {
            NodePortAddresses::Primary => {
                node_ips.iter().filter(|ip| IpFamily::of(ip) == family).map(|ip| IpNet::from(*ip)).collect()
            }
            NodePortAddresses::Cidrs(cidrs) => {
                let of_family: Vec<IpNet> = cidrs.iter().filter(|c| IpFamily::of_net(c) == family).copied().collect();
                if !of_family.is_empty() {
                    return of_family;
                }
                let all = match family {
                    IpFamily::V4 => IpNet::V4(ipnet::Ipv4Net::default()),
                    IpFamily::V6 => IpNet::V6(ipnet::Ipv6Net::default()),
                };
                vec![all]
            }
        }
    }
}

/// How traffic from "inside the cluster" (pods) is recognised (`detectLocalMode`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LocalDetector {
    /// No detection: every source counts as external to the cluster.
    #[default]
    None,
    /// Sources inside these pod networks (`clusterCIDR`, `detectLocal.clusterCIDRs`).
    ClusterCidrs(Vec<IpNet>),
    /// Sources inside this node's pod CIDRs (`NodeCIDR` mode, from `Node.spec.podCIDRs`).
    NodeCidrs(Vec<IpNet>),
    /// Packets entering through this bridge (`BridgeInterface` mode).
    BridgeInterface(String),
    /// Packets entering through interfaces with this prefix (`InterfaceNamePrefix` mode).
    InterfaceNamePrefix(String),
}

/// Node-wide settings every backend needs, derived from the configuration and the Node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProxySettings {
    /// This node's name (`hostnameOverride` or the host name).
    pub node_name: String,
    /// The node's primary IPs (at most one per family), from `bindAddress` or the Node object.
    pub node_ips: Vec<IpAddr>,
    /// Masquerade every ClusterIP packet (`masqueradeAll`).
    pub masquerade_all: bool,
    /// Bit of the packet mark used to request masquerading (`masqueradeBit`, 0..=31).
    pub masquerade_bit: u8,
    /// How pod traffic is recognised.
    pub local_detector: LocalDetector,
    /// Where NodePorts listen.
    pub node_port_addresses: NodePortAddresses,
}

impl ProxySettings {
    /// The packet-mark value that requests masquerading (`1 << masquerade_bit`).
    pub fn masquerade_mark(&self) -> u32 {
        1u32 << (self.masquerade_bit & 31)
    }
}

/// Everything a backend must program: a complete, ordered snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProxyState {
    /// Node-wide settings.
    pub settings: ProxySettings,
    /// Known ServiceCIDRs (from ServiceCIDR objects): packets to unallocated IPs inside them
    /// are dropped. Sorted.
    pub service_cidrs: Vec<IpNet>,
    /// Every service port, per family.
    pub services: BTreeMap<ServicePortKey, ServicePort>,
}

/// How one service port changed between two states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new service port.
    Added(ServicePort),
    /// A service port that is gone; carries what it was.
    Removed(ServicePort),
    /// A service port whose destinations, policies or endpoints changed.
    Modified {
        /// What it was.
        old: ServicePort,
        /// What it is now.
        new: ServicePort,
    },
}

/// What changed from one [`ProxyState`] to the next.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSet {
    /// New settings, if they changed (backends usually answer with a full sync).
    pub settings: Option<ProxySettings>,
    /// New ServiceCIDRs, if they changed.
    pub service_cidrs: Option<Vec<IpNet>>,
    /// Per service port.
    pub services: BTreeMap<ServicePortKey, Change>,
}

impl ChangeSet {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.settings.is_none() && self.service_cidrs.is_none() && self.services.is_empty()
    }
}

impl ProxyState {
    /// The changes that turn `self` into `next`.
    pub fn diff(&self, next: &ProxyState) -> ChangeSet {
        let mut services = BTreeMap::new();
        for (key, old) in &self.services {
            match next.services.get(key) {
                None => {
                    services.insert(key.clone(), Change::Removed(old.clone()));
                }
                Some(new) if new != old => {
                    services.insert(key.clone(), Change::Modified { old: old.clone(), new: new.clone() });
                }
                Some(_) => {}
            }
        }
        for (key, new) in &next.services {
            if !self.services.contains_key(key) {
                services.insert(key.clone(), Change::Added(new.clone()));
            }
        }
        ChangeSet {
            settings: (self.settings != next.settings).then(|| next.settings.clone()),
            service_cidrs: (self.service_cidrs != next.service_cidrs).then(|| next.service_cidrs.clone()),
            services,
        }
    }

    /// Apply a change set produced by [`ProxyState::diff`] (or a change tracker) in place.
    pub fn apply(&mut self, changes: &ChangeSet) {
        if let Some(settings) = &changes.settings {
            self.settings = settings.clone();
        }
        if let Some(cidrs) = &changes.service_cidrs {
            self.service_cidrs = cidrs.clone();
        }
        for (key, change) in &changes.services {
            match change {
                Change::Added(new) | Change::Modified { new, .. } => {
                    self.services.insert(key.clone(), new.clone());
                }
                Change::Removed(_) => {
                    self.services.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn node_port_cidrs_per_family_follow_upstream() {
        let node_ips: Vec<IpAddr> = vec!["198.19.0.1".parse().unwrap(), "2001:db8:c::1".parse().unwrap()];
        let v4_only = NodePortAddresses::Cidrs(nets(&["0.0.0.0/0"]));
        assert_eq!(v4_only.cidrs_for(IpFamily::V4, &node_ips), nets(&["0.0.0.0/0"]));
        // No IPv6 CIDR given: IPv6 NodePorts listen on every IPv6 address.
        assert_eq!(v4_only.cidrs_for(IpFamily::V6, &node_ips), nets(&["::/0"]));
        let mixed = NodePortAddresses::Cidrs(nets(&["198.19.0.0/24", "2001:db8:c::/64"]));
        assert_eq!(mixed.cidrs_for(IpFamily::V6, &node_ips), nets(&["2001:db8:c::/64"]));
        assert_eq!(NodePortAddresses::Primary.cidrs_for(IpFamily::V4, &node_ips), nets(&["198.19.0.1/32"]));
        assert_eq!(NodePortAddresses::Primary.cidrs_for(IpFamily::V6, &node_ips), nets(&["2001:db8:c::1/128"]));
        assert!(NodePortAddresses::Primary.cidrs_for(IpFamily::V6, &node_ips[..1]).is_empty());
    }
}
