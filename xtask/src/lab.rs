//! `cargo xtask lab`: kproxy beside upstream kube-proxy in network namespaces, fed by one real
//! API server (issue 10). See [`HELP`].
//!
//! This side (std only, like all of xtask) builds what is needed and runs the control plane
//! on the root namespace's loopback: etcd, kube-apiserver (the e2e harness's
//! [`Cluster`]) and kube-controller-manager with only the EndpointSlice controllers. The
//! network, the proxies and the probes are `kproxy-lab` (tests crate), started with the
//! control plane's coordinates in `KPROXY_LAB_*`; it reaches the API from inside the
//! namespaces through userspace relays, never through a link to the root namespace.

use std::path::Path;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::apiserver::build;
use crate::apiserver::cluster::{spawn_logged, stop, Cluster};
use crate::{apiserver, cmd, deps};

/// `cargo xtask lab --help`.
pub const HELP: &str = "usage: cargo xtask lab (--serve | --differential [--seed N] [--services N]) [--rebuild] [--keep]

kproxy beside upstream kube-proxy v1.34.4, fed by the same real API server (needs root).

Starts etcd, kube-apiserver and kube-controller-manager (EndpointSlice controllers only) on
127.0.0.1, writes 3 Nodes (node-1..3, zones zone-a..c, pod CIDRs 198.18.<i>.0/24) and 2 Pods
per node, and sets the Pods' status as a kubelet would (IPs, Running, Ready; pod-3-2 stays
not ready), so upstream's controller writes the EndpointSlices. Then it builds two identical
worlds of network namespaces, each with an underlay (nodes 198.19.0.1<i>), a pod bridge per
node with the pods' TCP 8080 / UDP 5353 servers (they answer \"<pod> <client address seen>\")
a client pod 198.18.1.10 on node-1 that no Service selects, and an external client
198.19.64.11 on the underlay. Every node of world `kproxy` runs kproxy, every node of
world `kube-proxy-nftables` runs upstream kube-proxy in nftables mode, both as node-<i>.

  --serve          stay up and print how to reach the API (kubeconfig) and every namespace
                   (`ip netns exec ...`); Ctrl-C stops and removes everything
  --differential   write --services N (default 40) Services generated from --seed N (default 1):
                   ClusterIP/NodePort/LoadBalancer, TCP/UDP, eTP/iTP Local, ClientIP affinity,
                   Services without endpoints; probe every ClusterIP, NodePort (every node) and
                   LoadBalancer IP from the client pod, node-1 and the external client in both
                   worlds (a differing probe is repeated, up to 3 x 24 more requests, first);
                   list every difference; last line `differential: N probes, M identical`
                   (exit status 1 if any differ)
  --rebuild        rebuild the Go binaries (kube-proxy, kube-controller-manager, API server)
  --keep           keep the run directory (logs, kubeconfigs) under target/lab-run/

Only namespaces the lab creates are used (198.18.0.0/15 addresses, nothing linked to the root
namespace); all of them, and every process, are removed on exit, on errors and on Ctrl-C.
The first run builds kube-proxy and kube-controller-manager with Go (minutes); later runs
reuse them from target/apiserver-bin/.";

#[derive(Debug, Default)]
struct Args {
    mode: Option<&'static str>,
    rebuild: bool,
    keep: bool,
    pass: Vec<String>,
}

fn parse(args: &[String]) -> Result<Option<Args>, String> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(None),
            "--serve" => a.mode = Some("serve"),
            "--differential" => a.mode = Some("differential"),
            "--rebuild" => a.rebuild = true,
            "--keep" => a.keep = true,
            "--seed" | "--services" => {
                let v = it.next().ok_or(format!("{arg} needs a number"))?;
                a.pass.extend([arg.clone(), v.clone()]);
            }
            other => return Err(format!("unknown argument {other:?}\n{HELP}")),
        }
    }
    if a.mode.is_none() {
        return Err(format!("say --serve or --differential\n{HELP}"));
    }
    if a.mode == Some("serve") && !a.pass.is_empty() {
        return Err("--seed and --services go with --differential".into());
    }
    Ok(Some(a))
}

