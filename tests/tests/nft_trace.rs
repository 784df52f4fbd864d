//! `kproxy trace` against real packets: for each kind of outcome (DNAT with and without
//! masquerading, from outside, from a pod, from the node, to a NodePort; REJECT for no
//! endpoints and for an undefined ClusterIP port; DROP for eTP=Local without local
//! endpoints and for an unallocated ServiceCIDR address; untouched traffic), both families,
//! the trace's JSON verdict/endpoints/masquerade must match what real connections show.

mod nft_support;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::{IpFamily, Protocol, TrafficPolicy};
use kproxy_tests::{kproxy_binary, nft_apply, Netns, Proto, Tally, Topology};
use nft_support::*;

const FAMILIES: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];
/// Requests per real-packet check: enough to reach each of 3 endpoints (p(miss one) < 1e-3).
const N: usize = 24;

fn lb_ip(fam: IpFamily) -> IpAddr {
    match fam {
        IpFamily::V4 => "198.19.200.5".parse().unwrap(),
        IpFamily::V6 => "2001:db8:c:200::5".parse().unwrap(),
    }
}

fn ext_ip(fam: IpFamily) -> IpAddr {
    match fam {
        IpFamily::V4 => "198.19.99.5".parse().unwrap(),
        IpFamily::V6 => "2001:db8:c:99::5".parse().unwrap(),
    }
}

/// web (10): pods 1-3, NodePort 30080; empty (20): no endpoints; local (40): eTP=Local on
/// an ExternalIP with only a remote endpoint.
fn scenario_state() -> kproxy_core::model::ProxyState {
    let mut ports = Vec::new();
    for fam in FAMILIES {
        for p in [Protocol::Tcp, Protocol::Udp] {
            let mut web = with_endpoints(service("web", p, &vip(fam, 10), 80), &[(1, true), (2, true), (3, true)]);
            web.node_port = Some(30080);
            ports.push(web);
        }
        ports.push(service("empty", Protocol::Tcp, &vip(fam, 20), 80));
        let mut local = with_endpoints(service("local", Protocol::Tcp, &vip(fam, 40), 80), &[(3, false)]);
        local.external_traffic_policy = TrafficPolicy::Local;
        local.external_ips = vec![ext_ip(fam)];
        ports.push(local);
        // eTP=Local with local endpoints (1, 2) and a remote one (3): the client IP is kept.
        let mut etp = with_endpoints(service("etp", Protocol::Tcp, &vip(fam, 41), 80), &[(1, true), (2, true), (3, false)]);
        etp.external_traffic_policy = TrafficPolicy::Local;
        etp.load_balancer_ips = vec![lb_ip(fam)];
        ports.push(etp);
        // loadBalancerSourceRanges that exclude the client: dropped.
        let other: &str = if fam == IpFamily::V4 { "198.19.65.0/24" } else { "2001:db8:c:65::/64" };
        let mut fw = with_endpoints(service("fw", Protocol::Tcp, &vip(fam, 42), 81), &[(1, true)]);
        fw.load_balancer_ips = vec![lb_ip(fam)];
        fw.load_balancer_source_ranges = vec![other.parse().unwrap()];
        ports.push(fw);
    }
    state(ports)
}

/// The JSON line of `kproxy trace -o json` run in the node namespace.
#[derive(Debug)]
struct Traced {
    verdict: String,
    endpoints: BTreeSet<String>,
    masquerade: bool,
    service: Option<String>,
    text: String,
}

fn kproxy_trace(node: &Netns, from: IpAddr, to: SocketAddr, proto: Proto) -> Traced {
    let proto = if proto == Proto::Udp { "udp" } else { "tcp" };
    let out = node
        .command(kproxy_binary().expect("the kproxy binary"))
        .args(["trace", "--from", &from.to_string(), "--to", &to.to_string(), "--protocol", proto, "-o", "json"])
        .output()
        .expect("running kproxy trace");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "kproxy trace exit {:?}: {text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    let last = text.lines().last().expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {text}"));
    Traced {
        verdict: v["verdict"].as_str().expect("verdict").to_string(),
        endpoints: v["endpoints"].as_array().expect("endpoints").iter().map(|e| e.as_str().unwrap().to_string()).collect(),
        masquerade: v["masquerade"].as_bool().expect("masquerade"),
        service: v["service"].as_str().map(str::to_string),
        text,
    }
}

