//! Edge: kube-proxy's iptables rules in the four variants a node can hold them in.

use crate::iptables_script::{parse_save, plan};
use crate::{exec, Report};

/// An iptables flavour and family: the save and restore tools of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// For logs: e.g. `iptables-nft (IPv4)`.
    pub name: &'static str,
    /// The save tool.
    pub save: &'static str,
    /// The matching restore tool.
    pub restore: &'static str,
}

/// iptables-nft and iptables-legacy, IPv4 and IPv6: kube-proxy used whichever the node's
/// iptables pointed at, and a node may have been switched between them.
pub const VARIANTS: &[Variant] = &[
    Variant { name: "iptables-nft (IPv4)", save: "iptables-nft-save", restore: "iptables-nft-restore" },
    Variant { name: "iptables-nft (IPv6)", save: "ip6tables-nft-save", restore: "ip6tables-nft-restore" },
    Variant { name: "iptables-legacy (IPv4)", save: "iptables-legacy-save", restore: "iptables-legacy-restore" },
    Variant { name: "iptables-legacy (IPv6)", save: "ip6tables-legacy-save", restore: "ip6tables-legacy-restore" },
];

/// Removes kube-proxy's chains and the jumps to them from one variant.
pub(crate) fn remove(variant: &Variant, report: &mut Report) {
    let what = format!("{} rules", variant.name);
    // The whole save, not `-t TABLE` as upstream: naming a table makes the legacy tools
    // load its kernel module and create it, and a takeover must not add tables.
    let Some(out) = exec::run(variant.save, &[], None, &what, variant.save, report) else { return };
    let saved = parse_save(&String::from_utf8_lossy(&out.stdout));
    for table in plan(&saved) {
        for chain in &table.kept {
            report.warnings.push(format!(
                "{} table {}: kept kube-proxy chain {chain}: a chain that is not kube-proxy's still jumps to it",
                variant.name, table.table
            ));
        }
        if table.is_empty() {
            continue;
        }
        // -w: wait (bounded) for the xtables lock that a running iptables user may hold.
        let check = format!("{} -t {}", variant.save, table.table);
        let restored = exec::run(variant.restore, &["-w", "5", "--noflush"], Some(&table.restore_script()), &what, &check, report);
        if restored.is_some() {
            for (chain, rule) in &table.jumps {
                report.removed.push(format!("{} table {}: rule -A {chain} {rule}", variant.name, table.table));
            }
            for chain in &table.chains {
                report.removed.push(format!("{} table {}: chain {chain}", variant.name, table.table));
            }
        }
    }
}
