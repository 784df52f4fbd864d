//! Message framing: the `nlmsghdr` layout and flags, an iterator over the messages of a
//! received datagram, and the `nlmsgerr` of errors and acknowledgements.
//!
//! Everything is native-endian, as netlink is (`include/uapi/linux/netlink.h`).

use crate::attr::{align, next_record, Attrs};

/// Size of `struct nlmsghdr` (length, type, flags, sequence number, port id).
pub const NLMSG_HDRLEN: usize = 16;

/// `NLMSG_NOOP`: to be ignored.
pub const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: an error or (error 0) an acknowledgement.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: end of a multi-part message (a dump).
pub const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`: data lost.
pub const NLMSG_OVERRUN: u16 = 4;

/// `NLM_F_REQUEST`: a request (every message to the kernel).
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`: part of a multi-part answer ended by `NLMSG_DONE`.
pub const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_ACK`: answer with an acknowledgement also on success.
pub const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_ECHO`: echo this request.
pub const NLM_F_ECHO: u16 = 0x8;
/// `NLM_F_DUMP_INTR`: the dump was interrupted by a change (it may be inconsistent).
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// `NLM_F_ROOT` (GET requests): the whole table.
pub const NLM_F_ROOT: u16 = 0x100;
/// `NLM_F_MATCH` (GET requests): every match.
pub const NLM_F_MATCH: u16 = 0x200;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
/// `NLM_F_REPLACE` (NEW requests): replace an existing object.
pub const NLM_F_REPLACE: u16 = 0x100;
/// `NLM_F_EXCL` (NEW requests): fail if the object exists.
pub const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE` (NEW requests): create if it does not exist.
pub const NLM_F_CREATE: u16 = 0x400;
/// `NLM_F_APPEND` (NEW requests): add at the end of a list.
pub const NLM_F_APPEND: u16 = 0x800;
/// `NLM_F_CAPPED` (on `NLMSG_ERROR`): the echoed request is cut to its header.
pub const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS` (on `NLMSG_ERROR`): extended-ACK attributes follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;

/// `NLA_F_NESTED`: set on attributes that hold attributes.
pub const NLA_F_NESTED: u16 = 0x8000;
/// `NLA_F_NET_BYTEORDER`: the payload is big-endian.
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
/// Mask of the attribute type bits (without the two flags above).
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// Extended ACK: the kernel's error text (NUL-terminated string).
pub const NLMSGERR_ATTR_MSG: u16 = 1;
/// Extended ACK: offset of the offending attribute in the request (u32).
pub const NLMSGERR_ATTR_OFFS: u16 = 2;

/// Sets the sequence number of an encoded message (nothing if it is shorter than a header).
pub fn set_seq(msg: &mut [u8], seq: u32) {
    if msg.len() >= NLMSG_HDRLEN {
        msg[8..12].copy_from_slice(&seq.to_ne_bytes());
    }
}

/// A received message: header fields and the payload after the 16-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg<'a> {
    /// `nlmsg_type`.
    pub msg_type: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid`: the sender's port id. In a notification, the port id of the socket whose
    /// request caused it (0 when the kernel itself did).
    pub port: u32,
    /// Everything after the header.
    pub payload: &'a [u8],
}

impl<'a> Msg<'a> {
    /// For an `NLMSG_ERROR` message: the (negative) errno, 0 for an ACK.
    pub fn error_code(&self) -> Option<i32> {
        if self.msg_type != NLMSG_ERROR {
            return None;
        }
        Some(i32::from_ne_bytes(self.payload.get(..4)?.try_into().ok()?))
    }

    /// For an `NLMSG_ERROR` message: the whole `nlmsgerr` with its extended ACK.
    pub fn error(&self) -> Option<ErrorMsg> {
        let code = self.error_code()?;
        let mut out = ErrorMsg { errno: code.saturating_neg(), message: None, offset: None };
        if self.flags & NLM_F_ACK_TLVS == 0 {
            return Some(out);
        }
        // After the code comes the echoed request: its header only when capped
        // (NETLINK_CAP_ACK, or always for an ACK), else the whole request.
        let echoed = self.payload.get(4..4 + NLMSG_HDRLEN).map_or(0, |h| {
            let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
            if self.flags & NLM_F_CAPPED != 0 { NLMSG_HDRLEN } else { align(len.max(NLMSG_HDRLEN)) }
        });
        for a in Attrs::new(self.payload.get(4 + echoed..).unwrap_or(&[])) {
            match a.kind {
                NLMSGERR_ATTR_MSG => out.message = a.str().map(str::to_owned),
                NLMSGERR_ATTR_OFFS => out.offset = a.u32(),
                _ => {}
            }
        }
        Some(out)
    }
}

/// A parsed `NLMSG_ERROR`: the errno (0 for an ACK) and the extended ACK, if the socket asked
/// for it (the [`crate::Socket`] always does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    /// The positive errno; 0 means success.
    pub errno: i32,
    /// `NLMSGERR_ATTR_MSG`: the kernel's text, e.g. "Invalid argument" details.
    pub message: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`: where in the request the offending attribute starts.
    pub offset: Option<u32>,
}

