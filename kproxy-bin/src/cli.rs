//! The command line: upstream kube-proxy's flags with their meaning, so an existing
//! DaemonSet's arguments work unchanged, plus kproxy's own (`--manifests`, `--once`,
//! `--dry-run`) and the `validate` subcommand.
//!
//! Go pflag syntax works: `--flag=value`, `--flag value`, booleans as `--flag` or
//! `--flag=true|false|1|0|t|f`, `-v=2`, `-v 2`, `--v=2`; list flags take comma-separated
//! values and may repeat. Unlike upstream (which ignores most flags when `--config` is
//! given), every flag overrides the configuration files, field by field.
//!
//! [`parse_invocation`] turns arguments into an [`Invocation`]: what to do, the effective
//! configuration (files and flags merged, defaulted, validated) and its warnings.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command as ClapCommand};
use ipnet::IpNet;
use kproxy_core::config::{ConfigWarning, FlagValue, KubeProxyConfiguration, Layer, Origins};

use crate::config_load::{self, ConfigSources};
pub use crate::error::CliError;

/// What the invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the proxy (`kproxy [flags]`).
    Run,
    /// Check the configuration and print it (`kproxy validate [flags]`).
    Validate,
    /// Remove everything kproxy programmed and exit (`--cleanup`).
    Cleanup,
    /// Explain one Service against the live kernel (`kproxy explain TARGET [-o json] [flags]`).
    Explain(ExplainArgs),
    /// Write the effective configuration to this file and exit (`--write-config-to`).
    WriteConfig(PathBuf),
    /// Print this help text and exit 0 (`-h`, `--help`).
    Help(String),
    /// Print this version text and exit 0 (`--version`).
    Version(String),
}

/// The arguments of `kproxy explain` beyond the daemon's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainArgs {
    /// `NAMESPACE/NAME`, or a destination `VIP:PORT[/PROTO]` (`[IPv6]:PORT[/PROTO]`).
    pub target: String,
    /// `-o json`: one JSON object on the last line of stdout.
    pub json: bool,
}

/// Settings that are not part of KubeProxyConfiguration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extras {
    /// `--manifests PATH`: read Services/EndpointSlices/Nodes from this file or directory
    /// instead of an API server.
    pub manifests: Option<PathBuf>,
    /// `--once`: one sync, then exit (0 on success).
    pub once: bool,
    /// `--dry-run`: compute and print what would be programmed, change nothing.
    pub dry_run: bool,
    /// `--remove-kube-proxy-leftovers=false`: leave kube-proxy's rules alone on start and
    /// with `--cleanup` (default: remove them, see kproxy-takeover).
    pub keep_kube_proxy_leftovers: bool,
    /// Effective klog verbosity (`-v`, or `logging.verbosity`).
    pub verbosity: u32,
    /// `--master`: API server URL overriding the kubeconfig's.
    pub master: Option<String>,
    /// `--init-only`: do the privileged setup steps, then exit.
    pub init_only: bool,
    /// The configuration files that were read, lowest precedence first.
    pub config_files: Vec<PathBuf>,
    /// `--external-ip-allowed-cidrs` (kproxy extension, CVE-2020-8554): program only
    /// `spec.externalIPs` inside these networks. `None`: the flag was not given (all are).
    pub external_ip_allowed_cidrs: Option<Vec<IpNet>>,
    /// `--load-balancer-ip-allowed-cidrs` (kproxy extension): the same for LoadBalancer IPs.
    pub load_balancer_ip_allowed_cidrs: Option<Vec<IpNet>>,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// What to do.
    pub command: Command,
    /// The effective configuration: files, then flags, then defaults; validated.
    pub config: KubeProxyConfiguration,
    /// Accepted settings that deserve attention; print each once.
    pub warnings: Vec<ConfigWarning>,
    /// Where each set field came from (file position or flag).
    pub origins: Origins,
    /// Everything else from the command line.
    pub extras: Extras,
}

