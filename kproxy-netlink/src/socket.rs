//! The netlink socket: sequence numbers, pipelined requests with one verdict each, dumps,
//! and raw sends/receives for protocols with their own transaction rules (nf_tables).

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::msg::{set_seq, Messages, Msg, NLMSG_DONE, NLMSG_ERROR, NLM_F_MULTI};

/// Messages sent in one datagram by [`Socket::transact`] before their ACKs are read: bounded
/// so that the ACKs of one datagram always fit in the receive buffer.
pub const PIPELINE: usize = 64;
/// How long [`Socket::transact`] and [`Socket::dump`] wait for the next answer. The kernel
/// answers netlink requests while handling the send, so waiting longer means a bug.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// One receive buffer: larger than any datagram the kernel builds (dumps use at most 32 KiB
/// per datagram), so nothing is truncated.
const RECV_BUF: usize = 1 << 20;

const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;

/// A netlink protocol (bus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `NETLINK_ROUTE`: links, addresses, routes.
    Route,
    /// `NETLINK_NETFILTER`: nf_tables, ctnetlink.
    Netfilter,
    /// `NETLINK_GENERIC`: generic netlink families such as IPVS.
    Generic,
}

impl Protocol {
    /// The `NETLINK_*` number.
    pub fn number(self) -> libc::c_int {
        match self {
            Protocol::Route => libc::NETLINK_ROUTE,
            Protocol::Netfilter => libc::NETLINK_NETFILTER,
            Protocol::Generic => libc::NETLINK_GENERIC,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Route => "NETLINK_ROUTE",
            Protocol::Netfilter => "NETLINK_NETFILTER",
            Protocol::Generic => "NETLINK_GENERIC",
        })
    }
}

