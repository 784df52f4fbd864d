//! `kproxy doctor [kproxy's flags] [-o json] [--cni-conf-dir DIR]`: checks this node (see
//! [`kproxy_doctor`]). It takes the daemon's own flags and files, loaded by the daemon's code,
//! so it sees what the daemon sees; it reads only (kernel, files, the daemon's `/healthz` and
//! `/metrics`, the API server) and never talks to a running daemon's sync path.
//!
//! Exit codes: 0 every check ok, 1 warnings only, 2 at least one failure, 3 doctor's own
//! arguments are wrong.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kproxy_core::config::Mode;
use kproxy_doctor::cli::{options, USAGE};
use kproxy_doctor::gather::{gather, Inputs};
use kproxy_doctor::{ApiProbe, ConfigFacts, ProxyMode, Settings};

use crate::cli::{parse_invocation, CliError, Invocation};
use crate::daemon::{self, NodeIdentity};

/// Bound of each API request of the probe, and of reading the desired state.
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `kproxy doctor` with the arguments after `doctor`.
pub fn main(mut args: Vec<OsString>) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let opts = match options(&mut args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(3);
        }
    };
    let parsed = parse_invocation(std::iter::once(OsString::from("kproxy")).chain(args));
    let (config, inv) = match parsed {
        Ok(inv) => (config_facts(&inv), Some(inv)),
        Err(e) => (ConfigFacts::Invalid(error_lines(&e)), None),
    };
    let (api, desired) = match &inv {
        Some(inv) => sources(inv),
        None => (None, Err("the configuration is invalid".into())),
    };
    let facts = gather(Inputs {
        config,
        cni_dir: opts.cni_dir,
        api,
        desired,
        conntrack_max_override: opts.conntrack_max,
        table_names: (daemon::TABLE_NAME, kproxy_ipvs::nft::TABLE),
    });
    let report = kproxy_doctor::checks::run(&facts);
    print!("{}", report.text());
    if opts.json {
        println!("{}", report.json());
    }
    ExitCode::from(report.exit_code())
}

fn error_lines(e: &CliError) -> Vec<String> {
    e.to_string().lines().map(str::to_string).collect()
}

fn config_facts(inv: &Invocation) -> ConfigFacts {
    let cfg = &inv.config;
    let addr = |v: &str| v.trim().parse().ok();
    let settings = Settings {
        mode: match cfg.effective_mode().backend {
            Mode::Nftables => ProxyMode::Nftables,
            Mode::Ipvs => ProxyMode::Ipvs,
        },
        cluster_cidrs: cfg.cluster_cidr.split(',').filter_map(|c| c.trim().parse().ok()).collect(),
        node_port_addresses: cfg.node_port_addresses.clone(),
        qps: cfg.client_connection.qps,
        burst: cfg.client_connection.burst,
        conntrack_max: kproxy_conntrack::tuning::conntrack_max(&daemon::conntrack_tuning(cfg), daemon::cpus()),
        strict_arp: cfg.ipvs.strict_arp,
        healthz: addr(&cfg.healthz_bind_address),
        metrics: addr(&cfg.metrics_bind_address),
        uses_api: inv.extras.manifests.is_none(),
    };
    ConfigFacts::Valid {
        files: inv.extras.config_files.clone(),
        warnings: inv.warnings.iter().map(ToString::to_string).collect(),
        settings,
    }
}

/// The API probe (API source only) and the desired state from the sources, each bounded.
fn sources(inv: &Invocation) -> (Option<ApiProbe>, kproxy_doctor::Gathered<kproxy_core::model::ProxyState>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return (None, Err(format!("starting the async runtime: {e}"))),
    };
    runtime.block_on(async {
        let node = match daemon::node_identity(&inv.config) {
            Ok(n) => n,
            Err(e) => return (None, Err(format!("{e:#}"))),
        };
        let probe = match inv.extras.manifests {
            Some(_) => None,
            None => Some(probe(inv, &node).await),
        };
        if probe.as_ref().is_some_and(|p| p.version.is_err()) {
            return (probe, Err("the API server did not answer".into()));
        }
        let desired = match tokio::time::timeout(API_TIMEOUT * 2, daemon::desired_state_for(inv, &node)).await {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(e)) => Err(format!("reading the sources: {e:#}")),
            Err(_) => Err(format!("reading the sources took longer than {:?}", API_TIMEOUT * 2)),
        };
        (probe, desired)
    })
}

/// Asks the API server for its version and this node's Node, with the daemon's client.
async fn probe(inv: &Invocation, node: &NodeIdentity) -> ApiProbe {
    use k8s_openapi::api::core::v1::Node;
    let opts = daemon::kube_options(inv, node);
    let mut probe = ApiProbe { server: "?".into(), version: Err(String::new()), latency_ms: 0, node_pod_cidrs: Err("not asked: the API server did not answer".into()), node_name: node.name.clone() };
    match crate::source::kube::client::resolve_config(&opts).await {
        Ok(c) => probe.server = c.cluster_url.to_string(),
        Err(e) => {
            probe.version = Err(e.to_string());
            return probe;
        }
    }
    let client = match crate::source::kube::client::build_client(&opts).await {
        Ok(c) => c,
        Err(e) => {
            probe.version = Err(e.to_string());
            return probe;
        }
    };
    let start = Instant::now();
    probe.version = match tokio::time::timeout(API_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(v)) => Ok(v.git_version),
        Ok(Err(e)) => Err(chain(&e)),
        Err(_) => Err(format!("no answer within {API_TIMEOUT:?}")),
    };
    probe.latency_ms = start.elapsed().as_millis() as u64;
    if probe.version.is_ok() {
        let nodes: kube::Api<Node> = kube::Api::all(client);
        probe.node_pod_cidrs = match tokio::time::timeout(API_TIMEOUT, nodes.get_opt(&node.name)).await {
            Ok(Ok(n)) => Ok(n.map(|n| {
                let spec = n.spec.unwrap_or_default();
                spec.pod_cidrs.unwrap_or_else(|| spec.pod_cidr.into_iter().collect()).iter().filter_map(|c| c.parse().ok()).collect()
            })),
            Ok(Err(e)) => Err(chain(&e)),
            Err(_) => Err(format!("no answer within {API_TIMEOUT:?}")),
        };
    }
    probe
}

/// The error and its sources on one line, deduplicated (kube's errors repeat their source's
/// text), so the root cause (e.g. "Connection refused") shows.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
