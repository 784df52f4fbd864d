//! The in-VM test cases: IpvsBackend programs IPVS in the node namespace, real TCP/UDP
//! traffic checks which pod answered and what client address it saw, `ipvsadm -Ln` is the
//! independent witness.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kproxy_core::backend::{ProxyBackend, SyncKind};
use kproxy_core::model::*;
use kproxy_ipvs::{IpvsBackend, IpvsConfig};

use crate::netns::{Netns, IPVSADM};
use crate::topo::{
    self, pod_ip, pod_ip6, pod_name, tcp_open, tcp_query, udp_query, Topology, EXT_IP, POD_PORT,
};

pub(crate) type R = Result<(), String>;

pub(crate) fn ensure(cond: bool, what: impl FnOnce() -> String) -> R {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

pub(crate) fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().expect("test literal")
}

/// A service port with the given endpoints (all ready, on this node).
pub(crate) fn service(
    name: &str,
    protocol: Protocol,
    cluster_ip: &str,
    port: u16,
    eps: &[SocketAddr],
) -> ServicePort {
    let cluster_ip = ip(cluster_ip);
    let mut eps = eps.to_vec();
    eps.sort();
    let name = ServicePortName {
        namespace: "test".into(),
        name: name.into(),
        port: String::new(),
        protocol,
    };
    let mut sp = ServicePort::new(name, cluster_ip, port);
    sp.endpoints = eps
        .iter()
        .map(|a| Endpoint {
            addr: *a,
            local: true,
            ready: true,
            serving: true,
            terminating: false,
        })
        .collect();
    sp.cluster_endpoints = eps.clone();
    sp.local_endpoints = eps;
    sp
}

pub(crate) fn pods(idx: &[usize]) -> Vec<SocketAddr> {
    idx.iter().map(|i| sa(pod_ip(*i), POD_PORT)).collect()
}

pub(crate) fn state(ports: &[ServicePort], npa: NodePortAddresses) -> ProxyState {
    let mut s = ProxyState::default();
    s.settings.node_name = "node".into();
    s.settings.node_ips = vec![ip(topo::NODE_IP)];
    s.settings.node_port_addresses = npa;
    for p in ports {
        s.services.insert(p.key(), p.clone());
    }
    s
}

pub(crate) fn all_addresses() -> NodePortAddresses {
    NodePortAddresses::Cidrs(vec![
        "0.0.0.0/0".parse().expect("literal"),
        "::/0".parse().expect("literal"),
    ])
}

