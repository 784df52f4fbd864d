//! Set-element messages written straight into the batch buffer, byte for byte as libnftnl
//! 1.2.4 writes them (`nftnl_set_elems_nlmsg_build_payload`).
//!
//! Why not libnftnl: it allocates one `nftnl_set_elem` per element plus one copy per
//! attribute and walks a linked list, which cost more than everything else in a cold sync
//! of 100k+ elements. Rules, chains and sets (a few hundred messages) still go through it.
//! A unit test compares both encodings of the same elements.

use kproxy_netlink::{nest_end, nest_start, put, put_strz, NLM_F_REQUEST};

use crate::bytes::COMMENT_MAX;
use crate::tx::{RawData, RawElement};

// The element attributes, shared with the reader (`dump.rs`).
pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;

pub(super) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(super) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(super) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub(super) const NFTA_SET_ELEM_KEY: u16 = 1;
pub(super) const NFTA_SET_ELEM_DATA: u16 = 2;
pub(super) const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub(super) const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
pub(super) const NFTA_SET_ELEM_EXPIRATION: u16 = 5;
pub(super) const NFTA_SET_ELEM_USERDATA: u16 = 6;
pub(super) const NFTA_SET_ELEM_KEY_END: u16 = 10;
pub(super) const NFTA_DATA_VALUE: u16 = 1;
pub(super) const NFTA_DATA_VERDICT: u16 = 2;
pub(super) const NFTA_VERDICT_CODE: u16 = 1;
pub(super) const NFTA_VERDICT_CHAIN: u16 = 2;

// Attributes go through kproxy-netlink's `put`, `put_strz`, `nest_start` and `nest_end`,
// which write what libmnl's `mnl_attr_put*` / `mnl_attr_nest_*` write.

/// The attributes of one element, borrowed from wherever they live.
pub(crate) struct Parts<'a> {
    /// `NFTA_SET_ELEM_KEY` bytes.
    pub key: &'a [u8],
    /// `NFTA_SET_ELEM_KEY_END` bytes.
    pub key_end: Option<&'a [u8]>,
    /// `NFTA_SET_ELEM_FLAGS`.
    pub flags: u32,
    /// Map data.
    pub data: DataParts<'a>,
    /// `NFTA_SET_ELEM_USERDATA`.
    pub userdata: Userdata<'a>,
    /// `NFTA_SET_ELEM_TIMEOUT` and `NFTA_SET_ELEM_EXPIRATION` in milliseconds.
    pub times: (Option<u64>, Option<u64>),
}

