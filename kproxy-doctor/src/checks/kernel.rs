//! The kernel: features the mode needs, kube-proxy's leftovers, kproxy's own tables.

use crate::checks::some;
use crate::{Check, Gathered, IpvsFacts, ProxyMode, TableFacts};

/// `kernel-features`. nftables: kproxy's ruleset, sent in check mode, is accepted by the
/// kernel (every expression, set type and reference kproxy uses); failing that check, or
/// without it, a present kproxy table proves it too (a commit is atomic). IPVS: the IPVS
/// netlink family answers, and with `strictARP` the ARP sysctls are set.
pub fn features(mode: ProxyMode, tables: &[TableFacts], check: Option<&Gathered<usize>>, ipvs: Option<&IpvsFacts>, strict_arp: bool) -> Check {
    const ID: &str = "kernel-features";
    if let Some(Err(e)) = tables.iter().map(|t| &t.chains).find(|c| c.is_err()) {
        return Check::fail(ID, format!("nf_tables does not answer: {e}"), "the kernel needs nf_tables (CONFIG_NF_TABLES); run as root (CAP_NET_ADMIN) in the node's network namespace");
    }
    let programmed: Vec<&str> = tables.iter().filter(|t| matches!(t.chains, Ok(Some(n)) if n > 0)).map(|t| t.name.as_str()).collect();
    match (mode, check) {
        (ProxyMode::Nftables, Some(Err(e))) => {
            return Check::fail(
                ID,
                format!("the kernel refused kproxy's ruleset in check mode (nothing committed): {e}"),
                "the kernel lacks an nf_tables feature kproxy needs (the refused object names it): load its module (nft_ct, nft_nat, nft_numgen, nft_fib, nft_reject, nft_masq) or use a kernel with it",
            )
        }
        (ProxyMode::Nftables, Some(Ok(n))) => {
            let tables = if programmed.is_empty() { String::new() } else { format!("; programmed: {}", programmed.join(", ")) };
            return Check::ok(ID, format!("the kernel accepted kproxy's full ruleset in check mode ({n} operations validated, nothing committed){tables}"));
        }
        _ => {}
    }
    match mode {
        ProxyMode::Nftables if programmed.is_empty() => Check::warn(
            ID,
            "nf_tables answers, but no kproxy table is programmed, so the expressions kproxy uses (ct, nat, numgen, fib, reject, lookup, masq) are not proven",
            "run kproxy (or `kproxy --once` with the same flags) and rerun doctor; its log names an expression the kernel lacks",
        ),
        ProxyMode::Nftables => Check::ok(ID, format!("the kernel accepted kproxy's ruleset ({}), so it has every expression kproxy uses", programmed.join(", "))),
        ProxyMode::Ipvs => ipvs_features(ipvs, strict_arp),
    }
}

fn ipvs_features(ipvs: Option<&IpvsFacts>, strict_arp: bool) -> Check {
    const ID: &str = "kernel-features";
    let Some(ipvs) = ipvs else { return Check::warn(ID, "IPVS not looked at", "rerun as root") };
    let servers = match &ipvs.virtual_servers {
        Ok(n) => *n,
        Err(e) => return Check::fail(ID, format!("IPVS does not answer: {e}"), "load the IPVS modules: modprobe ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh (and the scheduler configured in ipvs.scheduler)"),
    };
    let arp = match (&ipvs.arp_ignore, &ipvs.arp_announce) {
        (Ok(i), Ok(a)) => (*i, *a),
        (Err(e), _) | (_, Err(e)) => return Check::warn(ID, format!("IPVS answers ({servers} virtual servers); ARP sysctls not readable: {e}"), "check net.ipv4.conf.all.arp_ignore/arp_announce by hand"),
    };
    let seen = format!("IPVS answers ({servers} virtual servers); arp_ignore={} arp_announce={}", arp.0, arp.1);
    if strict_arp && (arp.0 != 1 || arp.1 != 2) {
        return Check::fail(
            ID,
            format!("{seen}, but ipvs.strictARP asks for arp_ignore=1 arp_announce=2"),
            "kproxy sets them at start: check its log; or set net.ipv4.conf.all.arp_ignore=1 and arp_announce=2 (service addresses on kube-ipvs0 would answer ARP otherwise)",
        );
    }
    Check::ok(ID, seen)
}

