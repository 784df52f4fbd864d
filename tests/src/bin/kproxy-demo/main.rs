//! `kproxy-demo`: kproxy's main job on the example manifests, with real traffic, in
//! throw-away network namespaces (run by `cargo xtask demo`, as root).
//!
//! 1. builds a [`Topology`]: a node with a pod bridge, pod1..pod3 running the test server,
//!    one external client;
//! 2. runs `kproxy --once` with the given config and manifests inside the node namespace;
//! 3. prints the programmed ruleset (`nft list ruleset` in the node namespace);
//! 4. sends requests to ClusterIPs from a pod and to NodePorts / ExternalIPs from the client
//!    and prints which pods answered and which source address they saw;
//! 5. deletes every namespace (also on failure).
//!
//! If `kproxy --once` fails or programs nothing (the nftables backend is not finished), it
//! prints the `--dry-run` output instead and says that no traffic was sent; with
//! `--require-traffic` that case is an error.

mod run;
mod traffic;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kproxy_tests::{kproxy_binary, nft_text, plan, require_root, ServerSpec, Topology};

/// Ports the pods' test servers listen on (the manifests' targetPorts).
const POD_TCP: u16 = 8080;
const POD_UDP: u16 = 5353;

struct Args {
    kproxy: Option<PathBuf>,
    config: PathBuf,
    manifests: PathBuf,
    require_traffic: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        kproxy: None,
        config: PathBuf::from("examples/config/small-cluster.yaml"),
        manifests: PathBuf::from("examples/manifests"),
        require_traffic: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .map(PathBuf::from)
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--kproxy" => a.kproxy = Some(value()?),
            "--config" => a.config = value()?,
            "--manifests" => a.manifests = value()?,
            "--require-traffic" => a.require_traffic = true,
            other => {
                return Err(format!(
                "unknown argument {other:?}; usage: kproxy-demo [--kproxy PATH] [--config FILE] \
                     [--manifests DIR] [--require-traffic]"
            ))
            }
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kproxy-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<(), String> {
    let args = parse_args()?;
    require_root();
    let kproxy = match args.kproxy.clone() {
        Some(p) => p,
        None => kproxy_binary().map_err(|e| e.to_string())?,
    };
    for (what, path) in [("config", &args.config), ("manifests", &args.manifests)] {
        if !path.exists() {
            return Err(format!(
                "{what} {} does not exist (run from the repository root)",
                path.display()
            ));
        }
    }

    section("topology");
    let topo = Topology::builder()
        .pods(3)
        .clients(1)
        .serve(ServerSpec {
            tcp: vec![POD_TCP],
            udp: vec![POD_UDP],
        })
        .build()
        .map_err(|e| format!("building the namespaces: {e}"))?;
    describe(&topo);
    let result = run_on(&topo, &args, &kproxy);

    section("cleanup");
    let mut paths = vec![topo.node.path()];
    paths.extend(topo.pods.iter().map(|p| p.ns.path()));
    paths.extend(topo.clients.iter().map(|c| c.ns.path()));
    drop(topo);
    let left: Vec<String> = paths
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if left.is_empty() {
        println!(
            "deleted all {} namespaces (and the servers in them)",
            paths.len()
        );
    } else {
        println!("WARNING: namespaces left behind: {}", left.join(", "));
    }
    result
}

/// Runs kproxy in the topology's node and exercises it (everything between setup and
/// cleanup, so cleanup happens whatever this returns).
fn run_on(topo: &Topology, args: &Args, kproxy: &Path) -> Result<(), String> {
    section("kproxy --once, in the node namespace");
    let base = [
        "--config".to_string(),
        args.config.display().to_string(),
        "--manifests".to_string(),
        args.manifests.display().to_string(),
        "--hostname-override".to_string(),
        plan::NODE_NAME.to_string(),
        "--cluster-cidr".to_string(),
        format!("{},{}", plan::POD_CIDR_V4, plan::POD_CIDR_V6),
    ];
    let once = run::kproxy(
        &topo.node,
        &kproxy,
        &[&["--once".to_string()], &base[..]].concat(),
    )?;
    let ruleset = nft_text(&topo.node).map_err(|e| e.to_string())?;
    let not_programmed = if !once.success {
        Some(format!("`kproxy --once` failed ({})", once.status))
    } else if ruleset.trim().is_empty() {
        Some("`kproxy --once` succeeded but programmed no nftables rules".to_string())
    } else {
        None
    };

    if let Some(reason) = not_programmed {
        section("kproxy --once --dry-run (what would be programmed)");
        let dry = run::kproxy(
            &topo.node,
            &kproxy,
            &[&["--once".to_string(), "--dry-run".to_string()], &base[..]].concat(),
        )?;
        section("result");
        println!("NOTE: traffic was NOT exercised: {reason}.");
        println!(
            "      The effective configuration and desired state are printed above (dry run{}).",
            if dry.success {
                ""
            } else {
                ", which also failed"
            }
        );
        if args.require_traffic {
            return Err(format!("--require-traffic given, but {reason}"));
        }
        return Ok(());
    }

    section("programmed ruleset (nft list ruleset, node namespace)");
    println!("{}", ruleset.trim_end());

    section("traffic");
    let ok = traffic::exercise(topo);
    section("result");
    if ok {
        println!("kproxy programmed the node and real requests were load-balanced over the pods.");
        Ok(())
    } else {
        Err("the ClusterIP or NodePort requests got no answers (see above)".into())
    }
}

fn section(title: &str) {
    println!("\n==== {title} ====");
}

fn describe(topo: &Topology) {
    println!(
        "node     {:<28} {} {}/{} {}/{}; {} {}/24 {}/64 (kproxy runs here)",
        topo.node.name(),
        plan::BRIDGE,
        plan::POD_GW_V4,
        plan::POD_PREFIX_V4,
        plan::POD_GW_V6,
        plan::POD_PREFIX_V6,
        plan::UPLINK,
        plan::NODE_IP_V4,
        plan::NODE_IP_V6
    );
    for p in &topo.pods {
        println!(
            "{:<8} {:<28} {} {}  test server on tcp {POD_TCP}, udp {POD_UDP}",
            p.name,
            p.ns.name(),
            p.ipv4,
            p.ipv6
        );
    }
    for c in &topo.clients {
        println!(
            "{:<8} {:<28} {} {}  external client",
            c.name,
            c.ns.name(),
            c.ipv4,
            c.ipv6
        );
    }
}
