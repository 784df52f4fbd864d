//! Just enough ctnetlink (NETLINK_NETFILTER, subsystem CTNETLINK) to list conntrack entries
//! and delete some of them: `IPCTNL_MSG_CT_GET` with `NLM_F_DUMP`, and `IPCTNL_MSG_CT_DELETE`
//! by original tuple plus the entry's id (so an entry re-created with the same tuple in the
//! meantime is not deleted by mistake).
//!
//! The messages are written by hand over a `nix` netlink socket rather than through a crate:
//! the two messages and the handful of attributes needed fit in this file, the Rust netlink
//! crates cover ctnetlink only partially or not at all, and libnetfilter_conntrack would be one
//! more C dependency on every node. A socket belongs to the network namespace of the thread
//! that opened it.
//!
//! Everything netlink-specific in this crate is in this file, behind
//! [`ConntrackTable`]: moving onto the workspace's shared netlink layer replaces the framing,
//! attribute and socket code here and nothing else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

use kproxy_core::conntrack::{Flow, Tuple};
use kproxy_core::model::{IpFamily, Protocol};

use crate::table::{ConntrackTable, DeleteFailure, DeleteReport};
use crate::Error;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_FILTER: u16 = 25;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
const CTA_FILTER_REPLY_FLAGS: u16 = 2;
const CTA_FILTER_FLAG_CTA_PROTO_NUM: u32 = 1 << 3;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// Deletes sent per datagram; their acks (36 bytes each) fit easily in the receive buffer.
const DELETE_BATCH: usize = 128;
const RECV_BUFFER: usize = 64 * 1024;

/// A ctnetlink socket.
#[derive(Debug)]
pub struct ConntrackSocket {
    fd: OwnedFd,
    seq: u32,
    /// The kernel refused CTA_FILTER once (before 5.8): filter in user space from then on.
    no_kernel_filter: bool,
}

impl ConntrackSocket {
    /// Open a socket in the calling thread's network namespace.
    pub fn open() -> Result<ConntrackSocket, Error> {
        let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
            .map_err(|e| Error::Open(e.into()))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| Error::Open(e.into()))?;
        Ok(ConntrackSocket { fd, seq: 1, no_kernel_filter: false })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Every conntrack entry of `family` with layer-4 protocol `proto`. The kernel filters by
    /// protocol (CTA_FILTER, Linux 5.8+) so only those entries cross the socket; older kernels
    /// refuse the filter and the dump is filtered here instead.
    fn dump_protocol(&mut self, family: nix::libc::c_int, proto: u8) -> Result<Vec<Flow>, Error> {
        if !self.no_kernel_filter {
            match self.dump_once(family, Some(proto)) {
                Err(Error::DumpRefused(err))
                    if matches!(err.raw_os_error(), Some(nix::libc::EINVAL | nix::libc::EOPNOTSUPP)) =>
                {
                    tracing::debug!(error = %err, "kernel refused CTA_FILTER; filtering conntrack dumps in user space");
                    self.no_kernel_filter = true;
                }
                other => return other,
            }
        }
        self.dump_once(family, None).map(|flows| flows.into_iter().filter(|f| f.orig.proto == proto).collect())
    }

    fn dump_once(&mut self, family: nix::libc::c_int, filter: Option<u8>) -> Result<Vec<Flow>, Error> {
        let seq = self.next_seq();
        let bytes = dump_message(seq, family as u8, filter);
        send(self.fd.as_raw_fd(), &bytes, MsgFlags::empty())
            .map_err(|source| Error::Send { what: "dump", source: source.into() })?;
        let mut flows = Vec::new();
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())
                .map_err(|source| Error::Receive { what: "dump", source: source.into() })?;
            for message in messages(&buf[..n])? {
                if message.seq != seq {
                    continue;
                }
                match message.kind {
                    NLMSG_DONE => return Ok(flows),
                    NLMSG_ERROR => {
                        let errno = error_code(message.payload)?;
                        if errno == 0 {
                            return Ok(flows);
                        }
                        return Err(Error::DumpRefused(std::io::Error::from_raw_os_error(errno)));
                    }
                    _ => flows.extend(parse_flow(message.payload)?),
                }
            }
        }
    }

    /// Delete `flows` (by original tuple, zone and id), in batches.
    fn delete_flows(&mut self, flows: &[Flow]) -> Result<DeleteReport, Error> {
        let mut report = DeleteReport::default();
        let mut buf = vec![0u8; RECV_BUFFER];
        for batch in flows.chunks(DELETE_BATCH) {
            let mut bytes = Vec::new();
            let first = self.seq.wrapping_add(1);
            for flow in batch {
                let seq = self.next_seq();
                bytes.extend_from_slice(&delete_message(flow, seq));
            }
            send(self.fd.as_raw_fd(), &bytes, MsgFlags::empty())
                .map_err(|source| Error::Send { what: "delete", source: source.into() })?;
            let mut acked = 0;
            while acked < batch.len() {
                let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())
                    .map_err(|source| Error::Receive { what: "delete", source: source.into() })?;
                for message in messages(&buf[..n])? {
                    // Only acks for this batch count (sequence numbers first..first+len).
                    if message.kind != NLMSG_ERROR || message.seq.wrapping_sub(first) as usize >= batch.len() {
                        continue;
                    }
                    acked += 1;
                    match error_code(message.payload)? {
                        0 => report.deleted += 1,
                        errno if errno == nix::libc::ENOENT => report.gone += 1,
                        errno => {
                            let flow = batch[message.seq.wrapping_sub(first) as usize];
                            report.errors.push(DeleteFailure { flow, errno });
                        }
                    }
                }
            }
        }
        Ok(report)
    }
}

