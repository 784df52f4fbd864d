//! Wiring: from a parsed [`Invocation`] to a running proxy (or one sync, a dry run, a cleanup).
//!
//! Nothing here decides proxy semantics: it picks the backend for the configured mode, the
//! source (`--manifests` files or the API server), and connects them through the sync loop
//! with metrics, health, healthCheckNodePort servers and conntrack cleanup around it.
//!
//! Side effects on the host are limited to what the mode needs: `--dry-run` changes nothing;
//! `--once` programs the rules and cleans stale UDP conntrack entries, but neither tunes
//! sysctls nor opens HTTP servers (it is meant for tests, demos and one-shot repairs); only
//! the long-running daemon tunes conntrack and its OOM score, as kube-proxy does.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use kproxy_core::backend::{ProxyBackend, RecordingBackend};
use kproxy_core::config::{KubeProxyConfiguration, Mode};
use kproxy_core::event::{ClusterEvent, ObjectKind};
use kproxy_core::model::ProxyState;
use kproxy_core::tracker::ChangeTracker;
use kproxy_core::translate::TranslateOptions;
use kproxy_ipvs::{IpvsBackend, IpvsConfig};
use kproxy_nft::{NftBackend, NftConfig};
use tokio::sync::mpsc;

use crate::cli::Invocation;
use crate::config_watch::{ConfigChange, ConfigWatch};
use crate::source::kube::{spawn_kube_source, KubeSourceOptions};
use crate::source::manifests::{self, ManifestOptions};
use crate::sync_loop::{self, AfterSync, Outcome, SyncContext, SyncLoop, SyncTiming};
use crate::{conntrack, node_tuning};
use kproxy_telemetry::{hcnode, health, metrics};

/// Capacity of the event channel between sources and the sync loop: large enough that a
/// relist of a big cluster does not stall the watchers, small enough to bound memory.
const EVENT_CHANNEL: usize = 16 * 1024;

/// How often IPVS mode compares the kernel's virtual and real servers with what it
/// programmed (a dump of the virtual servers and at most 64 real-server reads each time).
const IPVS_CHECK_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// Name of the nftables tables kproxy programs.
pub const TABLE_NAME: &str = "kproxy";

/// Facts about this node that the configuration leaves open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// `hostnameOverride`, else the host name, lower-cased as upstream does.
    pub name: String,
    /// `bindAddress` when it is a specific address; otherwise empty (taken from the Node).
    pub ips: Vec<IpAddr>,
}

/// Work out this node's name and explicit IPs.
pub fn node_identity(cfg: &KubeProxyConfiguration) -> anyhow::Result<NodeIdentity> {
    let name = if cfg.hostname_override.trim().is_empty() {
        // The kernel's host name of this UTS namespace, as os.Hostname() reads it upstream.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading the host name from /proc/sys/kernel/hostname (set --hostname-override)")?;
        host.trim().to_lowercase()
    } else {
        cfg.hostname_override.trim().to_lowercase()
    };
    let ips = match cfg.bind_address.parse::<IpAddr>() {
        Ok(ip) if !ip.is_unspecified() && !ip.is_loopback() => vec![ip],
        _ => Vec::new(),
    };
    Ok(NodeIdentity { name, ips })
}

fn tracker_for(inv: &Invocation, node: &NodeIdentity) -> ChangeTracker {
    let settings = inv.config.proxy_settings(node.name.clone(), node.ips.clone());
    let options = TranslateOptions {
        external_ip_allowed_cidrs: inv.extras.external_ip_allowed_cidrs.clone(),
        load_balancer_ip_allowed_cidrs: inv.extras.load_balancer_ip_allowed_cidrs.clone(),
        ..TranslateOptions::default()
    };
    ChangeTracker::new(settings, options)
}

fn nft_config() -> NftConfig {
    NftConfig { table_name: TABLE_NAME.into(), ..NftConfig::default() }
}

/// The IPVS backend's settings from the configuration (`ipvs:`, masquerading from `iptables:`).
pub fn ipvs_config(cfg: &KubeProxyConfiguration) -> anyhow::Result<IpvsConfig> {
    IpvsConfig::from_kube(&cfg.ipvs).context("mapping the ipvs: configuration")
}

fn timing(cfg: &KubeProxyConfiguration) -> SyncTiming {
    SyncTiming::new(cfg.sync_period().to_std(), cfg.min_sync_period().to_std())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the async runtime")
}

