//! `cargo xtask e2e`: the end-to-end tests against a real kube-apiserver.
//!
//! 1. Builds (or reuses) etcd, kube-apiserver v1.34 and the `e2e-kit` helper from the Go
//!    module in `tools/apiserver`, cached in `target/apiserver-bin/`.
//! 2. Generates a CA, a serving certificate for 127.0.0.1 and an admin client certificate;
//!    starts etcd and kube-apiserver on 127.0.0.1 (free ports, RBAC on, service CIDR
//!    198.19.160.0/20) and waits for `/readyz` (bounded).
//! 3. Creates kproxy's ServiceAccount `kube-system/kproxy`, its ClusterRole/Binding and a
//!    kubeconfig with a TokenRequest token.
//! 4. Runs every `tests/tests/e2e_*.rs` target (their tests are `#[ignore]`d for plain
//!    `cargo test`; this runs them with `--include-ignored`, one at a time) with the
//!    environment below, then stops everything, also on failure.
//!
//! Environment given to the tests (read by `tests/tests/e2e_support`):
//! `KPROXY_E2E_APISERVER` (URL), `KPROXY_E2E_ADMIN_KUBECONFIG`, `KPROXY_E2E_KPROXY_KUBECONFIG`,
//! `KPROXY_E2E_CA`, `KPROXY_E2E_CONTROL` (Unix socket to stop/start the API server and
//! etcd, see `control.rs`), `KPROXY_E2E_RUN_DIR`, and `KPROXY_BIN` (the `kproxy` binary,
//! built first, for tests that run the daemon in a network namespace).
//!
//! Usage: `cargo xtask e2e [--rebuild] [--keep] [--serve] [--release] [--test NAME]... [-- TEST-ARGS]`
//! - `--release`: the daemon is built in release mode and test output is shown (for the
//!   benchmarks run this way, e.g. `--release --test bench_cold_start`).
//! - `--serve`: start the control plane, print the environment, wait for Enter, stop.
//! - `--keep`: keep the run directory (logs, certs) even when everything passed.

pub(crate) mod build;
pub(crate) mod cluster;
mod control;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cmd;
use cluster::Cluster;
use control::ControlServer;

/// Parsed command line.
#[derive(Debug, Default)]
struct Args {
    rebuild: bool,
    /// Build and run kproxy (the daemon the tests start) in release mode, for benchmarks.
    release: bool,
    keep: bool,
    serve: bool,
    tests: Vec<String>,
    test_args: Vec<String>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rebuild" => a.rebuild = true,
            "--release" => a.release = true,
            "--keep" => a.keep = true,
            "--serve" => a.serve = true,
            "--test" => a.tests.push(it.next().ok_or("--test needs a test target name")?.clone()),
            "--" => {
                a.test_args = it.cloned().collect();
                break;
            }
            // Anything else is a test-name filter, as `cargo xtask test FILTER` passes it on.
            other => a.test_args.push(other.to_string()),
        }
    }
    Ok(a)
}

/// Entry point for `cargo xtask e2e`.
pub fn run(args: &[String]) -> Result<(), String> {
    let args = parse(args)?;
    let started = Instant::now();
    let bins = build::ensure_binaries(args.rebuild)?;
    let targets = if args.tests.is_empty() { e2e_targets()? } else { args.tests.clone() };
    if targets.is_empty() && !args.serve {
        return Err("no tests/tests/e2e_*.rs test targets found".into());
    }
    let dir = cmd::root().join("target").join("apiserver-run").join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    let result = run_with_cluster(bins, &dir, &args, &targets);
    match &result {
        Ok(()) if !args.keep => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(()) => println!("apiserver: logs, certificates and kubeconfigs kept in {}", dir.display()),
        Err(_) => {
            for log in ["etcd.log", "apiserver.log"] {
                print_tail(&dir.join(log), 15);
            }
            println!("apiserver: logs, certificates and kubeconfigs kept in {}", dir.display());
        }
    }
    println!("apiserver: e2e run took {:.0?}", started.elapsed());
    result
}

