//! A soak of the real `kproxy` daemon on `--manifests DIR` in a network namespace: many
//! Services, a steady rate of endpoint changes (each a manifest file rewritten through a
//! temporary file and a rename), the daemon's memory sampled as it goes, every change timed
//! from the rename to its first appearance in `nft monitor`, and at the end the namespace's
//! ruleset compared with a fresh `kproxy --once` of the final files in a second namespace.
//!
//! Used by `tests/tests/soak.rs` (small, in the suite) and the `kproxy-soak` benchmark
//! binary (`cargo xtask bench soak`).

mod daemon;
mod monitor;
mod ruleset;
mod stats;
mod workload;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use ruleset::Canonical;
pub use stats::Window;
pub use workload::MAX_SERVICES;

use crate::{kproxy_binary, nft_json, nft_text, HarnessError, Netns};
use daemon::Daemon;
use monitor::Monitor;
use workload::Workload;

/// How much to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Services (each with one port and two endpoints), at most [`MAX_SERVICES`].
    pub services: usize,
    /// Manifest files they are spread over.
    pub files: usize,
    /// Endpoint changes per second.
    pub rate: f64,
    /// How long changes are made.
    pub duration: Duration,
    /// Width of the latency windows reported.
    pub window: Duration,
    /// How often the daemon's VmRSS is sampled.
    pub rss_every: Duration,
    /// `--nftables-min-sync-period` for the daemon, if not its default.
    pub min_sync_period: Option<String>,
    /// Printed progress (one line per RSS sample) on stderr.
    pub verbose: bool,
}

/// What a soak measured.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// The configuration it ran with.
    pub config: SoakConfig,
    /// Files written to the daemon's first sync seen complete in the kernel.
    pub cold_start: Duration,
    /// Changes written.
    pub changes: usize,
    /// Changes not in the kernel 30 s after the last write.
    pub unseen: usize,
    /// Changes in the kernel whose notification `nft monitor` lost (no latency for them).
    pub missed_by_monitor: usize,
    /// Times `nft monitor` reported lost notifications (cold start included).
    pub monitor_lost: usize,
    /// Initial endpoints found by listing the ruleset because notifications were lost.
    pub cold_reconciled: usize,
    /// How far the writer fell behind its schedule at worst.
    pub max_writer_lag: Duration,
    /// Latency per window of the run.
    pub windows: Vec<Window>,
    /// Latency over the whole run: p50, p99, max.
    pub overall: (Duration, Duration, Duration),
    /// (seconds since the first change, VmRSS MB), the first taken as changes begin, the
    /// last after the changes stopped and every one was seen.
    pub rss: Vec<(f64, f64)>,
    /// Least-squares slope of `rss`, MB per minute.
    pub rss_slope_mb_per_min: f64,
    /// The same over the samples from the end of the first latency window on (after warm-up).
    pub rss_slope_after_warmup: f64,
    /// Objects and rules in the daemon's final ruleset.
    pub ruleset_size: usize,
    /// Where the daemon's final ruleset differs from `kproxy --once` (empty: equal).
    pub differences: Vec<String>,
    /// The daemon exited 0 on SIGTERM.
    pub clean_exit: bool,
}

/// Why a soak could not run to the end (a difference in results is not an error: see
/// [`SoakReport`]).
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// A namespace, `nft` or the binary could not be set up or run.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// The manifest directory or a file in it could not be written.
    #[error("writing manifests under {dir}: {source}")]
    Write {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The daemon could not be started, exited early or never programmed the first state.
    #[error("kproxy daemon: {0}")]
    Daemon(String),
}

