//! `kproxy explain NAMESPACE/NAME | VIP:PORT[/PROTO] [-o json] [daemon flags]`: one Service
//! on this node, from the daemon's own sources and configuration: its destinations, its
//! endpoints by category and which ones each traffic policy uses here, masquerading,
//! affinity, source ranges, and whether the kernel holds exactly what kproxy would program
//! for it (nftables: [`kproxy_nft::drift`]; IPVS: [`kproxy_ipvs::drift`]).
//!
//! Read-only: the sources are read once (as `--dry-run` does) and the kernel is only
//! dumped. This module wires and prints; the comparisons live in the backend crates.
//!
//! Exit codes: 0 explained and in sync; 1 explained, drift found; 2 bad input, or the
//! sources or the kernel could not be read; 3 no such Service.

mod ipvs;
mod nft;
mod report;
mod target;

use std::process::ExitCode;

use kproxy_core::config::Mode;
use kproxy_core::model::{IpFamily, ProxyState, ServicePort};

use crate::cli::{ExplainArgs, Invocation};
use crate::daemon::{desired_state, ipvs_config, TABLE_NAME};
pub use ipvs::{facts as ipvs_facts, IpvsFacts};
pub use nft::{scope, Scope};
pub use report::Report;
pub use target::{parse as parse_target, select, Target};

/// Explained and in sync.
pub const EXIT_IN_SYNC: u8 = 0;
/// Explained; the kernel does not hold exactly what it should for the Service.
pub const EXIT_DRIFT: u8 = 1;
/// Bad arguments, or the sources or the kernel could not be read.
pub const EXIT_ERROR: u8 = 2;
/// No such Service in the sources (or it has no port this node proxies).
pub const EXIT_NO_SERVICE: u8 = 3;

/// Runs `kproxy explain`.
pub fn main(inv: &Invocation, args: &ExplainArgs) -> ExitCode {
    match run(inv, args) {
        Ok(report) => {
            print!("{}", report.text());
            if args.json {
                println!("{}", report.json());
            }
            ExitCode::from(if report.in_sync() { EXIT_IN_SYNC } else { EXIT_DRIFT })
        }
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn source(inv: &Invocation) -> String {
    match &inv.extras.manifests {
        Some(p) => format!("--manifests {}", p.display()),
        None => "the API server".into(),
    }
}

fn run(inv: &Invocation, args: &ExplainArgs) -> Result<Report, (u8, String)> {
    let target = parse_target(&args.target).map_err(|e| (EXIT_ERROR, format!("kproxy explain: {e}")))?;
    let state = desired_state(inv).map_err(|e| {
        (EXIT_ERROR, format!("cannot read the Services from {}: {e:#} (check --manifests, or --kubeconfig / --master and that the API server is reachable)", source(inv)))
    })?;
    let settings = &state.settings;
    let mode = inv.config.effective_mode().backend;
    let (service, ports) = select(&state, &target, &|ip| nft::serves_node_ports(settings, ip));
    let Some(service) = service.filter(|_| !ports.is_empty()) else {
        return Err((
            EXIT_NO_SERVICE,
            format!(
                "no Service {} in {}: it does not exist, or this node proxies none of its ports (headless, ExternalName, or no ClusterIP); list them with `kproxy --dry-run` and the same flags",
                args.target,
                source(inv)
            ),
        ));
    };
    match mode {
        Mode::Nftables => nft_report(&state, service, &ports),
        Mode::Ipvs => {
            let cfg = ipvs_config(&inv.config).map_err(|e| (EXIT_ERROR, format!("{e:#}")))?;
            let mut kernel = kproxy_ipvs::NetlinkKernel::open(cfg.sysctl_root.clone())
                .map_err(|e| (EXIT_ERROR, format!("cannot open IPVS: {e} (is the ip_vs module loaded? run as root in the node's network namespace)")))?;
            ipvs_report(&mut kernel, &cfg, &state, service, &ports)
                .map_err(|e| (EXIT_ERROR, format!("cannot read the IPVS table from the kernel: {e} (run as root in the node's network namespace)")))
        }
    }
}

fn nft_report(state: &ProxyState, service: String, ports: &[&ServicePort]) -> Result<Report, (u8, String)> {
    let diffs = kproxy_nft::drift::check(state, TABLE_NAME)
        .map_err(|e| (EXIT_ERROR, format!("{:#} (run as root in the node's network namespace)", anyhow::Error::new(e))))?;
    let mut drift = Vec::new();
    let mut other_drift = 0;
    for d in &diffs {
        match scope(d, &service, ports) {
            Scope::Service | Scope::Table => drift.push(d.to_string()),
            Scope::Other => other_drift += 1,
        }
    }
    let ports = ports.iter().map(|sp| report::port(sp, &state.settings, &nft::node_port_places(&state.settings, sp.family))).collect();
    Ok(Report { service, mode: "nftables", ports, drift, other_drift, virtual_servers: Vec::new(), draining: Vec::new() })
}

/// The report of IPVS mode, against any [`kproxy_ipvs::IpvsKernel`] (the fake one in tests).
pub fn ipvs_report<K: kproxy_ipvs::IpvsKernel>(
    kernel: &mut K,
    cfg: &kproxy_ipvs::IpvsConfig,
    state: &ProxyState,
    service: String,
    ports: &[&ServicePort],
) -> Result<Report, kproxy_ipvs::Error> {
    let f = ipvs_facts(kernel, cfg, state, ports)?;
    let places = |family: IpFamily| -> Vec<String> { f.node_port_addrs.iter().filter(|ip| IpFamily::of(ip) == family).map(ToString::to_string).collect() };
    let ports = ports.iter().map(|sp| report::port(sp, &state.settings, &places(sp.family))).collect();
    Ok(Report { service, mode: "ipvs", ports, drift: f.drift, other_drift: f.other_drift, virtual_servers: f.virtual_servers, draining: f.draining })
}
