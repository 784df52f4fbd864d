//! rtnetlink, minimal: the `kube-ipvs0` dummy link, its addresses, and the node's local
//! addresses (for NodePorts). Pure encoders/decoders plus a small [`Rtnl`] handle.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Errno, Error};
use kproxy_netlink::{
    Attrs, MsgBuilder, Protocol, Socket, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;

/// One address of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkAddr {
    /// Interface index.
    pub index: u32,
    /// Address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0] = libc::AF_UNSPEC as u8;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

fn ifaddrmsg(addr: &IpAddr, prefix_len: u8, index: u32) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0] = family_of(addr);
    h[1] = prefix_len;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h
}

fn family_of(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn addr_bytes(addr: &IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `RTM_NEWLINK` creating a dummy link named `name`, up.
pub fn encode_new_dummy(name: &str) -> Vec<u8> {
    let mut b = MsgBuilder::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    )
    .header(&ifinfomsg(0, IFF_UP, IFF_UP));
    b.str(IFLA_IFNAME, name);
    b.begin_nest(IFLA_LINKINFO);
    b.str(IFLA_INFO_KIND, "dummy");
    b.end_nest();
    b.finish()
}

/// `RTM_NEWLINK` setting link `index` up.
pub fn encode_link_up(index: u32) -> Vec<u8> {
    MsgBuilder::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK)
        .header(&ifinfomsg(index as i32, IFF_UP, IFF_UP))
        .finish()
}

/// `RTM_DELLINK` of link `index`.
pub fn encode_del_link(index: u32) -> Vec<u8> {
    MsgBuilder::new(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK)
        .header(&ifinfomsg(index as i32, 0, 0))
        .finish()
}

/// `RTM_GETLINK` by name.
pub fn encode_get_link(name: &str) -> Vec<u8> {
    let mut b = MsgBuilder::new(RTM_GETLINK, NLM_F_REQUEST).header(&ifinfomsg(0, 0, 0));
    b.str(IFLA_IFNAME, name);
    b.finish()
}

/// `RTM_GETLINK` dump.
pub fn encode_dump_links() -> Vec<u8> {
    MsgBuilder::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP)
        .header(&ifinfomsg(0, 0, 0))
        .finish()
}

/// (index, flags) of an `RTM_NEWLINK` payload.
pub fn decode_link(payload: &[u8]) -> Option<(u32, u32)> {
    let h = payload.get(..16)?;
    let index = i32::from_ne_bytes(h[4..8].try_into().ok()?);
    let flags = u32::from_ne_bytes(h[8..12].try_into().ok()?);
    Some((index as u32, flags))
}

/// `RTM_NEWADDR` / `RTM_DELADDR` of a host address on link `index`.
pub fn encode_addr(add: bool, index: u32, addr: &IpAddr, prefix_len: u8) -> Vec<u8> {
    let (t, flags) = if add {
        (
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    } else {
        (RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK)
    };
    let mut b = MsgBuilder::new(t, flags).header(&ifaddrmsg(addr, prefix_len, index));
    let bytes = addr_bytes(addr);
    b.attr(IFA_LOCAL, &bytes);
    b.attr(IFA_ADDRESS, &bytes);
    if add && addr.is_ipv6() {
        // No duplicate address detection: a VIP must be usable at once, not "tentative".
        b.u32(IFA_FLAGS, IFA_F_NODAD);
    }
    b.finish()
}

/// `RTM_GETADDR` dump (all families).
pub fn encode_dump_addrs() -> Vec<u8> {
    MsgBuilder::new(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP)
        .header(&[0u8; 8])
        .finish()
}

/// Decode an `RTM_NEWADDR` payload (IFA_LOCAL preferred, as for point-to-point links).
pub fn decode_addr(payload: &[u8]) -> Option<LinkAddr> {
    let h = payload.get(..8)?;
    let (family, prefix_len) = (h[0], h[1]);
    let index = u32::from_ne_bytes(h[4..8].try_into().ok()?);
    let mut local = None;
    let mut address = None;
    for a in Attrs::new(&payload[8..]) {
        match a.kind {
            IFA_LOCAL => local = Some(a.payload),
            IFA_ADDRESS => address = Some(a.payload),
            _ => {}
        }
    }
    let bytes = local.or(address)?;
    let addr = if family == libc::AF_INET as u8 {
        IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes.get(..4)?).ok()?))
    } else if family == libc::AF_INET6 as u8 {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes.get(..16)?).ok()?))
    } else {
        return None;
    };
    Some(LinkAddr {
        index,
        addr,
        prefix_len,
    })
}

/// An rtnetlink handle in the current network namespace.
#[derive(Debug)]
pub struct Rtnl {
    sock: Socket,
}

