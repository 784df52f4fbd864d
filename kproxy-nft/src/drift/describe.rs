//! A set element's kernel bytes read back into what it says, using the key and data shapes
//! kproxy declares for each of its sets: nft's notation (`198.18.0.10 . tcp . 80 : goto
//! cluster-2`) for people, and the addresses and ports it names for callers that pick the
//! elements of one Service.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kproxy_core::model::{IpFamily, Protocol};

use crate::plan::{addr_len, SetId};
use crate::trace::table::ELEM_INTERVAL_END;
use crate::tx::{RawData, RawElement, NFT_GOTO, NFT_JUMP, NF_ACCEPT, NF_DROP};

/// One field of a key or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Addr,
    Proto,
    Port,
    /// The endpoint slot of a backend map (`numgen` value, host byte order).
    Index,
}

/// What an element names, beyond its text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mentions {
    /// Every address in the key and the data.
    pub addrs: Vec<IpAddr>,
    /// The key's protocol and port, if it has them.
    pub port: Option<(Protocol, u16)>,
}

fn key_fields(set: SetId) -> &'static [Field] {
    use Field::*;
    match set {
        SetId::PodCidrs | SetId::ClusterIps | SetId::ServiceCidrs | SetId::NodeportIps | SetId::ExternalIps => &[Addr],
        SetId::Hairpin => &[Addr, Addr],
        SetId::ServiceIps
        | SetId::NoEndpointServices
        | SetId::ExternalShortCircuit
        | SetId::AffinityServices
        | SetId::FirewallIps => &[Addr, Proto, Port],
        SetId::ServiceNodeports | SetId::NoEndpointNodeports | SetId::NodeportShortCircuit | SetId::AffinityNodeports => {
            &[Proto, Port]
        }
        SetId::FirewallAllow => &[Addr, Proto, Port, Addr],
        SetId::ClusterBackends | SetId::LocalBackends => &[Addr, Proto, Port, Index],
        SetId::NodeportBackends | SetId::NodeportLocalBackends => &[Proto, Port, Index],
        SetId::Affinity => &[Addr, Addr, Proto, Port],
        SetId::NodeportAffinity => &[Addr, Proto, Port],
    }
}

fn protocol(n: u8) -> Option<Protocol> {
    [Protocol::Tcp, Protocol::Udp, Protocol::Sctp].into_iter().find(|p| p.number() == n)
}

fn addr(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

/// Decodes `bytes` as `fields`; `None` when the length does not fit the shape.
fn decode(fields: &[Field], family: IpFamily, bytes: &[u8], m: &mut Mentions) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut proto = None;
    for f in fields {
        let len = match f {
            Field::Addr => addr_len(family) as usize,
            _ => 4,
        };
        let (b, r) = (rest.get(..len)?, &rest[len..]);
        rest = r;
        match f {
            Field::Addr => {
                let a = addr(b)?;
                m.addrs.push(a);
                out.push(a.to_string());
            }
            Field::Proto => {
                let p = protocol(b[0])?;
                proto = Some(p);
                out.push(p.to_string());
            }
            Field::Port => {
                let port = u16::from_be_bytes([b[0], b[1]]);
                if let Some(p) = proto.take() {
                    m.port.get_or_insert((p, port));
                }
                out.push(port.to_string());
            }
            Field::Index => out.push(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]).to_string()),
        }
    }
    rest.is_empty().then_some(out)
}

fn hex(b: &[u8]) -> String {
    format!("0x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

/// The element as nft would list it, and what it names.
pub fn describe(set: SetId, family: IpFamily, e: &RawElement) -> (String, Mentions) {
    let mut m = Mentions::default();
    let fields = key_fields(set);
    let mut text = match decode(fields, family, &e.key, &mut m) {
        Some(parts) => {
            let mut parts = parts;
            // A concatenated interval: the last field is a range up to the key end's.
            if let Some(end) = &e.key_end {
                let mut ignored = Mentions::default();
                if let Some(last) = decode(fields, family, end, &mut ignored).and_then(|p| p.last().cloned()) {
                    if let Some(first) = parts.last_mut() {
                        if *first != last {
                            *first = format!("{first}-{last}");
                        }
                    }
                }
            }
            parts.join(" . ")
        }
        None => hex(&e.key),
    };
    if e.flags & ELEM_INTERVAL_END != 0 {
        text.push_str(" (interval end)");
    }
    match &e.data {
        RawData::None => {}
        RawData::Verdict(code, chain) => {
            let verdict = match (*code, chain) {
                (NFT_GOTO, Some(c)) => format!("goto {c}"),
                (NFT_JUMP, Some(c)) => format!("jump {c}"),
                (NF_DROP, _) => "drop".into(),
                (NF_ACCEPT, _) => "accept".into(),
                (code, _) => format!("verdict {code}"),
            };
            text.push_str(&format!(" : {verdict}"));
        }
        RawData::Bytes(b) => {
            let mut ignored = m.clone();
            let value = decode(&[Field::Addr, Field::Port], family, b, &mut ignored);
            m.addrs = ignored.addrs;
            text.push_str(&format!(" : {}", value.map_or_else(|| hex(b), |v| v.join(" . "))));
        }
    }
    (text, m)
}