/// Runs the soak as configured (as root: it creates network namespaces).
pub fn run(config: &SoakConfig) -> Result<SoakReport, SoakError> {
    let kproxy = kproxy_binary()?;
    let dir = ScratchDir::new()?;
    let manifests = dir.0.join("manifests");
    let write_err = |source| SoakError::Write { dir: manifests.clone(), source };
    std::fs::create_dir_all(&manifests).map_err(write_err)?;
    let mut work = Workload::new(&manifests, config.services, config.files);

    let node = Netns::new("soak")?;
    let monitor = Monitor::start(&node)?;
    let started = Instant::now();
    for a in work.initial_addresses() {
        monitor.expect(a, started);
    }
    work.write_all().map_err(write_err)?;
    let mut daemon = Daemon::start(&node, &kproxy, &manifests, &dir.0.join("kproxy.log"), config)?;
    // The first sync: every initial endpoint seen (bounded; 10k services take seconds). If
    // `nft monitor` lost notifications in that burst, the ruleset itself is checked instead.
    let cold_deadline = started + Duration::from_secs(120);
    let mut reconciled = 0;
    while monitor.pending() > 0 {
        daemon.check_running()?;
        if Instant::now() > cold_deadline {
            return Err(SoakError::Daemon(format!(
                "{} of the initial endpoints not in the kernel after 120 s; log tail:\n{}",
                monitor.pending(),
                daemon.log_tail()
            )));
        }
        if monitor.lost() > 0 {
            reconciled += monitor.reconcile(&nft_text(&node)?);
        }
        std::thread::sleep(Duration::from_millis(if monitor.lost() > 0 { 1000 } else { 20 }));
    }
    let cold_start = started.elapsed();
    monitor.take_seen();

    // Changes on schedule: change n is due at n / rate.
    let begin = Instant::now();
    let mut rss = vec![(0.0, daemon.rss_mb()?)];
    let mut next_rss = begin + config.rss_every;
    let (mut changes, mut max_lag) = (0usize, Duration::ZERO);
    let mut samples: Vec<(Duration, Duration)> = Vec::new();
    let collect = |monitor: &Monitor, samples: &mut Vec<(Duration, Duration)>| {
        samples.extend(monitor.take_seen().into_iter().map(|(at, l)| (at.saturating_duration_since(begin), l)));
    };
    loop {
        let due = begin + Duration::from_secs_f64(changes as f64 / config.rate);
        if due.saturating_duration_since(begin) >= config.duration {
            break;
        }
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        } else {
            max_lag = max_lag.max(now - due);
        }
        let change = work.next_change();
        work.apply(change, || monitor.expect(change.added, Instant::now())).map_err(write_err)?;
        changes += 1;
        if Instant::now() >= next_rss {
            daemon.check_running()?;
            let mb = daemon.rss_mb()?;
            let t = begin.elapsed().as_secs_f64();
            if config.verbose {
                eprintln!("soak: {t:6.0} s  {changes} changes  VmRSS {mb:.1} MB  awaited {}", monitor.pending());
            }
            rss.push((t, mb));
            next_rss += config.rss_every;
            collect(&monitor, &mut samples);
        }
    }
    let mut unseen = monitor.drain(Duration::from_secs(30));
    collect(&monitor, &mut samples);
    // Changes `nft monitor` missed (lost notifications) but the kernel holds.
    let missed_by_monitor = if unseen > 0 { monitor.reconcile(&nft_text(&node)?) } else { 0 };
    unseen -= missed_by_monitor;
    rss.push((begin.elapsed().as_secs_f64(), daemon.rss_mb()?));
    daemon.check_running()?;
    // Settle: one more poll and sync, in case a file's last version carried more than the
    // address that was awaited.
    std::thread::sleep(Duration::from_secs(2));
    let live = Canonical::new(&nft_json(&node)?);
    let clean_exit = daemon.stop();
    let monitor_lost = monitor.lost();
    drop(monitor);

    let fresh_ns = Netns::new("soak-once")?;
    Daemon::once(&fresh_ns, &kproxy, &manifests, config)?;
    let fresh = Canonical::new(&nft_json(&fresh_ns)?);

    let mut all: Vec<Duration> = samples.iter().map(|s| s.1).collect();
    all.sort();
    let overall = if all.is_empty() {
        (Duration::ZERO, Duration::ZERO, Duration::ZERO)
    } else {
        (stats::percentile(&all, 50.0), stats::percentile(&all, 99.0), all[all.len() - 1])
    };
    let rss_slope_mb_per_min = stats::slope(&rss) * 60.0;
    let warm: Vec<(f64, f64)> = rss.iter().copied().filter(|s| s.0 >= config.window.as_secs_f64()).collect();
    let rss_slope_after_warmup = stats::slope(&warm) * 60.0;
    Ok(SoakReport {
        config: config.clone(),
        cold_start,
        changes,
        unseen,
        missed_by_monitor,
        monitor_lost,
        cold_reconciled: reconciled,
        max_writer_lag: max_lag,
        windows: stats::windows(&samples, config.window),
        overall,
        rss,
        rss_slope_mb_per_min,
        rss_slope_after_warmup,
        ruleset_size: live.size(),
        differences: live.differences(&fresh, 20),
        clean_exit,
    })
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(
            f,
            "soak: {} services in {} files, {} changes/s for {:.0} s (min sync period {})",
            c.services,
            c.files,
            c.rate,
            c.duration.as_secs_f64(),
            c.min_sync_period.as_deref().unwrap_or("default")
        )?;
        writeln!(f, "cold start (files written -> every endpoint in the kernel): {:.0} ms", ms(self.cold_start))?;
        writeln!(
            f,
            "changes: {} written, {} not in the kernel 30 s after the last write; writer lag at worst {:.1} ms",
            self.changes,
            self.unseen,
            ms(self.max_writer_lag)
        )?;
        if self.monitor_lost > 0 {
            writeln!(
                f,
                "nft monitor lost notifications {} times: {} initial endpoints and {} changes found by listing the ruleset instead (no latency for them)",
                self.monitor_lost, self.cold_reconciled, self.missed_by_monitor
            )?;
        }
        writeln!(f, "latency, rename -> nft monitor (includes the 500 ms manifest poll):")?;
        writeln!(f, "  window from     changes   p50 ms   p99 ms   max ms")?;
        for w in &self.windows {
            writeln!(
                f,
                "  {:>8.0} s   {:>9}  {:>7.0}  {:>7.0}  {:>7.0}",
                w.from.as_secs_f64(),
                w.count,
                ms(w.p50),
                ms(w.p99),
                ms(w.max)
            )?;
        }
        let (p50, p99, max) = self.overall;
        let timed: usize = self.windows.iter().map(|w| w.count).sum();
        writeln!(f, "  whole run     {:>9}  {:>7.0}  {:>7.0}  {:>7.0}", timed, ms(p50), ms(p99), ms(max))?;
        let series: Vec<String> = self.rss.iter().map(|(t, mb)| format!("{t:.0}s:{mb:.1}")).collect();
        writeln!(f, "VmRSS MB every {:.0} s: {}", c.rss_every.as_secs_f64(), series.join(" "))?;
        writeln!(
            f,
            "VmRSS slope: {:+.3} MB/min over the run, {:+.3} MB/min from {:.0} s on",
            self.rss_slope_mb_per_min,
            self.rss_slope_after_warmup,
            c.window.as_secs_f64()
        )?;
        writeln!(
            f,
            "final ruleset ({} objects and rules) vs a fresh `kproxy --once` of the final files: {}",
            self.ruleset_size,
            if self.differences.is_empty() { "equal".to_string() } else { format!("DIFFERENT:\n  {}", self.differences.join("\n  ")) }
        )?;
        write!(f, "daemon exit on SIGTERM: {}", if self.clean_exit { "clean" } else { "NOT clean" })
    }
}

/// A directory under the system temp dir, removed on drop unless `$KPROXY_SOAK_KEEP` is set
/// (then the final manifests and the daemon's log stay for a look).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir, SoakError> {
        let dir = std::env::temp_dir().join(format!("kproxy-soak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| SoakError::Write { dir: dir.clone(), source })?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::env::var_os("KPROXY_SOAK_KEEP").is_some() {
            eprintln!("soak: kept {} ($KPROXY_SOAK_KEEP)", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
