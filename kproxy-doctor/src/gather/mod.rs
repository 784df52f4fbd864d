//! The edge: reads every fact, read-only, in the calling thread's network namespace (run it
//! in the node's). Nothing here writes to the kernel: tables are read with nf_tables dumps,
//! IPVS with its GET commands, conntrack with a dump, iptables with the `*-save` tools,
//! routes with `ip -j route` (iproute2's JSON; the same tool the seed guide's procedure uses).

mod node;

pub use node::local_addresses;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use kproxy_conntrack::{ConntrackSocket, ConntrackTable};
use kproxy_core::conntrack::{UdpTargets, Verdict};
use kproxy_core::model::{IpFamily, Protocol, ProxyState};

use crate::{ApiProbe, ConfigFacts, ConntrackFill, DaemonFacts, Facts, Gathered, IpvsFacts, ProxyMode, TableFacts};

/// Where the CNI configuration lives on a node (kubelet's and containerd's default).
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";

/// What the caller (the binary, which owns configuration and API client code) hands in.
#[derive(Debug)]
pub struct Inputs {
    /// The configuration's verdict and values.
    pub config: ConfigFacts,
    /// The CNI configuration directory.
    pub cni_dir: PathBuf,
    /// The API probe; `None` with `--manifests`.
    pub api: Option<ApiProbe>,
    /// The desired proxy state from the daemon's sources (for the stale-UDP check).
    pub desired: Gathered<ProxyState>,
    /// Replaces the kernel's `nf_conntrack_max` in the facts (tests: a netns cannot change
    /// it, and filling the global table is not an option).
    pub conntrack_max_override: Option<u64>,
    /// The names of kproxy's nftables tables per mode: `(nftables table, ipvs-mode table)`.
    pub table_names: (&'static str, &'static str),
}

/// Gathers every fact (see the module docs).
pub fn gather(inputs: Inputs) -> Facts {
    let mode = match &inputs.config {
        ConfigFacts::Valid { settings, .. } => settings.mode,
        ConfigFacts::Invalid(_) => ProxyMode::Nftables,
    };
    let takeover_mode = match mode {
        ProxyMode::Nftables => kproxy_takeover::Mode::Nftables,
        ProxyMode::Ipvs => kproxy_takeover::Mode::Ipvs,
    };
    let daemon = match &inputs.config {
        ConfigFacts::Valid { settings, .. } => daemon(settings.healthz, settings.metrics),
        ConfigFacts::Invalid(_) => DaemonFacts { healthz: None, metrics: None, now: now() },
    };
    Facts {
        local_addrs: node::local_addresses(),
        routes: node::routes(),
        cni: node::cni_files(&inputs.cni_dir),
        cni_dir: inputs.cni_dir,
        conntrack: conntrack_fill(inputs.conntrack_max_override),
        api: inputs.api,
        tables: tables(mode, inputs.table_names),
        drift: (mode == ProxyMode::Nftables).then(|| drift(inputs.desired.as_ref(), inputs.table_names.0)),
        leftovers: kproxy_takeover::find::find(takeover_mode),
        ipvs: (mode == ProxyMode::Ipvs).then(ipvs),
        nft_check: (mode == ProxyMode::Nftables && matches!(inputs.config, ConfigFacts::Valid { .. }))
            .then(|| nft_check(inputs.desired.as_ref().ok())),
        stale_udp: inputs.desired.and_then(|state| stale_udp(&state)),
        daemon,
        config: inputs.config,
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn sysctl(key: &str) -> Gathered<u64> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.trim().parse().map_err(|_| format!("{path}: {:?} is not a number", text.trim()))
}

fn conntrack_fill(max_override: Option<u64>) -> Gathered<ConntrackFill> {
    let count = sysctl("net.netfilter.nf_conntrack_count")?;
    let max = match max_override {
        Some(max) => max,
        None => sysctl("net.netfilter.nf_conntrack_max")?,
    };
    Ok(ConntrackFill { count, max })
}

/// kproxy's tables for the mode: both families' `kproxy` in nftables mode, `ip kproxy-ipvs`
/// in IPVS mode.
fn tables(mode: ProxyMode, (nft, ipvs): (&'static str, &'static str)) -> Vec<TableFacts> {
    let wanted: &[(IpFamily, &str)] = match mode {
        ProxyMode::Nftables => &[(IpFamily::V4, nft), (IpFamily::V6, nft)],
        ProxyMode::Ipvs => &[(IpFamily::V4, ipvs)],
    };
    wanted
        .iter()
        .map(|(family, name)| {
            let chains = match kproxy_nft::trace::read_table(*family, name) {
                Ok(dump) => Ok(Some(dump.chains.len())),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e.to_string()),
            };
            TableFacts { name: format!("{} {name}", kproxy_nft::lowlevel::ip_word(*family)), chains }
        })
        .collect()
}