/// `ipvsadm ARGS` in the node namespace, whitespace collapsed for matching.
fn ipvsadm(node: &Netns, args: &[&str]) -> Result<String, String> {
    let out = node.exec(IPVSADM, args)?;
    Ok(out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn witness(node: &Netns, must: &[&str], must_not: &[&str]) -> R {
    let out = ipvsadm(node, &["-Ln"])?;
    for m in must {
        ensure(out.contains(m), || {
            format!("ipvsadm -Ln lacks {m:?}:\n{out}")
        })?;
    }
    for m in must_not {
        ensure(!out.contains(m), || {
            format!("ipvsadm -Ln still has {m:?}:\n{out}")
        })?;
    }
    Ok(())
}

/// The backend, created inside the node namespace.
pub(crate) fn backend(node: &Netns, cfg: IpvsConfig) -> Result<IpvsBackend, String> {
    node.run(move || IpvsBackend::new(cfg).map_err(|e| e.to_string()))?
}

/// Run a backend call inside the node namespace (sysctls are per namespace of the caller).
pub(crate) fn inside<T: Send + 'static>(
    node: &Netns,
    be: IpvsBackend,
    f: impl FnOnce(&mut IpvsBackend) -> T + Send + 'static,
) -> Result<(IpvsBackend, T), String> {
    node.run(move || {
        let mut be = be;
        let r = f(&mut be);
        (be, r)
    })
}

fn count(answers: &[topo::Answer]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in answers {
        *m.entry(a.pod.clone()).or_insert(0) += 1;
    }
    m
}

/// ClusterIP, ExternalIP, LoadBalancer IP and NodePort over TCP/IPv4 with rr: every
/// destination answers, rr spreads evenly, the client address is preserved.
pub fn tcp_v4_destinations_rr() -> R {
    let t = Topology::new(3)?;
    let mut web = service("web", Protocol::Tcp, "198.19.160.10", 80, &pods(&[0, 1, 2]));
    web.external_ips = vec![ip("198.19.99.1")];
    web.load_balancer_ips = vec![ip("198.19.200.1")];
    web.node_port = Some(30080);
    let st = state(&[web], all_addresses());
    let be = backend(&t.node, IpvsConfig::default())?;
    let (_be, r) = inside(&t.node, be, move |b| b.sync_full(&st))?;
    let report = r.map_err(|e| e.to_string())?;
    ensure(report.kind == SyncKind::Full, || format!("{report:?}"))?;

    let answers: Vec<_> = (0..6)
        .map(|_| tcp_query(&t.ext, sa(ip("198.19.160.10"), 80)))
        .collect::<Result<_, _>>()?;
    let c = count(&answers);
    ensure(c.len() == 3 && c.values().all(|n| *n == 2), || {
        format!("rr over 3 pods, 6 queries: {c:?}")
    })?;
    ensure(answers.iter().all(|a| a.peer == EXT_IP), || {
        format!("client address not preserved: {answers:?}")
    })?;
    for dest in [
        sa(ip("198.19.99.1"), 80),
        sa(ip("198.19.200.1"), 80),
        sa(ip(topo::NODE_IP), 30080),
    ] {
        // eTP=Cluster external traffic is masqueraded by the nftables part of IPVS mode.
        let a = tcp_query(&t.ext, dest)?;
        ensure(a.peer == topo::BRIDGE_IP, || format!("{dest}: {a:?}"))?;
    }
    witness(
        &t.node,
        &[
            "TCP 198.19.160.10:80 rr",
            "TCP 198.19.99.1:80 rr",
            "TCP 198.19.200.1:80 rr",
            "TCP 198.19.0.2:30080 rr",
            "-> 198.18.1.2:8080 Masq 1",
            "-> 198.18.1.4:8080 Masq 1",
        ],
        &[],
    )?;
    let addrs = t.node.ip("-o addr show dev kube-ipvs0")?;
    for vip in ["198.19.160.10/32", "198.19.99.1/32", "198.19.200.1/32"] {
        ensure(addrs.contains(vip), || {
            format!("kube-ipvs0 lacks {vip}: {addrs}")
        })?;
    }
    ensure(!addrs.contains("198.19.0.2"), || {
        format!("node IP on kube-ipvs0: {addrs}")
    })
}

/// UDP/IPv4 and TCP/IPv6 services.
pub fn udp_and_ipv6() -> R {
    let t = Topology::new(2)?;
    let dns = service("dns", Protocol::Udp, "198.19.160.11", 53, &pods(&[0, 1]));
    let v6eps: Vec<SocketAddr> = [0, 1].iter().map(|i| sa(pod_ip6(*i), POD_PORT)).collect();
    let mut web6 = service("web6", Protocol::Tcp, "2001:db8:b::10", 80, &v6eps);
    web6.node_port = Some(30081);
    let st = state(&[dns, web6], all_addresses());
    let be = backend(&t.node, IpvsConfig::default())?;
    let (_be, r) = inside(&t.node, be, move |b| b.sync_full(&st))?;
    r.map_err(|e| e.to_string())?;
    let a = udp_query(&t.ext, sa(ip("198.19.160.11"), 53))?;
    ensure(a.peer == EXT_IP, || format!("udp: {a:?}"))?;
    let a = tcp_query(&t.ext, sa(ip("2001:db8:b::10"), 80))?;
    ensure(a.peer == topo::EXT_IP6, || format!("ipv6: {a:?}"))?;
    let a = tcp_query(&t.ext, sa(ip(topo::NODE_IP6), 30081))?;
    ensure(a.peer == "2001:db8:a::1", || {
        format!("ipv6 NodePort (eTP=Cluster, masqueraded): {a:?}")
    })?;
    witness(
        &t.node,
        &[
            "UDP 198.19.160.11:53 rr",
            "TCP [2001:db8:b::10]:80 rr",
            "-> [2001:db8:a::2]:8080 Masq 1",
            "TCP [2001:db8:c::2]:30081 rr",
        ],
        &[],
    )
}

/// Every scheduler of the configuration reaches the kernel (changing it updates the virtual
/// server in place) and serves traffic; SCTP virtual servers are programmed too.
pub fn schedulers_and_sctp() -> R {
    let t = Topology::new(2)?;
    let web = service("web", Protocol::Tcp, "198.19.160.70", 80, &pods(&[0, 1]));
    let sctp = service("sig", Protocol::Sctp, "198.19.160.71", 3868, &pods(&[0, 1]));
    for name in [
        "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh",
    ] {
        let scheduler = kproxy_ipvs::Scheduler::from_name(name).map_err(|e| e.to_string())?;
        let st = state(&[web.clone(), sctp.clone()], NodePortAddresses::Primary);
        let be = backend(
            &t.node,
            IpvsConfig {
                scheduler,
                ..IpvsConfig::default()
            },
        )?;
        let (_be, r) = inside(&t.node, be, move |b| b.sync_full(&st))?;
        r.map_err(|e| format!("{name}: {e}"))?;
        witness(
            &t.node,
            &[
                &format!("TCP 198.19.160.70:80 {name}"),
                &format!("SCTP 198.19.160.71:3868 {name}"),
            ],
            &[],
        )?;
        tcp_query(&t.ext, sa(ip("198.19.160.70"), 80)).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// The nftables part of IPVS mode: off-cluster sources to a ClusterIP masqueraded, eTP=Local
/// keeps the client address, hairpin masqueraded, loadBalancerSourceRanges enforced, and a
/// service without endpoints refused (by IPVS itself).
pub fn nft_masquerade_and_source_ranges() -> R {
    let t = Topology::new(2)?;
    let a = service("a", Protocol::Tcp, "198.19.160.80", 80, &pods(&[0, 1]));
    let mut local = service("local", Protocol::Tcp, "198.19.160.81", 80, &pods(&[0, 1]));
    local.node_port = Some(30090);
    local.external_traffic_policy = TrafficPolicy::Local;
    let hair = service("hair", Protocol::Tcp, "198.19.160.82", 80, &pods(&[0]));
    let mut fw = service("fw", Protocol::Tcp, "198.19.160.83", 80, &pods(&[1]));
    fw.load_balancer_ips = vec![ip("198.19.200.3")];
    fw.load_balancer_source_ranges = vec!["198.19.65.0/24".parse().expect("literal")];
    fw.node_port = Some(30091);
    let empty = service("empty", Protocol::Tcp, "198.19.160.84", 80, &[]);
    let mut st = state(&[a, local, hair, fw.clone(), empty], all_addresses());
    st.settings.local_detector =
        LocalDetector::ClusterCidrs(vec!["198.18.0.0/16".parse().expect("literal")]);
    let st0 = st.clone();
    let be = backend(&t.node, IpvsConfig::default())?;
    let (be, r) = inside(&t.node, be, move |b| b.sync_full(&st0))?;
    r.map_err(|e| e.to_string())?;

    let x = tcp_query(&t.ext, sa(ip("198.19.160.80"), 80))?;
    ensure(x.peer == topo::BRIDGE_IP, || {
        format!("off-cluster to ClusterIP not masqueraded: {x:?}")
    })?;
    let x = tcp_query(&t.ext, sa(ip(topo::NODE_IP), 30090))?;
    ensure(x.peer == EXT_IP, || {
        format!("eTP=Local NodePort lost the client address: {x:?}")
    })?;
    let x = tcp_query(&t.pods[0], sa(ip("198.19.160.82"), 80))?;
    ensure(x.pod == pod_name(0) && x.peer == topo::BRIDGE_IP, || {
        format!("hairpin: {x:?}")
    })?;
    match tcp_query(&t.ext, sa(ip("198.19.200.3"), 80)) {
        Err(e) if e.contains("timed out") => {}
        other => {
            return Err(format!(
                "source outside loadBalancerSourceRanges not dropped: {other:?}"
            ))
        }
    }
    tcp_query(&t.ext, sa(ip(topo::NODE_IP), 30091))
        .map_err(|e| format!("NodePort of a filtered LB must stay open: {e}"))?;
    match tcp_query(&t.ext, sa(ip("198.19.160.84"), 80)) {
        Err(e) if e.contains("refused") => {}
        other => return Err(format!("service without endpoints not refused: {other:?}")),
    }
    let table = t
        .node
        .exec("/usr/sbin/nft", &["list", "table", "ip", "kproxy-ipvs"])?;
    for needle in [
        "masquerade",
        "ip daddr 198.19.200.3",
        "ip saddr 198.19.65.0/24",
        "ip saddr != 198.18.0.0/16",
    ] {
        ensure(table.contains(needle), || {
            format!("nft list table lacks {needle:?}:\n{table}")
        })?;
    }
    // Allow the client's range: a partial sync re-commits the table.
    let mut fw2 = fw;
    fw2.load_balancer_source_ranges = vec!["198.19.64.0/24".parse().expect("literal")];
    let mut st2 = st.clone();
    st2.services.insert(fw2.key(), fw2);
    let changes = st.diff(&st2);
    let (be, r) = inside(&t.node, be, move |b| b.sync_changes(&st2, &changes))?;
    r.map_err(|e| e.to_string())?;
    let x = tcp_query(&t.ext, sa(ip("198.19.200.3"), 80))?;
    ensure(x.peer == topo::BRIDGE_IP, || {
        format!("allowed LB source: {x:?}")
    })?;
    let (_be, r) = inside(&t.node, be, |b| b.cleanup())?;
    r.map_err(|e| e.to_string())?;
    let tables = t.node.exec("/usr/sbin/nft", &["list", "tables"])?;
    ensure(!tables.contains("kproxy-ipvs"), || {
        format!("cleanup left the table: {tables}")
    })
}

/// sessionAffinity ClientIP: a persistent virtual server; one client keeps its pod.
pub fn session_affinity() -> R {
    let t = Topology::new(3)?;
    let mut s = service(
        "sticky",
        Protocol::Tcp,
        "198.19.160.12",
        80,
        &pods(&[0, 1, 2]),
    );
    s.session_affinity = Some(SessionAffinity {
        timeout_seconds: 600,
    });
    let st = state(&[s], NodePortAddresses::Primary);
    let be = backend(&t.node, IpvsConfig::default())?;
    let (_be, r) = inside(&t.node, be, move |b| b.sync_full(&st))?;
    r.map_err(|e| e.to_string())?;
    let answers: Vec<_> = (0..5)
        .map(|_| tcp_query(&t.ext, sa(ip("198.19.160.12"), 80)))
        .collect::<Result<_, _>>()?;
    let c = count(&answers);
    ensure(c.len() == 1, || {
        format!("affinity: one pod expected, got {c:?}")
    })?;
    witness(&t.node, &["TCP 198.19.160.12:80 rr persistent 600"], &[])
}

/// Graceful termination: a removed endpoint with a live connection goes to weight 0, keeps
/// serving that connection, gets no new ones, and is deleted after its bound; one without
/// connections is deleted at once.
pub fn graceful_termination() -> R {
    let t = Topology::new(3)?;
    let vip = sa(ip("198.19.160.13"), 80);
    let full = service(
        "drain",
        Protocol::Tcp,
        "198.19.160.13",
        80,
        &pods(&[0, 1, 2]),
    );
    let st = state(&[full], NodePortAddresses::Primary);
    let cfg = IpvsConfig {
        graceful_termination_bound: Duration::from_secs(2),
        ..IpvsConfig::default()
    };
    let be = backend(&t.node, cfg)?;
    let st2 = st.clone();
    let (be, r) = inside(&t.node, be, move |b| b.sync_full(&st2))?;
    r.map_err(|e| e.to_string())?;

    let mut conn = tcp_open(&t.ext, vip)?;
    let busy = conn.answer.pod.clone();
    let busy_idx: usize = (0..3)
        .find(|i| pod_name(*i) == busy)
        .ok_or_else(|| format!("unknown pod {busy}"))?;
    let (keep, idle) = ((busy_idx + 1) % 3, (busy_idx + 2) % 3);
    let busy_ip = pod_ip(busy_idx);
    // Remove the busy pod and an idle one (no connections).
    let left = service("drain", Protocol::Tcp, "198.19.160.13", 80, &pods(&[keep]));
    let st3 = state(&[left], NodePortAddresses::Primary);
    let changes = st.diff(&st3);
    let (be, r) = inside(&t.node, be, move |b| b.sync_changes(&st3, &changes))?;
    let report = r.map_err(|e| e.to_string())?;
    ensure(report.kind == SyncKind::Partial, || format!("{report:?}"))?;
    witness(
        &t.node,
        &[&format!("-> {busy_ip}:8080 Masq 0 1")],
        &[&format!("-> {}:8080", pod_ip(idle))],
    )?;
    for _ in 0..4 {
        let a = tcp_query(&t.ext, vip)?;
        ensure(a.pod == pod_name(keep), || {
            format!("new connection went to a removed pod: {a:?}")
        })?;
    }
    let echo = conn.echo("still-there")?;
    ensure(echo == busy, || {
        format!("existing connection moved: {echo}")
    })?;
    drop(conn);
    std::thread::sleep(Duration::from_millis(2200));
    let (be, r) = inside(&t.node, be, |b| b.reap_draining())?;
    let reaped = r.map_err(|e| e.to_string())?;
    ensure(reaped == 1, || format!("reaped {reaped}, expected 1"))?;
    ensure(be.draining().count() == 0, || "still draining".into())?;
    witness(
        &t.node,
        &[&format!("-> {}:8080 Masq 1", pod_ip(keep))],
        &[&format!("-> {busy_ip}:8080")],
    )
}

/// Timeouts and sysctls from the configuration.
pub fn timeouts_and_sysctls() -> R {
    let t = Topology::new(1)?;
    let cfg = IpvsConfig {
        strict_arp: true,
        tcp_timeout: Duration::from_secs(900),
        tcp_fin_timeout: Duration::from_secs(30),
        udp_timeout: Duration::from_secs(300),
        ..IpvsConfig::default()
    };
    let st = state(
        &[service(
            "a",
            Protocol::Tcp,
            "198.19.160.20",
            80,
            &pods(&[0]),
        )],
        NodePortAddresses::Primary,
    );
    let be = backend(&t.node, cfg)?;
    let (_be, r) = inside(&t.node, be, move |b| b.sync_full(&st))?;
    r.map_err(|e| e.to_string())?;
    let out = ipvsadm(&t.node, &["-L", "--timeout"])?;
    ensure(out.contains("Timeout (tcp tcpfin udp): 900 30 300"), || {
        format!("timeouts: {out}")
    })?;
    check_sysctls(
        &t.node,
        &[
            ("net/ipv4/conf/all/arp_ignore", "1"),
            ("net/ipv4/conf/all/arp_announce", "2"),
            ("net/ipv4/vs/conntrack", "1"),
        ],
    )
}

/// What the seed's IPVS configs set on the node: the strictARP sysctls and, when given,
/// the IPVS timeouts (`ipvsadm -L --timeout` must contain `timeouts`). Returns the part of
/// the result line naming the timeouts checked.
fn check_seed_node_settings(node: &Netns, name: &str, timeouts: Option<&str>) -> Result<&'static str, String> {
    check_sysctls(node, &[("net/ipv4/conf/all/arp_ignore", "1"), ("net/ipv4/conf/all/arp_announce", "2")])?;
    let Some(want) = timeouts else {
        return Ok("");
    };
    let out = ipvsadm(node, &["-L", "--timeout"])?;
    ensure(out.contains(want), || format!("{name}: {out}"))?;
    Ok(", tcp 900s / udp 300s")
}

fn check_sysctls(node: &Netns, want: &[(&'static str, &'static str)]) -> R {
    let want = want.to_vec();
    node.run(move || {
        for (path, value) in want {
            let got = std::fs::read_to_string(format!("/proc/sys/{path}"))
                .map_err(|e| format!("{path}: {e}"))?;
            ensure(got.trim() == value, || {
                format!("{path} = {}, expected {value}", got.trim())
            })?;
        }
        Ok(())
    })?
}

/// Partial syncs send only the differences.
pub fn partial_sync_is_a_diff() -> R {
    let t = Topology::new(2)?;
    let a = service("a", Protocol::Tcp, "198.19.160.30", 80, &pods(&[0, 1]));
    let b = service("b", Protocol::Tcp, "198.19.160.31", 80, &pods(&[0, 1]));
    let s1 = state(std::slice::from_ref(&a), NodePortAddresses::Primary);
    let s2 = state(&[a, b], NodePortAddresses::Primary);
    let changes = s1.diff(&s2);
    let be = backend(&t.node, IpvsConfig::default())?;
    let (be, r) = inside(&t.node, be, move |x| x.sync_full(&s1))?;
    r.map_err(|e| e.to_string())?;
    let s2c = s2.clone();
    let (be, r) = inside(&t.node, be, move |x| x.sync_changes(&s2c, &changes))?;
    let rep = r.map_err(|e| e.to_string())?;
    // one VIP, one virtual server, two real servers
    ensure(rep.operations == 4 && rep.kind == SyncKind::Partial, || {
        format!("adding one service: {rep:?}")
    })?;
    let (_be, r) = inside(&t.node, be, move |x| {
        x.sync_changes(&s2, &ChangeSet::default())
    })?;
    let rep = r.map_err(|e| e.to_string())?;
    ensure(rep.operations == 0, || format!("no change: {rep:?}"))?;
    tcp_query(&t.ext, sa(ip("198.19.160.31"), 80)).map(|_| ())
}

/// A sync that fails halfway (a virtual server was deleted behind kproxy's back) keeps
/// what succeeded, reports what failed, and the next full sync repairs the rest.
pub fn failed_sync_is_repaired() -> R {
    let t = Topology::new(3)?;
    let a1 = service("a", Protocol::Tcp, "198.19.160.60", 80, &pods(&[0, 1]));
    let a2 = service("a", Protocol::Tcp, "198.19.160.60", 80, &pods(&[0, 1, 2]));
    let b = service("b", Protocol::Tcp, "198.19.160.61", 80, &pods(&[2]));
    let s1 = state(&[a1], NodePortAddresses::Primary);
    let s2 = state(&[a2, b], NodePortAddresses::Primary);
    let changes = s1.diff(&s2);
    let be = backend(&t.node, IpvsConfig::default())?;
    let (be, r) = inside(&t.node, be, move |x| x.sync_full(&s1))?;
    r.map_err(|e| e.to_string())?;
    t.node.exec(IPVSADM, &["-D", "-t", "198.19.160.60:80"])?;
    let s2c = s2.clone();
    let (be, r) = inside(&t.node, be, move |x| x.sync_changes(&s2c, &changes))?;
    let err = match r {
        Ok(rep) => {
            return Err(format!(
                "sync with a missing virtual server succeeded: {rep:?}"
            ))
        }
        Err(e) => e.to_string(),
    };
    ensure(
        err.contains("198.19.160.60") && err.contains("198.18.1.4:8080"),
        || format!("error does not name the failed op: {err}"),
    )?;
    println!("VMTEST   halfway failure reported as: {err}");
    // The backend keeps no copy of the state (the tracker's is the only one): after a failed
    // sync the caller repairs with a full sync, as the sync loop does (its own tests check
    // that a failed partial sync is followed by a full one).
    // What succeeded stays: service b answers.
    ensure(
        tcp_query(&t.ext, sa(ip("198.19.160.61"), 80))?.pod == pod_name(2),
        || "b not served".into(),
    )?;
    let (_be, r) = inside(&t.node, be, move |x| x.sync_full(&s2))?;
    r.map_err(|e| format!("repair: {e}"))?;
    witness(
        &t.node,
        &[
            "TCP 198.19.160.60:80 rr",
            "-> 198.18.1.2:8080",
            "-> 198.18.1.3:8080",
            "-> 198.18.1.4:8080",
        ],
        &[],
    )?;
    let c = count(
        &(0..3)
            .map(|_| tcp_query(&t.ext, sa(ip("198.19.160.60"), 80)))
            .collect::<Result<Vec<_>, _>>()?,
    );
    ensure(c.len() == 3, || {
        format!("repaired service spreads over 3 pods: {c:?}")
    })
}

/// The `kproxy` binary itself, `--once` with the seed's production (6.1) and large-cluster
/// (6.3) configurations against `examples/manifests`, inside the node namespace: traffic
/// and `ipvsadm -Ln` show what it programmed.
pub fn kproxy_binary_seed_configs() -> R {
    let kproxy = "/usr/bin/kproxy";
    ensure(std::path::Path::new(kproxy).is_file(), || {
        format!("{kproxy} is not in the initramfs")
    })?;
    for (name, config, timeouts) in [
        ("production (6.1)", "/examples/config/production.yaml", None),
        (
            "large-cluster (6.3)",
            "/examples/config/large-cluster.yaml",
            Some("Timeout (tcp tcpfin udp): 900 120 300"),
        ),
    ] {
        // The pods of examples/manifests (pod1..pod3 on node-1).
        let pods: Vec<(String, IpAddr, IpAddr)> = (1..=3)
            .map(|i| {
                (
                    format!("pod{i}"),
                    ip(&format!("198.18.0.1{i}")),
                    ip(&format!("2001:db8:a::1{i}")),
                )
            })
            .collect();
        let t = Topology::with_pods(&pods)?;
        let args = [
            "--config",
            config,
            "--manifests",
            "/examples/manifests",
            "--once",
            "--hostname-override",
            "node-1",
        ];
        t.node
            .exec(kproxy, &args)
            .map_err(|e| format!("{name}: kproxy --once failed: {e}"))?;
        let c = count(
            &(0..3)
                .map(|_| tcp_query(&t.ext, sa(ip("198.19.160.10"), 80)))
                .collect::<Result<Vec<_>, _>>()?,
        );
        ensure(c.len() == 3, || {
            format!("{name}: rr over pod1..pod3: {c:?}")
        })?;
        tcp_query(&t.ext, sa(ip(topo::NODE_IP), 30080))
            .map_err(|e| format!("{name}: NodePort 30080: {e}"))?;
        tcp_query(&t.ext, sa(ip("2001:db8:b::10"), 80))
            .map_err(|e| format!("{name}: IPv6 ClusterIP: {e}"))?;
        let sticky = count(
            &(0..3)
                .map(|_| tcp_query(&t.ext, sa(ip("198.19.160.12"), 80)))
                .collect::<Result<Vec<_>, _>>()?,
        );
        ensure(sticky.len() == 1, || {
            format!("{name}: sessionAffinity: {sticky:?}")
        })?;
        witness(
            &t.node,
            &[
                "TCP 198.19.160.10:80 rr",
                "UDP 198.19.160.10:53 rr",
                "-> 198.18.0.11:8080 Masq 1",
                "-> 198.18.0.13:5353 Masq 1",
                "TCP 198.19.160.12:80 rr persistent 600",
                "TCP 198.19.0.2:30080 rr",
                "TCP [2001:db8:b::10]:80 rr",
            ],
            &[],
        )?;
        let timeouts_checked = check_seed_node_settings(&t.node, name, timeouts)?;
        println!(
            "VMTEST   kproxy --once {name}: rr, affinity, NodePort, IPv6, strictARP{} verified",
            timeouts_checked
        );
    }
    Ok(())
}

/// Scale: full sync of N services x 2 endpoints, then a partial sync adding one service and
/// one changing an endpoint; prints the times (software-emulated CPU: compare, don't quote).
pub fn sync_scale() -> R {
    let t = Topology::new(2)?;
    for n in [1000usize, 5000] {
        let ports: Vec<ServicePort> = (0..n)
            .map(|i| {
                let cip = format!("198.19.{}.{}", 160 + i / 250, 1 + i % 250);
                service(&format!("s{i}"), Protocol::Tcp, &cip, 80, &pods(&[0, 1]))
            })
            .collect();
        let s1 = state(&ports, NodePortAddresses::Primary);
        let mut more = ports.clone();
        more.push(service(
            "extra",
            Protocol::Tcp,
            "198.19.190.1",
            80,
            &pods(&[0, 1]),
        ));
        more[0] = service("s0", Protocol::Tcp, "198.19.160.1", 80, &pods(&[1]));
        let s2 = state(&more, NodePortAddresses::Primary);
        let changes = s1.diff(&s2);
        let be = backend(&t.node, IpvsConfig::default())?;
        let s1c = s1.clone();
        let (be, r) = inside(&t.node, be, move |b| {
            let t0 = std::time::Instant::now();
            let r = b.sync_full(&s1c);
            (r, t0.elapsed())
        })?;
        let (rep, full) = (r.0.map_err(|e| e.to_string())?, r.1);
        let (be, r) = inside(&t.node, be, move |b| {
            let t0 = std::time::Instant::now();
            let r = b.sync_changes(&s2, &changes);
            (r, t0.elapsed())
        })?;
        let (prep, partial) = (r.0.map_err(|e| e.to_string())?, r.1);
        // Restart: a new process dumps and reconciles a table that is already right.
        let s2b = state(&more, NodePortAddresses::Primary);
        let (_be, r) = inside(
            &t.node,
            backend(&t.node, IpvsConfig::default())?,
            move |b| {
                let t0 = std::time::Instant::now();
                let r = b.sync_full(&s2b);
                (r, t0.elapsed())
            },
        )?;
        let (rrep, restart) = (r.0.map_err(|e| e.to_string())?, r.1);
        drop(be);
        println!(
            "VMTEST   scale {n} services x 2 endpoints: full sync {:.0} ms ({} ops), partial sync {:.1} ms ({} ops), restart full sync {:.0} ms ({} ops)",
            full.as_secs_f64() * 1e3,
            rep.operations,
            partial.as_secs_f64() * 1e3,
            prep.operations,
            restart.as_secs_f64() * 1e3,
            rrep.operations
        );
        // extra: VIP + service + 2 reals; s0: one real drained (and reaped: no connections)
        ensure(prep.operations == 4 + 1 + 1, || {
            format!("partial ops: {prep:?}")
        })?;
        ensure(rrep.operations == 0, || {
            format!("restart on a correct table changed things: {rrep:?}")
        })?;
        let out = t.node.exec(IPVSADM, &["-Ln"])?;
        let count = out.lines().filter(|l| l.starts_with("TCP")).count();
        ensure(count == n + 1, || {
            format!("{count} virtual servers, expected {}", n + 1)
        })?;
        inside(&t.node, backend(&t.node, IpvsConfig::default())?, |b| {
            b.cleanup()
        })?
        .1
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A new process adopts and repairs the kernel table: stale services and real servers go,
/// excluded ones stay; cleanup removes everything else and kube-ipvs0.
pub fn restart_reconcile_and_cleanup() -> R {
    let t = Topology::new(2)?;
    let a = service("a", Protocol::Tcp, "198.19.160.40", 80, &pods(&[0]));
    let st = state(&[a], NodePortAddresses::Primary);
    // Left behind by "an earlier process" and by someone else:
    t.node
        .exec(IPVSADM, &["-A", "-t", "198.19.160.40:80", "-s", "wrr"])?;
    t.node.exec(
        IPVSADM,
        &[
            "-a",
            "-t",
            "198.19.160.40:80",
            "-r",
            "198.18.1.9:8080",
            "-m",
            "-w",
            "5",
        ],
    )?;
    t.node
        .exec(IPVSADM, &["-A", "-t", "198.19.160.99:80", "-s", "rr"])?;
    t.node
        .exec(IPVSADM, &["-A", "-t", "198.19.250.5:80", "-s", "rr"])?;
    let cfg = IpvsConfig {
        exclude_cidrs: vec!["198.19.250.0/24".parse().expect("literal")],
        ..IpvsConfig::default()
    };
    let be = backend(&t.node, cfg)?;
    let (be, r) = inside(&t.node, be, move |b| b.sync_full(&st))?;
    r.map_err(|e| e.to_string())?;
    witness(
        &t.node,
        &[
            "TCP 198.19.160.40:80 rr",
            "-> 198.18.1.2:8080 Masq 1",
            "TCP 198.19.250.5:80 rr",
        ],
        &["198.19.160.99", "198.18.1.9"],
    )?;
    tcp_query(&t.ext, sa(ip("198.19.160.40"), 80))?;
    let (_be, r) = inside(&t.node, be, |b| b.cleanup())?;
    r.map_err(|e| e.to_string())?;
    witness(&t.node, &["TCP 198.19.250.5:80 rr"], &["198.19.160.40"])?;
    let links = t.node.ip("-o link show")?;
    ensure(!links.contains("kube-ipvs0"), || {
        format!("kube-ipvs0 left after cleanup: {links}")
    })
}

/// The seed's production (6.1) and large-cluster (6.3) configurations, loaded by kproxy's
/// config parser, drive the backend: rr, strict ARP, and (6.3) tcp 900s / udp 300s.
pub fn seed_configs() -> R {
    for (name, yaml, timeouts) in [
        ("production (6.1)", crate::seed::PRODUCTION, None),
        (
            "large-cluster (6.3)",
            crate::seed::LARGE_CLUSTER,
            Some("Timeout (tcp tcpfin udp): 900 120 300"),
        ),
    ] {
        let parsed = kproxy_core::config::parse(yaml, name).map_err(|e| format!("{name}: {e}"))?;
        ensure(parsed.config.mode == "ipvs", || {
            format!("{name}: mode {}", parsed.config.mode)
        })?;
        let cfg = IpvsConfig::from_kube(&parsed.config.ipvs).map_err(|e| format!("{name}: {e}"))?;
        let t = Topology::new(2)?;
        let mut s = service("web", Protocol::Tcp, "198.19.160.50", 80, &pods(&[0, 1]));
        s.node_port = Some(30050);
        let mut st = state(&[s], NodePortAddresses::Primary);
        st.settings = parsed
            .config
            .proxy_settings("node".into(), vec![ip(topo::NODE_IP)]);
        let be = backend(&t.node, cfg)?;
        let (_be, r) = inside(&t.node, be, move |b| b.sync_full(&st))?;
        r.map_err(|e| format!("{name}: {e}"))?;
        let answers: Vec<_> = (0..4)
            .map(|_| tcp_query(&t.ext, sa(ip(topo::NODE_IP), 30050)))
            .collect::<Result<_, _>>()?;
        let c = count(&answers);
        ensure(c.len() == 2 && c.values().all(|n| *n == 2), || {
            format!("{name}: rr over NodePort: {c:?}")
        })?;
        witness(
            &t.node,
            &[
                "TCP 198.19.160.50:80 rr",
                "TCP 198.19.0.2:30050 rr",
                "TCP 198.19.64.1:30050 rr",
            ],
            &[],
        )?;
        let timeouts_checked = check_seed_node_settings(&t.node, name, timeouts)?;
        println!(
            "VMTEST   {name}: rr, strictARP sysctls{} verified",
            timeouts_checked
        );
    }
    Ok(())
}
