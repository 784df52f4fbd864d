//! The failing steps of talking to the conntrack table.

/// A failing ctnetlink step. Per-entry delete failures are not errors: they are in the
/// [`DeleteReport`](crate::DeleteReport).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// socket(2) or bind(2) of the NETLINK_NETFILTER socket failed.
    #[error("opening a NETLINK_NETFILTER socket failed (needs CAP_NET_ADMIN)")]
    Open(#[source] std::io::Error),
    /// send(2) failed.
    #[error("sending a conntrack {what} request failed")]
    Send {
        /// `dump` or `delete`.
        what: &'static str,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// recv(2) failed, or the kernel did not answer in time (`TimedOut`).
    #[error("receiving the conntrack {what} answer failed")]
    Receive {
        /// `dump` or `delete`.
        what: &'static str,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// The kernel answered a dump with an error.
    #[error("the kernel refused the conntrack dump (is the nf_conntrack module loaded?)")]
    DumpRefused(#[source] std::io::Error),
    /// The kernel sent something that does not parse.
    #[error("malformed ctnetlink message from the kernel: {0}")]
    Malformed(&'static str),
}
