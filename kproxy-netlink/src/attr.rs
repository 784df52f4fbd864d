//! Attributes (TLVs): writing them into a message buffer and iterating over received ones.
//!
//! The free functions ([`put`], [`put_strz`], [`nest_start`], [`nest_end`]) write into any
//! `Vec<u8>` exactly as libmnl's `mnl_attr_put*` / `mnl_attr_nest_*` do (length without
//! padding, payload padded to 4), so encoders that must stay byte-identical to libnftnl can
//! use them; [`MsgBuilder`] is the convenient form for whole messages.

use crate::msg::{NLA_F_NESTED, NLA_TYPE_MASK, NLMSG_HDRLEN};

/// Rounds up to the 4-byte netlink alignment.
pub fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Appends one attribute: length (header + payload, without padding), type, payload padded
/// to 4 bytes. Payloads are far below the 16-bit length limit in every kproxy message.
pub fn put(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    buf.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align(buf.len()), 0);
}

/// Appends a string attribute with its terminating NUL (`mnl_attr_put_strz`).
pub fn put_strz(buf: &mut Vec<u8>, kind: u16, s: &str) {
    buf.extend_from_slice(&((4 + s.len() + 1) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
    buf.resize(align(buf.len()), 0);
}

/// Opens a nested attribute (type with [`NLA_F_NESTED`]); returns where its header is, for
/// [`nest_end`].
pub fn nest_start(buf: &mut Vec<u8>, kind: u16) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    at
}

/// Closes the nested attribute opened at `at`: its length covers everything written since.
pub fn nest_end(buf: &mut [u8], at: usize) {
    let len = (buf.len() - at) as u16;
    buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

/// Builds one netlink message: header, family header, attributes.
#[derive(Debug, Clone)]
pub struct MsgBuilder {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl MsgBuilder {
    /// Starts a message of `msg_type` with `flags`; the sequence number is set when it is sent
    /// ([`crate::set_seq`]), the port id by the kernel.
    pub fn new(msg_type: u16, flags: u16) -> MsgBuilder {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish()
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id
        debug_assert_eq!(buf.len(), NLMSG_HDRLEN);
        MsgBuilder { buf, nests: Vec::new() }
    }

    /// Appends raw bytes (a family header such as `genlmsghdr`, `nfgenmsg` or `ifinfomsg`),
    /// padded.
    pub fn header(mut self, bytes: &[u8]) -> MsgBuilder {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align(self.buf.len()), 0);
        self
    }

    /// Appends an attribute with a raw payload.
    pub fn attr(&mut self, kind: u16, payload: &[u8]) -> &mut MsgBuilder {
        put(&mut self.buf, kind, payload);
        self
    }

    /// Appends a native-endian u16 attribute.
    pub fn u16(&mut self, kind: u16, v: u16) -> &mut MsgBuilder {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// Appends a big-endian u16 attribute (ports).
    pub fn be16(&mut self, kind: u16, v: u16) -> &mut MsgBuilder {
        self.attr(kind, &v.to_be_bytes())
    }

    /// Appends a native-endian u32 attribute.
    pub fn u32(&mut self, kind: u16, v: u32) -> &mut MsgBuilder {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// Appends a big-endian u32 attribute (nf_tables and ctnetlink numbers).
    pub fn be32(&mut self, kind: u16, v: u32) -> &mut MsgBuilder {
        self.attr(kind, &v.to_be_bytes())
    }

    /// Appends a NUL-terminated string attribute.
    pub fn str(&mut self, kind: u16, s: &str) -> &mut MsgBuilder {
        put_strz(&mut self.buf, kind, s);
        self
    }

    /// Opens a nested attribute; close it with [`MsgBuilder::end_nest`].
    pub fn begin_nest(&mut self, kind: u16) -> &mut MsgBuilder {
        let at = nest_start(&mut self.buf, kind);
        self.nests.push(at);
        self
    }

    /// Closes the innermost nested attribute.
    pub fn end_nest(&mut self) -> &mut MsgBuilder {
        if let Some(at) = self.nests.pop() {
            nest_end(&mut self.buf, at);
        }
        self
    }

    /// Finishes the message (patches the length; closes unclosed nests).
    pub fn finish(mut self) -> Vec<u8> {
        while !self.nests.is_empty() {
            self.end_nest();
        }
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// One received attribute: type (flags masked off) and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Attribute type without `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER`.
    pub kind: u16,
    /// Payload (without padding).
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    /// The payload's first byte (ctnetlink's `CTA_PROTO_NUM`, nf_tables' single-byte fields).
    pub fn u8(&self) -> Option<u8> {
        self.payload.first().copied()
    }
    /// The payload as a native-endian u16.
    pub fn u16(&self) -> Option<u16> {
        Some(u16::from_ne_bytes(self.payload.get(..2)?.try_into().ok()?))
    }
    /// The payload as a big-endian u16.
    pub fn be16(&self) -> Option<u16> {
        Some(u16::from_be_bytes(self.payload.get(..2)?.try_into().ok()?))
    }
    /// The payload as a native-endian u32.
    pub fn u32(&self) -> Option<u32> {
        Some(u32::from_ne_bytes(self.payload.get(..4)?.try_into().ok()?))
    }
    /// The payload as a big-endian u32.
    pub fn be32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.payload.get(..4)?.try_into().ok()?))
    }
    /// The payload as a big-endian u64.
    pub fn be64(&self) -> Option<u64> {
        Some(u64::from_be_bytes(self.payload.get(..8)?.try_into().ok()?))
    }
    /// The payload as a string (up to the first NUL; `None` if not UTF-8).
    pub fn str(&self) -> Option<&'a str> {
        let end = self.payload.iter().position(|&b| b == 0).unwrap_or(self.payload.len());
        std::str::from_utf8(&self.payload[..end]).ok()
    }
    /// The attributes nested in this one.
    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.payload)
    }
}

