//! The kernel edge: whatever commits a [`Transaction`].

use crate::netlink::{encode, NetlinkError, Socket};
use crate::tx::{RawElement, TableFamily, Transaction};

/// Commits transactions atomically: all operations or none.
///
/// Implementations: [`NetlinkKernel`] (the real kernel, through one nf_tables batch)
/// and [`crate::fake::FakeKernel`] (in memory, for tests). Errors use one type so that a caller (and
/// a test) sees the same [`NetlinkError::Rejected`] with the same errno from both.
pub trait NftKernel: Send {
    /// Commits `tx`; returns the number of operations the kernel acknowledged (netlink
    /// messages for [`NetlinkKernel`], operations for [`crate::fake::FakeKernel`]). On error
    /// nothing of `tx` was applied.
    fn commit(&mut self, tx: &Transaction) -> Result<usize, NetlinkError>;

    /// The elements of `table` `set` as they are now, with their timeouts and the time left
    /// before they expire: for dynamic sets, whose elements the packet path adds (kproxy
    /// reads nothing else back). A missing table or set is an error for which
    /// [`NetlinkError::is_not_found`] holds.
    fn set_elements(&mut self, family: TableFamily, table: &str, set: &str) -> Result<Vec<RawElement>, NetlinkError>;

    /// The netlink port id of the socket commits go out on, which the kernel's change
    /// notifications of them carry ([`crate::watch`]); `None` for kernels without one (fakes).
    fn port_id(&self) -> Option<u32> {
        None
    }
}

/// The real kernel: commits each transaction as one nf_tables batch on a netlink socket bound
/// to the network namespace of the thread that opened it.
pub struct NetlinkKernel {
    socket: Socket,
    max_message_bytes: usize,
}

impl NetlinkKernel {
    /// Opens the socket in the calling thread's network namespace. Element messages carry at
    /// most `max_message_bytes` of elements each (keep it below the 64 KiB attribute cap).
    pub fn open(max_message_bytes: usize) -> Result<NetlinkKernel, NetlinkError> {
        Ok(NetlinkKernel { socket: Socket::new()?, max_message_bytes })
    }

    /// The port id of the commit socket, which the kernel puts in the header of every change
    /// notification of kproxy's commits: what [`crate::watch::Watch`] ignores.
    pub fn commit_port(&self) -> Result<u32, NetlinkError> {
        self.socket.port_id()
    }
}

impl NftKernel for NetlinkKernel {
    fn port_id(&self) -> Option<u32> {
        self.commit_port().ok()
    }

    fn commit(&mut self, tx: &Transaction) -> Result<usize, NetlinkError> {
        if tx.is_empty() {
            return Ok(0);
        }
        self.socket.commit(encode(tx, self.max_message_bytes))
    }

    fn set_elements(&mut self, family: TableFamily, table: &str, set: &str) -> Result<Vec<RawElement>, NetlinkError> {
        self.socket.set_elements(family, table, set)
    }
}

/// The real kernel in check mode: every transaction is sent as an nf_tables batch without its
/// end marker, so the kernel validates it (expressions, references, loops) and commits
/// nothing, as `nft --check` does. For `kproxy doctor`: "would the kernel take this ruleset?"
/// without changing the ruleset. Reading set elements reads the real kernel.
pub struct CheckingKernel(NetlinkKernel);

impl CheckingKernel {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open(max_message_bytes: usize) -> Result<CheckingKernel, NetlinkError> {
        NetlinkKernel::open(max_message_bytes).map(CheckingKernel)
    }
}

impl NftKernel for CheckingKernel {
    fn commit(&mut self, tx: &Transaction) -> Result<usize, NetlinkError> {
        if tx.is_empty() {
            return Ok(0);
        }
        self.0.socket.check(encode(tx, self.0.max_message_bytes))
    }

    fn set_elements(&mut self, family: TableFamily, table: &str, set: &str) -> Result<Vec<RawElement>, NetlinkError> {
        self.0.set_elements(family, table, set)
    }
}
