//! Everything the checks look at, gathered beforehand. A fact that could not be gathered is
//! an `Err` with the reason, so a check can say what it could not see.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;

/// A fact, or why it could not be read.
pub type Gathered<T> = Result<T, String>;

/// The proxy mode the configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// nftables (also for `mode: iptables`).
    #[default]
    Nftables,
    /// IPVS.
    Ipvs,
}

/// The configured values the checks need (from the effective configuration).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// The mode.
    pub mode: ProxyMode,
    /// `clusterCIDR`, parsed (one per family).
    pub cluster_cidrs: Vec<IpNet>,
    /// `nodePortAddresses` as written (CIDRs, or `primary`).
    pub node_port_addresses: Vec<String>,
    /// `clientConnection.qps` (0: client-go's default 5; negative: no limit).
    pub qps: f32,
    /// `clientConnection.burst`.
    pub burst: i32,
    /// The `nf_conntrack_max` the configured `conntrack.maxPerCore`/`min` ask for on this
    /// node's CPUs (`None`: leave it alone).
    pub conntrack_max: Option<u64>,
    /// `ipvs.strictARP`.
    pub strict_arp: bool,
    /// `healthzBindAddress` (`None`: disabled).
    pub healthz: Option<SocketAddr>,
    /// `metricsBindAddress` (`None`: disabled).
    pub metrics: Option<SocketAddr>,
    /// Whether the API server is the source (else `--manifests`).
    pub uses_api: bool,
}

/// The configuration: where it was read from, or every located error.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigFacts {
    /// Valid: the files read, the warnings, and the values the other checks need.
    Valid {
        /// Files read, lowest precedence first.
        files: Vec<PathBuf>,
        /// Accepted settings that deserve attention (located).
        warnings: Vec<String>,
        /// The values the other checks need.
        settings: Settings,
    },
    /// Invalid: each error located (file:line:column or flag).
    Invalid(Vec<String>),
}

/// One route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub dst: IpNet,
    /// Output device.
    pub dev: String,
    /// Whether that device is a bridge that carries no default route: where pods usually
    /// hang (the uplink may be a bridge too, but it holds the default route).
    pub on_pod_bridge: bool,
}

/// One file of the CNI configuration directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniFile {
    /// The file.
    pub path: PathBuf,
    /// The pod subnets it names (`ipam.subnet`, `ipam.ranges[][].subnet`); may be empty.
    pub subnets: Vec<IpNet>,
    /// A parse problem, if any.
    pub error: Option<String>,
}

/// The conntrack table's size and fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackFill {
    /// `nf_conntrack_count` (this network namespace).
    pub count: u64,
    /// `nf_conntrack_max`.
    pub max: u64,
}

/// What a probe of the API server saw (the binary does it with the daemon's client code).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiProbe {
    /// The server URL.
    pub server: String,
    /// The server's version, or why it did not answer.
    pub version: Gathered<String>,
    /// How long the version request took, in milliseconds.
    pub latency_ms: u64,
    /// This node's Node object: `Ok(None)` when it does not exist, else its `podCIDRs`.
    pub node_pod_cidrs: Gathered<Option<Vec<IpNet>>>,
    /// This node's name.
    pub node_name: String,
}

/// A kproxy table in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFacts {
    /// `ip kproxy`, `ip6 kproxy`, `ip kproxy-ipvs`.
    pub name: String,
    /// Number of chains when present; `None` when absent.
    pub chains: Gathered<Option<usize>>,
}

/// IPVS-mode kernel facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsFacts {
    /// Number of virtual servers, or why IPVS could not be read (e.g. module not loaded).
    pub virtual_servers: Gathered<usize>,
    /// `net.ipv4.conf.all.arp_ignore`.
    pub arp_ignore: Gathered<u32>,
    /// `net.ipv4.conf.all.arp_announce`.
    pub arp_announce: Gathered<u32>,
}

/// The running daemon's answers.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonFacts {
    /// `/healthz`: HTTP status and JSON body.
    pub healthz: Option<Gathered<(u16, serde_json::Value)>>,
    /// `/metrics` text.
    pub metrics: Option<Gathered<String>>,
    /// Seconds since the epoch, when gathered (to age `lastUpdated` and the last sync).
    pub now: f64,
}

/// Everything the checks read.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// The configuration.
    pub config: ConfigFacts,
    /// This network namespace's addresses.
    pub local_addrs: Vec<IpAddr>,
    /// The main routing table, both families.
    pub routes: Gathered<Vec<Route>>,
    /// The CNI configuration directory and its files.
    pub cni_dir: PathBuf,
    /// Its files (`Err`: the directory could not be read; a missing one is `Ok(empty)`).
    pub cni: Gathered<Vec<CniFile>>,
    /// Conntrack size and fill.
    pub conntrack: Gathered<ConntrackFill>,
    /// The API server probe (`None`: `--manifests`, no API server in use).
    pub api: Option<ApiProbe>,
    /// kproxy's tables for the mode.
    pub tables: Vec<TableFacts>,
    /// nftables mode with the desired state read: every difference between kproxy's tables
    /// in the kernel and what the sources say they should hold ([`kproxy_nft::drift::check`],
    /// each named as nft would print it), or why they could not be compared.
    pub drift: Option<Gathered<Vec<String>>>,
    /// nftables mode: kproxy's full ruleset for the desired state (empty when the sources
    /// could not be read) sent to the kernel in check mode (validated, never committed):
    /// the messages checked, or the kernel's refusal.
    pub nft_check: Option<Gathered<usize>>,
    /// kube-proxy's leftovers.
    pub leftovers: kproxy_takeover::find::Findings,
    /// IPVS mode only.
    pub ipvs: Option<IpvsFacts>,
    /// UDP conntrack entries that are stale against the desired state (described), or why
    /// they could not be computed.
    pub stale_udp: Gathered<Vec<String>>,
    /// The daemon's HTTP answers.
    pub daemon: DaemonFacts,
}