/// How a configuration flag's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One value (strings, numbers, durations: typed by the configuration parser).
    Text,
    /// A pflag boolean: `--flag` alone means true.
    Bool,
    /// Comma-separated, repeatable, concatenated (pflag StringSlice).
    List,
    /// `k=v,k2=v2`, repeatable (feature gates).
    Map,
}

/// A flag that sets configuration fields.
struct ConfigFlag {
    name: &'static str,
    /// Every field the flag sets, in order (later flags in the table win on shared paths).
    paths: &'static [&'static str],
    kind: Kind,
    help: &'static str,
}

const fn flag(name: &'static str, paths: &'static [&'static str], kind: Kind, help: &'static str) -> ConfigFlag {
    ConfigFlag { name, paths, kind, help }
}

use Kind::{Bool, List, Map, Text};

/// Every flag that maps onto KubeProxyConfiguration, with upstream's meaning.
const CONFIG_FLAGS: &[ConfigFlag] = &[
    flag(
        "proxy-mode",
        &["mode"],
        Text,
        "Which proxy mode to use: 'nftables' (default), 'iptables' (served by the nftables backend) or 'ipvs'",
    ),
    flag(
        "cluster-cidr",
        &["clusterCIDR"],
        Text,
        "The CIDR range of the pods in the cluster (a comma-separated dual-stack pair for dual-stack clusters)",
    ),
    flag(
        "masquerade-all",
        &["iptables.masqueradeAll", "nftables.masqueradeAll"],
        Bool,
        "SNAT all traffic sent via Service cluster IPs",
    ),
    flag(
        "nodeport-addresses",
        &["nodePortAddresses"],
        List,
        "CIDRs of the node IPs NodePorts answer on, 'primary' (the node's primary IPs) or 'all'",
    ),
    flag(
        "bind-address",
        &["bindAddress"],
        Text,
        "Overrides kube-proxy's idea of the node's primary IP (nothing binds to it)",
    ),
    flag("bind-address-hard-fail", &["bindAddressHardFail"], Bool, "Exit if a server port cannot be bound"),
    flag(
        "healthz-bind-address",
        &["healthzBindAddress"],
        Text,
        "IP:port of the health check server (default 0.0.0.0:10256)",
    ),
    flag(
        "metrics-bind-address",
        &["metricsBindAddress"],
        Text,
        "IP:port of the metrics server (default 127.0.0.1:10249)",
    ),
    flag(
        "kubeconfig",
        &["clientConnection.kubeconfig"],
        Text,
        "Path to a kubeconfig file with authorization information",
    ),
    flag("kube-api-qps", &["clientConnection.qps"], Text, "QPS to use while talking with the API server"),
    flag("kube-api-burst", &["clientConnection.burst"], Text, "Burst to use while talking with the API server"),
    flag(
        "kube-api-content-type",
        &["clientConnection.contentType"],
        Text,
        "Content type of requests sent to the API server",
    ),
    flag("oom-score-adj", &["oomScoreAdj"], Text, "The oom-score-adj value for the process, in [-1000, 1000]"),
    flag(
        "config-sync-period",
        &["configSyncPeriod"],
        Text,
        "How often configuration from the API server is refreshed (e.g. 15m0s)",
    ),
    flag(
        "iptables-masquerade-bit",
        &["iptables.masqueradeBit"],
        Text,
        "The fwmark bit marking packets to SNAT (iptables and ipvs modes), in [0, 31]",
    ),
    flag(
        "iptables-min-sync-period",
        &["iptables.minSyncPeriod", "nftables.minSyncPeriod"],
        Text,
        "Minimum period between rule resyncs (iptables and nftables modes)",
    ),
    flag(
        "iptables-sync-period",
        &["iptables.syncPeriod", "nftables.syncPeriod"],
        Text,
        "Period of full resyncs (iptables and nftables modes)",
    ),
    flag(
        "iptables-localhost-nodeports",
        &["iptables.localhostNodePorts"],
        Bool,
        "Allow NodePorts on localhost (iptables mode, IPv4)",
    ),
    flag(
        "nftables-masquerade-bit",
        &["nftables.masqueradeBit"],
        Text,
        "kproxy: the fwmark bit marking packets to SNAT in nftables mode, in [0, 31]",
    ),
    flag(
        "nftables-min-sync-period",
        &["nftables.minSyncPeriod"],
        Text,
        "kproxy: minimum period between rule resyncs in nftables mode",
    ),
    flag("nftables-sync-period", &["nftables.syncPeriod"], Text, "kproxy: period of full resyncs in nftables mode"),
    flag(
        "ipvs-scheduler",
        &["ipvs.scheduler"],
        Text,
        "The IPVS scheduler (rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh)",
    ),
    flag("ipvs-exclude-cidrs", &["ipvs.excludeCIDRs"], List, "CIDRs whose IPVS virtual servers kproxy must not remove"),
    flag("ipvs-strict-arp", &["ipvs.strictARP"], Bool, "Set arp_ignore=1 and arp_announce=2"),
    flag("ipvs-min-sync-period", &["ipvs.minSyncPeriod"], Text, "Minimum period between IPVS resyncs"),
    flag("ipvs-sync-period", &["ipvs.syncPeriod"], Text, "Period of full IPVS resyncs"),
    flag("ipvs-tcp-timeout", &["ipvs.tcpTimeout"], Text, "Idle IPVS TCP timeout, 0 to leave as-is"),
    flag("ipvs-tcpfin-timeout", &["ipvs.tcpFinTimeout"], Text, "IPVS TCP timeout after FIN, 0 to leave as-is"),
    flag("ipvs-udp-timeout", &["ipvs.udpTimeout"], Text, "IPVS UDP timeout, 0 to leave as-is"),
    flag(
        "conntrack-max-per-core",
        &["conntrack.maxPerCore"],
        Text,
        "Maximum tracked connections per CPU core (0 to leave the limit as-is)",
    ),
    flag("conntrack-min", &["conntrack.min"], Text, "Minimum conntrack entries regardless of --conntrack-max-per-core"),
    flag(
        "conntrack-tcp-timeout-established",
        &["conntrack.tcpEstablishedTimeout"],
        Text,
        "Idle timeout of established TCP connections (0 to leave as-is)",
    ),
    flag(
        "conntrack-tcp-timeout-close-wait",
        &["conntrack.tcpCloseWaitTimeout"],
        Text,
        "Timeout of TCP connections in CLOSE_WAIT",
    ),
    flag("conntrack-tcp-be-liberal", &["conntrack.tcpBeLiberal"], Bool, "Set nf_conntrack_tcp_be_liberal to 1"),
    flag(
        "conntrack-udp-timeout",
        &["conntrack.udpTimeout"],
        Text,
        "Idle timeout of UNREPLIED UDP entries (0 to leave as-is)",
    ),
    flag(
        "conntrack-udp-timeout-stream",
        &["conntrack.udpStreamTimeout"],
        Text,
        "Idle timeout of ASSURED UDP entries (0 to leave as-is)",
    ),
    flag(
        "detect-local-mode",
        &["detectLocalMode"],
        Text,
        "How local (pod) traffic is detected: ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix",
    ),
    flag(
        "pod-bridge-interface",
        &["detectLocal.bridgeInterface"],
        Text,
        "Bridge whose traffic is local (--detect-local-mode=BridgeInterface)",
    ),
    flag(
        "pod-interface-name-prefix",
        &["detectLocal.interfaceNamePrefix"],
        Text,
        "Interface prefix whose traffic is local (--detect-local-mode=InterfaceNamePrefix)",
    ),
    flag("feature-gates", &["featureGates"], Map, "Feature gates as key=value pairs (e.g. A=true,B=false)"),
    flag(
        "proxy-port-range",
        &["portRange"],
        Text,
        "Unused (it configured the removed userspace proxy); accepted and validated",
    ),
    flag("profiling", &["enableProfiling"], Bool, "Enable /debug/pprof on the metrics server"),
    flag(
        "show-hidden-metrics-for-version",
        &["showHiddenMetricsForVersion"],
        Text,
        "Previous minor version whose hidden metrics are shown (e.g. 1.33)",
    ),
    flag("logging-format", &["logging.format"], Text, "Log format: text or json"),
    flag("log-flush-frequency", &["logging.flushFrequency"], Text, "Maximum seconds between log flushes"),
    flag(
        "log-json-split-stream",
        &["logging.options.json.splitStream"],
        Bool,
        "json format: info to stdout, errors to stderr",
    ),
    flag(
        "log-json-info-buffer-size",
        &["logging.options.json.infoBufferSize"],
        Text,
        "json format with split streams: info buffer size",
    ),
    flag(
        "log-text-split-stream",
        &["logging.options.text.splitStream"],
        Bool,
        "text format: info to stdout, errors to stderr",
    ),
    flag(
        "log-text-info-buffer-size",
        &["logging.options.text.infoBufferSize"],
        Text,
        "text format with split streams: info buffer size",
    ),
];

/// Flags handled outside the table: (name, kind, help, hidden).
const OTHER_FLAGS: &[(&str, Kind, &str, bool)] = &[
    ("config", Text, "The path to the configuration file", false),
    ("write-config-to", Text, "Write the effective configuration to this file and exit", false),
    ("cleanup", Bool, "Remove the rules kproxy programmed and exit", false),
    ("init-only", Bool, "Perform the privileged initialization steps, then exit", false),
    ("hostname-override", Text, "Name of this node, if not the host name", false),
    ("master", Text, "The address of the API server (overrides the kubeconfig)", false),
    ("vmodule", Text, "Per-file verbosity: pattern=N,... ", false),
    ("healthz-port", Text, "Deprecated: use --healthz-bind-address", true),
    ("metrics-port", Text, "Deprecated: use --metrics-bind-address", true),
    ("manifests", Text, "kproxy: read Services, EndpointSlices, Nodes and ServiceCIDRs from this file or directory instead of an API server", false),
    ("once", Bool, "kproxy: sync once, then exit (0 on success)", false),
    ("dry-run", Bool, "kproxy: compute and print what would be programmed; change nothing", false),
    ("remove-kube-proxy-leftovers", Bool, "kproxy: on start and with --cleanup, remove kube-proxy's rules of every mode (default true)", false),
    (
        "external-ip-allowed-cidrs",
        List,
        "kproxy: program only Service externalIPs inside these CIDRs (comma-separated); others are skipped and warned about (CVE-2020-8554). Default: all",
        false,
    ),
    (
        "load-balancer-ip-allowed-cidrs",
        List,
        "kproxy: program only LoadBalancer ingress IPs inside these CIDRs (comma-separated); others are skipped and warned about (CVE-2020-8554). Default: all",
        false,
    ),
    ("kproxy-main-config", Text, "Path of the main config file read without --config (tests)", true),
    ("kproxy-proxy-config", Text, "Path of the proxy config file read without --config (tests)", true),
];

/// Go's `strconv.ParseBool`, as pflag accepts for boolean flags.
fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("invalid boolean {other:?} (use true or false)")),
    }
}