impl Rtnl {
    /// Open an rtnetlink socket.
    pub fn open() -> Result<Rtnl, Error> {
        let sock = Socket::open(Protocol::Route).map_err(|source| Error::Socket {
            what: "rtnetlink",
            source,
        })?;
        Ok(Rtnl { sock })
    }

    fn one(&mut self, step: &'static str, link: &str, msg: Vec<u8>) -> Result<(), Error> {
        let v = self.sock.transact(&mut [msg]).map_err(|source| Error::Io {
            step: step.into(),
            source,
        })?;
        v[0].clone().map_err(|e| Error::Link {
            step,
            link: link.to_string(),
            errno: Errno(e.errno),
            hint: "",
        })
    }

    /// Index and flags of the link called `name`, if it exists.
    pub fn link(&mut self, name: &str) -> Result<Option<(u32, u32)>, Error> {
        match self.sock.request(encode_get_link(name)) {
            Ok(Ok(replies)) => Ok(replies.iter().find_map(|(_, p)| decode_link(p))),
            Ok(Err(e)) if e.errno == libc::ENODEV || e.errno == libc::ENOENT => Ok(None),
            Ok(Err(e)) => Err(Error::Link {
                step: "looking up",
                link: name.into(),
                errno: Errno(e.errno),
                hint: "",
            }),
            Err(source) => Err(Error::Io {
                step: format!("looking up link {name}"),
                source,
            }),
        }
    }

    /// Create the dummy link `name` if missing, set it up, and return its index.
    pub fn ensure_dummy(&mut self, name: &str) -> Result<u32, Error> {
        if self.link(name)?.is_none() {
            let msg = encode_new_dummy(name);
            let v = self.sock.transact(&mut [msg]).map_err(|source| Error::Io {
                step: "creating link".into(),
                source,
            })?;
            match &v[0] {
                Ok(()) => {}
                Err(e) if e.errno == libc::EEXIST => {}
                Err(e) => {
                    return Err(Error::Link {
                        step: "creating dummy link",
                        link: name.into(),
                        errno: Errno(e.errno),
                        hint: " (does the kernel have the dummy module? `modprobe dummy`)",
                    })
                }
            }
        }
        let (index, flags) = self.link(name)?.ok_or(Error::Link {
            step: "finding the created link",
            link: name.to_string(),
            errno: Errno(libc::ENODEV),
            hint: "",
        })?;
        if flags & IFF_UP == 0 {
            self.one("setting up", name, encode_link_up(index))?;
        }
        Ok(index)
    }

    /// Delete link `name` if it exists.
    pub fn delete_link(&mut self, name: &str) -> Result<(), Error> {
        if let Some((index, _)) = self.link(name)? {
            self.one("deleting", name, encode_del_link(index))?;
        }
        Ok(())
    }

    /// Every address of every link.
    pub fn addresses(&mut self) -> Result<Vec<LinkAddr>, Error> {
        let r = self
            .sock
            .request(encode_dump_addrs())
            .map_err(|source| Error::Io {
                step: "dumping addresses".into(),
                source,
            })?
            .map_err(|e| Error::Kernel {
                step: "dumping addresses".into(),
                errno: Errno(e.errno),
            })?;
        Ok(r.iter()
            .filter(|(t, _)| *t == RTM_NEWADDR)
            .filter_map(|(_, p)| decode_addr(p))
            .collect())
    }

    /// Loopback interface indexes (excluded from NodePort addresses).
    pub fn loopback_indexes(&mut self) -> Result<Vec<u32>, Error> {
        let r = self
            .sock
            .request(encode_dump_links())
            .map_err(|source| Error::Io {
                step: "dumping links".into(),
                source,
            })?
            .map_err(|e| Error::Kernel {
                step: "dumping links".into(),
                errno: Errno(e.errno),
            })?;
        Ok(r.iter()
            .filter_map(|(_, p)| decode_link(p))
            .filter(|(_, f)| f & IFF_LOOPBACK != 0)
            .map(|(i, _)| i)
            .collect())
    }

    /// Add (`add`) or delete host addresses on link `index`, pipelined; returns the
    /// per-address results.
    pub fn change_addrs(
        &mut self,
        add: bool,
        index: u32,
        addrs: &[IpAddr],
    ) -> Result<Vec<Result<(), Errno>>, Error> {
        let mut msgs: Vec<Vec<u8>> = addrs
            .iter()
            .map(|a| encode_addr(add, index, a, if a.is_ipv4() { 32 } else { 128 }))
            .collect();
        let v = self.sock.transact(&mut msgs).map_err(|source| Error::Io {
            step: "changing addresses".into(),
            source,
        })?;
        Ok(v.into_iter().map(|r| r.map_err(|e| Errno(e.errno))).collect())
    }
}
