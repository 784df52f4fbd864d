//! The kernel edge of the reconciler: a conntrack table that can be dumped and deleted from.
//! [`ConntrackSocket`](crate::ConntrackSocket) is the real one (ctnetlink on the workspace's
//! netlink layer); keeping the reconciler behind this trait keeps the netlink code out of the
//! reconciler and lets tests use a fake table.

use std::fmt;

use kproxy_core::conntrack::Flow;
use kproxy_core::model::{IpFamily, Protocol};

use crate::Error;

/// A conntrack table: list entries, delete some.
pub trait ConntrackTable: Send {
    /// Every entry of `family` whose layer-4 protocol is `protocol`.
    fn dump(&mut self, family: IpFamily, protocol: Protocol) -> Result<Vec<Flow>, Error>;

    /// Delete `flows`, each by original tuple, zone and id (so that an entry re-created with
    /// the same tuple meanwhile is left alone). Per-entry failures are in the report; `Err`
    /// means the table could not be talked to at all.
    fn delete(&mut self, flows: &[Flow]) -> Result<DeleteReport, Error>;

    /// Whether dumps are filtered by the kernel (`false` when it had to be done here).
    fn kernel_filters(&self) -> bool;
}

/// Result of deleting a set of flows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeleteReport {
    /// Entries deleted.
    pub deleted: u64,
    /// Entries already gone (expired, or re-created with another id).
    pub gone: u64,
    /// Entries the kernel refused to delete, for another reason than being gone.
    pub errors: Vec<DeleteFailure>,
}

/// One entry the kernel refused to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteFailure {
    /// The entry.
    pub flow: Flow,
    /// The kernel's (positive) errno.
    pub errno: i32,
}

impl fmt::Display for DeleteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deleting {}: {}", self.flow, std::io::Error::from_raw_os_error(self.errno))
    }
}
