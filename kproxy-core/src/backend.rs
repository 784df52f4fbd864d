//! The [`ProxyBackend`] trait: what a kernel backend (nftables, IPVS, or a custom CNI's own)
//! must do, and a [`RecordingBackend`] for tests and `--dry-run`.
//!
//! The sync loop owns the desired state and calls a backend in this order:
//! 1. [`ProxyBackend::sync_full`] at start, after any failed sync, and periodically (repairs
//!    drift);
//! 2. [`ProxyBackend::sync_changes`] for everything in between, with the change set since the
//!    last *successful* sync;
//! 3. [`ProxyBackend::cleanup`] only when asked to remove everything (`--cleanup`).
//!
//! The desired state exists once: the tracker owns it and lends it to the backend for each
//! sync. A backend keeps its own record of what it committed (kernel object names, elements,
//! virtual servers: whatever it needs to turn a change set into kernel operations), never a
//! copy of the [`ProxyState`], and must not read the kernel's state back on the sync path. A
//! failed sync must leave the previously programmed state working (atomically where the kernel
//! allows it; where it does not, as IPVS, the next full sync must repair whatever a partial
//! failure left).

use crate::model::{ChangeSet, ProxyState};

/// Whether a sync programmed everything or only a change set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// Everything was (re)programmed.
    Full,
    /// Only the change set was programmed.
    Partial,
}

/// What a successful sync did, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Full or partial.
    pub kind: SyncKind,
    /// Number of kernel operations sent (netlink messages, or recorded operations).
    pub operations: usize,
    /// Things the backend could not tune but worked around (never a failed sync).
    pub warnings: Vec<String>,
}

/// A kernel backend that programs a [`ProxyState`].
///
/// Implementations must be usable from one thread at a time (`&mut self`); they may hold
/// sockets. `state` passed to both sync methods is always the complete desired state, so a
/// backend may answer `sync_changes` with a full sync whenever that is simpler (e.g. when
/// `changes.settings` is set), reporting [`SyncKind::Full`].
pub trait ProxyBackend {
    /// The backend's error type; it should name the failing object and step.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Program `state` completely, replacing whatever this backend programmed before (and
    /// only that: other tables, other IPVS services outside its ownership are never touched).
    fn sync_full(&mut self, state: &ProxyState) -> Result<SyncReport, Self::Error>;

    /// Program `changes`, which lead from the state of the last successful sync to `state`.
    /// Before any successful full sync (or after [`ProxyBackend::cleanup`]) a backend must
    /// answer with a full sync or an error.
    fn sync_changes(&mut self, state: &ProxyState, changes: &ChangeSet) -> Result<SyncReport, Self::Error>;

    /// Remove everything this backend (or an earlier process of it) programmed.
    fn cleanup(&mut self) -> Result<(), Self::Error>;

    /// Compares, cheaply, what the kernel holds with what this backend programmed: the
    /// periodic check for kernels that announce no changes (IPVS). `Ok(Some(what))` names a
    /// difference someone else made, which the caller repairs with a full sync. The default
    /// checks nothing (nftables announces changes instead).
    fn check(&mut self) -> Result<Option<String>, Self::Error> {
        Ok(None)
    }
}

/// One call a [`RecordingBackend`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedCall {
    /// `sync_full`, with the number of service ports.
    Full {
        /// Service ports in the state.
        services: usize,
    },
    /// `sync_changes`, with the number of changed service ports.
    Partial {
        /// Changed service ports.
        changed: usize,
    },
    /// `cleanup`.
    Cleanup,
}

/// A backend that programs nothing: it records the calls and keeps a copy of the state it was
/// given (recording is its purpose; a kernel backend keeps only its own record). Used by tests
/// and by `--dry-run`.
#[derive(Debug, Default)]
pub struct RecordingBackend {
    applied: Option<ProxyState>,
    /// Every call received, in order.
    pub calls: Vec<RecordedCall>,
}

/// The error of a [`RecordingBackend`]: only a partial sync without a prior full sync fails.
#[derive(Debug, thiserror::Error)]
#[error("partial sync before any full sync: call sync_full first")]
pub struct NoFullSyncYet;

impl ProxyBackend for RecordingBackend {
    type Error = NoFullSyncYet;

    fn sync_full(&mut self, state: &ProxyState) -> Result<SyncReport, Self::Error> {
        self.calls.push(RecordedCall::Full { services: state.services.len() });
        self.applied = Some(state.clone());
        Ok(SyncReport { kind: SyncKind::Full, operations: state.services.len(), warnings: Vec::new() })
    }

    fn sync_changes(&mut self, _state: &ProxyState, changes: &ChangeSet) -> Result<SyncReport, Self::Error> {
        let applied = self.applied.as_mut().ok_or(NoFullSyncYet)?;
        applied.apply(changes);
        self.calls.push(RecordedCall::Partial { changed: changes.services.len() });
        Ok(SyncReport { kind: SyncKind::Partial, operations: changes.services.len(), warnings: Vec::new() })
    }

    fn cleanup(&mut self) -> Result<(), Self::Error> {
        self.calls.push(RecordedCall::Cleanup);
        self.applied = None;
        Ok(())
    }
}

impl RecordingBackend {
    /// The state as of the last successful sync, if any.
    pub fn applied(&self) -> Option<&ProxyState> {
        self.applied.as_ref()
    }
}
