//! The configuration types: upstream's `kubeproxy.config.k8s.io/v1alpha1`
//! KubeProxyConfiguration, field for field, after defaulting.
//!
//! Field names serialize exactly as upstream writes them (`strictARP`, `excludeCIDRs`,
//! `clusterCIDR`, ...). [`Default`] gives upstream's defaults (`SetDefaults_KubeProxyConfiguration`);
//! the only kproxy difference is the meaning of an empty `mode` (nftables, see
//! [`KubeProxyConfiguration::effective_mode`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::duration::GoDuration;

/// `apiVersion` every configuration document must carry.
pub const API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";
/// `kind` every configuration document must carry.
pub const KIND: &str = "KubeProxyConfiguration";

/// Upstream's `KubeProxyConfiguration` (v1alpha1) with every default applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyConfiguration {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// Feature gates by name (kproxy implements the GA behaviour; gates are recorded).
    pub feature_gates: BTreeMap<String, bool>,
    /// How to reach the API server.
    pub client_connection: ClientConnectionConfiguration,
    /// Logging options (component-base `LoggingConfiguration`).
    pub logging: LoggingConfiguration,
    /// Name of this node, if not the host name (the `--hostname-override` flag lower-cases it).
    pub hostname_override: String,
    /// Override of the node's primary IP (despite its name, nothing binds to it).
    /// Default `0.0.0.0`.
    pub bind_address: String,
    /// `IP:port` of the health server. Default `0.0.0.0:10256` (`[::]:10256` if
    /// bindAddress is IPv6).
    pub healthz_bind_address: String,
    /// `IP:port` of the metrics server. Default `127.0.0.1:10249` (`[::1]:10249`).
    pub metrics_bind_address: String,
    /// Exit if a server port cannot be bound.
    pub bind_address_hard_fail: bool,
    /// Serve `/debug/pprof` on the metrics server (accepted; kproxy has no pprof).
    pub enable_profiling: bool,
    /// Previous minor version whose hidden metrics should be shown (`1.33`).
    pub show_hidden_metrics_for_version: String,
    /// `""`, `nftables`, `iptables` or `ipvs` (after validation).
    pub mode: String,
    /// Settings for mode `iptables` (and masquerading in mode `ipvs`).
    pub iptables: KubeProxyIPTablesConfiguration,
    /// Settings for mode `ipvs`.
    pub ipvs: KubeProxyIPVSConfiguration,
    /// Settings for mode `nftables` (and empty mode).
    pub nftables: KubeProxyNFTablesConfiguration,
    /// Windows/HNS settings (no effect on Linux; accepted and written back).
    pub winkernel: KubeProxyWinkernelConfiguration,
    /// `""` (ClusterCIDR), `ClusterCIDR`, `NodeCIDR`, `BridgeInterface` or `InterfaceNamePrefix`.
    pub detect_local_mode: String,
    /// Settings for the interface-based local-traffic detectors.
    pub detect_local: DetectLocalConfiguration,
    /// Pod network(s), comma-separated for a dual-stack pair.
    #[serde(rename = "clusterCIDR")]
    pub cluster_cidr: String,
    /// CIDRs (or `primary`) of the node addresses NodePorts answer on.
    pub node_port_addresses: Vec<String>,
    /// oom_score_adj of the process, [-1000, 1000]. Default -999.
    pub oom_score_adj: i32,
    /// Conntrack sysctls to tune.
    pub conntrack: KubeProxyConntrackConfiguration,
    /// How often informers re-list from the API server. Default 15m.
    pub config_sync_period: GoDuration,
    /// Unused upstream (it configured the removed userspace proxy); still validated.
    pub port_range: String,
    /// Windows service integration (no effect on Linux).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub windows_run_as_service: bool,
    /// Legacy userspace-proxy setting, removed upstream; accepted with a warning, no effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_idle_timeout: Option<GoDuration>,
}

/// component-base `ClientConnectionConfiguration`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConnectionConfiguration {
    /// Path of the kubeconfig file (empty: in-cluster configuration).
    pub kubeconfig: String,
    /// `Accept` header (empty: the client's default).
    pub accept_content_types: String,
    /// Content type of requests. Default `application/vnd.kubernetes.protobuf`
    /// (kproxy's client speaks JSON: see [`KubeProxyConfiguration::effective_content_type`]).
    pub content_type: String,
    /// Requests per second to the API server. Default 5.
    pub qps: f32,
    /// Burst above qps. Default 10.
    pub burst: i32,
}