fn arg(name: &'static str, kind: Kind, help: &'static str) -> Arg {
    let a = Arg::new(name).long(name).help(help).action(ArgAction::Append).global(true);
    match kind {
        // `--flag` alone means true; a value must be attached with `=` as pflag requires.
        Bool => a.num_args(0..=1).require_equals(true).default_missing_value("true").value_parser(parse_go_bool),
        Text | List | Map => a.num_args(1).allow_hyphen_values(true),
    }
}

fn command() -> ClapCommand {
    let mut cmd = ClapCommand::new("kproxy")
        .about("kproxy: a Kubernetes service proxy that programs nftables (and IPVS) directly; a drop-in replacement for kube-proxy")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .arg(Arg::new("version").long("version").action(ArgAction::SetTrue).global(true).help("Print the version and exit"))
        .subcommand(ClapCommand::new("validate").about(
            "Check the configuration (files and flags) and print the effective configuration as YAML, with warnings",
        ))
        .subcommand(
            ClapCommand::new("explain")
                .about("Explain one Service on this node: destinations, endpoints, policies, and whether the kernel holds exactly its rules (read-only; takes the daemon's flags)")
                .arg(Arg::new("target").required(true).value_name("NAMESPACE/NAME|VIP:PORT[/PROTO]"))
                .arg(Arg::new("output").short('o').long("output").default_value("text").value_parser(["text", "json"]))
                .after_help("Exit codes: 0 explained and in sync; 1 explained, drift found; 2 bad arguments, or the sources or the kernel could not be read; 3 no such Service."),
        )
        .arg(
            Arg::new("v")
                .short('v')
                .long("v")
                .help("Log verbosity (klog levels: 0 info, 2+ debug, 5+ trace)")
                .action(ArgAction::Append)
                .num_args(1)
                .global(true),
        );
    for f in CONFIG_FLAGS {
        cmd = cmd.arg(arg(f.name, f.kind, f.help));
    }
    for (name, kind, help, hidden) in OTHER_FLAGS {
        cmd = cmd.arg(arg(name, *kind, help).hide(*hidden));
    }
    cmd
}

