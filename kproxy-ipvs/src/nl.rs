//! Netlink framing, pure: message headers, attributes (TLVs) and their parsing.
//!
//! Only what IPVS (generic netlink) and rtnetlink need: a [`MsgBuilder`] that writes an
//! `nlmsghdr`, a family header and attributes (nested ones too), and [`Attrs`] / [`Messages`]
//! iterators over received bytes. Everything is native-endian as netlink is, except where
//! a protocol says otherwise (IPVS ports are big-endian).

/// `NLMSG_ERROR`: an error or (error 0) an acknowledgement.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`.
pub const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_ACK`.
pub const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_EXCL`.
pub const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE`.
pub const NLM_F_CREATE: u16 = 0x400;
/// `NLA_F_NESTED`: set on nested attributes.
pub const NLA_F_NESTED: u16 = 0x8000;
/// Mask of the attribute type bits.
pub const NLA_TYPE_MASK: u16 = 0x3fff;
/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;

/// Round up to the 4-byte netlink alignment.
pub fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Builds one netlink message: header, family header, attributes.
#[derive(Debug, Clone)]
pub struct MsgBuilder {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl MsgBuilder {
    /// Start a message of `msg_type` with `flags`; the sequence number is set by the socket.
    pub fn new(msg_type: u16, flags: u16) -> MsgBuilder {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish()
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        MsgBuilder {
            buf,
            nests: Vec::new(),
        }
    }

    /// Append raw bytes (a family header such as `genlmsghdr` or `ifinfomsg`), padded.
    pub fn header(mut self, bytes: &[u8]) -> MsgBuilder {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    fn pad(&mut self) {
        let aligned = align(self.buf.len());
        self.buf.resize(aligned, 0);
    }

    /// Append an attribute with a raw payload.
    pub fn attr(&mut self, kind: u16, payload: &[u8]) -> &mut MsgBuilder {
        let len = 4 + payload.len();
        // An attribute length is 16 bits; every payload kproxy sends is tiny.
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    /// Append a native-endian u16 attribute.
    pub fn u16(&mut self, kind: u16, v: u16) -> &mut MsgBuilder {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// Append a big-endian u16 attribute (ports).
    pub fn be16(&mut self, kind: u16, v: u16) -> &mut MsgBuilder {
        self.attr(kind, &v.to_be_bytes())
    }

    /// Append a native-endian u32 attribute.
    pub fn u32(&mut self, kind: u16, v: u32) -> &mut MsgBuilder {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// Append a NUL-terminated string attribute.
    pub fn str(&mut self, kind: u16, s: &str) -> &mut MsgBuilder {
        let mut payload = Vec::with_capacity(s.len() + 1);
        payload.extend_from_slice(s.as_bytes());
        payload.push(0);
        self.attr(kind, &payload)
    }

    /// Open a nested attribute; close it with [`MsgBuilder::end_nest`].
    pub fn begin_nest(&mut self, kind: u16) -> &mut MsgBuilder {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Close the innermost nested attribute.
    pub fn end_nest(&mut self) -> &mut MsgBuilder {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// Finish the message (patches the length; closes unclosed nests).
    pub fn finish(mut self) -> Vec<u8> {
        while !self.nests.is_empty() {
            self.end_nest();
        }
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// Set the sequence number of an encoded message.
pub fn set_seq(msg: &mut [u8], seq: u32) {
    if msg.len() >= NLMSG_HDRLEN {
        msg[8..12].copy_from_slice(&seq.to_ne_bytes());
    }
}

/// A received netlink message header and its payload (after the 16-byte header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg<'a> {
    /// `nlmsg_type`.
    pub msg_type: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// Everything after the header.
    pub payload: &'a [u8],
}

impl<'a> Msg<'a> {
    /// For an `NLMSG_ERROR` message: the (negative) errno, 0 for an ACK.
    pub fn error_code(&self) -> Option<i32> {
        if self.msg_type != NLMSG_ERROR || self.payload.len() < 4 {
            return None;
        }
        Some(i32::from_ne_bytes([
            self.payload[0],
            self.payload[1],
            self.payload[2],
            self.payload[3],
        ]))
    }
}

/// Iterator over the messages of one received datagram; stops at the first malformed one.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    /// Messages in `buf`.
    pub fn new(buf: &'a [u8]) -> Messages<'a> {
        Messages { rest: buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Msg<'a>;
    fn next(&mut self) -> Option<Msg<'a>> {
        if self.rest.len() < NLMSG_HDRLEN {
            return None;
        }
        let r = self.rest;
        let len = u32::from_ne_bytes([r[0], r[1], r[2], r[3]]) as usize;
        if len < NLMSG_HDRLEN || len > r.len() {
            self.rest = &[];
            return None;
        }
        let msg = Msg {
            msg_type: u16::from_ne_bytes([r[4], r[5]]),
            flags: u16::from_ne_bytes([r[6], r[7]]),
            seq: u32::from_ne_bytes([r[8], r[9], r[10], r[11]]),
            payload: &r[NLMSG_HDRLEN..len],
        };
        self.rest = &r[align(len).min(r.len())..];
        Some(msg)
    }
}

/// One attribute: type (flags masked off) and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Attribute type without `NLA_F_NESTED` / byte-order flags.
    pub kind: u16,
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    /// The payload as a native-endian u16.
    pub fn u16(&self) -> Option<u16> {
        self.payload
            .get(..2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    }
    /// The payload as a big-endian u16.
    pub fn be16(&self) -> Option<u16> {
        self.payload
            .get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// The payload as a native-endian u32.
    pub fn u32(&self) -> Option<u32> {
        self.payload
            .get(..4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// The payload as a string (up to the first NUL).
    pub fn str(&self) -> Option<&'a str> {
        let end = self
            .payload
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.payload.len());
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
    /// Attributes in `buf`.
    pub fn new(buf: &'a [u8]) -> Attrs<'a> {
        Attrs { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;
    fn next(&mut self) -> Option<Attr<'a>> {
        if self.rest.len() < 4 {
            return None;
        }
        let r = self.rest;
        let len = u16::from_ne_bytes([r[0], r[1]]) as usize;
        if len < 4 || len > r.len() {
            self.rest = &[];
            return None;
        }
        let attr = Attr {
            kind: u16::from_ne_bytes([r[2], r[3]]) & NLA_TYPE_MASK,
            payload: &r[4..len],
        };
        self.rest = &r[align(len).min(r.len())..];
        Some(attr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
            msg.len()
        );
        let parsed: Vec<_> = Messages::new(&msg).collect();
        assert_eq!(parsed.len(), 1);
        let attrs: Vec<_> = Attrs::new(&parsed[0].payload[4..]).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].str(), Some("IPVS"));
        assert_eq!(attrs[1].kind, 1);
        let inner: Vec<_> = attrs[1].nested().collect();
        assert_eq!(inner[0].u16(), Some(2));
    }

    #[test]
    fn truncated_input_stops_iteration() {
        let msg = MsgBuilder::new(3, 0).finish();
        assert_eq!(Messages::new(&msg[..10]).count(), 0);
        assert_eq!(Attrs::new(&[8, 0, 1, 0, 0]).count(), 0);
    }

    #[test]
    fn error_code_of_ack_and_error() {
        let mut ack = MsgBuilder::new(NLMSG_ERROR, 0)
            .header(&(-17i32).to_ne_bytes())
            .finish();
        set_seq(&mut ack, 9);
        let m = Messages::new(&ack).next().unwrap();
        assert_eq!((m.seq, m.error_code()), (9, Some(-17)));
    }
}
