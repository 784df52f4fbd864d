//! Edge: kube-proxy's nftables-mode tables `ip kube-proxy` and `ip6 kube-proxy`.

use kproxy_nft::lowlevel::{NetlinkKernel, NftKernel, TableFamily, Transaction};

use crate::{Report, TakeoverError};

/// The table name upstream's nftables mode uses in both families.
pub const TABLE: &str = "kube-proxy";

/// Deletes each family's table if present. A plain `delete table` per family, each in its
/// own batch: the kernel answers ENOENT for a missing table, which is how "not present" is
/// told apart from "removed" without listing the ruleset (kproxy-nft has no list API).
pub(crate) fn remove(report: &mut Report) {
    let mut kernel = match NetlinkKernel::open(kproxy_nft::NftConfig::default().max_message_bytes) {
        Ok(kernel) => kernel,
        Err(err) => return report.errors.push(TakeoverError::NftSocket(err)),
    };
    for (family, name) in [(TableFamily::Ip, "ip"), (TableFamily::Ip6, "ip6")] {
        let mut tx = Transaction::new();
        tx.delete_table(family, TABLE);
        match kernel.commit(&tx) {
            Ok(_) => report.removed.push(format!("nftables table {name} {TABLE}")),
            Err(err) if err.is_not_found() => {}
            Err(source) => report.errors.push(TakeoverError::NftDelete { family: name, source }),
        }
    }
}
