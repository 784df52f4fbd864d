//! Entry points for the fuzz targets in `fuzz/` and the stable corpus test
//! (`tests/tests/fuzz_corpus.rs`): each takes arbitrary bytes, runs them through the parsers
//! kproxy applies to what the kernel sends, and must never panic. Not a stable API.

use crate::attr::{Attr, Attrs};
use crate::msg::Messages;

/// How deep [`walk`] follows nests: the kernel's own dumps nest at most five levels; the
/// bound keeps a hostile input from costing more than linear time per level.
const MAX_DEPTH: usize = 8;

/// Frames `data` as a received datagram: every message, its `nlmsgerr` with the extended
/// ACK, and every attribute under the 4-byte family header (nfgenmsg, genlmsghdr) read
/// with every typed reader, nests followed [`MAX_DEPTH`] levels deep. Returns how many
/// attributes were read, so the work cannot be optimised away.
pub fn messages(data: &[u8]) -> usize {
    let mut seen = 0;
    for m in Messages::new(data) {
        let _ = m.error_code();
        if let Some(e) = m.error() {
            seen += e.message.map_or(0, |s| s.len()) + e.offset.is_some() as usize;
        }
        seen += walk(Attrs::new(m.payload.get(4..).unwrap_or(&[])), 0);
        // rtnetlink's ifinfomsg is 16 bytes, ifaddrmsg 8: attributes start there.
        for header in [8, 16] {
            seen += walk(Attrs::new(m.payload.get(header..).unwrap_or(&[])), MAX_DEPTH - 1);
        }
    }
    seen
}

/// Reads every attribute of a run and (below [`MAX_DEPTH`]) the attributes nested in each.
fn walk(attrs: Attrs<'_>, depth: usize) -> usize {
    attrs.map(|a| read(&a) + if depth < MAX_DEPTH { walk(a.nested(), depth + 1) } else { 0 }).sum()
}

/// Every typed reader of one attribute.
fn read(a: &Attr<'_>) -> usize {
    let fixed = [a.u8().is_some(), a.u16().is_some(), a.be16().is_some(), a.u32().is_some(), a.be32().is_some(), a.be64().is_some()];
    1 + fixed.iter().filter(|&&b| b).count() + a.str().map_or(0, str::len)
}
