//! Clients that tell apart what a rule did to a request: answered (by whom, seeing which
//! source), rejected (ECONNREFUSED / ICMP port unreachable), dropped (timeout).
//!
//! Every function runs its socket work on a thread inside the given namespace
//! ([`Netns::run_in`]) and every attempt is bounded by the given timeout.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::serve::canonical;
use crate::{HarnessError, Netns};

/// Longest reply line accepted (a reply is a name and an address).
const MAX_REPLY: u64 = 512;

/// Transport protocol of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// What a test server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The server's name (a pod's name in a [`crate::Topology`]).
    pub server: String,
    /// The source address and port the server saw: the client's own address if it was not
    /// masqueraded, a node address if it was.
    pub peer: SocketAddr,
}

impl Reply {
    /// Parses a `"<name> <peer>"` line.
    pub fn parse(line: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::BadReply(line.to_string());
        let (server, peer) = line.trim().split_once(' ').ok_or_else(bad)?;
        Ok(Reply {
            server: server.to_string(),
            peer: peer.parse().map_err(|_| bad())?,
        })
    }
}

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Actively refused: TCP RST / ECONNREFUSED, or ICMP port unreachable (what `reject` does).
    /// Over veth links an ICMPv6 error often reaches a connecting TCP socket while it is
    /// still locked; the kernel then acts only on the one for the SYN retransmit (~1 s
    /// later), or, if the timeout ends first, the client reads the noted error: either
    /// way the result is `Refused`, never `Timeout`.
    #[error("connection refused")]
    Refused,
    /// No answer within the timeout (what `drop` does).
    #[error("timed out")]
    Timeout,
    /// ICMP host/network unreachable, or no route.
    #[error("unreachable: {0}")]
    Unreachable(#[source] std::io::Error),
    /// Any other socket error, with the step that failed.
    #[error("{step} failed: {source}")]
    Io {
        /// The socket call that failed (`connect`, `recv`, ...).
        step: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server's answer was not a `"<name> <peer>"` line.
    #[error("unexpected reply {0:?}")]
    BadReply(String),
    /// Entering the namespace failed.
    #[error(transparent)]
    Harness(#[from] HarnessError),
}

impl ClientError {
    /// True for [`ClientError::Refused`].
    pub fn is_refused(&self) -> bool {
        matches!(self, ClientError::Refused)
    }
    /// True for [`ClientError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout)
    }

    fn classify(step: &'static str, source: std::io::Error) -> Self {
        use std::io::ErrorKind;
        match (source.kind(), source.raw_os_error()) {
            (ErrorKind::ConnectionRefused, _) => ClientError::Refused,
            (ErrorKind::TimedOut | ErrorKind::WouldBlock, _) => ClientError::Timeout,
            (_, Some(libc::EHOSTUNREACH | libc::ENETUNREACH)) => ClientError::Unreachable(source),
            _ => ClientError::Io { step, source },
        }
    }
}

/// One TCP request from inside `ns` to `addr`: connect, read the greeting line.
pub fn tcp_request(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<Reply, ClientError> {
    ns.run_in(|| tcp_connect_here(None, addr, timeout)?.request_greeting())?
}

/// Like [`tcp_request`] but from a given source address (and port, 0 for any).
pub fn tcp_request_from(
    ns: &Netns,
    src: SocketAddr,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    ns.run_in(|| tcp_connect_here(Some(src), addr, timeout)?.request_greeting())?
}

/// Opens a long-lived TCP connection from inside `ns` (e.g. to check that an established
/// connection survives a resync). The socket stays in `ns`; use it from any thread.
pub fn tcp_connect(
    ns: &Netns,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpSession, ClientError> {
    ns.run_in(|| {
        let mut session = tcp_connect_here(None, addr, timeout)?;
        session.first = Some(session.read_reply()?);
        Ok(session)
    })?
}

/// One UDP request from inside `ns` to `addr`: send a datagram, wait for the answer.
pub fn udp_request(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<Reply, ClientError> {
    ns.run_in(|| udp_request_here(None, addr, timeout))?
}

/// Like [`udp_request`] but from a given source address (and port, 0 for any).
pub fn udp_request_from(
    ns: &Netns,
    src: SocketAddr,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    ns.run_in(|| udp_request_here(Some(src), addr, timeout))?
}

/// An open TCP connection to a test server.
#[derive(Debug)]
pub struct TcpSession {
    reader: BufReader<TcpStream>,
    first: Option<Reply>,
}

impl TcpSession {
    /// The greeting the server sent on connect.
    pub fn greeting(&self) -> Option<&Reply> {
        self.first.as_ref()
    }

    /// Sends one line and reads the server's answer (bounded by the connection's timeout).
    pub fn request(&mut self) -> Result<Reply, ClientError> {
        self.reader
            .get_mut()
            .write_all(b"ping\n")
            .map_err(|e| ClientError::classify("send", e))?;
        self.read_reply()
    }

    fn request_greeting(mut self) -> Result<Reply, ClientError> {
        self.read_reply()
    }

    fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let mut line = String::new();
        let n = (&mut self.reader)
            .take(MAX_REPLY)
            .read_line(&mut line)
            .map_err(|e| ClientError::classify("recv", e))?;
        if n == 0 {
            return Err(ClientError::Io {
                step: "recv",
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed without a reply",
                ),
            });
        }
        Reply::parse(&line)
    }
}

/// Connects from the current thread's namespace, with a bounded non-blocking connect.
fn tcp_connect_here(
    src: Option<SocketAddr>,
    dst: SocketAddr,
    timeout: Duration,
) -> Result<TcpSession, ClientError> {
    let io = |step| move |e: Errno| ClientError::classify(step, e.into());
    let family = if dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(io("socket"))?;
    if let Some(src) = src {
        socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(src)).map_err(io("bind"))?;
    }
    match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(dst)) {
        Ok(()) => {}
        Err(Errno::EINPROGRESS) => {
            let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
            // One retry on EINTR only: the wait stays bounded by (at most) twice the timeout.
            let ready = nix::poll::poll(&mut fds, ms)
                .or_else(|e| {
                    if e == Errno::EINTR {
                        nix::poll::poll(&mut fds, ms)
                    } else {
                        Err(e)
                    }
                })
                .map_err(io("poll"))?;
            // SO_ERROR also returns the "soft" error: an ICMP error (e.g. the port
            // unreachable a REJECT sends) that arrived while connect() still held the socket
            // lock, which on veth links is common for IPv6. The kernel then only notes it and
            // waits for the SYN retransmit; reading it here reports REJECT as refused
            // instead of as a timeout.
            let err =
                socket::getsockopt(&fd, socket::sockopt::SocketError).map_err(io("getsockopt"))?;
            if ready == 0 && err == 0 {
                return Err(ClientError::Timeout);
            }
            if err != 0 {
                return Err(ClientError::classify(
                    "connect",
                    std::io::Error::from_raw_os_error(err),
                ));
            }
        }
        Err(e) => return Err(io("connect")(e)),
    }
    let stream = TcpStream::from(fd);
    let setup = |e| ClientError::classify("setsockopt", e);
    stream.set_nonblocking(false).map_err(setup)?;
    stream.set_read_timeout(Some(timeout)).map_err(setup)?;
    stream.set_write_timeout(Some(timeout)).map_err(setup)?;
    Ok(TcpSession {
        reader: BufReader::new(stream),
        first: None,
    })
}

