//! The named sets and maps of the IPVS-mode table: their NEWSET attributes and element
//! encoding. Rules look them up with kproxy-nft's `in_named_set` / `vmap_named`, so the
//! number of rules does not grow with services; services only add elements.

use std::net::IpAddr;

use kproxy_core::model::{IpFamily, Protocol};
use kproxy_nft::lowlevel::{RawData, RawElement};
use kproxy_nft::lowlevel::Field;

/// What a map yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    /// A plain set.
    None,
    /// A DNAT target `addr . port`.
    Target,
}

/// One set of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetSpec {
    /// Set name.
    pub name: &'static str,
    /// Key fields, concatenated.
    pub key: &'static [Field],
    /// Map data.
    pub data: Data,
}

const DPT: &[Field] = &[Field::Daddr, Field::L4proto, Field::Dport];

const fn spec(name: &'static str, key: &'static [Field], data: Data) -> SetSpec {
    SetSpec { name, key, data }
}

/// ClusterIP destinations masqueraded from outside the pod networks.
pub const CLUSTER_MASQ: SetSpec = spec("cluster-masq", DPT, Data::None);
/// eTP=Cluster external destinations (always masqueraded).
pub const EXTERNAL_MASQ: SetSpec = spec("external-masq", DPT, Data::None);
/// Service ports of the VIPs (accepted in `input`).
pub const SERVICE_PORTS: SetSpec = spec("service-ports", DPT, Data::None);
/// VIPs held by kube-ipvs0 (anything but their service ports is rejected).
pub const VIPS: SetSpec = spec("vips", &[Field::Daddr], Data::None);
/// NodePorts and health check NodePorts (accepted on local addresses).
pub const NODE_PORTS: SetSpec = SetSpec {
    name: "node-ports",
    key: &[Field::L4proto, Field::Dport],
    data: Data::None,
};
/// Hairpin: `endpoint . endpoint`.
pub const HAIRPIN: SetSpec = SetSpec {
    name: "hairpin",
    key: &[Field::Saddr, Field::Daddr],
    data: Data::None,
};
/// eTP=Local external destinations -> their ClusterIP:port (short-circuit).
pub const SHORT_CIRCUIT: SetSpec = spec("short-circuit", DPT, Data::Target);
/// eTP=Local external destinations without local endpoints (dropped from outside).
pub const NO_LOCAL: SetSpec = spec("no-local-endpoints", DPT, Data::None);

/// Every set, in creation order.
pub const ALL: &[SetSpec] = &[
    CLUSTER_MASQ,
    EXTERNAL_MASQ,
    SERVICE_PORTS,
    VIPS,
    NODE_PORTS,
    HAIRPIN,
    SHORT_CIRCUIT,
    NO_LOCAL,
];

use kproxy_nft::lowlevel::{
    NFTA_SET_DATA_LEN, NFTA_SET_DATA_TYPE, NFTA_SET_FLAGS, NFTA_SET_KEY_LEN, NFTA_SET_KEY_TYPE,
    NFT_SET_MAP,
};
/// nft's datatypes, for `nft list` to show the keys as addresses, protocols and ports.
const TYPE_IPV4: u32 = 7;
const TYPE_IPV6: u32 = 8;
const TYPE_INET_PROTO: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
/// nft's concatenated type: each member shifted in by 6 bits.
const TYPE_BITS: u32 = 6;

fn addr_type(family: IpFamily) -> u32 {
    match family {
        IpFamily::V4 => TYPE_IPV4,
        IpFamily::V6 => TYPE_IPV6,
    }
}

fn field_type(family: IpFamily, f: Field) -> u32 {
    match f {
        Field::L4proto => TYPE_INET_PROTO,
        Field::Dport => TYPE_INET_SERVICE,
        _ => addr_type(family),
    }
}

fn field_len(family: IpFamily, f: Field) -> u32 {
    match f {
        Field::L4proto | Field::Dport => 4,
        _ => kproxy_nft::lowlevel::addr_len(family),
    }
}

fn attr_u32(out: &mut Vec<u8>, kind: u16, v: u32) {
    out.extend_from_slice(&8u16.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&v.to_be_bytes());
}

impl SetSpec {
    /// The NEWSET attributes after table, name and id (for `Transaction::add_set_raw`).
    pub fn raw(&self, family: IpFamily) -> Vec<u8> {
        let concat =
            |fields: &mut dyn Iterator<Item = u32>| fields.fold(0u32, |t, x| (t << TYPE_BITS) | x);
        let key_type = concat(&mut self.key.iter().map(|f| field_type(family, *f)));
        let key_len: u32 = self.key.iter().map(|f| field_len(family, *f)).sum();
        let mut out = Vec::new();
        let flags = if self.data == Data::None {
            0
        } else {
            NFT_SET_MAP
        };
        attr_u32(&mut out, NFTA_SET_FLAGS, flags);
        attr_u32(&mut out, NFTA_SET_KEY_TYPE, key_type);
        attr_u32(&mut out, NFTA_SET_KEY_LEN, key_len);
        if self.data == Data::Target {
            let t = (addr_type(family) << TYPE_BITS) | TYPE_INET_SERVICE;
            attr_u32(&mut out, NFTA_SET_DATA_TYPE, t);
            attr_u32(
                &mut out,
                NFTA_SET_DATA_LEN,
                kproxy_nft::lowlevel::addr_len(family) + 4,
            );
        }
        out
    }
}

/// One member of an element key or a map value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// An address.
    Addr(IpAddr),
    /// `meta l4proto`.
    Proto(Protocol),
    /// A port.
    Port(u16),
}

/// Kernel bytes of a concatenation: each member padded to 4 bytes.
pub fn bytes(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        match p {
            Part::Addr(IpAddr::V4(a)) => out.extend_from_slice(&a.octets()),
            Part::Addr(IpAddr::V6(a)) => out.extend_from_slice(&a.octets()),
            Part::Proto(p) => out.extend_from_slice(&[p.number(), 0, 0, 0]),
            Part::Port(n) => {
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
        }
    }
    out
}

/// An element of `key` (and, for a map, `value`).
pub fn element(key: &[Part], value: Option<&[Part]>) -> RawElement {
    RawElement {
        key: bytes(key),
        data: match value {
            Some(v) => RawData::Bytes(bytes(v)),
            None => RawData::None,
        },
        ..Default::default()
    }
}
