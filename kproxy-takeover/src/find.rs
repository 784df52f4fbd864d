//! Read-only: which of kube-proxy's leftovers a node holds, without removing anything (for
//! `kproxy doctor`). The same definitions as the removal: [`crate::iptables_script::plan`]
//! decides what is kube-proxy's in iptables, [`crate::nft::TABLE`] in nftables, and in
//! [`Mode::Nftables`] every IPVS virtual server and the `kube-ipvs0` link.

use kproxy_core::model::IpFamily;
use kproxy_ipvs::ipvs::Ipvs;
use kproxy_ipvs::rtnl::Rtnl;

use crate::iptables::VARIANTS;
use crate::iptables_script::{parse_save, plan};
use crate::ipvs::DUMMY_LINK;
use crate::{exec, Mode, Report};

/// What [`find`] saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Each leftover, named for an operator (e.g. `iptables-nft (IPv4) table nat: chain KUBE-SERVICES`).
    pub leftovers: Vec<String>,
    /// What could not be looked at, and why (a tool not installed, a dump that failed).
    pub unchecked: Vec<String>,
}

/// Lists kube-proxy's leftovers of every mode in the calling thread's network namespace.
/// Changes nothing: the iptables part runs only the `*-save` tools.
pub fn find(mode: Mode) -> Findings {
    let mut found = Findings::default();
    let mut report = Report::default();
    for variant in VARIANTS {
        let what = format!("{} rules", variant.name);
        let Some(out) = exec::run(variant.save, &[], None, &what, variant.save, &mut report) else { continue };
        for table in plan(&parse_save(&String::from_utf8_lossy(&out.stdout))) {
            let name = |thing: String| format!("{} table {}: {thing}", variant.name, table.table);
            found.leftovers.extend(table.chains.iter().chain(&table.kept).map(|c| name(format!("chain {c}"))));
            found.leftovers.extend(table.jumps.iter().map(|(chain, rule)| name(format!("rule -A {chain} {rule}"))));
        }
    }
    found.unchecked.extend(report.warnings);
    found.unchecked.extend(report.errors.iter().map(ToString::to_string));
    for family in [IpFamily::V4, IpFamily::V6] {
        let word = kproxy_nft::lowlevel::ip_word(family);
        match kproxy_nft::trace::read_table(family, crate::nft::TABLE) {
            Ok(_) => found.leftovers.push(format!("nftables table {word} {}", crate::nft::TABLE)),
            Err(e) if e.is_not_found() => {}
            Err(e) => found.unchecked.push(format!("nftables table {word} {}: {e}", crate::nft::TABLE)),
        }
    }
    if mode == Mode::Nftables {
        find_ipvs(&mut found);
    }
    found
}

/// IPVS virtual servers and `kube-ipvs0`: kube-proxy's when kproxy runs in nftables mode.
fn find_ipvs(found: &mut Findings) {
    match Ipvs::open().and_then(|mut ipvs| ipvs.services()) {
        Ok(services) => found.leftovers.extend(services.iter().map(|vs| format!("IPVS virtual server {}", vs.key))),
        Err(kproxy_ipvs::Error::IpvsUnavailable { .. }) => {}
        Err(e) => found.unchecked.push(format!("IPVS virtual servers: {e}")),
    }
    match Rtnl::open().and_then(|mut rtnl| rtnl.link(DUMMY_LINK)) {
        Ok(Some(_)) => found.leftovers.push(format!("link {DUMMY_LINK}")),
        Ok(None) => {}
        Err(e) => found.unchecked.push(format!("link {DUMMY_LINK}: {e}")),
    }
}
