//! In-VM cases about traffic: every kind of destination, protocol and family, the
//! schedulers, session affinity and the nftables part of IPVS mode, with real packets.

use std::net::SocketAddr;

use kproxy_core::backend::{ProxyBackend, SyncKind};
use kproxy_core::model::*;
use kproxy_ipvs::IpvsConfig;

use crate::cases::*;
use crate::topo::{self, pod_ip6, pod_name, tcp_query, udp_query, Topology, EXT_IP, POD_PORT};

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
