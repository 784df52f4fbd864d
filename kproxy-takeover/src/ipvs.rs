//! Edge: kube-proxy's IPVS-mode leftovers: virtual servers, `kube-ipvs0`, ipsets.

use kproxy_ipvs::ipvs::{Ipvs, Op};
use kproxy_ipvs::rtnl::Rtnl;

use crate::{exec, Report, TakeoverError};

/// The dummy link kube-proxy's IPVS mode holds its service addresses on.
pub const DUMMY_LINK: &str = "kube-ipvs0";

/// Prefix of kube-proxy's ipsets (`KUBE-CLUSTER-IP`, `KUBE-NODE-PORT-TCP`, `KUBE-6-...`).
pub const IPSET_PREFIX: &str = "KUBE-";

/// Deletes every IPVS virtual server, as upstream's cleanup flushes IPVS. Without IPVS in
/// the kernel there is nothing to remove (the module is not loaded for this).
pub(crate) fn remove_virtual_servers(report: &mut Report) {
    let mut ipvs = match Ipvs::open() {
        Ok(ipvs) => ipvs,
        Err(kproxy_ipvs::Error::IpvsUnavailable { .. }) => return,
        Err(err) => return report.errors.push(TakeoverError::IpvsList(err)),
    };
    let services = match ipvs.services() {
        Ok(services) => services,
        Err(err) => return report.errors.push(TakeoverError::IpvsList(err)),
    };
    let ops: Vec<Op> = services.iter().map(|vs| Op::DelService(vs.key)).collect();
    if ops.is_empty() {
        return;
    }
    match ipvs.apply(&ops) {
        Err(err) => report.errors.push(TakeoverError::IpvsSend(err)),
        Ok(verdicts) => {
            for (vs, verdict) in services.iter().zip(verdicts) {
                match verdict {
                    Ok(()) => report.removed.push(format!("IPVS virtual server {}", vs.key)),
                    Err(errno) => report.errors.push(TakeoverError::IpvsDelete { service: vs.key.to_string(), errno }),
                }
            }
        }
    }
}

/// Deletes the `kube-ipvs0` link if present.
pub(crate) fn remove_dummy_link(report: &mut Report) {
    let link_error = |source| TakeoverError::Link { link: DUMMY_LINK.into(), source };
    let result = Rtnl::open().and_then(|mut rtnl| {
        let present = rtnl.link(DUMMY_LINK)?.is_some();
        if present {
            rtnl.delete_link(DUMMY_LINK)?;
        }
        Ok(present)
    });
    match result {
        Ok(true) => report.removed.push(format!("link {DUMMY_LINK}")),
        Ok(false) => {}
        Err(err) => report.errors.push(link_error(err)),
    }
}

/// Destroys kube-proxy's ipsets (after the iptables rules that referenced them are gone).
pub(crate) fn remove_ipsets(report: &mut Report) {
    let what = "ipsets";
    let Some(out) = exec::run("ipset", &["list", "-n"], None, what, "ipset list -n", report) else { return };
    let names = String::from_utf8_lossy(&out.stdout);
    for name in names.lines().map(str::trim).filter(|n| n.starts_with(IPSET_PREFIX)) {
        if exec::run("ipset", &["destroy", name], None, what, "ipset list -n", report).is_some() {
            report.removed.push(format!("ipset {name}"));
        }
    }
}
