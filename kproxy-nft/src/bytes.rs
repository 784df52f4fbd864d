//! Plan keys and values as kernel bytes: pure (no libnftnl, no socket), shared by the netlink
//! encoder and the fake kernel (which checks key and data lengths against each set's).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::tx::{RawData, RawElement};
use crate::plan::{ChainRef, Element, Key, SetId, Value, Verdict};

const NFTNL_UDATA_COMMENT: u8 = 0;
const NFTNL_UDATA_SET_ELEM_FLAGS: u8 = 1;
/// nft truncates comments at 128 bytes.
pub(crate) const COMMENT_MAX: usize = 127;

/// A comment as nft stores it in userdata: type 0, length, NUL-terminated text.
pub(crate) fn comment_udata(text: &str) -> Vec<u8> {
    let mut t = text.as_bytes();
    if t.len() > COMMENT_MAX {
        t = &t[..COMMENT_MAX];
    }
    let mut v = Vec::with_capacity(t.len() + 3);
    v.push(NFTNL_UDATA_COMMENT);
    v.push((t.len() + 1) as u8);
    v.extend_from_slice(t);
    v.push(0);
    v
}

/// Kernel bytes of a key or a value, on the stack (the longest key, `addr . proto . port .
/// network` in IPv6, is 40 bytes): encoding 100k+ elements must not allocate per element.
#[derive(Clone, Copy)]
pub(crate) struct Bytes {
    buf: [u8; 40],
    len: usize,
}

impl Bytes {
    fn new() -> Self {
        Bytes { buf: [0; 40], len: 0 }
    }

    fn extend_from_slice(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    /// The bytes written so far.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn ip_bytes(ip: IpAddr, out: &mut Bytes) {
    match ip {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

fn ip_vec(ip: IpAddr) -> Vec<u8> {
    let mut b = Bytes::new();
    ip_bytes(ip, &mut b);
    b.as_slice().to_vec()
}

/// A field of a concatenation: its bytes padded to 4 (the padding is already zero).
fn padded(out: &mut Bytes, bytes: &[u8]) {
    out.extend_from_slice(bytes);
    out.len = out.len.div_ceil(4) * 4;
}

/// The key's bytes and, for concatenated intervals, its end's.
pub(crate) fn key_bytes(key: &Key) -> (Bytes, Option<Bytes>) {
    let mut k = Bytes::new();
    let mut end = None;
    match *key {
        Key::Addr(ip) => ip_bytes(ip, &mut k),
        Key::Net(n) => ip_bytes(n.network(), &mut k),
        Key::AddrPair(a, b) => {
            ip_bytes(a, &mut k);
            ip_bytes(b, &mut k);
        }
        Key::Dest(ip, p, port) => {
            ip_bytes(ip, &mut k);
            padded(&mut k, &[p.number()]);
            padded(&mut k, &port.to_be_bytes());
        }
        Key::Port(p, port) => {
            padded(&mut k, &[p.number()]);
            padded(&mut k, &port.to_be_bytes());
        }
        Key::DestSlot(ip, p, port, i) => {
            ip_bytes(ip, &mut k);
            padded(&mut k, &[p.number()]);
            padded(&mut k, &port.to_be_bytes());
            k.extend_from_slice(&i.to_ne_bytes());
        }
        Key::PortSlot(p, port, i) => {
            padded(&mut k, &[p.number()]);
            padded(&mut k, &port.to_be_bytes());
            k.extend_from_slice(&i.to_ne_bytes());
        }
        Key::DestPortNet(ip, p, port, n) => {
            ip_bytes(ip, &mut k);
            padded(&mut k, &[p.number()]);
            padded(&mut k, &port.to_be_bytes());
            let mut e = k;
            ip_bytes(n.network(), &mut k);
            ip_bytes(n.broadcast(), &mut e);
            end = Some(e);
        }
    }
    (k, end)
}

/// `addr . port` of an endpoint.
pub(crate) fn endpoint_bytes(sa: SocketAddr) -> Bytes {
    let mut d = Bytes::new();
    ip_bytes(sa.ip(), &mut d);
    padded(&mut d, &sa.port().to_be_bytes());
    d
}

/// The verdict code of a map value: `NF_DROP`, `NFT_JUMP`, `NFT_GOTO`.
pub(crate) fn verdict_code(v: Verdict) -> i32 {
    match v {
        Verdict::Drop => crate::tx::NF_DROP,
        Verdict::Jump(_) => crate::tx::NFT_JUMP,
        Verdict::Goto(_) => crate::tx::NFT_GOTO,
    }
}

/// `NF_DROP`, `NFT_JUMP`, `NFT_GOTO`.
pub(crate) fn verdict(v: Verdict) -> RawData {
    RawData::Verdict(verdict_code(v), v.chain().map(ChainRef::name))
}

/// A plan element as kernel bytes (not for single-field interval sets: see [`intervals`]).
pub(crate) fn raw_element(e: &Element) -> RawElement {
    let (key, key_end) = key_bytes(&e.key);
    let (key, key_end) = (key.as_slice().to_vec(), key_end.map(|k| k.as_slice().to_vec()));
    let data = match e.value {
        Value::None => RawData::None,
        Value::Endpoint(sa) => RawData::Bytes(endpoint_bytes(sa).as_slice().to_vec()),
        Value::Verdict(v) => verdict(v),
    };
    let userdata = if e.comment.is_empty() { Vec::new() } else { comment_udata(&e.comment) };
    RawElement { key, key_end, flags: 0, data, userdata, ..RawElement::default() }
}

/// The elements of a single-field interval set (rbtree) as nft encodes them: a leading
/// interval end at the zero address unless a range starts there, each range's start, and the
/// address after its end flagged as an interval end (or an "open" flag up to the last address).
pub(crate) fn intervals(nets: &[IpNet]) -> Vec<RawElement> {
    let mut nets = IpNet::aggregate(&nets.to_vec());
    nets.sort();
    let mut out = Vec::new();
    let end_flag = 1; // NFT_SET_ELEM_INTERVAL_END
    if let Some(first) = nets.first() {
        let zero = match first {
            IpNet::V4(_) => IpAddr::from([0u8; 4]),
            IpNet::V6(_) => IpAddr::from([0u8; 16]),
        };
        if first.network() != zero {
            out.push(RawElement { key: ip_vec(zero), flags: end_flag, ..Default::default() });
        }
    }
    for n in nets {
        let key = ip_vec(n.network());
        match next_addr(n.broadcast()) {
            Some(after) => {
                out.push(RawElement { key, ..Default::default() });
                out.push(RawElement { key: ip_vec(after), flags: end_flag, ..Default::default() });
            }
            None => {
                // Up to the last address: nft marks the start as an open interval.
                let userdata = vec![NFTNL_UDATA_SET_ELEM_FLAGS, 4, 1, 0, 0, 0];
                out.push(RawElement { key, userdata, ..Default::default() });
            }
        }
    }
    out
}

fn next_addr(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::from(std::net::Ipv4Addr::from(n))),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::from(std::net::Ipv6Addr::from(n))),
    }
}

/// Whether elements of this set are encoded with [`intervals`].
pub(crate) fn is_rbtree(set: SetId) -> bool {
    set.is_interval() && set != SetId::FirewallAllow
}
