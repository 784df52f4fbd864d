//! Entry point for the `conntrack` fuzz target and the stable corpus test: arbitrary bytes
//! as a received ctnetlink dump datagram. Not a stable API.

use kproxy_netlink::Messages;

use crate::netlink::{delete_message, parse_flow};

/// Parses every message of `data` as a dump entry, as [`crate::ConntrackSocket`] does, and
/// encodes the delete request for each flow found (what cleanup would send back). Returns
/// how many flows were found.
pub fn dump(data: &[u8]) -> usize {
    let mut flows = 0;
    for m in Messages::new(data) {
        if let Ok(Some(flow)) = parse_flow(m.payload) {
            let _ = delete_message(&flow);
            flows += 1;
        }
    }
    flows
}
