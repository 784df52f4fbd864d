//! End-to-end apply benchmark of the nftables backend against the real kernel.
//!
//! `cargo run --release -p kproxy-benches --bin nft_apply -- [SERVICES] [ENDPOINTS] [--no-upstream]`
//! (as root). In fresh network namespaces it creates and deletes itself, it measures:
//! 1. kproxy's cold sync of `synthetic_state(SERVICES, ENDPOINTS)` through netlink,
//! 2. one endpoint change, from change set to kernel ACK,
//! 3. peak RSS of the process that did both,
//! 4. side by side, `nft -f` of `shared/tools/nft-shapes/upstream_shape.py SERVICES ENDPOINTS`
//!    (upstream kube-proxy's ruleset shape), and the ratio.
//!
//! Wall and CPU times are printed: on a shared machine wall time includes waiting for a CPU.

use std::collections::BTreeMap;
use std::error::Error;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Instant;

use kproxy_benches::synthetic_state;
use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::{Change, ChangeSet};
use kproxy_nft::{NftBackend, NftConfig};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const UPSTREAM_SHAPE: &str = "/work/shared/tools/nft-shapes/upstream_shape.py";

/// A network namespace deleted on drop.
struct Ns(String);

impl Ns {
    fn new(label: &str) -> Result<Ns> {
        let name = format!("kpbench-{}-{label}", std::process::id());
        let st = Command::new("ip").args(["netns", "add", &name]).status()?;
        if !st.success() {
            return Err(format!("ip netns add {name} failed (run as root)").into());
        }
        Ok(Ns(name))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// (user, system) CPU seconds of this process so far, from /proc/self/stat (USER_HZ 100).
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) / 100.0, f.get(12).copied().unwrap_or(0.0) / 100.0)
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
        / 1024
}

/// Runs inside the namespace: cold sync, one endpoint change, RSS.
fn child(services: usize, eps: usize) -> Result<()> {
    let t = Instant::now();
    let state = synthetic_state(services, eps);
    let generate = t.elapsed();
    let mut backend = NftBackend::new(NftConfig::default())?;
    let (u0, s0) = cpu_times();
    let t = Instant::now();
    let report = backend.sync_full(&state)?;
    let cold = t.elapsed();
    let (u1, s1) = cpu_times();
    // One endpoint change, as the change tracker hands it over.
    let mut next = state.clone();
    let (key, sp) = next.services.iter_mut().next().ok_or("no services")?;
    let old = sp.clone();
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 255, 254)), 9999);
    sp.cluster_endpoints[0] = addr;
    sp.cluster_endpoints.sort();
    sp.endpoints[0].addr = addr;
    sp.endpoints.sort();
    let changes = ChangeSet {
        services: BTreeMap::from([(key.clone(), Change::Modified { old, new: sp.clone() })]),
        ..ChangeSet::default()
    };
    let t = Instant::now();
    backend.sync_changes(&next, &changes)?;
    let change = t.elapsed();
    println!(
        "kproxy: {services} services x {eps} endpoints: cold sync {:.0} ms wall ({:.0} ms user + {:.0} ms sys, {} netlink messages); \
one endpoint change -> ACK {:.2} ms; peak RSS {} MB (state generation {:.0} ms, not included)",
        cold.as_secs_f64() * 1e3,
        (u1 - u0) * 1e3,
        (s1 - s0) * 1e3,
        report.operations,
        change.as_secs_f64() * 1e3,
        peak_rss_mb(),
        generate.as_secs_f64() * 1e3
    );
    println!("KPROXY_COLD_SECONDS {}", cold.as_secs_f64());
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nums: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let services = nums.first().copied().unwrap_or(10_000);
    let eps = nums.get(1).copied().unwrap_or(10);
    if args.first().map(String::as_str) == Some("--child") {
        return child(services, eps);
    }
    let me = std::env::current_exe()?;
    let ns = Ns::new("kproxy")?;
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(&me)
        .args(["--child", &services.to_string(), &eps.to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("kproxy run failed: {text}{}", String::from_utf8_lossy(&out.stderr)).into());
    }
    print!("{}", text.lines().filter(|l| !l.starts_with("KPROXY_COLD")).map(|l| format!("{l}\n")).collect::<String>());
    // Phase timings of the backend (KPROXY_NFT_TRACE=1).
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let kproxy_s: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("KPROXY_COLD_SECONDS "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no timing from the kproxy run")?;
    if args.iter().any(|a| a == "--no-upstream") {
        return Ok(());
    }
    let script = Command::new("python3").args([UPSTREAM_SHAPE, &services.to_string(), &eps.to_string()]).output()?;
    if !script.status.success() {
        return Err(format!("{UPSTREAM_SHAPE} failed").into());
    }
    let path = std::env::temp_dir().join(format!("kpbench-{}-upstream.nft", std::process::id()));
    std::fs::write(&path, &script.stdout)?;
    let ns2 = Ns::new("upstream")?;
    let t = Instant::now();
    let st = Command::new("ip").args(["netns", "exec", &ns2.0, "nft", "-f"]).arg(&path).status()?;
    let upstream_s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    if !st.success() {
        return Err("nft -f of the upstream shape failed".into());
    }
    println!(
        "upstream shape via nft -f: {:.2} s wall; kproxy is {:.0}x faster",
        upstream_s,
        upstream_s / kproxy_s
    );
    Ok(())
}