/// A failure of the socket itself (the kernel's verdicts on requests are [`KernelError`]s).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `socket(2)` or `bind(2)` failed (or, when subscribing, `getsockname(2)` or joining
    /// the multicast group: part of opening a socket that watches).
    #[error("opening a {protocol} socket failed (it needs CAP_NET_ADMIN in the network namespace for most requests; is this a container without it?)")]
    Open {
        /// The protocol.
        protocol: Protocol,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Sending failed.
    #[error("sending {bytes} bytes to the kernel failed")]
    Send {
        /// Bytes in the datagram.
        bytes: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Receiving failed. `ENOBUFS` means the receive buffer overflowed and the kernel dropped
    /// answers ([`Error::is_overrun`]).
    #[error("receiving the kernel's answers failed")]
    Receive(#[source] io::Error),
    /// The kernel did not answer a request in time.
    #[error("the kernel did not answer request {seq} within {timeout:?} (answers may have been lost; retry the request)")]
    NoAnswer {
        /// The request's sequence number.
        seq: u32,
        /// How long it waited.
        timeout: Duration,
    },
}

impl Error {
    /// Whether answers were lost because the receive buffer overflowed (`ENOBUFS`): the
    /// requests may or may not have been applied.
    pub fn is_overrun(&self) -> bool {
        matches!(self, Error::Receive(e) if e.raw_os_error() == Some(libc::ENOBUFS))
    }
}

/// The kernel's refusal of one request: errno and the extended-ACK text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", io::Error::from_raw_os_error(*.errno), .message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
pub struct KernelError {
    /// The positive errno.
    pub errno: i32,
    /// The kernel's explanation (`NLMSGERR_ATTR_MSG`), if it gave one.
    pub message: Option<String>,
}

impl KernelError {
    /// The errno as an [`io::Error`].
    pub fn io(&self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }
}

/// The verdict on one request of [`Socket::transact`].
pub type Verdict = Result<(), KernelError>;

/// The answers to one request of [`Socket::request`], each as (message type, payload).
pub type Replies = Result<Vec<(u16, Vec<u8>)>, KernelError>;

/// An `AF_NETLINK` socket, bound to the network namespace it was opened in.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    protocol: Protocol,
    seq: u32,
    buf: Vec<u8>,
    sndbuf: usize,
    rcvbuf: usize,
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to a c_int of the size given.
    let r = unsafe {
        libc::setsockopt(fd, level, opt, &val as *const _ as *const libc::c_void, std::mem::size_of::<libc::c_int>() as u32)
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Socket {
    /// Opens a socket of `protocol` in the calling thread's network namespace, asking for
    /// extended ACKs (the kernel's error text) and capped ACKs (errors echo only the header).
    pub fn open(protocol: Protocol) -> Result<Socket, Error> {
        let open = |source| Error::Open { protocol, source };
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol.number()) };
        if fd < 0 {
            return Err(open(io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; zeroed is valid (port id 0: the kernel assigns).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: addr is a valid sockaddr_nl of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(open(io::Error::last_os_error()));
        }
        // Both are optional (kernels before 4.12 lack EXT_ACK): without them errors are
        // longer and carry no text, nothing else changes.
        let _ = setsockopt_int(fd.as_raw_fd(), libc::SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let _ = setsockopt_int(fd.as_raw_fd(), libc::SOL_NETLINK, NETLINK_EXT_ACK, 1);
        // Sequence numbers only need to be unique per socket; start from the clock so that
        // answers meant for an earlier process on a reused port id cannot match.
        let seq = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(1);
        Ok(Socket { fd, protocol, seq, buf: vec![0; RECV_BUF], sndbuf: 0, rcvbuf: 0 })
    }

    /// The protocol it was opened for.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The port id the kernel assigned at `bind` (`nl_pid` of `getsockname`): the kernel puts
    /// it in the header of every notification caused by this socket's requests, which is how
    /// a watcher tells this socket's changes from anyone else's.
    pub fn port_id(&self) -> Result<u32, Error> {
        // SAFETY: sockaddr_nl is plain data; zeroed is valid.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: addr and len are valid for writes of the size given.
        let rc = unsafe {
            libc::getsockname(self.fd.as_raw_fd(), &mut addr as *mut libc::sockaddr_nl as *mut libc::sockaddr, &mut len)
        };
        if rc < 0 {
            return Err(Error::Open { protocol: self.protocol, source: io::Error::last_os_error() });
        }
        Ok(addr.nl_pid)
    }

    /// Joins the multicast `group` (`NETLINK_ADD_MEMBERSHIP`), e.g. `NFNLGRP_NFTABLES`: from
    /// then on the kernel's notifications of that group arrive on [`Socket::recv`], with
    /// sequence number 0 unless they answer a request of this socket. Needs CAP_NET_ADMIN for
    /// the netfilter groups.
    pub fn subscribe(&mut self, group: u32) -> Result<(), Error> {
        setsockopt_int(self.fd.as_raw_fd(), libc::SOL_NETLINK, libc::NETLINK_ADD_MEMBERSHIP, group as libc::c_int)
            .map_err(|source| Error::Open { protocol: self.protocol, source })
    }

    /// A fresh sequence number (never 0, which the kernel uses for notifications).
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Reserves `n` consecutive sequence numbers and returns the first (the range does not
    /// wrap through 0).
    pub fn reserve_seqs(&mut self, n: u32) -> u32 {
        if self.seq.checked_add(n).is_none() {
            self.seq = 0;
        }
        let first = self.seq + 1;
        self.seq += n;
        first
    }

    /// Grows the send and receive buffers to at least these sizes, in bytes (never shrinks
    /// them). Uses the `*BUFFORCE` options, which pass `net.core.[rw]mem_max` with
    /// CAP_NET_ADMIN, and falls back to the capped ones. Best effort: the kernel may give
    /// less, which shows as a send error or [`Error::is_overrun`].
    pub fn grow_buffers(&mut self, send: usize, recv: usize) {
        for (want, cur, force, plain) in [
            (send, &mut self.sndbuf, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
            (recv, &mut self.rcvbuf, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        ] {
            if want <= *cur {
                continue;
            }
            let want = want.next_power_of_two();
            let v = want.min(i32::MAX as usize) as libc::c_int;
            if setsockopt_int(self.fd.as_raw_fd(), libc::SOL_SOCKET, force, v).is_err() {
                let _ = setsockopt_int(self.fd.as_raw_fd(), libc::SOL_SOCKET, plain, v);
            }
            *cur = want;
        }
    }

    /// Sends one datagram (one or more messages, sequence numbers already set).
    pub fn send(&self, bytes: &[u8]) -> Result<(), Error> {
        // SAFETY: bytes is a valid buffer; the destination is the kernel (default address).
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr() as *const libc::c_void, bytes.len(), 0) };
        if rc < 0 {
            return Err(Error::Send { bytes: bytes.len(), source: io::Error::last_os_error() });
        }
        Ok(())
    }

    /// Receives one datagram, waiting at most `wait` for it; `None` when nothing came. Use
    /// [`Messages`] on the bytes.
    pub fn recv(&mut self, wait: Duration) -> Result<Option<&[u8]>, Error> {
        let deadline = std::time::Instant::now() + wait;
        // Bounded: each pass waits in poll until the deadline; EINTR retries within it.
        loop {
            // SAFETY: self.buf is a valid writable buffer of its length.
            let n = unsafe {
                libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr() as *mut libc::c_void, self.buf.len(), libc::MSG_DONTWAIT)
            };
            if n >= 0 {
                return Ok(Some(&self.buf[..n as usize]));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {}
                _ => return Err(Error::Receive(e)),
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, left.as_millis().clamp(1, i32::MAX as u128) as i32) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(Error::Receive(e));
                }
            }
        }
    }

    /// Sends requests (each built with `NLM_F_ACK`), [`PIPELINE`] per datagram, and returns
    /// one verdict per request, in order. The kernel goes on with the messages of a datagram
    /// after one fails, so each gets its own verdict. `Err` of the whole call: the socket
    /// failed and nothing can be said about the requests not yet answered.
    pub fn transact(&mut self, requests: &mut [Vec<u8>]) -> Result<Vec<Verdict>, Error> {
        let mut verdicts = Vec::with_capacity(requests.len());
        for chunk in requests.chunks_mut(PIPELINE) {
            let first = self.reserve_seqs(chunk.len() as u32);
            let mut datagram = Vec::with_capacity(chunk.iter().map(Vec::len).sum());
            for (i, msg) in chunk.iter_mut().enumerate() {
                set_seq(msg, first + i as u32);
                datagram.extend_from_slice(msg);
            }
            self.send(&datagram)?;
            let mut got: Vec<Option<Verdict>> = vec![None; chunk.len()];
            let mut missing = chunk.len();
            // Bounded: each answer is awaited at most ANSWER_TIMEOUT.
            while missing > 0 {
                let Some(bytes) = self.recv(ANSWER_TIMEOUT)? else {
                    let seq = first + got.iter().position(Option::is_none).unwrap_or(0) as u32;
                    return Err(Error::NoAnswer { seq, timeout: ANSWER_TIMEOUT });
                };
                for m in Messages::new(bytes) {
                    let Some(e) = m.error() else { continue };
                    let idx = m.seq.wrapping_sub(first) as usize;
                    if idx < got.len() && got[idx].is_none() {
                        got[idx] = Some(if e.errno == 0 { Ok(()) } else { Err(KernelError { errno: e.errno, message: e.message }) });
                        missing -= 1;
                    }
                }
            }
            verdicts.extend(got.into_iter().flatten());
        }
        Ok(verdicts)
    }

    /// Sends one request and calls `each` with every answer message that is not an ACK or
    /// `NLMSG_DONE`: all parts of a dump (until `NLMSG_DONE`), or a single answer. The inner
    /// `Err` is the kernel's refusal. Messages are borrowed from the receive buffer, so a
    /// large dump (conntrack) is never copied whole.
    pub fn dump(&mut self, mut request: Vec<u8>, mut each: impl FnMut(Msg<'_>)) -> Result<Result<(), KernelError>, Error> {
        let seq = self.next_seq();
        set_seq(&mut request, seq);
        self.send(&request)?;
        // Bounded: a dump ends with NLMSG_DONE, a single answer has no NLM_F_MULTI, and each
        // receive waits at most ANSWER_TIMEOUT.
        loop {
            let Some(bytes) = self.recv(ANSWER_TIMEOUT)? else {
                return Err(Error::NoAnswer { seq, timeout: ANSWER_TIMEOUT });
            };
            let mut done = false;
            for m in Messages::new(bytes) {
                if m.seq != seq {
                    continue;
                }
                match m.msg_type {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => match m.error() {
                        Some(e) if e.errno == 0 => done = true,
                        Some(e) => return Ok(Err(KernelError { errno: e.errno, message: e.message })),
                        None => return Ok(Err(KernelError { errno: libc::EIO, message: Some("truncated error message".into()) })),
                    },
                    _ => {
                        each(m);
                        if m.flags & NLM_F_MULTI == 0 {
                            done = true;
                        }
                    }
                }
            }
            if done {
                return Ok(Ok(()));
            }
        }
    }

    /// [`Socket::dump`] collecting the answers as (message type, payload).
    pub fn request(&mut self, request: Vec<u8>) -> Result<Replies, Error> {
        let mut replies = Vec::new();
        let r = self.dump(request, |m| replies.push((m.msg_type, m.payload.to_vec())))?;
        Ok(r.map(|()| replies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_error_names_errno_and_text() {
        let e = KernelError { errno: libc::ENOENT, message: Some("No such chain".into()) };
        let s = e.to_string();
        assert!(s.contains("No such file or directory") && s.ends_with("(No such chain)"), "{s}");
        assert_eq!(e.io().raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn overrun_is_enobufs_on_receive_only() {
        assert!(Error::Receive(io::Error::from_raw_os_error(libc::ENOBUFS)).is_overrun());
        assert!(!Error::Send { bytes: 1, source: io::Error::from_raw_os_error(libc::ENOBUFS) }.is_overrun());
    }
}
