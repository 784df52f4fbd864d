//! `kproxy doctor [kproxy's flags] [-o json] [--cni-conf-dir DIR]`: checks this node (see
//! [`kproxy_doctor`]). It takes the daemon's own flags and files, loaded by the daemon's code,
//! so it sees what the daemon sees; it reads only (kernel, files, the daemon's `/healthz` and
//! `/metrics`, the API server) and never talks to a running daemon's sync path.
//!
//! Exit codes: 0 every check ok, 1 warnings only, 2 at least one failure, 3 doctor's own
//! arguments are wrong.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kproxy_core::config::Mode;
use kproxy_doctor::gather::{gather, Inputs, DEFAULT_CNI_CONF_DIR};
use kproxy_doctor::{ApiProbe, ConfigFacts, ProxyMode, Settings};

use crate::cli::{parse_invocation, CliError, Invocation};
use crate::daemon::{self, NodeIdentity};

/// Bound of each API request of the probe, and of reading the desired state.
const API_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "Usage: kproxy doctor [kproxy's flags: --config, --kubeconfig, --manifests, ...] [-o text|json] [--cni-conf-dir DIR]

Checks this node for the ways a service proxy fails and prints, per check, a verdict (ok, warn,
fail), what was seen and what to do. Give it the daemon's flags so it reads the same sources.
  -o, --output text|json   json: one JSON object on the last line of stdout
  --cni-conf-dir DIR       the CNI configuration directory (default /etc/cni/net.d)
Exit codes: 0 all ok, 1 warnings only, 2 a failure, 3 bad doctor arguments.
";

/// Doctor's own options, taken out of the arguments before the rest goes to kproxy's parser.
struct Options {
    json: bool,
    cni_dir: PathBuf,
    conntrack_max: Option<u64>,
}

/// Removes `--name VALUE` / `--name=VALUE` (and `-o VALUE`, `-oVALUE`) from `args`.
fn take(args: &mut Vec<OsString>, long: &str, short: Option<&str>) -> Result<Option<String>, String> {
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        let inline = a.strip_prefix(&format!("--{long}=")).or_else(|| short.and_then(|s| a.strip_prefix(&format!("-{s}=")).or_else(|| a.strip_prefix(&format!("-{s}")).filter(|v| !v.is_empty()))));
        if let Some(v) = inline {
            found = Some(v.to_string());
            args.remove(i);
        } else if a == format!("--{long}") || short.is_some_and(|s| a == format!("-{s}")) {
            args.remove(i);
            if i >= args.len() {
                return Err(format!("{a} needs a value"));
            }
            found = Some(args.remove(i).to_string_lossy().into_owned());
        } else {
            i += 1;
        }
    }
    Ok(found)
}

fn options(args: &mut Vec<OsString>) -> Result<Options, String> {
    let json = match take(args, "output", Some("o"))?.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(format!("-o {other:?}: expected text or json")),
    };
    let cni_dir = take(args, "cni-conf-dir", None)?.map_or_else(|| PathBuf::from(DEFAULT_CNI_CONF_DIR), PathBuf::from);
    // Hidden, for tests: a network namespace cannot change nf_conntrack_max.
    let conntrack_max = match take(args, "kproxy-conntrack-max", None)? {
        Some(v) => Some(v.parse().map_err(|_| format!("--kproxy-conntrack-max {v:?}: not a number"))?),
        None => None,
    };
    Ok(Options { json, cni_dir, conntrack_max })
}

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
        let desired = match tokio::time::timeout(API_TIMEOUT * 2, daemon::desired_state(inv, &node)).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn doctor_options_are_taken_out_and_the_rest_is_left_for_kproxy() {
        let mut a = args(&["--manifests", "/m", "-o", "json", "--cni-conf-dir=/c", "--cluster-cidr", "198.18.0.0/16"]);
        let o = options(&mut a).unwrap();
        assert!(o.json);
        assert_eq!(o.cni_dir, PathBuf::from("/c"));
        assert_eq!(a, args(&["--manifests", "/m", "--cluster-cidr", "198.18.0.0/16"]));
        let mut a = args(&["-ojson", "--kproxy-conntrack-max=21"]);
        let o = options(&mut a).unwrap();
        assert!(o.json && o.conntrack_max == Some(21) && a.is_empty());
        assert!(options(&mut args(&["-o", "yaml"])).is_err());
        assert!(options(&mut args(&["--cni-conf-dir"])).is_err());
    }
}