/// Iterator over a run of attributes; stops at the first malformed one.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// The attributes in `buf`.
    pub fn new(buf: &'a [u8]) -> Attrs<'a> {
        Attrs { rest: buf }
    }
}

/// Splits the next record (a message or an attribute: a length field first, then at least
/// `min` bytes in all) off `rest`, and moves `rest` past its padding. A malformed record ends
/// the run: `rest` is emptied and `None` returned.
pub(crate) fn next_record<'a>(rest: &mut &'a [u8], min: usize, len_of: impl Fn(&[u8]) -> usize) -> Option<&'a [u8]> {
    let r = *rest;
    let len = if r.len() >= min { len_of(r) } else { 0 };
    if len < min || len > r.len() {
        *rest = &[];
        return None;
    }
    *rest = &r[align(len).min(r.len())..];
    Some(&r[..len])
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;
    fn next(&mut self) -> Option<Attr<'a>> {
        let a = next_record(&mut self.rest, 4, |r| u16::from_ne_bytes([r[0], r[1]]) as usize)?;
        Some(Attr { kind: u16::from_ne_bytes([a[2], a[3]]) & NLA_TYPE_MASK, payload: &a[4..] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{Messages, NLM_F_ACK, NLM_F_REQUEST};

    #[test]
    fn builder_pads_and_patches_lengths() {
        let mut b = MsgBuilder::new(0x20, NLM_F_REQUEST | NLM_F_ACK).header(&[1, 2, 0, 0]);
        b.str(2, "IPVS");
        b.begin_nest(1);
        b.u16(1, 2);
        b.end_nest();
        let msg = b.finish();
        // 16 header + 4 genl + 12 string attr ("IPVS\0" padded to 8) + 4 nest + 8 u16 attr
        assert_eq!(msg.len(), 16 + 4 + 12 + 4 + 8);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize, msg.len());
        let parsed: Vec<_> = Messages::new(&msg).collect();
        assert_eq!(parsed.len(), 1);
        let attrs: Vec<_> = Attrs::new(&parsed[0].payload[4..]).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].str(), Some("IPVS"));
        assert_eq!(attrs[1].kind, 1);
        let inner: Vec<_> = attrs[1].nested().collect();
        assert_eq!(inner[0].u16(), Some(2));
    }

    /// Fixed-size readers take the leading bytes and refuse shorter payloads.
    #[test]
    fn fixed_size_readers() {
        let mut buf = Vec::new();
        put(&mut buf, 1, &[17]);
        put(&mut buf, 2, &[]);
        put(&mut buf, 3, &0x9c40u16.to_be_bytes());
        let a: Vec<_> = Attrs::new(&buf).collect();
        assert_eq!((a[0].u8(), a[1].u8()), (Some(17), None));
        assert_eq!((a[2].be16(), a[0].be16()), (Some(40000), None));
    }

    #[test]
    fn truncated_attributes_stop_iteration() {
        assert_eq!(Attrs::new(&[8, 0, 1, 0, 0]).count(), 0);
    }

    /// Length without padding, payload padded: what libmnl writes.
    #[test]
    fn put_writes_libmnl_layout() {
        let mut buf = Vec::new();
        put(&mut buf, 7, &[1, 2, 3]);
        assert_eq!(buf, [7, 0, 7, 0, 1, 2, 3, 0]);
        let mut buf = Vec::new();
        put_strz(&mut buf, 1, "ab");
        assert_eq!(buf, [7, 0, 1, 0, b'a', b'b', 0, 0]);
        let mut buf = Vec::new();
        let n = nest_start(&mut buf, 3);
        put(&mut buf, 1, &[9; 4]);
        nest_end(&mut buf, n);
        assert_eq!(&buf[..4], &[12u16.to_ne_bytes(), (3 | NLA_F_NESTED).to_ne_bytes()].concat()[..]);
        let a = Attrs::new(&buf).next().unwrap();
        assert_eq!(a.kind, 3);
        assert_eq!(a.nested().next().unwrap().payload, &[9; 4]);
    }
}
