//! `cargo xtask fuzz [TARGET...] [--time SECONDS]`: the coverage-guided fuzz targets of
//! `fuzz/` (cargo-fuzz, libFuzzer), each for a bounded time, with exec counts and coverage.
//!
//! cargo-fuzz needs a nightly toolchain; this installs it (`rustup toolchain install nightly
//! --profile minimal`) and cargo-fuzz (`cargo install cargo-fuzz --locked`) when missing.
//! New inputs go to `target/fuzz-corpus/TARGET` (not committed); the committed corpus
//! `fuzz/corpus/TARGET` is read as seeds. Crashes land in `fuzz/artifacts/TARGET`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::cmd;

/// Every fuzz target, one per parser family (`fuzz/fuzz_targets/NAME.rs`).
pub const TARGETS: &[&str] = &["config", "manifest", "netlink", "nft", "ipvs", "conntrack"];

/// What one run reached, read from libFuzzer's output.
#[derive(Debug, Default)]
struct Stats {
    execs: u64,
    cov: u64,
    features: u64,
    corpus: u64,
}

/// Entry point.
pub fn run(args: &[String]) -> Result<(), String> {
    let (targets, seconds) = parse_args(args)?;
    ensure_tools()?;
    let mut summary = Vec::new();
    for t in &targets {
        println!("==== fuzz {t} ({seconds} s) ====");
        let stats = run_target(t, seconds)?;
        println!(
            "xtask fuzz: {t}: {} executions, coverage {} edges, {} features, corpus {} inputs",
            stats.execs, stats.cov, stats.features, stats.corpus
        );
        summary.push((t.clone(), stats));
    }
    println!("\n==== summary ====");
    for (t, s) in summary {
        println!("{t:10} execs {:>12}  cov {:>6}  ft {:>6}  corpus {:>5}", s.execs, s.cov, s.features, s.corpus);
    }
    Ok(())
}

fn parse_args(args: &[String]) -> Result<(Vec<String>, u64), String> {
    let mut targets = Vec::new();
    let mut seconds = 60;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--time" {
            let v = it.next().ok_or("--time needs a number of seconds")?;
            seconds = v.parse().map_err(|_| format!("--time {v:?}: expected whole seconds"))?;
        } else if TARGETS.contains(&a.as_str()) {
            targets.push(a.clone());
        } else {
            return Err(format!("unknown fuzz target {a:?}; targets: {}", TARGETS.join(", ")));
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    Ok((targets, seconds))
}

/// Installs the nightly toolchain and cargo-fuzz if missing.
fn ensure_tools() -> Result<(), String> {
    let nightly = Command::new("rustup").args(["run", "nightly", "rustc", "--version"]).output();
    if !nightly.map(|o| o.status.success()).unwrap_or(false) {
        println!("xtask fuzz: installing the nightly toolchain (cargo-fuzz needs it)");
        cmd::status(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    let fuzz = Command::new("cargo").args(["fuzz", "--version"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !fuzz.map(|s| s.success()).unwrap_or(false) {
        println!("xtask fuzz: installing cargo-fuzz");
        cmd::status(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// Runs one target for `seconds`, echoing libFuzzer's output, and reads its final stats.
fn run_target(target: &str, seconds: u64) -> Result<Stats, String> {
    let root = cmd::root();
    let scratch = root.join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("creating {}: {e}", scratch.display()))?;
    let seeds = root.join("fuzz/corpus").join(target);
    let mut c = Command::new("cargo");
    c.current_dir(root.join("fuzz"))
        .args(["+nightly", "fuzz", "run", "-O", target])
        .arg(&scratch)
        .arg(&seeds)
        .args(["--", &format!("-max_total_time={seconds}"), "-print_final_stats=1", "-max_len=65536"])
        .stderr(Stdio::piped());
    let line = format!("cargo +nightly fuzz run -O {target} (in fuzz/)");
    let mut child = c.spawn().map_err(|e| format!("starting `{line}` failed: {e}"))?;
    let mut stats = Stats::default();
    if let Some(err) = child.stderr.take() {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{l}");
            read_stats(&l, &mut stats);
        }
    }
    let st = child.wait().map_err(|e| format!("waiting for `{line}`: {e}"))?;
    if !st.success() {
        return Err(format!("`{line}` failed ({st}): a crash is saved under fuzz/artifacts/{target}/"));
    }
    Ok(stats)
}

/// Picks the numbers out of libFuzzer's status lines (`#N ... cov: C ft: F corp: K/...`)
/// and its final stats (`stat::number_of_executed_units: N`).
fn read_stats(l: &str, s: &mut Stats) {
    if let Some(v) = l.strip_prefix("stat::number_of_executed_units:") {
        s.execs = v.trim().parse().unwrap_or(s.execs);
        return;
    }
    if !l.starts_with('#') {
        return;
    }
    let words: Vec<&str> = l.split_whitespace().collect();
    for w in words.windows(2) {
        let n = || w[1].split('/').next().and_then(|v| v.parse().ok());
        match w[0] {
            "cov:" => s.cov = n().unwrap_or(s.cov),
            "ft:" => s.features = n().unwrap_or(s.features),
            "corp:" => s.corpus = n().unwrap_or(s.corpus),
            _ => {}
        }
    }
    if let Some(n) = words.first().and_then(|w| w[1..].parse().ok()) {
        s.execs = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_lines() {
        let mut s = Stats::default();
        read_stats("#262144\tpulse  cov: 1234 ft: 5678 corp: 90/12Kb lim: 4096 exec/s: 87381 rss: 60Mb", &mut s);
        assert_eq!((s.execs, s.cov, s.features, s.corpus), (262144, 1234, 5678, 90));
        read_stats("stat::number_of_executed_units: 300001", &mut s);
        assert_eq!(s.execs, 300001);
    }
}