/// kproxy's nftables tables against the desired state (read-only; see `Facts::drift`).
fn drift(desired: Result<&ProxyState, &String>, table: &str) -> Gathered<Vec<String>> {
    let state = desired.map_err(|e| format!("the desired state could not be read: {e}"))?;
    let diffs = kproxy_nft::drift::check(state, table).map_err(|e| e.to_string())?;
    Ok(diffs.iter().map(ToString::to_string).collect())
}

/// Name of the table the check-mode batch is rendered for: never kproxy's own, so nothing a
/// check could do (it commits nothing anyway) touches the daemon's table.
pub const CHECK_TABLE: &str = "kproxy-doctor-check";

/// kproxy's full sync of `state` (an empty state without one) rendered by the real backend and
/// sent in check mode: the kernel loads and validates every expression, set and reference,
/// and commits nothing.
fn nft_check(state: Option<&ProxyState>) -> Gathered<usize> {
    use kproxy_core::backend::ProxyBackend;
    let cfg = kproxy_nft::NftConfig { table_name: CHECK_TABLE.into(), ..kproxy_nft::NftConfig::default() };
    let kernel = kproxy_nft::lowlevel::CheckingKernel::open(cfg.max_message_bytes).map_err(|e| format!("nf_tables socket: {e}"))?;
    let empty = ProxyState::default();
    let mut backend = kproxy_nft::NftBackend::with_kernel(cfg, kernel);
    backend.sync_full(state.unwrap_or(&empty)).map(|r| r.operations).map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    })
}

fn ipvs() -> IpvsFacts {
    let virtual_servers = kproxy_ipvs::ipvs::Ipvs::open().and_then(|mut i| i.services()).map(|s| s.len()).map_err(|e| e.to_string());
    let arp = |k| sysctl(k).map(|v| v as u32);
    IpvsFacts { virtual_servers, arp_ignore: arp("net.ipv4.conf.all.arp_ignore"), arp_announce: arp("net.ipv4.conf.all.arp_announce") }
}

/// The UDP conntrack entries stale against `state`, judged as the daemon's reconciler judges
/// them after a sync (without a previous state: only the current destinations count).
fn stale_udp(state: &ProxyState) -> Gathered<Vec<String>> {
    let targets = UdpTargets::of(state);
    let mut table = ConntrackSocket::open().map_err(|e| format!("opening ctnetlink: {e}"))?;
    let mut stale = Vec::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        let flows = table.dump(family, Protocol::Udp).map_err(|e| format!("dumping UDP conntrack entries: {e}"))?;
        stale.extend(flows.iter().filter(|f| targets.judge(&UdpTargets::default(), f) == Verdict::Stale).map(ToString::to_string));
    }
    Ok(stale)
}

fn daemon(healthz: Option<std::net::SocketAddr>, metrics: Option<std::net::SocketAddr>) -> DaemonFacts {
    let healthz = healthz.map(|addr| {
        let (status, body) = crate::http::get(addr, "/healthz")?;
        let json = serde_json::from_str(&body).map_err(|e| format!("{addr}/healthz: not JSON: {e}"))?;
        Ok((status, json))
    });
    let metrics = metrics.map(|addr| crate::http::get(addr, "/metrics").map(|(_, body)| body));
    DaemonFacts { healthz, metrics, now: now() }
}
