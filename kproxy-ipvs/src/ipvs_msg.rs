//! IPVS generic-netlink messages, pure: virtual servers, real servers, timeouts, info.
//!
//! Numbers follow `include/uapi/linux/ip_vs.h`. Requests are encoded into complete netlink
//! messages for a resolved family id; replies are decoded from the attributes after the
//! `genlmsghdr`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kproxy_core::model::Protocol;

use kproxy_netlink::{Attrs, MsgBuilder, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

/// `IPVS_GENL_NAME`.
pub const IPVS_GENL_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
pub const IPVS_GENL_VERSION: u8 = 1;

/// `IPVS_CMD_*`.
#[allow(missing_docs)]
pub mod cmd {
    pub const NEW_SERVICE: u8 = 1;
    pub const SET_SERVICE: u8 = 2;
    pub const DEL_SERVICE: u8 = 3;
    pub const GET_SERVICE: u8 = 4;
    pub const NEW_DEST: u8 = 5;
    pub const SET_DEST: u8 = 6;
    pub const DEL_DEST: u8 = 7;
    pub const GET_DEST: u8 = 8;
    pub const SET_CONFIG: u8 = 12;
    pub const GET_CONFIG: u8 = 13;
    pub const GET_INFO: u8 = 15;
    pub const FLUSH: u8 = 17;
}

/// `IPVS_CMD_ATTR_*`.
mod cmd_attr {
    pub const SERVICE: u16 = 1;
    pub const DEST: u16 = 2;
    pub const TIMEOUT_TCP: u16 = 4;
    pub const TIMEOUT_TCP_FIN: u16 = 5;
    pub const TIMEOUT_UDP: u16 = 6;
}

/// `IPVS_SVC_ATTR_*`.
mod svc_attr {
    pub const AF: u16 = 1;
    pub const PROTOCOL: u16 = 2;
    pub const ADDR: u16 = 3;
    pub const PORT: u16 = 4;
    pub const FWMARK: u16 = 5;
    pub const SCHED_NAME: u16 = 6;
    pub const FLAGS: u16 = 7;
    pub const TIMEOUT: u16 = 8;
    pub const NETMASK: u16 = 9;
}

/// `IPVS_DEST_ATTR_*`.
mod dest_attr {
    pub const ADDR: u16 = 1;
    pub const PORT: u16 = 2;
    pub const FWD_METHOD: u16 = 3;
    pub const WEIGHT: u16 = 4;
    pub const U_THRESH: u16 = 5;
    pub const L_THRESH: u16 = 6;
    pub const ACTIVE_CONNS: u16 = 7;
    pub const INACT_CONNS: u16 = 8;
    pub const PERSIST_CONNS: u16 = 9;
    pub const ADDR_FAMILY: u16 = 11;
}

/// `IPVS_INFO_ATTR_*`.
mod info_attr {
    pub const VERSION: u16 = 1;
    pub const CONN_TAB_SIZE: u16 = 2;
}

/// `IP_VS_SVC_F_PERSISTENT`.
pub const SVC_F_PERSISTENT: u32 = 0x0001;
/// `IP_VS_SVC_F_HASHED` (set by the kernel, never by us).
pub const SVC_F_HASHED: u32 = 0x0002;
/// `IP_VS_SVC_F_SCHED1` (sh-fallback / mh-fallback).
pub const SVC_F_SCHED1: u32 = 0x0008;
/// `IP_VS_SVC_F_SCHED2` (sh-port / mh-port).
pub const SVC_F_SCHED2: u32 = 0x0010;

/// Forwarding method of a real server (`IP_VS_CONN_F_FWD_MASK` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Forward {
    /// Masquerading (NAT): what kproxy uses.
    Masq,
    /// Local node.
    Local,
    /// IP-in-IP tunnel.
    Tunnel,
    /// Direct routing.
    Route,
    /// Any other value the kernel reported.
    Other(u32),
}

impl Forward {
    fn to_u32(self) -> u32 {
        match self {
            Forward::Masq => 0,
            Forward::Local => 1,
            Forward::Tunnel => 2,
            Forward::Route => 3,
            Forward::Other(v) => v,
        }
    }
    fn from_u32(v: u32) -> Forward {
        match v & 0x7 {
            0 => Forward::Masq,
            1 => Forward::Local,
            2 => Forward::Tunnel,
            3 => Forward::Route,
            _ => Forward::Other(v),
        }
    }
}

/// Identity of a virtual server: protocol, address, port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Protocol.
    pub protocol: Protocol,
    /// Virtual address.
    pub addr: IpAddr,
    /// Virtual port.
    pub port: u16,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{} {}:{}", self.protocol, a, self.port),
            IpAddr::V6(a) => write!(f, "{} [{}]:{}", self.protocol, a, self.port),
        }
    }
}