/// Run the `Run` command: the daemon, `--once`, or `--dry-run`.
pub fn run(inv: &Invocation) -> anyhow::Result<()> {
    // Named up front: without CAP_NET_ADMIN every netlink request would fail with EPERM.
    if !inv.extras.dry_run && !inv.extras.init_only {
        crate::capabilities::require_net_admin(crate::capabilities::effective())?;
    }
    // Before the first sync, so kube-proxy's stale DNAT never competes with kproxy's rules.
    if !inv.extras.dry_run && !inv.extras.init_only && !inv.extras.keep_kube_proxy_leftovers {
        crate::takeover::remove_leftovers(inv.config.effective_mode().backend);
    }
    let runtime = runtime()?;
    runtime.block_on(run_async(inv))
}

async fn run_async(inv: &Invocation) -> anyhow::Result<()> {
    let cfg = &inv.config;
    let node = node_identity(cfg)?;
    let mode = cfg.effective_mode();
    let backend_name = match mode.backend {
        Mode::Nftables => "nftables",
        Mode::Ipvs => "ipvs",
    };
    tracing::info!(node = %node.name, mode = backend_name, once = inv.extras.once, dry_run = inv.extras.dry_run, "Starting kproxy");
    if inv.extras.init_only {
        // Upstream's --init-only: the privileged node set-up, then exit (for init containers).
        tune_node(cfg);
        tracing::info!("--init-only: node tuning done; exiting");
        return Ok(());
    }

    let one_shot = inv.extras.once || inv.extras.dry_run;
    // Taken before the source starts, so an edit made while kproxy starts up is not missed.
    let config_watch = (!one_shot).then(|| ConfigWatch::new(&inv.extras.config_files));
    let mut tracker = tracker_for(inv, &node);
    let (tx, rx) = mpsc::channel::<ClusterEvent>(EVENT_CHANNEL);
    // Before the source: its API client records every request in the metrics.
    let metrics = Arc::new(metrics::Metrics::new());
    let require_node = start_source(inv, &node, &mut tracker, tx, &metrics, one_shot).await?;

    let timing = timing(cfg);
    let health = Arc::new(health::ProxyHealth::new(timing.sync_period * 2));

    if inv.extras.dry_run {
        let state = record_first_sync(tracker, rx, &metrics, &node, require_node, timing).await?;
        print_dry_run(mode.backend, cfg, &state)?;
        return Ok(());
    }

    // Servers and host tuning only for the long-running daemon (see the module docs).
    let mut _servers = Vec::new();
    if !one_shot {
        tune_node(cfg);
        // An empty address disables the server, as upstream. A port that cannot be bound is
        // fatal only with bindAddressHardFail (upstream logs it and goes on otherwise).
        let hard_fail = cfg.bind_address_hard_fail;
        if let Some(addr) = parse_addr(&cfg.metrics_bind_address, "metricsBindAddress")? {
            let info = metrics::ServerInfo::new(backend_name, cfg);
            let server =
                metrics::serve(addr, metrics.clone(), info).with_context(|| format!("serving metrics on {addr}"));
            _servers.extend(bound(server, hard_fail)?);
        }
        if let Some(addr) = parse_addr(&cfg.healthz_bind_address, "healthzBindAddress")? {
            let server = health::serve(addr, health.clone(), metrics.clone())
                .with_context(|| format!("serving /healthz and /livez on {addr}"));
            _servers.extend(bound(server, hard_fail)?);
        }
    }
    let cleanup = conntrack::ConntrackCleanup::new(kproxy_conntrack::Reconciler::new(), metrics.clone());
    let mut hooks: Vec<Box<dyn AfterSync>> = vec![Box::new(cleanup)];
    if !one_shot {
        let bind = hcnode::HcBind::NodePortAddresses;
        hooks.push(Box::new(hcnode::HcNodeServers::new(health.clone(), bind, tokio::runtime::Handle::current())));
    }
    let ctx = context(backend_name, timing, &metrics, &health, hooks, inv.extras.once, &node, require_node);
    let config_change = Arc::new(parking_lot::Mutex::new(None));
    let stop = stop_signal(config_watch, config_change.clone());
    let outcome = match mode.backend {
        Mode::Nftables => {
            let backend = NftBackend::new(nft_config()).context("opening the nftables netlink socket")?;
            // Not for --once: it ends before anyone could change what it programmed.
            let drift = if one_shot { None } else { watch_tables(TABLE_NAME, backend.kernel().commit_port()) };
            let sync_loop = new_sync_loop(backend, tracker, ctx, require_node);
            let sync_loop = match drift {
                Some(drift) => sync_loop.with_drift(drift),
                None => sync_loop,
            };
            sync_loop.run(rx, stop).await.0?
        }
        Mode::Ipvs => {
            let backend = IpvsBackend::new(ipvs_config(cfg)?).context("opening the IPVS backend (is the ip_vs module loaded?)")?;
            // Its nftables table (if any) is watched as in nftables mode.
            let drift = match backend.nft_commit_port() {
                Some(port) if !one_shot => watch_tables(kproxy_ipvs::nft::TABLE, Ok(port)),
                _ => None,
            };
            // IPVS announces no changes: its table is compared with what was programmed.
            let sync_loop = new_sync_loop(backend, tracker, ctx, require_node).with_check(IPVS_CHECK_PERIOD);
            let sync_loop = match drift {
                Some(drift) => sync_loop.with_drift(drift),
                None => sync_loop,
            };
            sync_loop.run(rx, stop).await.0?
        }
    };
    if let Some(change) = config_change.lock().take() {
        // Exit non-zero, as upstream does, so that the DaemonSet or systemd restarts kproxy.
        bail!("{change}");
    }
    match outcome {
        Outcome::SyncedOnce => tracing::info!("Programmed the proxy rules once; exiting"),
        Outcome::Stopped => tracing::info!("Stopped; the proxy rules stay in place (use --cleanup to remove them)"),
        Outcome::SourceClosed => tracing::info!("The source ended; the proxy rules stay in place"),
    }
    Ok(())
}