/// Iterator over the messages of one received datagram; stops at the first malformed one.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    /// The messages in `buf`.
    pub fn new(buf: &'a [u8]) -> Messages<'a> {
        Messages { rest: buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Msg<'a>;
    fn next(&mut self) -> Option<Msg<'a>> {
        let r = next_record(&mut self.rest, NLMSG_HDRLEN, |r| u32::from_ne_bytes([r[0], r[1], r[2], r[3]]) as usize)?;
        Some(Msg {
            msg_type: u16::from_ne_bytes([r[4], r[5]]),
            flags: u16::from_ne_bytes([r[6], r[7]]),
            seq: u32::from_ne_bytes([r[8], r[9], r[10], r[11]]),
            port: u32::from_ne_bytes([r[12], r[13], r[14], r[15]]),
            payload: &r[NLMSG_HDRLEN..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::MsgBuilder;

    #[test]
    fn error_code_of_ack_and_error() {
        let mut ack = MsgBuilder::new(NLMSG_ERROR, 0).header(&(-17i32).to_ne_bytes()).finish();
        set_seq(&mut ack, 9);
        let m = Messages::new(&ack).next().unwrap();
        assert_eq!((m.seq, m.error_code()), (9, Some(-17)));
        assert_eq!(m.error(), Some(ErrorMsg { errno: 17, message: None, offset: None }));
    }

    #[test]
    fn truncated_input_stops_iteration() {
        let msg = MsgBuilder::new(3, 0).finish();
        assert_eq!(Messages::new(&msg[..10]).count(), 0);
    }

    /// An error as the kernel sends it with NETLINK_CAP_ACK and NETLINK_EXT_ACK: code, the
    /// request's header, then the extended-ACK attributes.
    #[test]
    fn extended_ack_of_a_capped_error() {
        let mut payload = (-22i32).to_ne_bytes().to_vec();
        let request = MsgBuilder::new(0x0a06, NLM_F_REQUEST).header(&[1, 0, 0, 0]).finish();
        // The echoed header keeps the request's full length even though it is capped.
        payload.extend_from_slice(&request[..NLMSG_HDRLEN]);
        let mut b = MsgBuilder::new(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS).header(&payload);
        b.str(NLMSGERR_ATTR_MSG, "Chain not found");
        b.u32(NLMSGERR_ATTR_OFFS, 20);
        let msg = b.finish();
        let e = Messages::new(&msg).next().unwrap().error().unwrap();
        assert_eq!(e, ErrorMsg { errno: 22, message: Some("Chain not found".into()), offset: Some(20) });
    }

    /// Without NLM_F_CAPPED the whole request is echoed before the attributes.
    #[test]
    fn extended_ack_after_a_whole_echoed_request() {
        let mut payload = (-2i32).to_ne_bytes().to_vec();
        let mut req = MsgBuilder::new(0x0a06, NLM_F_REQUEST);
        req.str(1, "abc");
        payload.extend_from_slice(&req.finish());
        let mut b = MsgBuilder::new(NLMSG_ERROR, NLM_F_ACK_TLVS).header(&payload);
        b.str(NLMSGERR_ATTR_MSG, "No such table");
        let msg = b.finish();
        let e = Messages::new(&msg).next().unwrap().error().unwrap();
        assert_eq!((e.errno, e.message.as_deref()), (2, Some("No such table")));
    }
}