/// Map data of [`Parts`].
pub(crate) enum DataParts<'a> {
    None,
    Bytes(&'a [u8]),
    Verdict(i32, Option<&'a str>),
}

/// Userdata of [`Parts`]: bytes as they are, or a comment encoded on the fly.
pub(crate) enum Userdata<'a> {
    Raw(&'a [u8]),
    /// Encoded like [`crate::bytes::comment_udata`]; none at all when empty.
    Comment(&'a str),
}

impl Parts<'_> {
    /// Upper bound of the encoded size: the formula of [`RawElement::encoded_bound`], which
    /// decides where messages are cut (so it must stay the same for the same bytes).
    pub(crate) fn bound(&self) -> usize {
        let data = match &self.data {
            DataParts::None => 0,
            DataParts::Bytes(b) => b.len() + 16,
            DataParts::Verdict(_, c) => 32 + c.map_or(0, str::len),
        };
        let userdata = match self.userdata {
            Userdata::Raw(b) => b.len(),
            Userdata::Comment("") => 0,
            Userdata::Comment(c) => c.len().min(COMMENT_MAX) + 3,
        };
        let times = 12 * (usize::from(self.times.0.is_some()) + usize::from(self.times.1.is_some()));
        48 + self.key.len() + self.key_end.map_or(0, |k| k.len() + 8) + data + userdata + times
    }
}

/// Something that can be written as one set element.
pub(crate) trait WireElement {
    /// Calls `f` with the element's attributes (which may live on the stack meanwhile).
    fn with_parts<R>(&self, f: impl FnOnce(&Parts<'_>) -> R) -> R;

    /// [`Parts::bound`] of the element (an implementation may know it without the parts).
    fn bound(&self) -> usize {
        self.with_parts(|p| p.bound())
    }
}

impl<T: WireElement> WireElement for &T {
    fn with_parts<R>(&self, f: impl FnOnce(&Parts<'_>) -> R) -> R {
        (**self).with_parts(f)
    }

    fn bound(&self) -> usize {
        (**self).bound()
    }
}

impl WireElement for RawElement {
    fn with_parts<R>(&self, f: impl FnOnce(&Parts<'_>) -> R) -> R {
        let data = match &self.data {
            RawData::None => DataParts::None,
            RawData::Bytes(b) => DataParts::Bytes(b),
            RawData::Verdict(code, chain) => DataParts::Verdict(*code, chain.as_deref()),
        };
        f(&Parts {
            key: &self.key,
            key_end: self.key_end.as_deref(),
            flags: self.flags,
            data,
            userdata: Userdata::Raw(&self.userdata),
            times: (self.timeout_ms, self.expiration_ms),
        })
    }
}

/// `nftnl_set_elem_nlmsg_build_payload` of one element, in libnftnl's attribute order.
fn element(buf: &mut Vec<u8>, e: &Parts<'_>) {
    if e.flags != 0 {
        put(buf, NFTA_SET_ELEM_FLAGS, &e.flags.to_be_bytes());
    }
    if let Some(t) = e.times.0 {
        put(buf, NFTA_SET_ELEM_TIMEOUT, &t.to_be_bytes());
    }
    if let Some(x) = e.times.1 {
        put(buf, NFTA_SET_ELEM_EXPIRATION, &x.to_be_bytes());
    }
    let n = nest_start(buf, NFTA_SET_ELEM_KEY);
    put(buf, NFTA_DATA_VALUE, e.key);
    nest_end(buf, n);
    if let Some(end) = e.key_end {
        let n = nest_start(buf, NFTA_SET_ELEM_KEY_END);
        put(buf, NFTA_DATA_VALUE, end);
        nest_end(buf, n);
    }
    match e.data {
        DataParts::None => {}
        DataParts::Verdict(code, chain) => {
            let n1 = nest_start(buf, NFTA_SET_ELEM_DATA);
            let n2 = nest_start(buf, NFTA_DATA_VERDICT);
            put(buf, NFTA_VERDICT_CODE, &code.to_be_bytes());
            if let Some(c) = chain {
                put_strz(buf, NFTA_VERDICT_CHAIN, c);
            }
            nest_end(buf, n2);
            nest_end(buf, n1);
        }
        DataParts::Bytes(b) => {
            let n = nest_start(buf, NFTA_SET_ELEM_DATA);
            put(buf, NFTA_DATA_VALUE, b);
            nest_end(buf, n);
        }
    }
    match e.userdata {
        Userdata::Raw([]) | Userdata::Comment("") => {}
        Userdata::Raw(b) => put(buf, NFTA_SET_ELEM_USERDATA, b),
        Userdata::Comment(c) => {
            // NFTNL_UDATA_COMMENT (0), length with the NUL, text, NUL.
            let t = &c.as_bytes()[..c.len().min(COMMENT_MAX)];
            let len = 4 + 2 + t.len() + 1;
            buf.extend_from_slice(&(len as u16).to_ne_bytes());
            buf.extend_from_slice(&NFTA_SET_ELEM_USERDATA.to_ne_bytes());
            buf.extend_from_slice(&[0, (t.len() + 1) as u8]);
            buf.extend_from_slice(t);
            buf.push(0);
            buf.resize(buf.len().next_multiple_of(4), 0);
        }
    }
}

/// Appends one NEWSETELEM/DELSETELEM message (`nftnl_nlmsg_build_hdr` +
/// `nftnl_set_elems_nlmsg_build_payload`) to `buf`. `table` and `set` must hold no NUL.
pub(super) fn elements_message(
    buf: &mut Vec<u8>,
    msg: u16,
    family: u16,
    flags: u16,
    seq: u32,
    table: &str,
    set: &str,
    elements: &[impl WireElement],
) {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set below
    buf.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
    buf.extend_from_slice(&[family as u8, 0, 0, 0]); // nfgenmsg: family, version 0, res_id 0
    put_strz(buf, NFTA_SET_ELEM_LIST_SET, set);
    put_strz(buf, NFTA_SET_ELEM_LIST_TABLE, table);
    // libnftnl writes no element list at all for a flush (no elements).
    if !elements.is_empty() {
        let list = nest_start(buf, NFTA_SET_ELEM_LIST_ELEMENTS);
        for (i, e) in elements.iter().enumerate() {
            // libnftnl numbers the list entries 1, 2, 3... (cut to the 16-bit type).
            let n = nest_start(buf, (i + 1) as u16);
            e.with_parts(|p| element(buf, p));
            nest_end(buf, n);
        }
        nest_end(buf, list);
    }
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use crate::plan::{Key, Value};

    use super::super::batch::Batch;
    use crate::bytes;
    use crate::tx::TableFamily;
    use super::super::encode;
    use super::*;

    fn el(key: &[u8], key_end: Option<&[u8]>, flags: u32, data: RawData, userdata: &[u8]) -> RawElement {
        RawElement { key: key.to_vec(), key_end: key_end.map(<[u8]>::to_vec), flags, data, userdata: userdata.to_vec(), ..RawElement::default() }
    }

    /// A variety of every attribute shape: odd lengths (padding), verdicts with and without
    /// chains of every length modulo 4, interval flags, comments up to the cut.
    fn variety() -> Vec<RawElement> {
        let mut v = Vec::new();
        for i in 0..40u8 {
            let key: Vec<u8> = (0..(1 + i % 37)).map(|b| b ^ i).collect();
            let chain = "c".repeat(1 + usize::from(i) % 9);
            let data = match i % 5 {
                0 => RawData::None,
                1 => RawData::Bytes((0..(1 + i % 19)).collect()),
                2 => RawData::Verdict(0, None),
                3 => RawData::Verdict(-3, Some(chain)),
                _ => RawData::Verdict(-4, Some(format!("lb-cluster-{i}"))),
            };
            let comment = bytes::comment_udata(&"x".repeat(usize::from(i) * 5));
            let ud: &[u8] = if i % 3 == 0 { &[] } else { &comment };
            let end: Vec<u8> = key.iter().map(|b| !b).collect();
            let mut e = el(&key, (i % 4 == 1).then_some(&end[..]), u32::from(i % 2), data, ud);
            // Dynamic-set entries carried over a full sync: timeout, with or without expiration.
            if i % 7 < 2 {
                e.timeout_ms = Some(10_800_000 + u64::from(i));
                e.expiration_ms = (i % 7 == 1).then_some(1_234_567 * u64::from(i));
            }
            v.push(e);
        }
        v.extend(bytes::intervals(&["198.18.0.0/16".parse().unwrap(), "0.0.0.0/8".parse().unwrap()]));
        v.extend(bytes::intervals(&["2001:db8::/32".parse().unwrap(), "ff00::/8".parse().unwrap()]));
        v
    }

    fn both(max: usize, els: &[RawElement], msg: u16, flags: u16, verb: &str) -> ((Vec<u8>, Vec<(u32, String)>), (Vec<u8>, Vec<(u32, String)>)) {
        let mut new = Batch::new();
        let mut old = Batch::new();
        for fam in [TableFamily::Ip, TableFamily::Ip6, TableFamily::Inet] {
            new.add_table(fam, "kproxy");
            old.add_table(fam, "kproxy");
            // libnftnl's path adds NLM_F_EXCL to every add itself.
            let excl = if msg == 12 { super::super::batch::NLM_F_EXCL } else { 0 };
            new.elements(msg, flags | excl, fam, "kproxy", "service-ips", els, max, verb);
            old.elements_libnftnl(msg, flags, fam, "kproxy", "service-ips", els, max, verb);
            new.elements(msg, flags | excl, fam, "t\0x", "odd-name1", els, max, verb);
            old.elements_libnftnl(msg, flags, fam, "t\0x", "odd-name1", els, max, verb);
        }
        (new.finish(), old.finish())
    }

    #[test]
    fn same_bytes_as_libnftnl() {
        let els: Vec<RawElement> = variety().into_iter().cycle().take(2500).collect();
        for max in [usize::MAX, 48 * 1024, 300, 1] {
            for (msg, flags, verb) in [(12, 0x400, "add"), (14, 0, "delete")] {
                let (new, old) = both(max, &els, msg, flags, verb);
                assert_eq!(new.1, old.1, "labels differ (max {max})");
                assert_eq!(new.0.len(), old.0.len(), "lengths differ (max {max}, {verb})");
                let first = new.0.iter().zip(&old.0).position(|(a, b)| a != b);
                assert!(first.is_none(), "bytes differ (max {max}, {verb}) at {first:?}: new {:?} old {:?}", &new.0[first.unwrap_or(0).saturating_sub(24)..][..64], &old.0[first.unwrap_or(0).saturating_sub(24)..][..64]);
            }
        }
    }

    #[test]
    fn flush_same_bytes_as_libnftnl() {
        let (new, old) = both(usize::MAX, &[], 14, 0, "flush");
        assert_eq!(new, old);
    }

    /// Plan elements of every key and value shape, comments empty, short and over the cut.
    fn plan_elements() -> Vec<(Key, Value, String)> {
        use crate::plan::{ChainRef, LbKind, Verdict};
        use kproxy_core::model::Protocol;
        let v4: std::net::IpAddr = "198.18.0.7".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8::7".parse().unwrap();
        let mut out = Vec::new();
        for (i, ip) in [v4, v6].into_iter().enumerate() {
            let net: ipnet::IpNet = if i == 0 { "198.18.4.0/22".parse().unwrap() } else { "2001:db8:4::/48".parse().unwrap() };
            let keys = [
                Key::Addr(ip),
                Key::Net(net),
                Key::AddrPair(ip, ip),
                Key::Dest(ip, Protocol::Tcp, 80),
                Key::Port(Protocol::Udp, 30053),
                Key::DestSlot(ip, Protocol::Sctp, 443, 7),
                Key::PortSlot(Protocol::Tcp, 31000, 65_537),
                Key::DestPortNet(ip, Protocol::Udp, 53, net),
            ];
            let values = [
                Value::None,
                Value::Endpoint(std::net::SocketAddr::new(ip, 8080)),
                Value::Verdict(Verdict::Drop),
                Value::Verdict(Verdict::Goto(ChainRef::Lb(LbKind::Cluster, 13))),
                Value::Verdict(Verdict::Jump(ChainRef::Affinity(10_800))),
                Value::Verdict(Verdict::Goto(ChainRef::Reject)),
            ];
            for (k, key) in keys.iter().enumerate() {
                for (v, value) in values.iter().enumerate() {
                    let comment = "ns/name:port-".repeat((k * 3 + v) % 13);
                    out.push((*key, *value, comment));
                }
            }
        }
        out
    }

    #[test]
    fn plan_element_bound_is_the_bound_of_its_parts() {
        let plan = plan_elements();
        for (key, value, comment) in &plan {
            for chain in [None, Some("lb-cluster-13")] {
                let e = encode::PlanElement { key: *key, value: *value, comment, chain };
                assert_eq!(e.bound(), e.with_parts(|p| p.bound()), "{key:?} {value:?} {comment:?}");
            }
        }
    }

    #[test]
    fn plan_elements_same_bytes_as_raw_elements_through_libnftnl() {
        use crate::plan::{Element, SetId};
        use kproxy_core::model::IpFamily;
        let plan = plan_elements();
        let names: Vec<Option<String>> = plan
            .iter()
            .map(|(_, v, _)| match v {
                Value::Verdict(v) => v.chain().map(crate::plan::ChainRef::name),
                _ => None,
            })
            .collect();
        let direct: Vec<encode::PlanElement<'_>> = plan
            .iter()
            .zip(&names)
            .map(|((key, value, comment), chain)| encode::PlanElement { key: *key, value: *value, comment, chain: chain.as_deref() })
            .collect();
        let raw: Vec<RawElement> = plan
            .iter()
            .map(|(key, value, comment)| {
                bytes::raw_element(&Element { family: IpFamily::V4, set: SetId::ServiceIps, key: *key, value: *value, comment: comment.as_str().into() })
            })
            .collect();
        for max in [usize::MAX, 2000, 1] {
            let mut new = Batch::new();
            let mut old = Batch::new();
            // An add carries NLM_F_EXCL, which libnftnl's path adds itself.
            new.elements(12, 0x400 | super::super::batch::NLM_F_EXCL, TableFamily::Ip, "kproxy", "service-ips", &direct, max, "add");
            old.elements_libnftnl(12, 0x400, TableFamily::Ip, "kproxy", "service-ips", &raw, max, "add");
            let (new, old) = (new.finish(), old.finish());
            assert_eq!(new.1, old.1, "labels differ (max {max})");
            assert!(new.0 == old.0, "bytes differ (max {max})");
        }
    }
}
