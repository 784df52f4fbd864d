//! [`NftBackend`]: the [`ProxyBackend`] that programs nftables.

use kproxy_core::backend::{ProxyBackend, SyncKind, SyncReport};
use kproxy_core::model::{ChangeSet, IpFamily, ProxyState};

use crate::affinity::{self, Pairs};
use crate::plan::SetId;
use crate::render::FAMILIES;
use crate::transaction::DynamicEntries;
use crate::tx::Transaction;

use crate::fake::FakeKernel;
use crate::kernel::{NetlinkKernel, NftKernel};
use crate::netlink::NetlinkError;
use crate::record::Record;
use crate::render::Plan;
use crate::{transaction, NftConfig};

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
    /// Reading the session affinity entries a partial sync must delete failed; nothing of the
    /// sync was sent.
    #[error("reading the session affinity entries of table `{table}` for a partial sync failed; nothing of the sync was sent")]
    ReadAffinity {
        /// Table name.
        table: String,
        /// Cause.
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

/// Programs kproxy's `ip` and `ip6` tables with one transaction per sync.
///
/// Each sync renders a [`crate::lowlevel::Transaction`] (pure) and commits it to the kernel
/// `K`: by default the real one ([`NetlinkKernel`], whose socket is bound to the network
/// namespace of the thread that called [`NftBackend::new`]); [`NftBackend::fake`] runs the
/// same syncs against a [`FakeKernel`], without root.
pub struct NftBackend<K: NftKernel = NetlinkKernel> {
    cfg: NftConfig,
    kernel: K,
    /// A full sync succeeded since creation or cleanup: partial syncs build on its record.
    programmed: bool,
    record: Record,
}

impl NftBackend {
    /// Opens the netlink socket in the calling thread's network namespace. Nothing is
    /// programmed until the first sync.
    pub fn new(cfg: NftConfig) -> Result<NftBackend, NftError> {
        let kernel = NetlinkKernel::open(cfg.max_message_bytes).map_err(NftError::Open)?;
        Ok(NftBackend::with_kernel(cfg, kernel))
    }
}

impl NftBackend<FakeKernel> {
    /// A backend on an empty [`FakeKernel`].
    pub fn fake(cfg: NftConfig) -> NftBackend<FakeKernel> {
        NftBackend::with_kernel(cfg, FakeKernel::new())
    }
}

impl<K: NftKernel> NftBackend<K> {
    /// A backend committing to `kernel`. Nothing is programmed until the first sync.
    pub fn with_kernel(cfg: NftConfig, kernel: K) -> NftBackend<K> {
        NftBackend { cfg, kernel, programmed: false, record: Record::default() }
    }

    /// The kernel edge (for tests: the fake's tables).
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// The kernel edge, mutably (for tests: injecting a fake failure).
    pub fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
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

impl<K: NftKernel> NftBackend<K> {
    /// The entries of the dynamic affinity maps `which` selects (a missing table or map has
    /// none).
    fn read_dynamic(&mut self, which: impl Fn(IpFamily, SetId) -> bool) -> Result<DynamicEntries, NetlinkError> {
        let mut out = Vec::new();
        for fam in FAMILIES {
            for map in affinity::MAPS.into_iter().filter(|m| m.exists_in(fam) && which(fam, *m)) {
                match self.kernel.set_elements(fam.into(), &self.cfg.table_name, map.name()) {
                    Ok(els) => out.push((fam, map, els)),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// The entries of the affinity maps that point at a `lost` pair.
    fn stale_entries(&mut self, lost: &Pairs) -> Result<DynamicEntries, NetlinkError> {
        let read = self.read_dynamic(|f, m| lost.touches(f, m))?;
        Ok(read.into_iter().map(|(f, m, els)| (f, m, affinity::stale(f, m, els, lost))).filter(|e| !e.2.is_empty()).collect())
    }

    /// After a partial sync that lost sticky pairs: destroys the entries the packet path
    /// recorded for them between the read and the commit (none can follow: the committed
    /// backends no longer hold those endpoints). A failure is a warning: the sync itself
    /// was committed, and such an entry times out on its own.
    fn destroy_late_stale(&mut self, lost: &Pairs) -> Option<String> {
        let what = |e: &NetlinkError| {
            format!("session affinity: removing entries recorded during the sync for removed endpoints failed ({e}); clients of those entries reach a removed endpoint until the entry times out")
        };
        let late = match self.stale_entries(lost) {
            Ok(late) if late.is_empty() => return None,
            Ok(late) => late,
            Err(e) => return Some(what(&e)),
        };
        let mut tx = Transaction::new();
        transaction::dynamic_entries(&mut tx, &self.cfg.table_name, &late, true);
        self.kernel.commit(&tx).err().map(|e| what(&e))
    }
}

impl<K: NftKernel> ProxyBackend for NftBackend<K> {
    type Error = NftError;

    fn sync_full(&mut self, state: &ProxyState) -> Result<SyncReport, NftError> {
        let mut timer = PhaseTimer::new();
        let plan = Plan::render(state);
        timer.mark("render");
        let record = Record::from_elements(&plan.elements);
        timer.mark("record");
        let mut tx = transaction::full(&plan, &record, &self.cfg.table_name);
        // Sticky clients keep their endpoints across the table's recreation: the entries
        // of pairs the new state still offers go into the new maps, with the time they had
        // left. (Entries the packet path adds between this read and the commit are lost.)
        let mut warnings = Vec::new();
        match self.read_dynamic(|f, _| plan.families.iter().any(|fp| fp.family == f)) {
            Ok(entries) => {
                let valid = Pairs::of_state(state);
                let carried: DynamicEntries =
                    entries.into_iter().map(|(f, m, els)| (f, m, affinity::carried(f, m, els, &valid))).collect();
                transaction::dynamic_entries(&mut tx, &self.cfg.table_name, &carried, false);
            }
            Err(e) => warnings.push(format!(
                "session affinity: reading the entries of the affinity maps failed ({e}); this full sync starts them empty, so sticky clients may get a new endpoint"
            )),
        }
        timer.mark("transaction");
        let operations = self
            .kernel
            .commit(&tx)
            .map_err(|source| NftError::FullSync { table: self.cfg.table_name.clone(), source })?;
        timer.mark("commit");
        timer.report("full sync");
        self.record = record;
        self.programmed = true;
        Ok(SyncReport { kind: SyncKind::Full, operations, warnings })
    }

    fn sync_changes(&mut self, state: &ProxyState, changes: &ChangeSet) -> Result<SyncReport, NftError> {
        if !self.programmed || changes.settings.is_some() {
            return self.sync_full(state);
        }
        let mut timer = PhaseTimer::new();
        let delta = self.record.delta(state, changes);
        timer.mark("delta");
        // Entries of sticky pairs this change ends go in the same batch (upstream loses only
        // the entries of the removed endpoint, never the whole map).
        let lost = Pairs::lost(changes);
        let stale = if lost.is_empty() {
            Vec::new()
        } else {
            self.stale_entries(&lost)
                .map_err(|source| NftError::ReadAffinity { table: self.cfg.table_name.clone(), source })?
        };
        timer.mark("affinity");
        let mut tx = transaction::delta(&delta, &state.settings, &self.cfg.table_name);
        transaction::dynamic_entries(&mut tx, &self.cfg.table_name, &stale, true);
        timer.mark("transaction");
        let operations = self
            .kernel
            .commit(&tx)
            .map_err(|source| NftError::PartialSync { table: self.cfg.table_name.clone(), source })?;
        timer.mark("commit");
        timer.report("partial sync");
        self.record.apply(&delta);
        let warnings = if lost.is_empty() { Vec::new() } else { self.destroy_late_stale(&lost).into_iter().collect() };
        Ok(SyncReport { kind: SyncKind::Partial, operations, warnings })
    }

    fn cleanup(&mut self) -> Result<(), NftError> {
        self.kernel
            .commit(&transaction::cleanup(&self.cfg.table_name))
            .map_err(|source| NftError::Cleanup { table: self.cfg.table_name.clone(), source })?;
        self.programmed = false;
        self.record = Record::default();
        Ok(())
    }
}
