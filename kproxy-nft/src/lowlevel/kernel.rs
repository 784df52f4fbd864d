//! The kernel edge: whatever commits a [`Transaction`].

use super::{NetlinkError, Transaction};

/// Commits transactions atomically: all operations or none.
///
/// Implementations: [`super::NetlinkKernel`] (the real kernel, through one nf_tables batch)
/// and [`super::FakeKernel`] (in memory, for tests). Errors use one type so that a caller (and
/// a test) sees the same [`NetlinkError::Rejected`] with the same errno from both.
pub trait NftKernel: Send {
    /// Commits `tx`; returns the number of operations the kernel acknowledged (netlink
    /// messages for [`super::NetlinkKernel`], operations for [`super::FakeKernel`]). On error
    /// nothing of `tx` was applied.
    fn commit(&mut self, tx: &Transaction) -> Result<usize, NetlinkError>;
}
