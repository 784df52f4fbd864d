//! `cargo xtask demo`: kproxy's main job on the example cluster, no real cluster needed.
//!
//! Installs what is missing, builds `kproxy` and the demo driver (`kproxy-demo` in the
//! kproxy-tests package), and runs the driver from the repository root. The driver creates
//! the network namespaces, runs `kproxy --once` in the node namespace, prints the
//! programmed ruleset, sends traffic and cleans up (see tests/src/bin/kproxy-demo).

use crate::{cmd, deps};

/// Entry point; `args` go to the driver (`--config FILE`, `--manifests DIR`,
/// `--require-traffic`).
pub fn run(args: &[String]) -> Result<(), String> {
    deps::require_root("cargo xtask demo")?;
    deps::ensure(deps::BUILD)?;
    println!("xtask demo: building kproxy and the demo driver");
    cmd::status(cmd::cargo().args([
        "build",
        "--quiet",
        "-p",
        "kproxy-bin",
        "-p",
        "kproxy-tests",
        "--bins",
    ]))?;
    let bin = cmd::target_dir()?.join("debug");
    let mut driver = std::process::Command::new(bin.join("kproxy-demo"));
    driver
        .current_dir(cmd::root())
        .env("KPROXY_TESTSERVER", bin.join("kproxy-testserver"))
        .arg("--kproxy")
        .arg(bin.join("kproxy"))
        .args(args);
    cmd::status(&mut driver)
}