impl ConntrackTable for ConntrackSocket {
    fn dump(&mut self, family: IpFamily, protocol: Protocol) -> Result<Vec<Flow>, Error> {
        let af = match family {
            IpFamily::V4 => nix::libc::AF_INET,
            IpFamily::V6 => nix::libc::AF_INET6,
        };
        self.dump_protocol(af, protocol.number())
    }

    fn delete(&mut self, flows: &[Flow]) -> Result<DeleteReport, Error> {
        self.delete_flows(flows)
    }

    /// False once the kernel refused CTA_FILTER (before Linux 5.8).
    fn kernel_filters(&self) -> bool {
        !self.no_kernel_filter
    }
}

/// A netlink message being built.
struct Message {
    bytes: Vec<u8>,
    nests: Vec<usize>,
}

impl Message {
    fn new(cmd: u16, flags: u16, seq: u32, family: u8) -> Message {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish()
        bytes.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | cmd).to_ne_bytes());
        bytes.extend_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(&seq.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
                                                      // nfgenmsg: family, version 0, resource id 0 (big endian).
        bytes.extend_from_slice(&[family, 0, 0, 0]);
        Message { bytes, nests: Vec::new() }
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        self.bytes.extend_from_slice(&(len as u16).to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(payload);
        self.pad();
    }

    fn begin(&mut self, kind: u16) {
        self.nests.push(self.bytes.len());
        self.bytes.extend_from_slice(&0u16.to_ne_bytes());
        self.bytes.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn end(&mut self) {
        if let Some(start) = self.nests.pop() {
            let len = (self.bytes.len() - start) as u16;
            self.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }

    fn pad(&mut self) {
        while self.bytes.len() % 4 != 0 {
            self.bytes.push(0);
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        let len = self.bytes.len() as u32;
        self.bytes[0..4].copy_from_slice(&len.to_ne_bytes());
        std::mem::take(&mut self.bytes)
    }
}

fn family_of(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => nix::libc::AF_INET as u8,
        IpAddr::V6(_) => nix::libc::AF_INET6 as u8,
    }
}

/// `IPCTNL_MSG_CT_GET` dump request, optionally filtered by layer-4 protocol in the kernel.
pub(crate) fn dump_message(seq: u32, family: u8, proto: Option<u8>) -> Vec<u8> {
    let mut msg = Message::new(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, family);
    if let Some(proto) = proto {
        msg.begin(CTA_FILTER);
        msg.attr(CTA_FILTER_ORIG_FLAGS, &CTA_FILTER_FLAG_CTA_PROTO_NUM.to_ne_bytes());
        msg.attr(CTA_FILTER_REPLY_FLAGS, &0u32.to_ne_bytes());
        msg.end();
        msg.begin(CTA_TUPLE_ORIG);
        msg.begin(CTA_TUPLE_PROTO);
        msg.attr(CTA_PROTO_NUM, &[proto]);
        msg.end();
        msg.end();
    }
    msg.finish()
}

/// `IPCTNL_MSG_CT_DELETE` for one flow, asking for an ack.
pub(crate) fn delete_message(flow: &Flow, seq: u32) -> Vec<u8> {
    let mut msg = Message::new(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, family_of(&flow.orig.src));
    msg.begin(CTA_TUPLE_ORIG);
    msg.begin(CTA_TUPLE_IP);
    match (flow.orig.src, flow.orig.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            msg.attr(CTA_IP_V4_SRC, &s.octets());
            msg.attr(CTA_IP_V4_DST, &d.octets());
        }
        (s, d) => {
            msg.attr(CTA_IP_V6_SRC, &v6(s).octets());
            msg.attr(CTA_IP_V6_DST, &v6(d).octets());
        }
    }
    msg.end();
    msg.begin(CTA_TUPLE_PROTO);
    msg.attr(CTA_PROTO_NUM, &[flow.orig.proto]);
    msg.attr(CTA_PROTO_SRC_PORT, &flow.orig.src_port.to_be_bytes());
    msg.attr(CTA_PROTO_DST_PORT, &flow.orig.dst_port.to_be_bytes());
    msg.end();
    msg.end();
    if flow.zone != 0 {
        msg.attr(CTA_ZONE, &flow.zone.to_be_bytes());
    }
    if let Some(id) = flow.id {
        msg.attr(CTA_ID, &id.to_be_bytes());
    }
    msg.finish()
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(v6) => v6,
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
    }
}