/// component-base `LoggingConfiguration`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggingConfiguration {
    /// `text` (default) or `json`.
    pub format: String,
    /// Maximum time between log flushes. Default 5s.
    pub flush_frequency: GoDuration,
    /// klog verbosity (`-v`). Default 0.
    pub verbosity: u32,
    /// Per-file verbosity overrides (`--vmodule`).
    pub vmodule: Vec<VModuleItem>,
    /// Format-specific options.
    pub options: FormatOptions,
}

/// One `--vmodule` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VModuleItem {
    /// File name pattern (Go glob, without `.go`).
    pub file_pattern: String,
    /// Verbosity for matching files.
    pub verbosity: u32,
}

/// `logging.options`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct FormatOptions {
    /// Options of the `text` format.
    pub text: StreamOptions,
    /// Options of the `json` format.
    pub json: StreamOptions,
}

/// `logging.options.text` / `logging.options.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamOptions {
    /// Write info messages to stdout and errors to stderr.
    pub split_stream: bool,
    /// Buffer size for info messages when split (a Kubernetes quantity such as `0` or `64Ki`).
    pub info_buffer_size: String,
}

/// `iptables:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyIPTablesConfiguration {
    /// Packet-mark bit requesting SNAT, [0, 31]. Default 14.
    pub masquerade_bit: i32,
    /// SNAT all traffic to ClusterIPs.
    pub masquerade_all: bool,
    /// Allow NodePorts on 127.0.0.1 (iptables mode, IPv4 only). Default true.
    pub localhost_node_ports: bool,
    /// SNAT to the node's InternalIP instead of the egress address. Default false.
    #[serde(rename = "snatNodeInternalIP")]
    pub snat_node_internal_ip: bool,
    /// Resync interval. Default 30s.
    pub sync_period: GoDuration,
    /// Minimum time between syncs. Default 1s.
    pub min_sync_period: GoDuration,
}

/// `ipvs:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyIPVSConfiguration {
    /// Resync interval. Default 30s.
    pub sync_period: GoDuration,
    /// Minimum time between syncs. Default 0s.
    pub min_sync_period: GoDuration,
    /// IPVS scheduler (empty: rr).
    pub scheduler: String,
    /// CIDRs whose virtual servers kproxy must not remove.
    #[serde(rename = "excludeCIDRs")]
    pub exclude_cidrs: Vec<String>,
    /// Set arp_ignore=1 / arp_announce=2.
    #[serde(rename = "strictARP")]
    pub strict_arp: bool,
    /// IPVS TCP idle timeout (0: leave the kernel's).
    pub tcp_timeout: GoDuration,
    /// IPVS TCP FIN timeout (0: leave the kernel's).
    pub tcp_fin_timeout: GoDuration,
    /// IPVS UDP timeout (0: leave the kernel's).
    pub udp_timeout: GoDuration,
}

/// `nftables:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyNFTablesConfiguration {
    /// Packet-mark bit requesting SNAT, [0, 31]. Default 14.
    pub masquerade_bit: i32,
    /// SNAT all traffic to ClusterIPs.
    pub masquerade_all: bool,
    /// Resync interval. Default 30s.
    pub sync_period: GoDuration,
    /// Minimum time between syncs. Default 1s.
    pub min_sync_period: GoDuration,
}

/// `conntrack:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyConntrackConfiguration {
    /// nf_conntrack_max per CPU (0: leave the limit and ignore min). Default 32768.
    pub max_per_core: i32,
    /// Lower bound of nf_conntrack_max. Default 131072.
    pub min: i32,
    /// nf_conntrack_tcp_timeout_established (0: leave as-is). Default 24h.
    pub tcp_established_timeout: GoDuration,
    /// nf_conntrack_tcp_timeout_close_wait (0: leave as-is). Default 1h.
    pub tcp_close_wait_timeout: GoDuration,
    /// nf_conntrack_tcp_be_liberal.
    pub tcp_be_liberal: bool,
    /// nf_conntrack_udp_timeout (0: leave as-is).
    pub udp_timeout: GoDuration,
    /// nf_conntrack_udp_timeout_stream (0: leave as-is).
    pub udp_stream_timeout: GoDuration,
}

