//! `cargo xtask bench soak [--services N] [--rate R] [--minutes M] [--files F]
//! [--min-sync-period D]`: builds `kproxy` and the `kproxy-soak` benchmark in release mode
//! and runs it (as root; it creates its own network namespaces). Defaults: 10,000 Services,
//! 100 endpoint changes per second, 10 minutes. Numbers are printed by `kproxy-soak`.

use crate::{cmd, deps};

/// Entry point; `args` are passed on to `kproxy-soak`.
pub fn run(args: &[String]) -> Result<(), String> {
    deps::ensure(deps::BUILD)?;
    deps::require_root("the soak benchmark")?;
    println!("==== build kproxy and kproxy-soak (release) ====");
    cmd::status(cmd::cargo().args([
        "build", "--release", "-p", "kproxy-bin", "--bin", "kproxy", "-p", "kproxy-tests", "--bin", "kproxy-soak",
    ]))?;
    let release = cmd::target_dir()?.join("release");
    println!("\n==== kproxy-soak {} ====", args.join(" "));
    // kproxy-soak finds kproxy next to itself; KPROXY_BIN makes the choice explicit.
    cmd::status(std::process::Command::new(release.join("kproxy-soak")).args(args).env("KPROXY_BIN", release.join("kproxy")))
}