/// A virtual server (IPVS "service").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    /// Identity.
    pub key: ServiceKey,
    /// Scheduler name (`rr`, `wrr`, ...).
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` flags (without `HASHED`).
    pub flags: u32,
    /// Persistence timeout in seconds (with `SVC_F_PERSISTENT`).
    pub timeout: u32,
    /// Persistence netmask (`0xffffffff` for IPv4, 128 for IPv6: per client address).
    pub netmask: u32,
}

impl VirtualServer {
    /// The netmask kproxy uses for a family: one client address.
    pub fn host_netmask(addr: &IpAddr) -> u32 {
        match addr {
            IpAddr::V4(_) => 0xffff_ffff,
            IpAddr::V6(_) => 128,
        }
    }
}

/// Identity of a real server inside its virtual server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RealKey {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
}

/// A real server (IPVS "destination").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    /// Identity.
    pub key: RealKey,
    /// Weight; 0 takes no new connections.
    pub weight: u32,
    /// Forwarding method.
    pub forward: Forward,
}

/// Counters the kernel reports with a real server in a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RealCounters {
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Persistent templates.
    pub persistent: u32,
}

/// IPVS connection timeouts in seconds (`ipvsadm --set`); 0 = unchanged / unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// Established TCP.
    pub tcp: u32,
    /// TCP after FIN.
    pub tcp_fin: u32,
    /// UDP.
    pub udp: u32,
}

/// `IPVS_CMD_GET_INFO` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Info {
    /// IPVS version (`major << 16 | minor << 8 | patch`).
    pub version: u32,
    /// Connection hash table size.
    pub conn_tab_size: u32,
}

fn proto_number(p: Protocol) -> u16 {
    p.number() as u16
}

fn proto_from(n: u16) -> Option<Protocol> {
    match n {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        132 => Some(Protocol::Sctp),
        _ => None,
    }
}

fn af(addr: &IpAddr) -> u16 {
    match addr {
        IpAddr::V4(_) => libc::AF_INET as u16,
        IpAddr::V6(_) => libc::AF_INET6 as u16,
    }
}

/// `union nf_inet_addr`: 16 bytes, IPv4 in the first four.
fn inet_addr(addr: &IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out.copy_from_slice(&a.octets()),
    }
    out
}

fn parse_inet_addr(family: u16, bytes: &[u8]) -> Option<IpAddr> {
    if family == libc::AF_INET as u16 {
        let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(b)))
    } else if family == libc::AF_INET6 as u16 {
        let b: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(b)))
    } else {
        None
    }
}

fn genl(family: u16, command: u8, flags: u16) -> MsgBuilder {
    MsgBuilder::new(family, flags).header(&[command, IPVS_GENL_VERSION, 0, 0])
}

fn put_service_key(b: &mut MsgBuilder, key: &ServiceKey) {
    b.u16(svc_attr::AF, af(&key.addr));
    b.u16(svc_attr::PROTOCOL, proto_number(key.protocol));
    b.attr(svc_attr::ADDR, &inet_addr(&key.addr));
    b.be16(svc_attr::PORT, key.port);
}

fn put_service(b: &mut MsgBuilder, vs: &VirtualServer) {
    b.begin_nest(cmd_attr::SERVICE);
    put_service_key(b, &vs.key);
    b.str(svc_attr::SCHED_NAME, &vs.scheduler);
    let mut flags = [0u8; 8];
    flags[..4].copy_from_slice(&vs.flags.to_ne_bytes());
    flags[4..].copy_from_slice(&u32::MAX.to_ne_bytes()); // mask: set every flag as given
    b.attr(svc_attr::FLAGS, &flags);
    b.u32(svc_attr::TIMEOUT, vs.timeout);
    b.u32(svc_attr::NETMASK, vs.netmask);
    b.end_nest();
}

/// `IPVS_CMD_NEW_SERVICE` (create) or `IPVS_CMD_SET_SERVICE` (update) for `vs`.
pub fn encode_service(family: u16, command: u8, vs: &VirtualServer) -> Vec<u8> {
    let mut b = genl(family, command, NLM_F_REQUEST | NLM_F_ACK);
    put_service(&mut b, vs);
    b.finish()
}

/// `IPVS_CMD_DEL_SERVICE` for `key`.
pub fn encode_del_service(family: u16, key: &ServiceKey) -> Vec<u8> {
    let mut b = genl(family, cmd::DEL_SERVICE, NLM_F_REQUEST | NLM_F_ACK);
    b.begin_nest(cmd_attr::SERVICE);
    put_service_key(&mut b, key);
    b.end_nest();
    b.finish()
}

/// `IPVS_CMD_NEW_DEST`, `SET_DEST` or (with only the key used) `DEL_DEST`.
pub fn encode_dest(family: u16, command: u8, service: &ServiceKey, rs: &RealServer) -> Vec<u8> {
    let mut b = genl(family, command, NLM_F_REQUEST | NLM_F_ACK);
    b.begin_nest(cmd_attr::SERVICE);
    put_service_key(&mut b, service);
    b.end_nest();
    b.begin_nest(cmd_attr::DEST);
    b.attr(dest_attr::ADDR, &inet_addr(&rs.key.addr));
    b.be16(dest_attr::PORT, rs.key.port);
    if command != cmd::DEL_DEST {
        b.u32(dest_attr::FWD_METHOD, rs.forward.to_u32());
        b.u32(dest_attr::WEIGHT, rs.weight);
        b.u32(dest_attr::U_THRESH, 0);
        b.u32(dest_attr::L_THRESH, 0);
    }
    b.u16(dest_attr::ADDR_FAMILY, af(&rs.key.addr));
    b.end_nest();
    b.finish()
}

/// Dump request for every virtual server.
pub fn encode_dump_services(family: u16) -> Vec<u8> {
    genl(family, cmd::GET_SERVICE, NLM_F_REQUEST | NLM_F_DUMP).finish()
}

/// Dump request for the real servers of one virtual server.
pub fn encode_dump_dests(family: u16, service: &ServiceKey) -> Vec<u8> {
    let mut b = genl(family, cmd::GET_DEST, NLM_F_REQUEST | NLM_F_DUMP);
    b.begin_nest(cmd_attr::SERVICE);
    put_service_key(&mut b, service);
    b.end_nest();
    b.finish()
}

/// `IPVS_CMD_SET_CONFIG`: only the non-zero timeouts are sent (0 = leave the kernel's).
pub fn encode_set_timeouts(family: u16, t: &Timeouts) -> Vec<u8> {
    let mut b = genl(family, cmd::SET_CONFIG, NLM_F_REQUEST | NLM_F_ACK);
    for (kind, v) in [
        (cmd_attr::TIMEOUT_TCP, t.tcp),
        (cmd_attr::TIMEOUT_TCP_FIN, t.tcp_fin),
        (cmd_attr::TIMEOUT_UDP, t.udp),
    ] {
        if v != 0 {
            b.u32(kind, v);
        }
    }
    b.finish()
}

/// `IPVS_CMD_GET_CONFIG` (the timeouts).
pub fn encode_get_timeouts(family: u16) -> Vec<u8> {
    genl(family, cmd::GET_CONFIG, NLM_F_REQUEST).finish()
}

/// `IPVS_CMD_GET_INFO`.
pub fn encode_get_info(family: u16) -> Vec<u8> {
    genl(family, cmd::GET_INFO, NLM_F_REQUEST).finish()
}

/// The attributes of a generic-netlink payload (after its 4-byte `genlmsghdr`).
fn genl_attrs(payload: &[u8]) -> Attrs<'_> {
    Attrs::new(payload.get(4..).unwrap_or(&[]))
}

/// Decode one service of a `GET_SERVICE` dump reply payload. `None`: not a service we can
/// represent (fwmark services, unknown protocol or family); callers leave those alone.
pub fn decode_service(payload: &[u8]) -> Option<VirtualServer> {
    let svc = genl_attrs(payload).find(|a| a.kind == cmd_attr::SERVICE)?;
    let (mut family, mut proto, mut addr, mut port) = (None, None, None, None);
    let (mut sched, mut flags, mut timeout, mut netmask, mut fwmark) = (String::new(), 0, 0, 0, 0);
    for a in svc.nested() {
        match a.kind {
            svc_attr::AF => family = a.u16(),
            svc_attr::PROTOCOL => proto = a.u16(),
            svc_attr::ADDR => addr = Some(a.payload),
            svc_attr::PORT => port = a.be16(),
            svc_attr::FWMARK => fwmark = a.u32().unwrap_or(0),
            svc_attr::SCHED_NAME => sched = a.str().unwrap_or("").to_string(),
            svc_attr::FLAGS => flags = a.u32().unwrap_or(0),
            svc_attr::TIMEOUT => timeout = a.u32().unwrap_or(0),
            svc_attr::NETMASK => netmask = a.u32().unwrap_or(0),
            _ => {}
        }
    }
    if fwmark != 0 {
        return None;
    }
    let addr = parse_inet_addr(family?, addr?)?;
    Some(VirtualServer {
        key: ServiceKey {
            protocol: proto_from(proto?)?,
            addr,
            port: port?,
        },
        scheduler: sched,
        flags: flags & !SVC_F_HASHED,
        timeout,
        netmask,
    })
}

/// Decode one real server of a `GET_DEST` dump reply payload. `family` is the virtual
/// server's address family, used when the kernel omits `ADDR_FAMILY` (older kernels).
pub fn decode_dest(payload: &[u8], family: u16) -> Option<(RealServer, RealCounters)> {
    let dest = genl_attrs(payload).find(|a| a.kind == cmd_attr::DEST)?;
    let (mut addr, mut port, mut fwd, mut weight, mut fam) = (None, None, 0, 0, family);
    let mut counters = RealCounters::default();
    for a in dest.nested() {
        match a.kind {
            dest_attr::ADDR => addr = Some(a.payload),
            dest_attr::PORT => port = a.be16(),
            dest_attr::FWD_METHOD => fwd = a.u32().unwrap_or(0),
            dest_attr::WEIGHT => weight = a.u32().unwrap_or(0),
            dest_attr::ACTIVE_CONNS => counters.active = a.u32().unwrap_or(0),
            dest_attr::INACT_CONNS => counters.inactive = a.u32().unwrap_or(0),
            dest_attr::PERSIST_CONNS => counters.persistent = a.u32().unwrap_or(0),
            dest_attr::ADDR_FAMILY => fam = a.u16().unwrap_or(family),
            _ => {}
        }
    }
    let addr = parse_inet_addr(fam, addr?)?;
    Some((
        RealServer {
            key: RealKey { addr, port: port? },
            weight,
            forward: Forward::from_u32(fwd),
        },
        counters,
    ))
}

/// Decode a `GET_CONFIG` reply payload.
pub fn decode_timeouts(payload: &[u8]) -> Timeouts {
    let mut t = Timeouts::default();
    for a in genl_attrs(payload) {
        match a.kind {
            cmd_attr::TIMEOUT_TCP => t.tcp = a.u32().unwrap_or(0),
            cmd_attr::TIMEOUT_TCP_FIN => t.tcp_fin = a.u32().unwrap_or(0),
            cmd_attr::TIMEOUT_UDP => t.udp = a.u32().unwrap_or(0),
            _ => {}
        }
    }
    t
}

/// Decode a `GET_INFO` reply payload.
pub fn decode_info(payload: &[u8]) -> Info {
    let mut info = Info::default();
    for a in genl_attrs(payload) {
        match a.kind {
            info_attr::VERSION => info.version = a.u32().unwrap_or(0),
            info_attr::CONN_TAB_SIZE => info.conn_tab_size = a.u32().unwrap_or(0),
            _ => {}
        }
    }
    info
}

/// Encoders of replies, as the kernel sends them: used by tests (round trips) and by the
/// in-memory fake.
pub mod reply {
    use super::*;

    /// A `GET_SERVICE` dump entry as the kernel writes it.
    pub fn service(family: u16, vs: &VirtualServer) -> Vec<u8> {
        let mut b = genl(family, cmd::NEW_SERVICE, 0);
        put_service(&mut b, vs);
        b.finish()
    }

    /// A `GET_DEST` dump entry as the kernel writes it.
    pub fn dest(family: u16, rs: &RealServer, c: &RealCounters) -> Vec<u8> {
        let mut b = genl(family, cmd::NEW_DEST, 0);
        b.begin_nest(cmd_attr::DEST);
        b.attr(dest_attr::ADDR, &inet_addr(&rs.key.addr));
        b.be16(dest_attr::PORT, rs.key.port);
        b.u32(dest_attr::FWD_METHOD, rs.forward.to_u32());
        b.u32(dest_attr::WEIGHT, rs.weight);
        b.u32(dest_attr::ACTIVE_CONNS, c.active);
        b.u32(dest_attr::INACT_CONNS, c.inactive);
        b.u32(dest_attr::PERSIST_CONNS, c.persistent);
        b.u16(dest_attr::ADDR_FAMILY, af(&rs.key.addr));
        b.end_nest();
        b.finish()
    }

    /// A `GET_CONFIG` answer.
    pub fn timeouts(family: u16, t: &Timeouts) -> Vec<u8> {
        let mut b = genl(family, cmd::GET_CONFIG, 0);
        b.u32(cmd_attr::TIMEOUT_TCP, t.tcp);
        b.u32(cmd_attr::TIMEOUT_TCP_FIN, t.tcp_fin);
        b.u32(cmd_attr::TIMEOUT_UDP, t.udp);
        b.finish()
    }

    /// A `GET_INFO` answer.
    pub fn info(family: u16, i: &Info) -> Vec<u8> {
        let mut b = genl(family, cmd::GET_INFO, 0);
        b.u32(info_attr::VERSION, i.version);
        b.u32(info_attr::CONN_TAB_SIZE, i.conn_tab_size);
        b.finish()
    }
}
