//! The thin kernel side: a netlink socket with sequence numbers and ACK/error matching.
//!
//! Requests are pipelined: up to [`PIPELINE`] messages go out in one `send`, then their ACKs
//! are read back and matched by sequence number, so a sync of thousands of IPVS objects costs
//! a few dozen system calls, not thousands of round trips. The kernel keeps processing the
//! messages of a datagram after one fails, so every message gets its own verdict.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::nl::{self, Messages, NLMSG_DONE, NLMSG_ERROR};

/// Messages sent per datagram before reading their ACKs; bounded so that the ACKs fit in
/// the socket's receive buffer.
pub const PIPELINE: usize = 64;
/// Receive timeout: the kernel answers netlink synchronously, so waiting longer means a bug.
const RECV_TIMEOUT_SECS: libc::time_t = 5;
const RECV_BUF: usize = 1 << 20;

/// Netlink protocol numbers used here.
pub const NETLINK_ROUTE: i32 = 0;
/// Generic netlink (IPVS).
pub const NETLINK_GENERIC: i32 = 16;

/// An open netlink socket bound to the network namespace it was created in.
#[derive(Debug)]
pub struct NetlinkSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

/// The verdict of one request: `Ok` or the kernel's errno (positive).
pub type Verdict = Result<(), i32>;

/// The replies to one request, each as (message type, payload), or the kernel's errno.
pub type Replies = Result<Vec<(u16, Vec<u8>)>, i32>;

impl NetlinkSocket {
    /// Open a socket of `protocol` (e.g. [`NETLINK_GENERIC`]).
    pub fn open(protocol: i32) -> io::Result<NetlinkSocket> {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value (pid 0: kernel assigns).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: addr is a valid sockaddr_nl of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: tv is a valid timeval of the given size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // Sequence numbers only need to be unique per socket; start from the time so that
        // replies meant for an earlier process on a reused port id cannot match.
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        Ok(NetlinkSocket {
            fd,
            seq,
            buf: vec![0; RECV_BUF],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: bytes is a valid buffer; the kernel is the destination (default address).
        let rc = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&mut self) -> io::Result<usize> {
        // SAFETY: self.buf is a valid writable buffer of its length.
        let rc = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr() as *mut libc::c_void,
                self.buf.len(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc as usize)
    }

    /// Send requests (each built with `NLM_F_ACK`) and return one verdict per request, in
    /// order. An `Err` of the whole call means the socket failed (send/receive).
    pub fn transact(&mut self, requests: &mut [Vec<u8>]) -> io::Result<Vec<Verdict>> {
        let mut verdicts = Vec::with_capacity(requests.len());
        for chunk in requests.chunks_mut(PIPELINE) {
            let first = self.seq.wrapping_add(1);
            let mut datagram = Vec::with_capacity(chunk.iter().map(Vec::len).sum());
            let mut seqs = Vec::with_capacity(chunk.len());
            for msg in chunk.iter_mut() {
                let seq = self.next_seq();
                nl::set_seq(msg, seq);
                seqs.push(seq);
                datagram.extend_from_slice(msg);
            }
            self.send(&datagram)?;
            let mut got: Vec<Option<Verdict>> = vec![None; chunk.len()];
            let mut missing = chunk.len();
            while missing > 0 {
                let n = self.recv()?;
                for m in Messages::new(&self.buf[..n]) {
                    let Some(code) = m.error_code() else { continue };
                    let idx = m.seq.wrapping_sub(first) as usize;
                    if idx < got.len() && seqs[idx] == m.seq && got[idx].is_none() {
                        got[idx] = Some(if code == 0 { Ok(()) } else { Err(-code) });
                        missing -= 1;
                    }
                }
            }
            verdicts.extend(got.into_iter().map(|v| v.unwrap_or(Err(libc::EIO))));
        }
        Ok(verdicts)
    }

    /// Send one request and collect the payloads of its replies (a dump, or a single
    /// answer), each as (message type, payload). A kernel error is `Err(errno)` inside.
    pub fn request(&mut self, mut request: Vec<u8>) -> io::Result<Replies> {
        let seq = self.next_seq();
        nl::set_seq(&mut request, seq);
        self.send(&request)?;
        let mut replies = Vec::new();
        // Bounded: a dump ends with NLMSG_DONE, a single answer has no NLM_F_MULTI; each recv
        // is bounded by the receive timeout.
        loop {
            let n = self.recv()?;
            let mut done = false;
            for m in Messages::new(&self.buf[..n]) {
                if m.seq != seq {
                    continue;
                }
                match m.msg_type {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => match m.error_code() {
                        Some(0) => done = true,
                        Some(code) => return Ok(Err(-code)),
                        None => return Ok(Err(libc::EIO)),
                    },
                    t => {
                        replies.push((t, m.payload.to_vec()));
                        if m.flags & nl::NLM_F_MULTI == 0 {
                            done = true;
                        }
                    }
                }
            }
            if done {
                return Ok(Ok(replies));
            }
        }
    }
}