/// `kube-proxy-leftovers`: another proxy's rules compete with kproxy's (stale DNAT, drops).
pub fn leftovers(f: &kproxy_takeover::find::Findings) -> Check {
    const ID: &str = "kube-proxy-leftovers";
    if !f.leftovers.is_empty() {
        return Check::fail(
            ID,
            format!("{} kube-proxy objects: {}", f.leftovers.len(), grouped(&f.leftovers)),
            "stop kube-proxy (remove its DaemonSet), then restart kproxy: it removes them before its first sync (unless --remove-kube-proxy-leftovers=false)",
        );
    }
    if !f.unchecked.is_empty() {
        return Check::warn(ID, format!("none found, but not checked: {}", f.unchecked.join("; ")), "install the missing tools or check by hand (iptables-save | grep KUBE-; ipvsadm -Ln)");
    }
    Check::ok(ID, "none: no KUBE-* iptables chains, no kube-proxy nftables table, no foreign IPVS virtual servers")
}

/// Leftovers grouped by where they are: `PLACE: chains A B C, N jump rules`, places joined by `; `.
fn grouped(leftovers: &[String]) -> String {
    let mut places: Vec<(&str, Vec<String>, usize)> = Vec::new();
    for item in leftovers {
        let (place, thing) = item.split_once(": ").unwrap_or((item.as_str(), ""));
        let at = match places.iter().position(|(p, _, _)| *p == place) {
            Some(at) => at,
            None => {
                places.push((place, Vec::new(), 0));
                places.len() - 1
            }
        };
        match thing.strip_prefix("chain ") {
            Some(chain) => places[at].1.push(chain.to_string()),
            None if thing.starts_with("rule ") => places[at].2 += 1,
            None => {}
        }
    }
    let text: Vec<String> = places
        .iter()
        .map(|(place, chains, rules)| {
            let mut parts = Vec::new();
            if !chains.is_empty() {
                parts.push(format!("chains {}", some(chains, 8).replace(", ", " ")));
            }
            if *rules > 0 {
                parts.push(format!("{rules} jump rules from built-in chains"));
            }
            if parts.is_empty() { place.to_string() } else { format!("{place}: {}", parts.join(", ")) }
        })
        .collect();
    text.join("; ")
}

