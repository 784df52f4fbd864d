//! Watching kproxy's own tables for changes it did not make.
//!
//! A [`Watch`] is a second netfilter netlink socket subscribed to `NFNLGRP_NFTABLES`, the
//! multicast group on which the kernel announces every committed nf_tables change. The pure
//! part ([`decode`], [`Matcher`]) turns what arrives into [`ForeignCommit`]s: commits by a
//! socket other than kproxy's own commit sockets ([`NftKernel::port_id`](crate::lowlevel::NftKernel::port_id))
//! that touched a watched table. What to do about them (a full sync) is the caller's
//! business.
//!
//! Limits: notifications are only as complete as the receive buffer. When it overflows (a
//! very large commit, usually kproxy's own full sync of tens of thousands of elements) the
//! kernel drops some and says so once; [`Seen::Lost`] reports that, and the caller cannot
//! know whether a foreign change was among them.

mod decode;

use std::time::Duration;

use kproxy_netlink::{Messages, Protocol};

pub use decode::{decode, Change, ForeignCommit, Matcher, Notification, ObjectKind, Verb};

/// The nf_tables multicast group (`NFNLGRP_NFTABLES`).
pub const NFNLGRP_NFTABLES: u32 = 7;
/// Receive buffer of the watch socket: room for the notifications of a full sync of a few
/// thousand services while the watching thread is busy elsewhere.
const WATCH_RCVBUF: usize = 32 << 20;

/// Why watching failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Opening the socket failed.
    #[error("opening a NETLINK_NETFILTER socket to watch nftables changes failed")]
    Open(#[source] kproxy_netlink::Error),
    /// Joining `NFNLGRP_NFTABLES` failed.
    #[error("subscribing to nftables change notifications (NFNLGRP_NFTABLES) failed (needs CAP_NET_ADMIN)")]
    Subscribe(#[source] kproxy_netlink::Error),
    /// Receiving failed (other than an overflow, which is [`Seen::Lost`]).
    #[error("receiving nftables change notifications failed")]
    Receive(#[source] kproxy_netlink::Error),
}

/// What one [`Watch::wait`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Someone else committed changes to a watched table.
    Foreign(ForeignCommit),
    /// Notifications were lost (the receive buffer overflowed): changes may have been missed.
    Lost,
}

/// A socket receiving the notifications of the network namespace it was opened in, matched
/// against kproxy's own commits.
pub struct Watch {
    sock: kproxy_netlink::Socket,
    matcher: Matcher,
}

impl Watch {
    /// Opens and subscribes a socket in the calling thread's network namespace, watching the
    /// tables named `tables` (any family). Commits from the sockets of `own_ports` are
    /// kproxy's own and ignored.
    pub fn open(tables: &[&str], own_ports: &[u32]) -> Result<Watch, WatchError> {
        let mut sock = kproxy_netlink::Socket::open(Protocol::Netfilter).map_err(WatchError::Open)?;
        sock.subscribe(NFNLGRP_NFTABLES).map_err(WatchError::Subscribe)?;
        sock.grow_buffers(0, WATCH_RCVBUF);
        Ok(Watch { sock, matcher: Matcher::new(tables, own_ports) })
    }

    /// Waits up to `wait` for notifications and returns what they showed (empty: nothing of
    /// interest arrived).
    pub fn wait(&mut self, wait: Duration) -> Result<Vec<Seen>, WatchError> {
        let bytes = match self.sock.recv(wait) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Vec::new()),
            Err(e) if e.is_overrun() => {
                self.matcher.reset();
                return Ok(vec![Seen::Lost]);
            }
            Err(e) => return Err(WatchError::Receive(e)),
        };
        let mut seen = Vec::new();
        for m in Messages::new(bytes) {
            if let Some(commit) = decode(&m).and_then(|n| self.matcher.feed(n)) {
                seen.push(Seen::Foreign(commit));
            }
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each error names its step and, where the user can act, what is needed.
    #[test]
    fn errors_name_the_step() {
        let os = || kproxy_netlink::Error::Receive(std::io::Error::from_raw_os_error(libc::EPERM));
        let open = WatchError::Open(os()).to_string();
        let subscribe = WatchError::Subscribe(os()).to_string();
        let receive = WatchError::Receive(os()).to_string();
        assert!(open.starts_with("opening"), "{open}");
        assert!(subscribe.contains("NFNLGRP_NFTABLES") && subscribe.contains("CAP_NET_ADMIN"), "{subscribe}");
        assert!(receive.starts_with("receiving"), "{receive}");
        assert!(std::error::Error::source(&WatchError::Receive(os())).is_some());
    }
}