/// Every value a flag was given, in order (pflag: repeated flags append or replace).
fn values(m: &ArgMatches, name: &str) -> Vec<String> {
    m.get_raw(name).map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

fn last(m: &ArgMatches, name: &str) -> Option<String> {
    values(m, name).pop()
}

fn bool_flag(m: &ArgMatches, name: &str) -> bool {
    m.get_many::<bool>(name).and_then(|mut v| v.next_back().copied()).unwrap_or(false)
}

fn split_list(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn split_pairs(flag: &str, values: &[String]) -> Result<Vec<(String, String)>, CliError> {
    split_list(values)
        .into_iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
            None => Err(CliError::ParseArgs(format!("invalid value {pair:?} for --{flag}: expected key=value"))),
        })
        .collect()
}

/// The configuration flags that were given, as a layer to put over the files.
fn flag_layer(m: &ArgMatches) -> Result<Layer, CliError> {
    let mut layer = Layer::empty();
    for f in CONFIG_FLAGS {
        let given = values(m, f.name);
        if given.is_empty() {
            continue;
        }
        let name = format!("--{}", f.name);
        let value = match f.kind {
            Text => FlagValue::Scalar(given.last().cloned().unwrap_or_default()),
            Bool => FlagValue::Scalar(bool_flag(m, f.name).to_string()),
            List => FlagValue::List(split_list(&given)),
            Map => FlagValue::Map(split_pairs(f.name, &given)?),
        };
        for path in f.paths {
            layer.set_flag(path, value.clone(), &name);
        }
    }
    if let Some(v) = last(m, "v") {
        layer.set_flag("logging.verbosity", FlagValue::Scalar(v), "-v");
    }
    let vmodule = values(m, "vmodule");
    if !vmodule.is_empty() {
        let records = split_pairs("vmodule", &vmodule)?
            .into_iter()
            .map(|(pattern, level)| vec![("filePattern".to_string(), pattern), ("verbosity".to_string(), level)])
            .collect();
        layer.set_flag("logging.vmodule", FlagValue::Records(records), "--vmodule");
    }
    if let Some(name) = last(m, "hostname-override") {
        // Upstream trims and lower-cases the flag (not the config field).
        let name = name.trim().to_lowercase();
        if name.is_empty() {
            return Err(CliError::ParseArgs("empty --hostname-override is invalid".into()));
        }
        layer.set_flag("hostnameOverride", FlagValue::Scalar(name), "--hostname-override");
    }
    Ok(layer)
}

