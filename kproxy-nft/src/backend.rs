//! [`NftBackend`]: the [`ProxyBackend`] that programs nftables.

use kproxy_core::backend::{ProxyBackend, SyncKind, SyncReport};
use kproxy_core::model::{ChangeSet, ProxyState};

use crate::netlink::{cleanup_batch, delta_batch, full_batch, NetlinkError, Socket};
use crate::record::Record;
use crate::render::Plan;
use crate::NftConfig;

/// Why a sync or cleanup failed. The previous ruleset is still in place unless the error
/// says the outcome is unknown ([`NetlinkError::ruleset_unchanged`]).
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// Opening the netlink socket failed.
    #[error("nftables backend: cannot open the netlink socket")]
    Open(#[source] NetlinkError),
    /// A full sync's batch failed.
    #[error("nftables full sync of table `{table}` failed ({})", outcome(source))]
    FullSync {
        /// Table name.
        table: String,
        /// Cause, naming the failing object.
        #[source]
        source: NetlinkError,
    },
    /// A partial sync's batch failed.
    #[error("nftables partial sync of table `{table}` failed ({}; the next sync must be full)", outcome(source))]
    PartialSync {
        /// Table name.
        table: String,
        /// Cause, naming the failing object.
        #[source]
        source: NetlinkError,
    },
    /// Removing the tables failed.
    #[error("removing nftables table `{table}` failed")]
    Cleanup {
        /// Table name.
        table: String,
        /// Cause.
        #[source]
        source: NetlinkError,
    },
}

/// What a failed commit left in the kernel, as far as it is known.
fn outcome(e: &NetlinkError) -> &'static str {
    if e.ruleset_unchanged() {
        "the previous ruleset is unchanged"
    } else {
        "whether the kernel committed it is unknown"
    }
}

/// Phase timings (wall and this thread's CPU) printed to stderr when `KPROXY_NFT_TRACE` is
/// set (benchmarks, debugging). CPU time matters on shared machines, where wall time
/// includes waiting for a CPU.
struct PhaseTimer {
    enabled: bool,
    last: (std::time::Instant, f64),
    phases: Vec<(&'static str, std::time::Duration, f64)>,
}

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

impl PhaseTimer {
    fn new() -> Self {
        let enabled = std::env::var_os("KPROXY_NFT_TRACE").is_some();
        let cpu = if enabled { thread_cpu_seconds() } else { 0.0 };
        PhaseTimer { enabled, last: (std::time::Instant::now(), cpu), phases: Vec::new() }
    }

    fn mark(&mut self, phase: &'static str) {
        if self.enabled {
            let now = (std::time::Instant::now(), thread_cpu_seconds());
            self.phases.push((phase, now.0 - self.last.0, now.1 - self.last.1));
            self.last = now;
        }
    }

    fn report(&self, what: &str) {
        if self.enabled {
            let parts: Vec<String> = self
                .phases
                .iter()
                .map(|(p, d, c)| format!("{p}={:.2}ms (cpu {:.2}ms)", d.as_secs_f64() * 1e3, c * 1e3))
                .collect();
            eprintln!("kproxy-nft {what}: {}", parts.join(" "));
        }
    }
}

/// Programs kproxy's `ip` and `ip6` tables through one netlink batch per sync.
///
/// The netlink socket is bound to the network namespace of the thread that called
/// [`NftBackend::new`].
pub struct NftBackend {
    cfg: NftConfig,
    socket: Socket,
    /// A full sync succeeded since creation or cleanup: partial syncs build on its record.
    programmed: bool,
    record: Record,
}

impl NftBackend {
    /// Opens the netlink socket in the calling thread's network namespace. Nothing is
    /// programmed until the first sync.
    pub fn new(cfg: NftConfig) -> Result<NftBackend, NftError> {
        let socket = Socket::new().map_err(NftError::Open)?;
        Ok(NftBackend { cfg, socket, programmed: false, record: Record::default() })
    }

    /// The configuration.
    pub fn config(&self) -> &NftConfig {
        &self.cfg
    }

    /// What was committed (elements and dynamic chains), for tests and diagnostics.
    pub fn record(&self) -> &Record {
        &self.record
    }
}

impl ProxyBackend for NftBackend {
    type Error = NftError;

    fn sync_full(&mut self, state: &ProxyState) -> Result<SyncReport, NftError> {
        let mut timer = PhaseTimer::new();
        let plan = Plan::render(state);
        timer.mark("render");
        let record = Record::from_elements(&plan.elements);
        timer.mark("record");
        let batch = full_batch(&plan, &record, &self.cfg);
        timer.mark("encode");
        let operations = self
            .socket
            .commit(batch)
            .map_err(|source| NftError::FullSync { table: self.cfg.table_name.clone(), source })?;
        timer.mark("commit");
        timer.report("full sync");
        self.record = record;
        self.programmed = true;
        Ok(SyncReport { kind: SyncKind::Full, operations, warnings: Vec::new() })
    }

    fn sync_changes(&mut self, state: &ProxyState, changes: &ChangeSet) -> Result<SyncReport, NftError> {
        if !self.programmed || changes.settings.is_some() {
            return self.sync_full(state);
        }
        let mut timer = PhaseTimer::new();
        let delta = self.record.delta(state, changes);
        timer.mark("delta");
        let batch = delta_batch(&delta, &state.settings, &self.cfg);
        timer.mark("encode");
        let operations = if batch.is_empty() {
            0
        } else {
            self.socket
                .commit(batch)
                .map_err(|source| NftError::PartialSync { table: self.cfg.table_name.clone(), source })?
        };
        timer.mark("commit");
        timer.report("partial sync");
        self.record.apply(&delta);
        Ok(SyncReport { kind: SyncKind::Partial, operations, warnings: Vec::new() })
    }

    fn cleanup(&mut self) -> Result<(), NftError> {
        self.socket
            .commit(cleanup_batch(&self.cfg))
            .map_err(|source| NftError::Cleanup { table: self.cfg.table_name.clone(), source })?;
        self.programmed = false;
        self.record = Record::default();
        Ok(())
    }
}
