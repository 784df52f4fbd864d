//! `cargo xtask bench`: criterion benchmarks, then the end-to-end nftables apply benchmark.
//!
//! The apply benchmark is any binary target named `kproxy-apply-bench` in the workspace
//! (it creates its own network namespace); it runs in release mode with `args` passed on.

use crate::{cmd, deps};

/// The binary target name the apply benchmark is looked up by.
const APPLY_BENCH: &str = "kproxy-apply-bench";

/// Entry point.
pub fn run(args: &[String]) -> Result<(), String> {
    deps::ensure(deps::BUILD)?;
    println!("==== cargo bench -p kproxy-benches ====");
    cmd::status(cmd::cargo().args(["bench", "-p", "kproxy-benches"]))?;
    match apply_bench_package()? {
        Some(package) => {
            deps::require_root("the nftables apply benchmark")?;
            println!("\n==== {APPLY_BENCH} (package {package}, release) ====");
            cmd::status(
                cmd::cargo()
                    .args([
                        "run",
                        "--release",
                        "--quiet",
                        "-p",
                        &package,
                        "--bin",
                        APPLY_BENCH,
                        "--",
                    ])
                    .args(args),
            )
        }
        None => {
            println!("\nxtask bench: no `{APPLY_BENCH}` binary in the workspace yet; apply benchmark not run");
            Ok(())
        }
    }
}

/// The package that has a `kproxy-apply-bench` bin target, if any.
fn apply_bench_package() -> Result<Option<String>, String> {
    let meta = cmd::metadata()?;
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    Ok(packages.iter().find_map(|p| {
        let has = p["targets"].as_array()?.iter().any(|t| {
            t["name"] == APPLY_BENCH
                && t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
        });
        has.then(|| p["name"].as_str().map(String::from)).flatten()
    }))
}