/// The deprecated `--healthz-port` / `--metrics-port`: replace the port of the effective
/// address. Returns (field, flag, port) for each that was given.
fn deprecated_ports(m: &ArgMatches) -> Result<Vec<(&'static str, &'static str, u16)>, CliError> {
    let mut out = Vec::new();
    for (field, flag) in [("healthzBindAddress", "healthz-port"), ("metricsBindAddress", "metrics-port")] {
        let Some(text) = last(m, flag) else { continue };
        match text.trim().parse::<u16>() {
            Ok(0) => {
                return Err(CliError::ParseArgs(format!(
                    "--{flag}=0 (disable the server) is not supported by kproxy; set --{}-bind-address instead",
                    &flag[..flag.len() - 5]
                )))
            }
            Ok(port) => out.push((field, flag, port)),
            Err(_) => {
                return Err(CliError::ParseArgs(format!("invalid value {text:?} for --{flag}: expected a port number")))
            }
        }
    }
    Ok(out)
}

fn with_port(addr: &str, port: u16) -> String {
    match addr.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{port}"),
        None => format!("{addr}:{port}"),
    }
}

/// Parse a command line (`args` includes the program name, like `std::env::args_os()`),
/// read the configuration files it implies, and return the effective configuration.
///
/// Files: `--config FILE` if given (it must exist); otherwise `/var/lib/kube-proxy/config.conf`
/// then `/etc/kubernetes/kube-proxy.yaml` over it, field by field, each optional (paths
/// overridable by `KPROXY_PROXY_CONFIG` / `KPROXY_MAIN_CONFIG` or the hidden flags
/// `--kproxy-proxy-config` / `--kproxy-main-config`). Flags override every file.
pub fn parse_invocation(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, CliError> {
    let matches = match command().try_get_matches_from(args.into_iter().map(normalize_word_separators)) {
        Ok(m) => m,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            return Ok(placeholder(Command::Help(e.render().to_string())))
        }
        Err(e) => {
            let mut text = e.render().to_string().trim_end().to_string();
            if e.kind() == clap::error::ErrorKind::InvalidSubcommand {
                // kube-proxy takes no positional arguments; the usual cause is pflag's rule
                // that a boolean's value must be attached with '='.
                text.push_str(
                    "\nkproxy takes no arguments except the `validate` and `explain` subcommands; boolean flags take a value only with '=' (e.g. --masquerade-all=true)",
                );
            }
            return Err(CliError::ParseArgs(text));
        }
    };
    let (is_validate, m) = match matches.subcommand() {
        Some(("validate", sub)) => (true, sub),
        Some(("explain", sub)) => (false, sub),
        _ => (false, &matches),
    };
    let explain = matches.subcommand_matches("explain").map(|sub| ExplainArgs {
        target: sub.get_one::<String>("target").cloned().unwrap_or_default(),
        json: sub.get_one::<String>("output").is_some_and(|o| o == "json"),
    });
    if m.get_flag("version") {
        return Ok(placeholder(Command::Version(format!("kproxy {}", env!("CARGO_PKG_VERSION")))));
    }

    let sources = ConfigSources {
        explicit: last(m, "config").map(PathBuf::from),
        main: last(m, "kproxy-main-config").map(PathBuf::from).unwrap_or_else(config_load::main_config_path),
        proxy: last(m, "kproxy-proxy-config").map(PathBuf::from).unwrap_or_else(config_load::proxy_config_path),
    };
    let files = config_load::read_files(&sources)?;
    let flags = flag_layer(m)?;
    let mut layers: Vec<&Layer> = files.iter().map(|f| &f.layer).collect();
    layers.push(&flags);
    let mut merged = Layer::merged(layers);
    let mut parsed = kproxy_core::config::resolve(&merged)?;

    let ports = deprecated_ports(m)?;
    if !ports.is_empty() {
        for (field, flag, port) in &ports {
            let current = if *field == "healthzBindAddress" {
                &parsed.config.healthz_bind_address
            } else {
                &parsed.config.metrics_bind_address
            };
            merged.set_flag(field, FlagValue::Scalar(with_port(current, *port)), &format!("--{flag}"));
        }
        let warnings = parsed.warnings;
        parsed = kproxy_core::config::resolve(&merged)?;
        parsed.warnings = warnings;
        for (field, flag, _) in &ports {
            parsed.warnings.push(ConfigWarning {
                origin: kproxy_core::config::Origin::Flag(format!("--{flag}")),
                path: field.to_string(),
                message: format!("--{flag} is deprecated; use --{}-bind-address", &flag[..flag.len() - 5]),
            });
        }
    }

    let command = if is_validate {
        Command::Validate
    } else if let Some(args) = explain {
        Command::Explain(args)
    } else if let Some(path) = last(m, "write-config-to") {
        Command::WriteConfig(PathBuf::from(path))
    } else if bool_flag(m, "cleanup") {
        Command::Cleanup
    } else {
        Command::Run
    };
    let extras = Extras {
        manifests: last(m, "manifests").map(PathBuf::from),
        once: bool_flag(m, "once"),
        dry_run: bool_flag(m, "dry-run"),
        // Default on: absent means remove; only an explicit false keeps them.
        keep_kube_proxy_leftovers: m.get_many::<bool>("remove-kube-proxy-leftovers").is_some_and(|v| v.last() == Some(&false)),
        verbosity: parsed.config.logging.verbosity,
        master: last(m, "master").filter(|s| !s.is_empty()),
        init_only: bool_flag(m, "init-only"),
        config_files: files.into_iter().map(|f| f.path).collect(),
        external_ip_allowed_cidrs: allowed_cidrs(m, "external-ip-allowed-cidrs")?,
        load_balancer_ip_allowed_cidrs: allowed_cidrs(m, "load-balancer-ip-allowed-cidrs")?,
    };
    Ok(Invocation { command, config: parsed.config, warnings: parsed.warnings, origins: parsed.origins, extras })
}