/// One received netlink message.
struct Received<'a> {
    kind: u16,
    seq: u32,
    payload: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Split a datagram into messages.
fn messages(mut buf: &[u8]) -> Result<Vec<Received<'_>>, Error> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0).ok_or(Error::Malformed("short header"))? as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(Error::Malformed("message length out of bounds"));
        }
        let kind = u16_at(buf, 4).ok_or(Error::Malformed("short header"))?;
        let seq = u32_at(buf, 8).ok_or(Error::Malformed("short header"))?;
        out.push(Received { kind, seq, payload: &buf[NLMSG_HDRLEN..len] });
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

/// The (positive) errno of an NLMSG_ERROR payload; 0 is an ack.
fn error_code(payload: &[u8]) -> Result<i32, Error> {
    let raw = payload.get(0..4).ok_or(Error::Malformed("short error message"))?;
    let code = i32::from_ne_bytes(raw.try_into().map_err(|_| Error::Malformed("short error message"))?);
    Ok(-code)
}

/// Iterate `(type, payload)` attributes.
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16_at(buf, 0)? as usize;
        let kind = u16_at(buf, 2)? & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let payload = &buf[4..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((kind, payload))
    })
}

fn parse_tuple(buf: &[u8]) -> Option<Tuple> {
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, None, 0u16, 0u16);
    for (kind, payload) in attrs(buf) {
        match kind {
            CTA_TUPLE_IP => {
                for (k, p) in attrs(payload) {
                    let ip = match p.len() {
                        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(p).ok()?)),
                        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(p).ok()?)),
                        _ => continue,
                    };
                    match k {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = Some(ip),
                        CTA_IP_V4_DST | CTA_IP_V6_DST => dst = Some(ip),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (k, p) in attrs(payload) {
                    match (k, p.len()) {
                        (CTA_PROTO_NUM, 1) => proto = Some(p[0]),
                        (CTA_PROTO_SRC_PORT, 2) => sport = u16::from_be_bytes([p[0], p[1]]),
                        (CTA_PROTO_DST_PORT, 2) => dport = u16::from_be_bytes([p[0], p[1]]),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Tuple { src: src?, dst: dst?, proto: proto?, src_port: sport, dst_port: dport })
}

/// Parse one `IPCTNL_MSG_CT_NEW` message of a dump (after the nfgenmsg header).
fn parse_flow(payload: &[u8]) -> Result<Option<Flow>, Error> {
    let body = payload.get(4..).ok_or(Error::Malformed("short nfgenmsg"))?;
    let (mut orig, mut reply, mut zone, mut id) = (None, None, 0u16, None);
    for (kind, p) in attrs(body) {
        match kind {
            CTA_TUPLE_ORIG => orig = parse_tuple(p),
            CTA_TUPLE_REPLY => reply = parse_tuple(p),
            CTA_ZONE if p.len() == 2 => zone = u16::from_be_bytes([p[0], p[1]]),
            CTA_ID if p.len() == 4 => id = Some(u32::from_be_bytes([p[0], p[1], p[2], p[3]])),
            _ => {}
        }
    }
    Ok(match (orig, reply) {
        (Some(orig), Some(reply)) => Some(Flow { orig, reply, zone, id }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow {
            orig: Tuple {
                src: "198.18.0.5".parse().unwrap(),
                dst: "198.19.160.10".parse().unwrap(),
                proto: 17,
                src_port: 40000,
                dst_port: 53,
            },
            reply: Tuple {
                src: "198.18.0.10".parse().unwrap(),
                dst: "198.18.0.5".parse().unwrap(),
                proto: 17,
                src_port: 5353,
                dst_port: 40000,
            },
            zone: 0,
            id: Some(0x01020304),
        }
    }

    #[test]
    fn delete_message_bytes() {
        let bytes = delete_message(&flow(), 7);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &(bytes.len() as u32).to_ne_bytes()[..], &0x0102u16.to_ne_bytes(), &0x0005u16.to_ne_bytes(), &7u32.to_ne_bytes(), &0u32.to_ne_bytes(),
            &[2, 0, 0, 0],
            // CTA_TUPLE_ORIG (nested): ip (20) + proto (24) + header
            &52u16.to_ne_bytes(), &0x8001u16.to_ne_bytes(),
            &20u16.to_ne_bytes(), &0x8001u16.to_ne_bytes(),
            &8u16.to_ne_bytes(), &1u16.to_ne_bytes(), &[198, 18, 0, 5],
            &8u16.to_ne_bytes(), &2u16.to_ne_bytes(), &[198, 19, 160, 10],
            &28u16.to_ne_bytes(), &0x8002u16.to_ne_bytes(),
            &5u16.to_ne_bytes(), &1u16.to_ne_bytes(), &[17, 0, 0, 0],
            &6u16.to_ne_bytes(), &2u16.to_ne_bytes(), &40000u16.to_be_bytes(), &[0, 0],
            &6u16.to_ne_bytes(), &3u16.to_ne_bytes(), &53u16.to_be_bytes(), &[0, 0],
            // CTA_ID
            &8u16.to_ne_bytes(), &12u16.to_ne_bytes(), &[1, 2, 3, 4],
        ]
        .concat();
        assert_eq!(bytes, want);
    }

    #[test]
    fn a_dumped_flow_parses_back() {
        // A dump answer carries the same tuple layout as the delete request, twice.
        let f = flow();
        let orig = delete_message(&f, 1);
        let reply = delete_message(&Flow { orig: f.reply, ..f }, 1);
        // Take the CTA_TUPLE_ORIG attribute of each and re-type the second as CTA_TUPLE_REPLY.
        let orig_attr = &orig[20..72];
        let mut reply_attr = reply[20..72].to_vec();
        reply_attr[2..4].copy_from_slice(&(CTA_TUPLE_REPLY | NLA_F_NESTED).to_ne_bytes());
        let payload = [&[2u8, 0, 0, 0][..], orig_attr, &reply_attr, &orig[72..]].concat();
        assert_eq!(parse_flow(&payload).unwrap(), Some(f));
    }

    #[test]
    fn dump_request_with_a_protocol_filter() {
        let plain = dump_message(3, 2, None);
        assert_eq!(plain.len(), 20, "header and nfgenmsg only");
        assert_eq!(u16_at(&plain, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
        let filtered = dump_message(3, 2, Some(17));
        let top: Vec<_> = attrs(&filtered[20..]).collect();
        assert_eq!(top.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![CTA_FILTER, CTA_TUPLE_ORIG]);
        let flags: Vec<_> = attrs(top[0].1).collect();
        assert_eq!(
            flags,
            vec![
                (CTA_FILTER_ORIG_FLAGS, &CTA_FILTER_FLAG_CTA_PROTO_NUM.to_ne_bytes()[..]),
                (CTA_FILTER_REPLY_FLAGS, &[0u8; 4][..])
            ]
        );
        let proto: Vec<_> = attrs(top[1].1).flat_map(|(_, p)| attrs(p).collect::<Vec<_>>()).collect();
        assert_eq!(proto, vec![(CTA_PROTO_NUM, &[17u8][..])]);
    }

    #[test]
    fn error_and_done_messages() {
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&0u16.to_ne_bytes());
        ack.extend_from_slice(&9u32.to_ne_bytes());
        ack.extend_from_slice(&0u32.to_ne_bytes());
        ack.extend_from_slice(&(-2i32).to_ne_bytes());
        ack.extend_from_slice(&[0u8; 16]);
        let msgs = messages(&ack).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].kind, msgs[0].seq), (NLMSG_ERROR, 9));
        assert_eq!(error_code(msgs[0].payload).unwrap(), nix::libc::ENOENT);
        assert!(matches!(messages(&ack[..20]), Err(Error::Malformed(_))));
    }
}