fn run_with_cluster(bins: build::Binaries, dir: &std::path::Path, args: &Args, targets: &[String]) -> Result<(), String> {
    let mut cluster = Cluster::prepare(bins, dir)?;
    cluster.start_etcd()?;
    cluster.start_apiserver()?;
    cluster.bootstrap()?;
    let env = test_env(&cluster);
    let cluster = Arc::new(Mutex::new(cluster));
    let control = ControlServer::start(&dir.join("control.sock"), Arc::clone(&cluster))?;

    let result = if args.serve { serve(&env) } else { run_tests(&env, targets, args) };

    drop(control);
    // Stop the processes explicitly (the Arc may not be the last reference if the
    // control thread is mid-request; it has been joined above, so it is).
    let mut c = cluster.lock().unwrap_or_else(|p| p.into_inner());
    c.stop_apiserver();
    c.stop_etcd();
    result
}

fn test_env(c: &Cluster) -> Vec<(&'static str, String)> {
    let s = |p: PathBuf| p.display().to_string();
    vec![
        ("KPROXY_E2E_APISERVER", c.url()),
        ("KPROXY_E2E_ADMIN_KUBECONFIG", s(c.admin_kubeconfig())),
        ("KPROXY_E2E_KPROXY_KUBECONFIG", s(c.kproxy_kubeconfig())),
        ("KPROXY_E2E_CA", s(c.ca_cert())),
        ("KPROXY_E2E_CONTROL", s(c.dir().join("control.sock"))),
        ("KPROXY_E2E_RUN_DIR", s(c.dir().to_path_buf())),
    ]
}

fn run_tests(env: &[(&'static str, String)], targets: &[String], args: &Args) -> Result<(), String> {
    // Tests that run the daemon in a namespace need the binary, which `cargo test` of
    // another package does not build.
    let mut build = cmd::cargo();
    build.args(["build", "-p", "kproxy-bin", "--bin", "kproxy"]);
    if args.release {
        build.arg("--release");
    }
    cmd::status(&mut build)?;
    let profile = if args.release { "release" } else { "debug" };
    let kproxy_bin = cmd::target_dir()?.join(profile).join("kproxy");
    let mut c = cmd::cargo();
    c.env("KPROXY_BIN", &kproxy_bin);
    c.args(["test", "-p", "kproxy-tests", "--no-fail-fast"]);
    for t in targets {
        c.args(["--test", t]);
    }
    // The tests share one API server and some restart it: run them one at a time.
    c.args(["--", "--include-ignored", "--test-threads=1"]);
    if args.release {
        // A benchmark run: its numbers are what it prints.
        c.arg("--nocapture");
    }
    c.args(&args.test_args);
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let (ok, counts) = cmd::test_run(&mut c)?;
    let detail = format!("{} passed, {} failed, {} ignored", counts.passed, counts.failed, counts.ignored);
    println!("apiserver: e2e tests: {detail}");
    if ok && counts.failed == 0 && counts.passed > 0 {
        Ok(())
    } else if ok && counts.passed == 0 {
        Err(format!("no e2e test ran ({detail}): check the filter"))
    } else {
        Err(format!("e2e tests failed ({detail})"))
    }
}

fn serve(env: &[(&'static str, String)]) -> Result<(), String> {
    println!("apiserver: control plane running; in another shell:");
    for (k, v) in env {
        println!("export {k}={v}");
    }
    println!("apiserver: press Enter to stop");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| format!("reading stdin: {e}"))?;
    Ok(())
}

/// The last `n` lines of a log, for CI output when something failed.
pub(crate) fn print_tail(path: &std::path::Path, n: usize) {
    let Ok(text) = std::fs::read_to_string(path) else { return };
    let lines: Vec<&str> = text.lines().collect();
    println!("---- last {n} lines of {} ----", path.display());
    for l in &lines[lines.len().saturating_sub(n)..] {
        println!("{l}");
    }
}

/// Names of the `tests/tests/e2e_*.rs` targets.
fn e2e_targets() -> Result<Vec<String>, String> {
    let dir = cmd::root().join("tests").join("tests");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("e2e_") && n.ends_with(".rs"))
        .map(|n| n.trim_end_matches(".rs").to_string())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_harness_flags_from_test_args() {
        let a = parse(&["--keep".into(), "--test".into(), "e2e_watch".into(), "--".into(), "--nocapture".into()])
            .expect("parse");
        assert!(a.keep && !a.serve && !a.rebuild);
        assert_eq!(a.tests, ["e2e_watch"]);
        assert_eq!(a.test_args, ["--nocapture"]);
        assert!(parse(&["--test".into()]).is_err());
    }
}