/// [`desired_state`] inside a running tokio runtime, for a known node (`kproxy doctor`).
/// Waits for the source's first complete read (with an API server, bounded by the Node wait).
pub async fn desired_state_for(inv: &Invocation, node: &NodeIdentity) -> anyhow::Result<ProxyState> {
    let mut tracker = tracker_for(inv, node);
    let (tx, rx) = mpsc::channel::<ClusterEvent>(EVENT_CHANNEL);
    let metrics = Arc::new(metrics::Metrics::new());
    let require_node = start_source(inv, node, &mut tracker, tx, &metrics, true).await?;
    record_first_sync(tracker, rx, &metrics, node, require_node, timing(&inv.config)).await
}

/// Watches kproxy's nftables tables named `table` for changes by anyone but the commit
/// socket of port id `own`. Failing to watch is a warning: periodic full syncs still repair such changes.
fn watch_tables(
    table: &str,
    own: Result<u32, kproxy_nft::lowlevel::NetlinkError>,
) -> Option<mpsc::Receiver<sync_loop::Drift>> {
    let watched = own
        .map_err(anyhow::Error::new)
        .and_then(|port| crate::tamper_watch::spawn(&[table], &[port]).map_err(anyhow::Error::new));
    match watched {
        Ok(drift) => Some(drift),
        Err(err) => {
            tracing::warn!(error = format!("{err:#}"), "Not watching kproxy's nftables tables for changes by someone else; the periodic full sync still repairs them");
            None
        }
    }
}

/// SIGTERM/SIGINT, or a change of a loaded configuration file (remembered in `seen`).
async fn stop_signal(watch: Option<ConfigWatch>, seen: Arc<parking_lot::Mutex<Option<ConfigChange>>>) {
    let changed = async {
        match watch {
            Some(watch) => watch.changed().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = sync_loop::shutdown_signal() => {}
        change = changed => *seen.lock() = Some(change),
    }
}

/// The sync loop; with an API server source, its first sync waits (bounded) for this node's
/// Node object, whose IPs, zone and PodCIDR complete the configuration, as upstream waits.
fn new_sync_loop<B: ProxyBackend + Send + 'static>(
    backend: B,
    tracker: ChangeTracker,
    ctx: SyncContext,
    require_node: bool,
) -> SyncLoop<B, ChangeTracker> {
    // Never longer than syncPeriod: /livez fails when nothing was programmed within
    // 2 x syncPeriod of the start, and a liveness restart would only begin the wait again.
    let bound = sync_loop::DEFAULT_NODE_WAIT.min(ctx.timing.sync_period);
    let new = SyncLoop::new(backend, tracker, ctx);
    if require_node {
        new.with_node_wait(bound)
    } else {
        new
    }
}

