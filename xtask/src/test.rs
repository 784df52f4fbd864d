//! `cargo xtask test`: every suite, as root, with one summary line at the end.
//!
//! Stages (each counted once in the summary, all run even if an earlier one failed):
//! 1. workspace: `cargo build --workspace --all-targets`, then `cargo test --workspace`
//!    (privileged namespace tests included: they fail, never skip, without root);
//! 2. IPVS VM tests (`vm::run`);
//! 3. API-server e2e tests (`apiserver::run`);
//! 4. the container image: built from the debug binary and checked (`image::run --check`).

use std::time::{Duration, Instant};

use crate::{apiserver, cmd, deps, image, vm};

/// Entry point; `args` are passed on to `cargo test` after `--` (e.g. a test name filter).
pub fn run(args: &[String]) -> Result<(), String> {
    deps::require_root("cargo xtask test")?;
    deps::ensure(&deps::all())?;
    let started = Instant::now();
    let stages: [(&str, &dyn Fn() -> Result<String, String>); 4] = [
        ("workspace tests", &|| workspace(args)),
        ("IPVS VM tests", &|| {
            stage("cargo xtask vm", || vm::run(&[]))
        }),
        ("API-server e2e", &|| {
            stage("cargo xtask e2e", || apiserver::run(&[]))
        }),
        ("container image", &|| {
            let args = ["--debug", "--check", "--tag", "localhost/kproxy:xtask-test"].map(String::from);
            stage("cargo xtask image --debug --check", || image::run(&args))
        }),
    ];
    let results: Vec<(&str, Duration, Result<String, String>)> = stages
        .iter()
        .map(|(name, run)| {
            let t = Instant::now();
            let result = run();
            (*name, t.elapsed(), result)
        })
        .collect();

    println!("\n==== summary ({:.0?}) ====", started.elapsed());
    for (name, took, result) in &results {
        let took = Duration::from_secs(took.as_secs());
        match result {
            Ok(detail) => println!("PASS  {name}{detail} in {took:?}"),
            Err(e) => println!("FAIL  {name} in {took:?}: {e}"),
        }
    }
    let failed = results.iter().filter(|(_, _, r)| r.is_err()).count();
    println!("{} passed, {} failed", results.len() - failed, failed);
    if failed > 0 {
        return Err(format!("{failed} of {} suites failed", results.len()));
    }
    Ok(())
}

fn workspace(args: &[String]) -> Result<String, String> {
    println!("\n==== cargo build --workspace --all-targets ====");
    cmd::status(cmd::cargo().args(["build", "--workspace", "--all-targets"]))?;
    println!("\n==== cargo test --workspace ====");
    let mut c = cmd::cargo();
    c.args(["test", "--workspace", "--no-fail-fast"]);
    if !args.is_empty() {
        c.arg("--").args(args);
    }
    let (ok, counts) = cmd::test_run(&mut c)?;
    let detail = format!(
        " ({} passed, {} failed, {} ignored tests)",
        counts.passed, counts.failed, counts.ignored
    );
    if ok && counts.failed == 0 {
        Ok(detail)
    } else {
        Err(format!("`cargo test --workspace` failed{detail}"))
    }
}

fn stage(label: &str, f: impl FnOnce() -> Result<(), String>) -> Result<String, String> {
    println!("\n==== {label} ====");
    f().map(|()| String::new())
}