/// `kproxy-tables`: kproxy's tables are present, hold what the sources say they should
/// (`drift`, nftables mode), and the daemon reports them intact.
pub fn tables(
    tables: &[TableFacts],
    drift: Option<&Gathered<Vec<String>>>,
    healthz: Option<&Gathered<(u16, serde_json::Value)>>,
) -> Check {
    const ID: &str = "kproxy-tables";
    let mut missing = Vec::new();
    let mut present = Vec::new();
    for t in tables {
        match &t.chains {
            Ok(Some(n)) if *n > 0 => present.push(format!("{} ({n} chains)", t.name)),
            Ok(_) => missing.push(t.name.clone()),
            Err(e) => return Check::fail(ID, format!("{}: cannot read: {e}", t.name), "run as root in the node's network namespace"),
        }
    }
    if !missing.is_empty() {
        return Check::fail(
            ID,
            format!("table {} missing{}", missing.join(", "), if present.is_empty() { String::new() } else { format!("; present: {}", present.join(", ")) }),
            "kproxy is not running here, its first sync failed, or someone deleted the table: check the daemon's log (Error syncing proxy rules) and restart it",
        );
    }
    // Differences are listed first: they name what is wrong, which a daemon's flag does not.
    let sync = match drift {
        Some(Ok(diffs)) if !diffs.is_empty() => {
            const SHOWN: usize = 5;
            let more = diffs.len().saturating_sub(SHOWN);
            let mut listed = diffs.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
            if more > 0 {
                listed.push_str(&format!("; and {more} more"));
            }
            return Check::fail(
                ID,
                format!("present: {}; {} difference(s) from the sources: {listed}", present.join(", "), diffs.len()),
                "a running daemon repairs drift at its next full sync (at most syncPeriod); if it persists, see `kproxy explain NAMESPACE/NAME` for the Service and find who writes to kproxy's tables (nft monitor)",
            );
        }
        Some(Ok(_)) => "; in sync with the sources".to_string(),
        Some(Err(e)) => format!("; not compared with the sources ({e})"),
        None => String::new(),
    };
    let present = vec![format!("{}{sync}", present.join(", "))];
    let intact = healthz.and_then(|h| h.as_ref().ok()).and_then(|(_, body)| body.get("rulesetIntact")).and_then(|v| v.as_bool());
    match intact {
        Some(false) => Check::fail(
            ID,
            format!("present: {}; the daemon reports rulesetIntact=false (someone changed its tables)", present.join(", ")),
            "the daemon repairs them at its next sync; find who writes to kproxy's tables (nft monitor)",
        ),
        Some(true) => Check::ok(ID, format!("present: {}; the daemon reports rulesetIntact=true", present.join(", "))),
        None if matches!(drift, Some(Ok(_))) => Check::ok(ID, format!("present: {}", present.join(", "))),
        None => Check::ok(ID, format!("present: {} (in-sync not verified: no daemon answered /healthz and the sources could not be compared)", present.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;

    fn table(name: &str, chains: Gathered<Option<usize>>) -> TableFacts {
        TableFacts { name: name.into(), chains }
    }

    #[test]
    fn tables_present_missing_and_tampered() {
        let ok = [table("ip kproxy", Ok(Some(20))), table("ip6 kproxy", Ok(Some(20)))];
        assert_eq!(tables(&ok, None, None).verdict, Verdict::Ok);
        let missing = [table("ip kproxy", Ok(None)), table("ip6 kproxy", Ok(Some(20)))];
        let c = tables(&missing, None, None);
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.seen.contains("table ip kproxy missing"), "{}", c.seen);
        let tampered = Ok((503, serde_json::json!({"rulesetIntact": false})));
        assert_eq!(tables(&ok, None, Some(&tampered)).verdict, Verdict::Fail);
        let drifted: Gathered<Vec<String>> = Ok(vec!["missing: element 198.19.160.10 . tcp . 80 in map ip kproxy service-ips".into()]);
        let c = tables(&ok, Some(&drifted), None);
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.seen.contains("1 difference(s) from the sources: missing: element 198.19.160.10"), "{}", c.seen);
        let c = tables(&ok, Some(&Ok(Vec::new())), None);
        assert_eq!(c.verdict, Verdict::Ok);
        assert!(c.seen.contains("in sync with the sources"), "{}", c.seen);
        assert_eq!(features(ProxyMode::Nftables, &ok, None, None, false).verdict, Verdict::Ok);
        assert_eq!(features(ProxyMode::Nftables, &missing[..1], None, None, false).verdict, Verdict::Warn);
        assert_eq!(features(ProxyMode::Nftables, &missing[..1], Some(&Ok(40)), None, false).verdict, Verdict::Ok);
        let refused = features(ProxyMode::Nftables, &ok, Some(&Err("rule in chain x: Operation not supported".into())), None, false);
        assert_eq!(refused.verdict, Verdict::Fail);
        assert!(refused.seen.contains("Operation not supported"), "{}", refused.seen);
        assert_eq!(features(ProxyMode::Nftables, &[table("ip kproxy", Err("EPERM".into()))], None, None, false).verdict, Verdict::Fail);
    }

    #[test]
    fn ipvs_and_strict_arp() {
        let f = |vs: Gathered<usize>, i, a| IpvsFacts { virtual_servers: vs, arp_ignore: Ok(i), arp_announce: Ok(a) };
        assert_eq!(features(ProxyMode::Ipvs, &[], None, Some(&f(Ok(3), 0, 0)), false).verdict, Verdict::Ok);
        assert_eq!(features(ProxyMode::Ipvs, &[], None, Some(&f(Ok(3), 0, 0)), true).verdict, Verdict::Fail);
        assert_eq!(features(ProxyMode::Ipvs, &[], None, Some(&f(Ok(3), 1, 2)), true).verdict, Verdict::Ok);
        assert_eq!(features(ProxyMode::Ipvs, &[], None, Some(&f(Err("no ip_vs".into()), 1, 2)), true).verdict, Verdict::Fail);
    }

    #[test]
    fn leftovers_fail_and_unchecked_warns() {
        let mut f = kproxy_takeover::find::Findings::default();
        assert_eq!(leftovers(&f).verdict, Verdict::Ok);
        f.unchecked.push("`iptables-legacy-save` is not installed".into());
        assert_eq!(leftovers(&f).verdict, Verdict::Warn);
        f.leftovers.push("iptables-nft (IPv4) table nat: chain KUBE-SERVICES".into());
        f.leftovers.push("iptables-nft (IPv4) table nat: rule -A PREROUTING -j KUBE-SERVICES".into());
        f.leftovers.push("iptables-nft (IPv4) table nat: chain KUBE-POSTROUTING".into());
        f.leftovers.push("nftables table ip kube-proxy".into());
        let c = leftovers(&f);
        assert_eq!(c.verdict, Verdict::Fail);
        assert_eq!(
            c.seen,
            "4 kube-proxy objects: iptables-nft (IPv4) table nat: chains KUBE-SERVICES KUBE-POSTROUTING, 1 jump rules from built-in chains; nftables table ip kube-proxy"
        );
    }
}
