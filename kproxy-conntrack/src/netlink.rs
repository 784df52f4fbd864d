//! Just enough ctnetlink (NETLINK_NETFILTER, subsystem CTNETLINK) to list conntrack entries
//! and delete some of them: `IPCTNL_MSG_CT_GET` with `NLM_F_DUMP`, and `IPCTNL_MSG_CT_DELETE`
//! by original tuple plus the entry's id (so an entry re-created with the same tuple in the
//! meantime is not deleted by mistake).
//!
//! The messages are written by hand on the workspace's netlink layer ([`kproxy_netlink`]:
//! framing, attributes, the socket with its sequence numbers, ACK matching and dumps) rather
//! than through a crate: the two messages and the handful of attributes needed fit in this
//! file, the Rust netlink crates cover ctnetlink only partially or not at all, and
//! libnetfilter_conntrack would be one more C dependency on every node. A socket belongs to the
//! network namespace of the thread that opened it.
//!
//! Everything netlink-specific in this crate is in this file, behind [`ConntrackTable`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kproxy_netlink::{Attrs, MsgBuilder, Socket, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

use kproxy_core::conntrack::{Flow, Tuple};
use kproxy_core::model::{IpFamily, Protocol};

use crate::table::{ConntrackTable, DeleteFailure, DeleteReport};
use crate::Error;

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

/// A ctnetlink socket.
#[derive(Debug)]
pub struct ConntrackSocket {
    socket: Socket,
    /// The kernel refused CTA_FILTER once (before 5.8): filter in user space from then on.
    no_kernel_filter: bool,
}

/// A failure of the socket itself, as the conntrack step `what` (`dump` or `delete`) that hit
/// it. Not answering in time counts as a failed receive.
fn socket_error(what: &'static str, e: kproxy_netlink::Error) -> Error {
    match e {
        kproxy_netlink::Error::Open { source, .. } => Error::Open(source),
        kproxy_netlink::Error::Send { source, .. } => Error::Send { what, source },
        kproxy_netlink::Error::Receive(source) => Error::Receive { what, source },
        e @ kproxy_netlink::Error::NoAnswer { .. } => {
            Error::Receive { what, source: std::io::Error::new(std::io::ErrorKind::TimedOut, e.to_string()) }
        }
    }
}

impl ConntrackSocket {
    /// Open a socket in the calling thread's network namespace.
    pub fn open() -> Result<ConntrackSocket, Error> {
        let socket = Socket::open(kproxy_netlink::Protocol::Netfilter).map_err(|e| socket_error("open", e))?;
        Ok(ConntrackSocket { socket, no_kernel_filter: false })
    }

    /// Every conntrack entry of `family` with layer-4 protocol `proto`. The kernel filters by
    /// protocol (CTA_FILTER, Linux 5.8+) so only those entries cross the socket; older kernels
    /// refuse the filter and the dump is filtered here instead.
    fn dump_protocol(&mut self, family: libc::c_int, proto: u8) -> Result<Vec<Flow>, Error> {
        if !self.no_kernel_filter {
            match self.dump_once(family, Some(proto)) {
                Err(Error::DumpRefused(err)) if matches!(err.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                    tracing::debug!(error = %err, "kernel refused CTA_FILTER; filtering conntrack dumps in user space");
                    self.no_kernel_filter = true;
                }
                other => return other,
            }
        }
        self.dump_once(family, None).map(|flows| flows.into_iter().filter(|f| f.orig.proto == proto).collect())
    }

    fn dump_once(&mut self, family: libc::c_int, filter: Option<u8>) -> Result<Vec<Flow>, Error> {
        let mut flows = Vec::new();
        let mut malformed = None;
        let verdict = self
            .socket
            .dump(dump_message(family as u8, filter), |m| match parse_flow(m.payload) {
                Ok(flow) => flows.extend(flow),
                Err(e) => malformed = malformed.take().or(Some(e)),
            })
            .map_err(|e| socket_error("dump", e))?;
        verdict.map_err(|e| Error::DumpRefused(e.io()))?;
        match malformed {
            Some(e) => Err(e),
            None => Ok(flows),
        }
    }

