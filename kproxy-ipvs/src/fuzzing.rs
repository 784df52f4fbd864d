//! Entry point for the `ipvs` fuzz target and the stable corpus test: arbitrary bytes as a
//! received IPVS generic-netlink or rtnetlink datagram. Not a stable API.

use kproxy_netlink::Messages;

use crate::ipvs_msg::{self, reply};
use crate::rtnl;

/// Runs every message of `data` through each IPVS and rtnetlink reply decoder. A decoded
/// virtual or real server must survive a round trip through the kernel-format encoder
/// ([`reply`]) unchanged: kproxy diffs dumps against its plan, so a lossy decode would make it
/// reprogram (or miss) a server on every sync. Panics on a mismatch.
pub fn replies(data: &[u8]) {
    for m in Messages::new(data) {
        if let Some(vs) = ipvs_msg::decode_service(m.payload) {
            let again = reply::service(m.msg_type, &vs);
            let back = Messages::new(&again).next().and_then(|r| ipvs_msg::decode_service(r.payload));
            assert_eq!(back.as_ref(), Some(&vs), "virtual server changed in a decode/encode round trip");
        }
        for family in [libc::AF_INET as u16, libc::AF_INET6 as u16] {
            if let Some((rs, counters)) = ipvs_msg::decode_dest(m.payload, family) {
                let again = reply::dest(m.msg_type, &rs, &counters);
                let back = Messages::new(&again).next().and_then(|r| ipvs_msg::decode_dest(r.payload, family));
                assert_eq!(back, Some((rs, counters)), "real server changed in a decode/encode round trip");
            }
        }
        let _ = ipvs_msg::decode_timeouts(m.payload);
        let _ = ipvs_msg::decode_info(m.payload);
        let _ = rtnl::decode_link(m.payload);
        let _ = rtnl::decode_addr(m.payload);
    }
}