#[allow(clippy::too_many_arguments)]
fn context(
    backend_name: &'static str,
    timing: SyncTiming,
    metrics: &Arc<metrics::Metrics>,
    health: &Arc<health::ProxyHealth>,
    hooks: Vec<Box<dyn AfterSync>>,
    once: bool,
    node: &NodeIdentity,
    require_node: bool,
) -> SyncContext {
    SyncContext {
        backend_name,
        timing,
        metrics: metrics.clone(),
        health: health.clone(),
        hooks,
        once,
        node_name: node.name.clone(),
        require_node,
    }
}

/// What the first sync of `tracker` would program, recorded instead of programmed.
async fn record_first_sync(
    tracker: ChangeTracker,
    rx: mpsc::Receiver<ClusterEvent>,
    metrics: &Arc<metrics::Metrics>,
    node: &NodeIdentity,
    require_node: bool,
    timing: SyncTiming,
) -> anyhow::Result<ProxyState> {
    let health = Arc::new(health::ProxyHealth::new(timing.sync_period * 2));
    let ctx = context("dry-run", timing, metrics, &health, Vec::new(), true, node, require_node);
    let (outcome, backend) = new_sync_loop(RecordingBackend::default(), tracker, ctx, require_node).run(rx, sync_loop::shutdown_signal()).await;
    expect_synced_once(outcome?)?;
    Ok(backend.as_ref().and_then(|b| b.applied()).cloned().unwrap_or_default())
}

/// The state kproxy would program now from the invocation's sources (one read of the
/// manifests, or one list of the API server, then translated as the daemon does), with
/// nothing programmed: `--dry-run` prints it, `kproxy explain` compares it with the kernel.
pub fn desired_state(inv: &Invocation) -> anyhow::Result<ProxyState> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let node = node_identity(&inv.config)?;
        desired_state_for(inv, &node).await
    })
}

fn expect_synced_once(outcome: Outcome) -> anyhow::Result<()> {
    match outcome {
        Outcome::SyncedOnce => Ok(()),
        other => bail!("stopped before the first sync ({other:?})"),
    }
}

/// Start the source; returns whether the Node object is expected (API server only).
async fn start_source(
    inv: &Invocation,
    node: &NodeIdentity,
    tracker: &mut ChangeTracker,
    tx: mpsc::Sender<ClusterEvent>,
    metrics: &metrics::Metrics,
    once: bool,
) -> anyhow::Result<bool> {
    if let Some(path) = &inv.extras.manifests {
        // The manifest source sends Synced for every kind after its first read.
        tracker.wait_for(&[ObjectKind::Service, ObjectKind::EndpointSlice, ObjectKind::ServiceCidr, ObjectKind::Node]);
        let opts = ManifestOptions { once, ..ManifestOptions::new(path) };
        let shown = path.display().to_string();
        tokio::spawn(async move {
            if let Err(err) = manifests::run(opts, tx).await {
                tracing::error!(path = %shown, error = %err, "Reading manifests failed");
            }
        });
        return Ok(false);
    }
    let mut opts = kube_options(inv, node);
    opts.rest_metrics = Some(metrics.rest_client());
    tracker.wait_for(&[ObjectKind::Service, ObjectKind::EndpointSlice, ObjectKind::ServiceCidr]);
    spawn_kube_source(opts, tx).await.context("starting the Kubernetes API source")?;
    Ok(true)
}

/// The API client's options from the invocation (kubeconfig, master, qps/burst, content type).
pub fn kube_options(inv: &Invocation, node: &NodeIdentity) -> KubeSourceOptions {
    let cc = &inv.config.client_connection;
    let mut opts = KubeSourceOptions::new(node.name.clone());
    opts.kubeconfig = (!cc.kubeconfig.is_empty()).then(|| cc.kubeconfig.clone().into());
    opts.master = inv.extras.master.clone();
    opts.qps = cc.qps;
    opts.burst = cc.burst;
    // An explicitly configured protobuf content type was already reported by the config
    // warnings; hand the client the effective type then, so the notice is given only once.
    opts.content_type = if inv.origins.is_set("clientConnection.contentType") {
        inv.config.effective_content_type().to_string()
    } else {
        cc.content_type.clone()
    };
    opts
}

/// A server that could not bind: an error with `hard_fail`, else a logged error and no server.
fn bound<T>(server: anyhow::Result<T>, hard_fail: bool) -> anyhow::Result<Option<T>> {
    match server {
        Ok(server) => Ok(Some(server)),
        Err(err) if hard_fail => Err(err.context("bindAddressHardFail is set")),
        Err(err) => {
            tracing::error!("{err:#}; going on without it (set bindAddressHardFail to make this fatal)");
            Ok(None)
        }
    }
}