    /// Delete `flows` (by original tuple, zone and id); the socket pipelines the requests and
    /// matches each ACK to its request.
    fn delete_flows(&mut self, flows: &[Flow]) -> Result<DeleteReport, Error> {
        let mut requests: Vec<Vec<u8>> = flows.iter().map(delete_message).collect();
        let verdicts = self.socket.transact(&mut requests).map_err(|e| socket_error("delete", e))?;
        let mut report = DeleteReport::default();
        for (flow, verdict) in flows.iter().zip(verdicts) {
            match verdict {
                Ok(()) => report.deleted += 1,
                Err(e) if e.errno == libc::ENOENT => report.gone += 1,
                Err(e) => report.errors.push(DeleteFailure { flow: *flow, errno: e.errno }),
            }
        }
        Ok(report)
    }
}

impl ConntrackTable for ConntrackSocket {
    fn dump(&mut self, family: IpFamily, protocol: Protocol) -> Result<Vec<Flow>, Error> {
        let af = match family {
            IpFamily::V4 => libc::AF_INET,
            IpFamily::V6 => libc::AF_INET6,
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

/// A ctnetlink message: header and `nfgenmsg` (family, version 0, resource id 0); the socket
/// sets the sequence number.
fn message(cmd: u16, flags: u16, family: u8) -> MsgBuilder {
    MsgBuilder::new((NFNL_SUBSYS_CTNETLINK << 8) | cmd, flags).header(&[family, 0, 0, 0])
}

fn family_of(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

/// `IPCTNL_MSG_CT_GET` dump request, optionally filtered by layer-4 protocol in the kernel.
pub(crate) fn dump_message(family: u8, proto: Option<u8>) -> Vec<u8> {
    let mut msg = message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, family);
    if let Some(proto) = proto {
        msg.begin_nest(CTA_FILTER);
        msg.u32(CTA_FILTER_ORIG_FLAGS, CTA_FILTER_FLAG_CTA_PROTO_NUM);
        msg.u32(CTA_FILTER_REPLY_FLAGS, 0);
        msg.end_nest();
        msg.begin_nest(CTA_TUPLE_ORIG);
        msg.begin_nest(CTA_TUPLE_PROTO);
        msg.attr(CTA_PROTO_NUM, &[proto]);
        msg.end_nest();
        msg.end_nest();
    }
    msg.finish()
}

/// `IPCTNL_MSG_CT_DELETE` for one flow, asking for an ack.
pub(crate) fn delete_message(flow: &Flow) -> Vec<u8> {
    let mut msg = message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, family_of(&flow.orig.src));
    msg.begin_nest(CTA_TUPLE_ORIG);
    msg.begin_nest(CTA_TUPLE_IP);
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
    msg.end_nest();
    msg.begin_nest(CTA_TUPLE_PROTO);
    msg.attr(CTA_PROTO_NUM, &[flow.orig.proto]);
    msg.be16(CTA_PROTO_SRC_PORT, flow.orig.src_port);
    msg.be16(CTA_PROTO_DST_PORT, flow.orig.dst_port);
    msg.end_nest();
    msg.end_nest();
    if flow.zone != 0 {
        msg.be16(CTA_ZONE, flow.zone);
    }
    if let Some(id) = flow.id {
        msg.be32(CTA_ID, id);
    }
    msg.finish()
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(v6) => v6,
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
    }
}

fn parse_tuple(buf: &[u8]) -> Option<Tuple> {
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, None, 0u16, 0u16);
    for a in Attrs::new(buf) {
        match a.kind {
            CTA_TUPLE_IP => {
                for ip_attr in a.nested() {
                    let ip = match ip_attr.payload.len() {
                        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip_attr.payload).ok()?)),
                        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip_attr.payload).ok()?)),
                        _ => continue,
                    };
                    match ip_attr.kind {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = Some(ip),
                        CTA_IP_V4_DST | CTA_IP_V6_DST => dst = Some(ip),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for p in a.nested() {
                    match (p.kind, p.payload.len()) {
                        (CTA_PROTO_NUM, 1) => proto = p.u8(),
                        (CTA_PROTO_SRC_PORT, 2) => sport = p.be16().unwrap_or_default(),
                        (CTA_PROTO_DST_PORT, 2) => dport = p.be16().unwrap_or_default(),
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
pub(crate) fn parse_flow(payload: &[u8]) -> Result<Option<Flow>, Error> {
    let body = payload.get(4..).ok_or(Error::Malformed("short nfgenmsg"))?;
    let (mut orig, mut reply, mut zone, mut id) = (None, None, 0u16, None);
    for a in Attrs::new(body) {
        match (a.kind, a.payload.len()) {
            (CTA_TUPLE_ORIG, _) => orig = parse_tuple(a.payload),
            (CTA_TUPLE_REPLY, _) => reply = parse_tuple(a.payload),
            (CTA_ZONE, 2) => zone = a.be16().unwrap_or_default(),
            (CTA_ID, 4) => id = a.be32(),
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
        let mut bytes = delete_message(&flow());
        kproxy_netlink::set_seq(&mut bytes, 7);
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
        let orig = delete_message(&f);
        let reply = delete_message(&Flow { orig: f.reply, ..f });
        // Take the CTA_TUPLE_ORIG attribute of each and re-type the second as CTA_TUPLE_REPLY.
        let orig_attr = &orig[20..72];
        let mut reply_attr = reply[20..72].to_vec();
        reply_attr[2..4].copy_from_slice(&(CTA_TUPLE_REPLY | kproxy_netlink::NLA_F_NESTED).to_ne_bytes());
        let payload = [&[2u8, 0, 0, 0][..], orig_attr, &reply_attr, &orig[72..]].concat();
        assert_eq!(parse_flow(&payload).unwrap(), Some(f));
        assert!(matches!(parse_flow(&[2, 0]), Err(Error::Malformed(_))));
    }

    #[test]
    fn dump_request_with_a_protocol_filter() {
        let plain = dump_message(2, None);
        assert_eq!(plain.len(), 20, "header and nfgenmsg only");
        let m = kproxy_netlink::Messages::new(&plain).next().unwrap();
        assert_eq!((m.msg_type, m.flags), (0x0101, NLM_F_REQUEST | NLM_F_DUMP));
        let filtered = dump_message(2, Some(17));
        let top: Vec<_> = Attrs::new(&filtered[20..]).collect();
        assert_eq!(top.iter().map(|a| a.kind).collect::<Vec<_>>(), vec![CTA_FILTER, CTA_TUPLE_ORIG]);
        let flags: Vec<_> = top[0].nested().map(|a| (a.kind, a.payload)).collect();
        assert_eq!(
            flags,
            vec![
                (CTA_FILTER_ORIG_FLAGS, &CTA_FILTER_FLAG_CTA_PROTO_NUM.to_ne_bytes()[..]),
                (CTA_FILTER_REPLY_FLAGS, &[0u8; 4][..])
            ]
        );
        let proto: Vec<_> = top[1].nested().flat_map(|a| a.nested()).map(|a| (a.kind, a.payload)).collect();
        assert_eq!(proto, vec![(CTA_PROTO_NUM, &[17u8][..])]);
    }

    #[test]
    fn socket_errors_keep_their_step() {
        let e = socket_error("delete", kproxy_netlink::Error::Receive(std::io::Error::from_raw_os_error(libc::ENOBUFS)));
        assert!(matches!(e, Error::Receive { what: "delete", .. }), "{e:?}");
        let e = socket_error("dump", kproxy_netlink::Error::NoAnswer { seq: 3, timeout: std::time::Duration::from_secs(5) });
        assert!(
            matches!(&e, Error::Receive { what: "dump", source } if source.kind() == std::io::ErrorKind::TimedOut),
            "{e:?}"
        );
    }
}
