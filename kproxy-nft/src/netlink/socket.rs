//! The netlink socket: sends one batch, matches every ACK and error to its message.

use std::io;
use std::os::fd::RawFd;

use super::batch::Batch;

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// Opening the netfilter netlink socket failed.
    #[error("opening a NETLINK_NETFILTER socket failed (needs CAP_NET_ADMIN in this network namespace)")]
    Open(#[source] io::Error),
    /// Sending the batch failed.
    #[error("sending a batch of {bytes} bytes failed")]
    Send {
        /// Batch size.
        bytes: usize,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Receiving the kernel's answers failed (ENOBUFS here means the receive buffer was too
    /// small for the ACKs).
    #[error("receiving the kernel's acknowledgements failed")]
    Receive(#[source] io::Error),
    /// The kernel rejected the batch; nothing of it was applied.
    #[error("the kernel rejected `{object}`: {source}{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        /// The failing message's object, e.g. `add rule kproxy services ...`.
        object: String,
        /// The kernel's error code.
        #[source]
        source: io::Error,
        /// The kernel's extended-ack message, if any.
        detail: Option<String>,
    },
    /// Some messages were never acknowledged.
    #[error("{missing} of {total} messages were not acknowledged by the kernel")]
    MissingAcks {
        /// Unacknowledged messages.
        missing: usize,
        /// Messages sent.
        total: usize,
    },
}

impl NetlinkError {
    /// Whether the kernel said an object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetlinkError::Rejected { source, .. } if source.raw_os_error() == Some(libc::ENOENT))
    }
}

/// A netfilter netlink socket bound to the network namespace it was opened in.
pub struct Socket {
    sock: mnl::Socket,
    rcvbuf: usize,
    sndbuf: usize,
}

// SAFETY: an mnl socket is a file descriptor plus its bound address; nothing in it is tied to
// the thread that opened it (the network namespace is fixed at socket creation), and `&mut
// self` on `commit` keeps it used by one thread at a time.
unsafe impl Send for Socket {}

const NETLINK_EXT_ACK: libc::c_int = 11;
const NETLINK_CAP_ACK: libc::c_int = 10;

fn setsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to a c_int of the right size.
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
    /// Opens a socket in the calling thread's network namespace.
    pub fn new() -> Result<Socket, NetlinkError> {
        let sock = mnl::Socket::new(mnl::Bus::Netfilter).map_err(NetlinkError::Open)?;
        let s = Socket { sock, rcvbuf: 0, sndbuf: 0 };
        // Errors only carry the header back, and say which attribute failed.
        let _ = setsockopt_int(s.fd(), libc::SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let _ = setsockopt_int(s.fd(), libc::SOL_NETLINK, NETLINK_EXT_ACK, 1);
        Ok(s)
    }

    fn fd(&self) -> RawFd {
        // SAFETY: the mnl socket is open for the lifetime of self.
        unsafe { mnl::mnl_sys::mnl_socket_get_fd(self.sock.as_raw_socket()) }
    }

    /// Grows a socket buffer (FORCE variants need CAP_NET_ADMIN, which we have).
    fn grow(&mut self, send: bool, want: usize) {
        let cur = if send { self.sndbuf } else { self.rcvbuf };
        if want <= cur {
            return;
        }
        let want = want.next_power_of_two().max(1 << 20);
        let (force, plain) = if send { (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF) } else { (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF) };
        let v = want.min(i32::MAX as usize) as libc::c_int;
        if setsockopt_int(self.fd(), libc::SOL_SOCKET, force, v).is_err() {
            let _ = setsockopt_int(self.fd(), libc::SOL_SOCKET, plain, v);
        }
        if send {
            self.sndbuf = want;
        } else {
            self.rcvbuf = want;
        }
    }

    /// Sends the batch as one transaction and waits for every answer. Returns the number of
    /// messages acknowledged.
    pub fn commit(&mut self, batch: Batch) -> Result<usize, NetlinkError> {
        let (buf, labels) = batch.finish();
        if labels.is_empty() {
            return Ok(0);
        }
        self.grow(true, buf.len() + 4096);
        self.grow(false, labels.len() * 256 + 65536);
        self.sock.send(&buf).map_err(|source| NetlinkError::Send { bytes: buf.len(), source })?;
        let first = labels[0].0;
        let mut acked = vec![false; labels.len()];
        let mut remaining = labels.len();
        let mut error: Option<NetlinkError> = None;
        let mut rbuf = vec![0u8; 1 << 16];
        // The kernel processes the batch inside sendmsg, so every answer is already queued;
        // poll only guards against a kernel that answers later. Bounded: at most 1 s idle.
        while remaining > 0 {
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::recv(self.fd(), rbuf.as_mut_ptr() as *mut libc::c_void, rbuf.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    if error.is_some() || !self.wait_readable(1000) {
                        break;
                    }
                    continue;
                }
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NetlinkError::Receive(e));
            }
            for (seq, code, detail) in parse_acks(&rbuf[..n as usize]) {
                let Some(idx) = seq.checked_sub(first).map(|i| i as usize).filter(|i| *i < labels.len()) else {
                    continue;
                };
                if !acked[idx] {
                    acked[idx] = true;
                    remaining -= 1;
                }
                if code != 0 && error.is_none() {
                    error = Some(NetlinkError::Rejected {
                        object: labels[idx].1.clone(),
                        source: io::Error::from_raw_os_error(-code),
                        detail,
                    });
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        if remaining > 0 {
            return Err(NetlinkError::MissingAcks { missing: remaining, total: labels.len() });
        }
        Ok(labels.len())
    }

    fn wait_readable(&self, ms: i32) -> bool {
        let mut p = libc::pollfd { fd: self.fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, ms) > 0 }
    }
}

/// `(seq, error code, extended-ack message)` of every NLMSG_ERROR in a receive buffer.
fn parse_acks(buf: &[u8]) -> Vec<(u32, i32, Option<String>)> {
    const NLMSG_ERROR: u16 = 2;
    const NLM_F_ACK_TLVS: u16 = 0x200;
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or([0; 4])) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        let typ = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        let flags = u16::from_ne_bytes([buf[off + 6], buf[off + 7]]);
        let seq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap_or([0; 4]));
        if typ == NLMSG_ERROR && len >= 36 {
            let code = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap_or([0; 4]));
            let mut detail = None;
            if flags & NLM_F_ACK_TLVS != 0 {
                // TLVs follow the echoed header (payload capped by NETLINK_CAP_ACK).
                let mut a = off + 36;
                while a + 4 <= off + len {
                    let alen = u16::from_ne_bytes([buf[a], buf[a + 1]]) as usize;
                    let atype = u16::from_ne_bytes([buf[a + 2], buf[a + 3]]);
                    if alen < 4 || a + alen > off + len {
                        break;
                    }
                    if atype == 1 {
                        let s = &buf[a + 4..a + alen];
                        detail = Some(String::from_utf8_lossy(s.split(|b| *b == 0).next().unwrap_or(s)).into_owned());
                    }
                    a += alen.div_ceil(4) * 4;
                }
            }
            out.push((seq, code, detail));
        }
        off += len.div_ceil(4) * 4;
    }
    out
}