/// `winkernel:` (Windows only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyWinkernelConfiguration {
    /// HNS network name.
    pub network_name: String,
    /// Source VIP for NAT.
    pub source_vip: String,
    /// Create HNS policies with DSR.
    #[serde(rename = "enableDSR")]
    pub enable_dsr: bool,
    /// Root HNS endpoint name.
    pub root_hns_endpoint_name: String,
    /// Forward the service VIP for the health check port.
    pub forward_health_check_vip: bool,
}

/// `detectLocal:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DetectLocalConfiguration {
    /// Bridge for `detectLocalMode: BridgeInterface`.
    pub bridge_interface: String,
    /// Interface prefix for `detectLocalMode: InterfaceNamePrefix`.
    pub interface_name_prefix: String,
}

impl Default for KubeProxyConfiguration {
    fn default() -> Self {
        KubeProxyConfiguration {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            feature_gates: BTreeMap::new(),
            client_connection: ClientConnectionConfiguration::default(),
            logging: LoggingConfiguration::default(),
            hostname_override: String::new(),
            bind_address: "0.0.0.0".to_string(),
            healthz_bind_address: "0.0.0.0:10256".to_string(),
            metrics_bind_address: "127.0.0.1:10249".to_string(),
            bind_address_hard_fail: false,
            enable_profiling: false,
            show_hidden_metrics_for_version: String::new(),
            mode: String::new(),
            iptables: KubeProxyIPTablesConfiguration::default(),
            ipvs: KubeProxyIPVSConfiguration::default(),
            nftables: KubeProxyNFTablesConfiguration::default(),
            winkernel: KubeProxyWinkernelConfiguration::default(),
            detect_local_mode: String::new(),
            detect_local: DetectLocalConfiguration::default(),
            cluster_cidr: String::new(),
            node_port_addresses: Vec::new(),
            oom_score_adj: -999,
            conntrack: KubeProxyConntrackConfiguration::default(),
            config_sync_period: GoDuration::from_mins(15),
            port_range: String::new(),
            windows_run_as_service: false,
            udp_idle_timeout: None,
        }
    }
}

impl Default for ClientConnectionConfiguration {
    fn default() -> Self {
        ClientConnectionConfiguration {
            kubeconfig: String::new(),
            accept_content_types: String::new(),
            content_type: "application/vnd.kubernetes.protobuf".to_string(),
            qps: 5.0,
            burst: 10,
        }
    }
}

impl Default for LoggingConfiguration {
    fn default() -> Self {
        LoggingConfiguration {
            format: "text".to_string(),
            flush_frequency: GoDuration::from_secs(5),
            verbosity: 0,
            vmodule: Vec::new(),
            options: FormatOptions::default(),
        }
    }
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions { split_stream: false, info_buffer_size: "0".to_string() }
    }
}

impl Default for KubeProxyIPTablesConfiguration {
    fn default() -> Self {
        KubeProxyIPTablesConfiguration {
            masquerade_bit: 14,
            masquerade_all: false,
            localhost_node_ports: true,
            snat_node_internal_ip: false,
            sync_period: GoDuration::from_secs(30),
            min_sync_period: GoDuration::from_secs(1),
        }
    }
}

impl Default for KubeProxyIPVSConfiguration {
    fn default() -> Self {
        KubeProxyIPVSConfiguration {
            sync_period: GoDuration::from_secs(30),
            min_sync_period: GoDuration::ZERO,
            scheduler: String::new(),
            exclude_cidrs: Vec::new(),
            strict_arp: false,
            tcp_timeout: GoDuration::ZERO,
            tcp_fin_timeout: GoDuration::ZERO,
            udp_timeout: GoDuration::ZERO,
        }
    }
}

impl Default for KubeProxyNFTablesConfiguration {
    fn default() -> Self {
        KubeProxyNFTablesConfiguration {
            masquerade_bit: 14,
            masquerade_all: false,
            sync_period: GoDuration::from_secs(30),
            min_sync_period: GoDuration::from_secs(1),
        }
    }
}

impl Default for KubeProxyConntrackConfiguration {
    fn default() -> Self {
        KubeProxyConntrackConfiguration {
            max_per_core: 32 * 1024,
            min: 128 * 1024,
            tcp_established_timeout: GoDuration::from_hours(24),
            tcp_close_wait_timeout: GoDuration::from_hours(1),
            tcp_be_liberal: false,
            udp_timeout: GoDuration::ZERO,
            udp_stream_timeout: GoDuration::ZERO,
        }
    }
}