/// An allow-list flag: `None` when not given. Given but empty (`--flag=`) is refused: it
/// would silently drop every such address.
fn allowed_cidrs(m: &ArgMatches, flag: &str) -> Result<Option<Vec<IpNet>>, CliError> {
    let given = values(m, flag);
    if given.is_empty() {
        return Ok(None);
    }
    let list = split_list(&given);
    if list.is_empty() {
        return Err(CliError::ParseArgs(format!(
            "--{flag} is empty: it would skip every such address; omit the flag to allow all, or name the CIDRs to allow"
        )));
    }
    list.iter()
        .map(|text| {
            text.parse::<IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
                CliError::ParseArgs(format!("invalid value {text:?} for --{flag}: expected CIDRs such as 198.18.0.0/15,2001:db8::/32"))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// An invocation that only prints something (help, version): default configuration.
/// kube-proxy's pflag set normalises `_` to `-` in flag names (component-base's
/// `WordSepNormalizeFunc`), so `--cluster_cidr=...` is `--cluster-cidr=...`; values are kept.
fn normalize_word_separators(arg: OsString) -> OsString {
    let Some(text) = arg.to_str() else { return arg };
    let Some(flag) = text.strip_prefix("--").filter(|f| !f.is_empty() && f.contains('_')) else { return arg };
    let (name, value) = match flag.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (flag, None),
    };
    let name = name.replace('_', "-");
    OsString::from(match value {
        Some(value) => format!("--{name}={value}"),
        None => format!("--{name}"),
    })
}

fn placeholder(command: Command) -> Invocation {
    Invocation {
        command,
        config: KubeProxyConfiguration::default(),
        warnings: Vec::new(),
        origins: Origins::default(),
        extras: Extras::default(),
    }
}

/// Checks before running that need the file system: with the API server as the source
/// (no `--manifests`), a configured kubeconfig file must exist. With `--manifests` no
/// kubeconfig is needed, so a missing one is fine (and so for `--once` / `--dry-run` on
/// manifests).
pub fn check_run_prerequisites(inv: &Invocation) -> Result<(), CliError> {
    if !matches!(inv.command, Command::Run) || inv.extras.manifests.is_some() {
        return Ok(());
    }
    let kubeconfig = &inv.config.client_connection.kubeconfig;
    if !kubeconfig.is_empty() && !Path::new(kubeconfig).exists() {
        let origin = inv.origins.get("clientConnection.kubeconfig");
        return Err(CliError::Prerequisite(format!(
            "{origin}: clientConnection.kubeconfig: {kubeconfig} does not exist; fix the path, or run without an API server using --manifests PATH"
        )));
    }
    Ok(())
}

/// Help text for `kproxy --help`.
pub fn help_text() -> String {
    command().render_help().to_string()
}
