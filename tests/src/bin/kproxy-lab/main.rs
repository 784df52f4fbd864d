//! `kproxy-lab`: kproxy beside upstream kube-proxy, fed by the same real API server, with the
//! same packets sent through both (issue 10). Run by `cargo xtask lab`, which starts etcd,
//! kube-apiserver and kube-controller-manager (EndpointSlice controllers only) and passes
//! their coordinates in `KPROXY_LAB_*`.
//!
//! The lab writes Nodes and Pods (with the status a kubelet would set) through the API and
//! builds two identical "worlds" of namespaces ([`net::World`]): in one every node runs
//! kproxy, in the other upstream kube-proxy in nftables mode. Node `node-i` of both worlds is
//! the same Node object, so both proxies read exactly the same Services and EndpointSlices.
//!
//! - `kproxy-lab serve`: start it, print how to reach everything, stay up until SIGINT/SIGTERM.
//! - `kproxy-lab differential [--seed N] [--services N]`: generate Services, probe both
//!   worlds the same way, list every difference, end with `differential: N probes, M identical`.
//!
//! Everything (namespaces, processes) is removed on exit, also on Ctrl-C and on errors.

mod api;
mod diff;
mod gen;
mod net;
mod probe;
mod proxies;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use net::World;
use proxies::{Kind, Proxy};

/// Set by the signal thread on SIGINT/SIGTERM/SIGHUP.
static STOP: AtomicBool = AtomicBool::new(false);

/// Whether a stop signal arrived.
pub fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// What `cargo xtask lab` passes in the environment.
pub struct LabEnv {
    /// `https://127.0.0.1:<port>` (root namespace; namespaces reach it through relays).
    pub api: String,
    /// system:masters kubeconfig (the lab itself and kube-proxy use it).
    pub admin_kubeconfig: PathBuf,
    /// kproxy's ServiceAccount kubeconfig.
    pub kproxy_kubeconfig: PathBuf,
    /// Logs go here.
    pub run_dir: PathBuf,
    /// The kproxy binary.
    pub kproxy: PathBuf,
    /// Upstream's kube-proxy binary.
    pub kube_proxy: PathBuf,
}

impl LabEnv {
    fn from_env() -> Result<LabEnv, String> {
        let var = |k: &str| {
            std::env::var(k).map_err(|_| format!("{k} is not set: run the lab with `cargo xtask lab`, which sets it"))
        };
        Ok(LabEnv {
            api: var("KPROXY_LAB_API")?,
            admin_kubeconfig: var("KPROXY_LAB_ADMIN_KUBECONFIG")?.into(),
            kproxy_kubeconfig: var("KPROXY_LAB_KPROXY_KUBECONFIG")?.into(),
            run_dir: var("KPROXY_LAB_RUN_DIR")?.into(),
            kproxy: var("KPROXY_BIN")?.into(),
            kube_proxy: var("KPROXY_LAB_KUBE_PROXY")?.into(),
        })
    }
}

/// The worlds and their proxies (proxies stop before the namespaces go).
pub struct Lab {
    proxies: Vec<Proxy>,
    /// The kproxy world first, then kube-proxy's.
    pub worlds: Vec<(Kind, World)>,
}

const USAGE: &str = "usage: kproxy-lab serve | differential [--seed N] [--services N]";

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