fn udp_request_here(
    src: Option<SocketAddr>,
    dst: SocketAddr,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let io = |step| move |e| ClientError::classify(step, e);
    let any = if dst.is_ipv4() {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    let socket = UdpSocket::bind(src.unwrap_or(any)).map_err(io("bind"))?;
    // A connected socket receives ICMP errors (port unreachable -> ECONNREFUSED on recv).
    socket.connect(dst).map_err(io("connect"))?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(io("setsockopt"))?;
    socket.send(b"ping\n").map_err(io("send"))?;
    let mut buf = [0u8; MAX_REPLY as usize];
    let n = socket.recv(&mut buf).map_err(io("recv"))?;
    Reply::parse(&String::from_utf8_lossy(&buf[..n]))
}

/// How a series of requests went: who answered how often, which sources they saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Replies per server name.
    pub by_server: BTreeMap<String, usize>,
    /// Replies per source IP the servers saw (the client's own IP, or a masquerade address).
    pub by_peer: BTreeMap<IpAddr, usize>,
    /// Requests refused.
    pub refused: usize,
    /// Requests that timed out.
    pub timeouts: usize,
    /// Other failures, described.
    pub errors: Vec<String>,
}

impl Tally {
    /// Number of answered requests.
    pub fn answered(&self) -> usize {
        self.by_server.values().sum()
    }

    /// Adds another tally's counts to this one.
    pub fn merge(&mut self, other: Tally) {
        for (server, n) in other.by_server {
            *self.by_server.entry(server).or_default() += n;
        }
        for (peer, n) in other.by_peer {
            *self.by_peer.entry(peer).or_default() += n;
        }
        self.refused += other.refused;
        self.timeouts += other.timeouts;
        self.errors.extend(other.errors);
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers: Vec<String> = self
            .by_server
            .iter()
            .map(|(s, n)| format!("{s}={n}"))
            .collect();
        let peers: Vec<String> = self
            .by_peer
            .iter()
            .map(|(p, n)| format!("{p}={n}"))
            .collect();
        write!(
            f,
            "answered by [{}], sources seen [{}]",
            servers.join(" "),
            peers.join(" ")
        )?;
        if self.refused + self.timeouts + self.errors.len() > 0 {
            write!(
                f,
                ", refused {}, timed out {}, other errors {}",
                self.refused,
                self.timeouts,
                self.errors.len()
            )?;
            if let Some(first) = self.errors.first() {
                write!(f, " (first: {first})")?;
            }
        }
        Ok(())
    }
}

/// Sends `count` requests (each a new connection / a new source port) from inside `ns` and
/// counts the outcomes. Fails only if the namespace cannot be entered.
pub fn tally(
    ns: &Netns,
    proto: Proto,
    addr: SocketAddr,
    count: usize,
    timeout: Duration,
) -> Result<Tally, HarnessError> {
    ns.run_in(|| {
        let mut t = Tally::default();
        for _ in 0..count {
            let result = match proto {
                Proto::Tcp => {
                    tcp_connect_here(None, addr, timeout).and_then(TcpSession::request_greeting)
                }
                Proto::Udp => udp_request_here(None, addr, timeout),
            };
            match result {
                Ok(reply) => {
                    *t.by_server.entry(reply.server).or_default() += 1;
                    *t.by_peer.entry(canonical(reply.peer).ip()).or_default() += 1;
                }
                Err(ClientError::Refused) => t.refused += 1,
                Err(ClientError::Timeout) => t.timeouts += 1,
                Err(e) => t.errors.push(e.to_string()),
            }
        }
        t
    })
}