/// `None` for an empty value (the server is disabled).
fn parse_addr(value: &str, field: &str) -> anyhow::Result<Option<SocketAddr>> {
    if value.trim().is_empty() {
        tracing::info!("{field} is empty: that server is disabled");
        return Ok(None);
    }
    value.parse().map(Some).with_context(|| format!("{field}: {value:?} is not IP:port"))
}

/// conntrack sysctls and the OOM score: warnings, never fatal.
fn tune_node(cfg: &KubeProxyConfiguration) {
    kproxy_conntrack::tuning::apply(&kproxy_conntrack::sysctl::node(), &conntrack_tuning(cfg), cpus());
    if crate::capabilities::can_apply_oom_score_adj(crate::capabilities::effective(), cfg.oom_score_adj) {
        node_tuning::apply_oom_score_adj(Path::new(node_tuning::OOM_SCORE_ADJ_PATH), cfg.oom_score_adj);
    }
}

/// The CPUs conntrack's `maxPerCore` is multiplied by.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The `conntrack:` settings as the tuning code takes them.
pub fn conntrack_tuning(cfg: &KubeProxyConfiguration) -> kproxy_conntrack::tuning::ConntrackTuning {
    let ct = &cfg.conntrack;
    kproxy_conntrack::tuning::ConntrackTuning {
        // Validation rejected negative values; max(0) only keeps the cast total.
        max_per_core: ct.max_per_core.max(0) as u32,
        min: ct.min.max(0) as u32,
        tcp_established_timeout: ct.tcp_established_timeout.to_std(),
        tcp_close_wait_timeout: ct.tcp_close_wait_timeout.to_std(),
        tcp_be_liberal: ct.tcp_be_liberal,
        udp_timeout: ct.udp_timeout.to_std(),
        udp_stream_timeout: ct.udp_stream_timeout.to_std(),
    }
}

fn print_dry_run(mode: Mode, cfg: &KubeProxyConfiguration, state: &ProxyState) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "# kproxy --dry-run: nothing was programmed; {} service ports", state.services.len())?;
    match mode {
        Mode::Nftables => {
            writeln!(out, "# The nftables ruleset kproxy would commit (load with `nft -f`):")?;
            out.write_all(kproxy_nft::render_script(state, &nft_config()).as_bytes())?;
        }
        Mode::Ipvs => {
            let ipvs = ipvs_config(cfg)?;
            writeln!(out, "# The IPVS virtual servers kproxy would program (scheduler {}):", ipvs.scheduler.name())?;
            for port in state.services.values() {
                let eps: Vec<String> = port.internal_endpoints().iter().map(|e| e.to_string()).collect();
                writeln!(out, "{} {}:{} -> [{}]", port.name.protocol, port.cluster_ip, port.port, eps.join(", "))?;
            }
        }
    }
    Ok(())
}

/// `--cleanup`: remove what any kproxy mode programmed (as kube-proxy cleans every mode).
pub fn cleanup(inv: &Invocation) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    if !inv.extras.keep_kube_proxy_leftovers && !crate::takeover::remove_leftovers(inv.config.effective_mode().backend) {
        errors.push("kube-proxy's leftovers: see the errors above".to_string());
    }
    match NftBackend::new(nft_config()).map_err(anyhow::Error::from).and_then(|mut b| Ok(b.cleanup()?)) {
        Ok(()) => tracing::info!(table = TABLE_NAME, "Removed kproxy's nftables tables"),
        Err(err) => errors.push(format!("nftables: {err:#}")),
    }
    let ipvs_present = Path::new("/proc/net/ip_vs").exists();
    if ipvs_present {
        match ipvs_config(&inv.config)
            .and_then(|c| IpvsBackend::new(c).map_err(anyhow::Error::from))
            .and_then(|mut b| Ok(b.cleanup()?))
        {
            Ok(()) => tracing::info!("Removed kproxy's IPVS services, kube-ipvs0 addresses and IPVS nftables table"),
            Err(err) => errors.push(format!("ipvs: {err:#}")),
        }
    } else {
        tracing::info!("IPVS is not loaded in this kernel: nothing to clean up there");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("cleanup incomplete: {}", errors.join("; "))
    }
}
