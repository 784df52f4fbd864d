//! `cargo xtask bench`: criterion benchmarks, then the end-to-end nftables apply benchmark.
//!
//! The apply benchmark is the first binary target found named one of [`APPLY_BENCHES`]
//! (kproxy-benches' `nft_apply`; it creates its own network namespace); it runs in release
//! mode with `args` passed on. Numbers are printed by the benchmarks themselves.

use crate::{cmd, deps};

/// Binary target names the apply benchmark is looked up by, in order.
const APPLY_BENCHES: &[&str] = &["nft_apply", "kproxy-apply-bench"];

/// Entry point.
pub fn run(args: &[String]) -> Result<(), String> {
    deps::ensure(deps::BUILD)?;
    println!("==== cargo bench -p kproxy-benches ====");
    cmd::status(cmd::cargo().args(["bench", "-p", "kproxy-benches"]))?;
    let Some((package, bin)) = apply_bench()? else {
        println!(
            "\nxtask bench: no apply benchmark binary ({}) in the workspace yet; not run",
            APPLY_BENCHES.join(", ")
        );
        return Ok(());
    };
    deps::require_root("the nftables apply benchmark")?;
    println!("\n==== {bin} (package {package}, release) ====");
    cmd::status(
        cmd::cargo()
            .args([
                "run",
                "--release",
                "--quiet",
                "-p",
                &package,
                "--bin",
                &bin,
                "--",
            ])
            .args(args),
    )
}

/// (package, bin target) of the apply benchmark, if the workspace has one.
fn apply_bench() -> Result<Option<(String, String)>, String> {
    let meta = cmd::metadata()?;
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let is_bin = |t: &serde_json::Value| {
        t["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"))
    };
    for wanted in APPLY_BENCHES {
        for p in &packages {
            let targets = p["targets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if targets.iter().any(|t| t["name"] == *wanted && is_bin(t)) {
                let package = p["name"].as_str().unwrap_or_default().to_string();
                return Ok(Some((package, (*wanted).to_string())));
            }
        }
    }
    Ok(None)
}