fn main() -> ExitCode {
    // A handler, not a blocked mask: children (servers, proxies) must start with default
    // signal handling, and the main loop notices the flag and unwinds, deleting namespaces.
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        if let Err(e) = unsafe { sigaction(s, &action) } {
            eprintln!("kproxy-lab: installing the {s:?} handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kproxy-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Returns whether the run met its goal (differential: no differences).
fn run() -> Result<bool, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = args.split_first() else { return Err(USAGE.into()) };
    kproxy_tests::require_root();
    let env = LabEnv::from_env()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    match mode.as_str() {
        "serve" => {
            let client = rt.block_on(api::admin_client(&env.admin_kubeconfig))?;
            let lab = start(&env, &rt, &client)?;
            serve(&env, lab)
        }
        "differential" => {
            let opts = diff::Options::parse(rest)?;
            let client = rt.block_on(api::admin_client(&env.admin_kubeconfig))?;
            let lab = start(&env, &rt, &client)?;
            diff::run(&lab, &rt, &client, &opts)
        }
        other => Err(format!("unknown mode {other:?}; {USAGE}")),
    }
}

/// Writes the cluster state, builds both worlds and starts the proxies; waits (bounded)
/// until every node's ruleset serves the `kubernetes` Service.
fn start(env: &LabEnv, rt: &tokio::runtime::Runtime, client: &kube::Client) -> Result<Lab, String> {
    let t = Instant::now();
    rt.block_on(api::create_cluster(client))?;
    let mut lab = Lab { proxies: Vec::new(), worlds: Vec::new() };
    for kind in [Kind::Kproxy, Kind::KubeProxyNft] {
        let world = World::build(kind.label()).map_err(|e| format!("building the {} world: {e}", kind.label()))?;
        lab.worlds.push((kind, world));
    }
    for (kind, world) in &lab.worlds {
        for node in &world.nodes {
            lab.proxies.push(Proxy::start(env, *kind, &node.ns, &net::node_name(node.index))?);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    for (kind, world) in &lab.worlds {
        for node in &world.nodes {
            loop {
                let rules = kproxy_tests::nft_text(&node.ns).map_err(|e| e.to_string())?;
                // The `kubernetes` Service's ClusterIP, the first of the ServiceCIDR.
                if rules.contains("198.19.160.1 ") {
                    break;
                }
                for p in &mut lab.proxies {
                    p.check_running()?;
                }
                if Instant::now() >= deadline || stopping() {
                    return Err(format!(
                        "{} on {} did not program the kubernetes Service within 90 s; see its log in {}",
                        kind.label(),
                        net::node_name(node.index),
                        env.run_dir.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    println!("lab: {} worlds x {} nodes up in {:.1?}", lab.worlds.len(), net::NODES, t.elapsed());
    Ok(lab)
}

fn serve(env: &LabEnv, mut lab: Lab) -> Result<bool, String> {
    println!("lab: API server {} ; kubeconfig (system:masters): {}", env.api, env.admin_kubeconfig.display());
    println!("  kubectl --kubeconfig {} get nodes,pods,svc,endpointslices -A", env.admin_kubeconfig.display());
    println!("lab: logs in {}", env.run_dir.display());
    for (kind, world) in &lab.worlds {
        println!("world {} (every node runs {}):", world.label, kind.label());
        for node in &world.nodes {
            println!("  {} {}: ip netns exec {} bash", net::node_name(node.index), net::node_ip(node.index), node.ns.name());
            for (k, p) in node.pods.iter().enumerate() {
                let (name, ip) = net::pod(node.index, k as u8 + 1);
                println!("    pod {name} {ip}: ip netns exec {} bash", p.name());
            }
        }
        println!("  client pod on node-1 {}: ip netns exec {} bash", net::CLIENT_POD_IP, world.client_pod.name());
        println!("  external client {}: ip netns exec {} bash", net::CLIENT_IP, world.client.name());
    }
    println!("lab: pods answer TCP {} and UDP {} with \"<pod> <peer>\"; press Ctrl-C to stop", net::POD_TCP, net::POD_UDP);
    while !stopping() {
        std::thread::sleep(Duration::from_millis(200));
        for p in &mut lab.proxies {
            if let Err(e) = p.check_running() {
                // Ctrl-C reaches the proxies too; the flag may be a moment behind.
                std::thread::sleep(Duration::from_millis(500));
                if !stopping() {
                    return Err(e);
                }
            }
        }
    }
    println!("lab: stopping: removing every namespace and process");
    Ok(true)
}
