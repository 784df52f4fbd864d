//! Entry points for the `nft` fuzz target and the stable corpus test: arbitrary bytes as a
//! received nf_tables datagram. Not a stable API.

use kproxy_netlink::Messages;

use crate::watch::{decode, Matcher};

/// Runs every message of `data` through the set-element dump parser (what affinity reads
/// back) and through the change-notification decoder and matcher (what the tamper watch
/// reads), as if it came from kproxy's socket (port 1) or another (any other port).
/// Returns how many elements and foreign commits were found.
pub fn replies(data: &[u8]) -> usize {
    let mut elements = Vec::new();
    let mut matcher = Matcher::new(&["kproxy", "kube-proxy"], &[1]);
    let mut commits = 0;
    for m in Messages::new(data) {
        crate::netlink::parse_set_elements(m.msg_type, m.payload, &mut elements);
        if let Some(n) = decode(&m) {
            commits += matcher.feed(n).is_some() as usize;
        }
    }
    elements.len() + commits
}