/// Entry point for `cargo xtask lab`.
pub fn run(args: &[String]) -> Result<(), String> {
    let Some(args) = parse(args)? else {
        println!("{HELP}");
        return Ok(());
    };
    deps::require_root("cargo xtask lab")?;
    deps::ensure(deps::BUILD)?;
    let bins = build::ensure_binaries(args.rebuild)?;
    let upstream = build::ensure_upstream(args.rebuild)?;
    cmd::status(cmd::cargo().args(["build", "-p", "kproxy-bin", "--bin", "kproxy"]))?;
    cmd::status(cmd::cargo().args(["build", "-p", "kproxy-tests", "--bin", "kproxy-lab", "--bin", "kproxy-testserver"]))?;
    let target = cmd::target_dir()?.join("debug");

    let dir = cmd::root().join("target").join("lab-run").join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    // From here Ctrl-C reaches every process of the terminal's group: the lab must outlive it
    // long enough to remove its namespaces, so this process ignores SIGINT and stops the
    // control plane itself once the lab has exited.
    ignore_sigint();
    let result = with_control_plane(bins, &upstream, &dir, |cluster| {
        let mut c = Command::new(target.join("kproxy-lab"));
        c.arg(args.mode.unwrap_or("serve"))
            .args(&args.pass)
            .env("KPROXY_LAB_API", cluster.url())
            .env("KPROXY_LAB_ADMIN_KUBECONFIG", cluster.admin_kubeconfig())
            .env("KPROXY_LAB_KPROXY_KUBECONFIG", cluster.kproxy_kubeconfig())
            .env("KPROXY_LAB_RUN_DIR", cluster.dir())
            .env("KPROXY_LAB_KUBE_PROXY", &upstream.kube_proxy)
            .env("KPROXY_BIN", target.join("kproxy"))
            .env("KPROXY_TESTSERVER", target.join("kproxy-testserver"));
        // The lab itself handles SIGINT (it cleans up first): undo the ignore in the child.
        // SAFETY: only signal(2), async-signal-safe, between fork and exec.
        unsafe {
            c.pre_exec(|| {
                signal(SIGINT, SIG_DFL);
                Ok(())
            });
        }
        cmd::status(&mut c)
    });
    match &result {
        Ok(()) if !args.keep => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        _ => println!("lab: logs and kubeconfigs kept in {}", dir.display()),
    }
    result
}

/// Starts etcd, kube-apiserver (with kproxy's ServiceAccount) and kube-controller-manager,
/// runs `f`, and stops them all again whatever `f` returned.
fn with_control_plane(
    bins: build::Binaries,
    upstream: &build::Upstream,
    dir: &Path,
    f: impl FnOnce(&Cluster) -> Result<(), String>,
) -> Result<(), String> {
    let started = Instant::now();
    // Dropped (etcd and kube-apiserver stopped) on every return below.
    let mut cluster = Cluster::prepare(bins, dir)?;
    cluster.start_etcd()?;
    cluster.start_apiserver()?;
    cluster.bootstrap()?;
    let mut c = Command::new(&upstream.controller_manager);
    c.arg(format!("--kubeconfig={}", cluster.admin_kubeconfig().display()))
        // Only what turns Pods into EndpointSlices (and Endpoints mirroring): no node
        // lifecycle (there is no kubelet to keep Nodes alive), no garbage collection.
        .arg("--controllers=endpointslice,endpointslicemirroring")
        .arg("--leader-elect=false")
        // No serving endpoint: nothing scrapes it, and no port to collide with.
        .arg("--secure-port=0");
    let log = dir.join("kube-controller-manager.log");
    let kcm = spawn_logged(&mut c, &log)?;
    println!("lab: control plane up in {:.1?} (logs in {})", started.elapsed(), dir.display());
    let result = f(&cluster);
    stop(kcm, "kube-controller-manager", Duration::from_secs(5));
    if result.is_err() {
        for log in ["kube-controller-manager.log", "apiserver.log"] {
            apiserver::print_tail(&dir.join(log), 10);
        }
    }
    result
}

extern "C" {
    /// glibc's signal(2) (xtask is std only, so no libc crate).
    fn signal(sig: i32, handler: usize) -> usize;
}
const SIGINT: i32 = 2;
const SIG_DFL: usize = 0;
const SIG_IGN: usize = 1;

fn ignore_sigint() {
    // SAFETY: installs the "ignore" disposition; no handler code runs.
    unsafe {
        signal(SIGINT, SIG_IGN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_differential_flags() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(parse(&s(&["--help"])).expect("parse").is_none());
        let a = parse(&s(&["--differential", "--seed", "3", "--services", "10"])).expect("parse").expect("args");
        assert_eq!(a.mode, Some("differential"));
        assert_eq!(a.pass, s(&["--seed", "3", "--services", "10"]));
        assert!(parse(&s(&[])).is_err());
        assert!(parse(&s(&["--serve", "--seed", "1"])).is_err());
        assert!(parse(&s(&["--seed"])).is_err());
    }
}
