//! The soak benchmark: `kproxy-soak [--services N] [--rate R] [--minutes M] [--files F]
//! [--min-sync-period D]` (as root). Runs the real `kproxy` daemon (found next to this
//! binary, or `$KPROXY_BIN`) on manifest files in a network namespace, makes R endpoint
//! changes per second for M minutes, and prints latency per minute, the VmRSS series and its
//! slope, and whether the final ruleset equals a fresh `kproxy --once`. Exits non-zero if a
//! change never reached the kernel, the rulesets differ or the daemon did not exit cleanly.
//! `cargo xtask bench soak` builds both in release mode and runs it.

use std::process::ExitCode;
use std::time::Duration;

use kproxy_tests::soak::{run, SoakConfig, MAX_SERVICES};

fn main() -> ExitCode {
    let mut config = SoakConfig {
        services: 10_000,
        files: 100,
        rate: 100.0,
        duration: Duration::from_secs(600),
        window: Duration::from_secs(60),
        rss_every: Duration::from_secs(10),
        min_sync_period: None,
        verbose: true,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = parse(&args, &mut config) {
        eprintln!("kproxy-soak: {e}\nusage: kproxy-soak [--services N] [--rate R] [--minutes M] [--files F] [--min-sync-period D]");
        return ExitCode::from(2);
    }
    kproxy_tests::require_root();
    match run(&config) {
        Ok(report) => {
            println!("{report}");
            if report.unseen == 0 && report.differences.is_empty() && report.clean_exit {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("kproxy-soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String], c: &mut SoakConfig) -> Result<(), String> {
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<f64>().map_err(|_| format!("{flag}: `{value}` is not a number"));
        match flag.as_str() {
            "--services" => c.services = number()? as usize,
            "--files" => c.files = number()? as usize,
            "--rate" => c.rate = number()?,
            "--minutes" => c.duration = Duration::from_secs_f64(number()? * 60.0),
            "--min-sync-period" => c.min_sync_period = Some(value.clone()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if c.services == 0 || c.services > MAX_SERVICES {
        return Err(format!("--services {} is out of range 1..={MAX_SERVICES} (ClusterIPs come from 198.19.160.0-198.19.255.255)", c.services));
    }
    if c.rate.is_nan() || c.rate <= 0.0 {
        return Err("--rate must be positive".into());
    }
    Ok(())
}
