//! Errors of the IPVS backend: each variant names the step that failed.

use std::fmt;

/// A kernel errno (positive), displayed with its name and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The object already exists (`EEXIST`).
    pub fn is_exists(self) -> bool {
        self.0 == libc::EEXIST
    }
    /// The object does not exist (`ENOENT`, or `ESRCH` as IPVS says for a missing service).
    pub fn is_not_found(self) -> bool {
        self.0 == libc::ENOENT || self.0 == libc::ESRCH
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // io::Error prints "Message (os error N)".
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

impl std::error::Error for Errno {}

/// Everything that can go wrong in kproxy-ipvs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening a netlink socket failed.
    #[error("opening a {what} socket failed: {source}")]
    Socket {
        /// Which socket.
        what: &'static str,
        /// The socket's error.
        #[source]
        source: kproxy_netlink::Error,
    },
    /// Sending to or receiving from netlink failed.
    #[error("{step}: netlink I/O failed: {source}")]
    Io {
        /// What was being done.
        step: String,
        /// The socket's error.
        #[source]
        source: kproxy_netlink::Error,
    },
    /// The kernel has no IPVS (the module is not loaded or not built).
    #[error("the kernel has no IPVS netlink family ({errno}): run `modprobe ip_vs` (and the scheduler modules), or use mode nftables")]
    IpvsUnavailable {
        /// What the family lookup answered.
        errno: Errno,
    },
    /// The kernel rejected a request.
    #[error("{step}: the kernel answered {errno}")]
    Kernel {
        /// What was being done.
        step: String,
        /// The errno.
        #[source]
        errno: Errno,
    },
    /// Some operations of a sync failed; the others were applied.
    #[error("IPVS sync applied {applied} of {total} operations; failed: {}", first_failures(.failures))]
    PartialSync {
        /// Operations that succeeded.
        applied: usize,
        /// Operations sent.
        total: usize,
        /// Description of each failed operation with its errno.
        failures: Vec<String>,
    },
    /// The `kube-ipvs0` dummy link could not be created or found.
    #[error("{step} for link {link}: {errno}{hint}")]
    Link {
        /// What was being done.
        step: &'static str,
        /// The link name.
        link: String,
        /// The errno.
        #[source]
        errno: Errno,
        /// What to do.
        hint: &'static str,
    },
    /// Writing a sysctl failed (other than read-only /proc/sys, which is a warning).
    #[error("writing sysctl {path} = {value} failed: {source}")]
    Sysctl {
        /// The /proc/sys path.
        path: String,
        /// The value.
        value: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Committing the nftables table of IPVS mode failed (nothing of that batch applied).
    #[error("committing the nftables table of IPVS mode failed: {0}")]
    Nft(#[source] kproxy_nft::netlink::NetlinkError),
    /// Cleanup failed in several places; all were tried.
    #[error("cleanup failed: {}", .0.join("; "))]
    Cleanup(Vec<String>),
    /// The configuration cannot be used.
    #[error("invalid IPVS configuration: {0}")]
    Config(String),
}

fn first_failures(f: &[String]) -> String {
    let mut s = f.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    if f.len() > 5 {
        s.push_str(&format!("; and {} more", f.len() - 5));
    }
    s
}