/// The endpoint strings of pods `ks`, as trace prints them.
fn endpoint_texts(fam: IpFamily, ks: &[u8]) -> BTreeSet<String> {
    ks.iter().map(|k| pod_addr(fam, *k).to_string()).collect()
}

/// Traces `from -> to`, sends `N` real requests from `ns` (whose address is `from`), and
/// checks they agree; returns the trace for further checks.
fn agree(t: &Topology, ns: &Netns, from: IpAddr, to: SocketAddr, proto: Proto) -> Traced {
    let fam = if to.is_ipv4() { IpFamily::V4 } else { IpFamily::V6 };
    let tr = kproxy_trace(&t.node, from, to, proto);
    // Spreading needs N requests; one outcome for all needs a few (drops cost a timeout each).
    let (n, timeout) = match tr.verdict.as_str() {
        "dnat" => (N, T),
        "reject" => (4, T),
        _ => (3, DROP_T),
    };
    let r: Tally = send(ns, proto, to, n, timeout);
    let what = format!("{from} -> {to} {proto:?}: real {r}\ntrace:\n{}", tr.text);
    match tr.verdict.as_str() {
        "dnat" => {
            let answered: BTreeSet<String> =
                r.by_server.keys().map(|s| pod_addr(fam, s.trim_start_matches("pod").parse().unwrap()).to_string()).collect();
            assert_eq!(r.answered(), N, "{what}");
            assert_eq!(answered, tr.endpoints, "the pods that answered are the traced endpoints: {what}");
            let source = if tr.masquerade { gateway(fam) } else { from };
            assert_eq!(r.by_peer.keys().copied().collect::<Vec<_>>(), vec![source], "source seen: {what}");
        }
        "reject" => assert_eq!(r.refused, n, "{what}"),
        "drop" => assert_eq!(r.timeouts, n, "{what}"),
        "none" => assert_eq!(r.answered(), 0, "untouched traffic reaches no pod: {what}"),
        v => panic!("unknown verdict {v}: {what}"),
    }
    tr
}

#[test]
fn trace_agrees_with_real_packets_for_every_outcome_both_families() {
    let t = topology(4);
    let _b = program(&t.node, &scenario_state());
    for fam in FAMILIES {
        let client = client_ip(&t, fam);
        let web = SocketAddr::new(vip(fam, 10).parse().unwrap(), 80);
        for proto in [Proto::Tcp, Proto::Udp] {
            // From outside: DNAT to every endpoint, masqueraded.
            let tr = agree(&t, &t.client().ns, client, web, proto);
            assert_eq!((tr.verdict.as_str(), tr.masquerade), ("dnat", true), "{}", tr.text);
            assert_eq!(tr.endpoints, endpoint_texts(fam, &[1, 2, 3]), "{}", tr.text);
            assert_eq!(tr.service.as_deref(), Some("default/web:p"));
            // From a pod that is not an endpoint: DNAT, source kept.
            let tr = agree(&t, &t.pod(4).ns, pod_ip(fam, 4), web, proto);
            assert_eq!((tr.verdict.as_str(), tr.masquerade), ("dnat", false), "{}", tr.text);
            // NodePort from outside: DNAT, masqueraded.
            let tr = agree(&t, &t.client().ns, client, SocketAddr::new(node_ip(fam), 30080), proto);
            assert_eq!((tr.verdict.as_str(), tr.masquerade), ("dnat", true), "{}", tr.text);
        }
        // From the node itself (output path): DNAT, masqueraded.
        let tr = agree(&t, &t.node, node_ip(fam), web, Proto::Tcp);
        assert_eq!((tr.verdict.as_str(), tr.masquerade), ("dnat", true), "{}", tr.text);
        // No endpoints, and a port the ClusterIP does not define: REJECT.
        let tr = agree(&t, &t.client().ns, client, SocketAddr::new(vip(fam, 20).parse().unwrap(), 80), Proto::Tcp);
        assert_eq!((tr.verdict.as_str(), tr.service.as_deref()), ("reject", Some("default/empty:p")), "{}", tr.text);
        let tr = agree(&t, &t.client().ns, client, SocketAddr::new(web.ip(), 81), Proto::Tcp);
        assert_eq!(tr.verdict, "reject", "{}", tr.text);
        // eTP=Local without a local endpoint, and an unallocated ServiceCIDR address: DROP.
        let tr = agree(&t, &t.client().ns, client, SocketAddr::new(ext_ip(fam), 80), Proto::Tcp);
        assert_eq!(tr.verdict, "drop", "{}", tr.text);
        let tr = agree(&t, &t.client().ns, client, SocketAddr::new(vip(fam, 99).parse().unwrap(), 80), Proto::Tcp);
        assert_eq!(tr.verdict, "drop", "{}", tr.text);
        // eTP=Local LB IP from outside: the local endpoints only, the client's address kept.
        let tr = agree(&t, &t.client().ns, client, SocketAddr::new(lb_ip(fam), 80), Proto::Tcp);
        assert_eq!((tr.verdict.as_str(), tr.masquerade), ("dnat", false), "{}", tr.text);
        assert_eq!(tr.endpoints, endpoint_texts(fam, &[1, 2]), "{}", tr.text);
        // loadBalancerSourceRanges without the client: DROP.
        let tr = agree(&t, &t.client().ns, client, SocketAddr::new(lb_ip(fam), 81), Proto::Tcp);
        assert_eq!(tr.verdict, "drop", "{}", tr.text);
        // Not a service: left alone (the node itself answers, or refuses).
        let tr = agree(&t, &t.client().ns, client, SocketAddr::new(node_ip(fam), 30999), Proto::Tcp);
        assert_eq!((tr.verdict.as_str(), tr.endpoints.len(), tr.masquerade), ("none", 0, false), "{}", tr.text);
    }
}

#[test]
fn trace_exits_non_zero_only_for_bad_input() {
    let t = topology(1);
    let run = |args: &[&str]| t.node.command(kproxy_binary().expect("the kproxy binary")).arg("trace").args(args).output().expect("running kproxy trace");
    // Nothing programmed: still traced (verdict none), exit 0.
    let out = run(&["--from", "198.18.1.1", "--to", "198.19.160.10:80", "-o", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.lines().last().unwrap().contains(r#""verdict":"none""#), "{text}");
    assert!(text.contains("not installed"), "{text}");
    for bad in [["--from", "nope", "--to", "198.19.160.10:80"], ["--from", "198.18.1.1", "--to", "[2001:db8::1]:80"]] {
        let out = run(&bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The trace reads the kernel, not kproxy's memory: an element deleted behind kproxy's back
/// (drift) and a rule someone else added show in the trace, and real packets agree.
#[test]
fn trace_follows_drift_and_reports_foreign_rules() {
    let t = topology(4);
    let _b = program(&t.node, &scenario_state());
    for fam in FAMILIES {
        let client = client_ip(&t, fam);
        let web = SocketAddr::new(vip(fam, 10).parse().unwrap(), 80);
        let word = if fam == IpFamily::V4 { "ip" } else { "ip6" };
        // Someone else's rule in kproxy's chain: listed, not evaluated; the DNAT still holds.
        nft_apply(&t.node, &format!("insert rule {word} kproxy nat-prerouting counter\n")).expect("adding a foreign rule");
        let tr = agree(&t, &t.client().ns, client, web, Proto::Tcp);
        assert_eq!(tr.verdict, "dnat", "{}", tr.text);
        assert!(tr.text.contains("foreign rule (not evaluated): `counter` expression"), "{}", tr.text);
        // Drift: the ClusterIP's dispatch entry deleted. kproxy's memory still has it; the
        // kernel now rejects (undefined port of a ClusterIP), and so does the trace.
        let ip = web.ip();
        nft_apply(&t.node, &format!("delete element {word} kproxy service-ips {{ {ip} . tcp . 80 }}\n")).expect("deleting an element");
        let tr = agree(&t, &t.client().ns, client, web, Proto::Tcp);
        assert_eq!(tr.verdict, "reject", "{}", tr.text);
    }
}
