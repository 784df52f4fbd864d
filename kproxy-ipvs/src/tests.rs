//! Unit tests: byte fixtures of IPVS / rtnetlink messages, encode/decode round trips,
//! planning and reconciliation.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::*;

use crate::config::IpvsConfig;
use crate::diff;
use crate::ipvs::Op;
use crate::ipvs_msg::{self as m, *};
use kproxy_netlink::{Messages, MsgBuilder};
use crate::plan;

const FAMILY: u16 = 0x25;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vs(addr: &str, port: u16) -> VirtualServer {
    let addr = ip(addr);
    VirtualServer {
        key: ServiceKey {
            protocol: Protocol::Tcp,
            addr,
            port,
        },
        scheduler: "rr".into(),
        flags: 0,
        timeout: 0,
        netmask: VirtualServer::host_netmask(&addr),
    }
}

fn rs(addr: &str, port: u16, weight: u32) -> RealServer {
    RealServer {
        key: RealKey {
            addr: ip(addr),
            port,
        },
        weight,
        forward: Forward::Masq,
    }
}

/// The payload after the netlink header, as a reply parser sees it.
fn payload(msg: &[u8]) -> Vec<u8> {
    Messages::new(msg).next().unwrap().payload.to_vec()
}

#[test]
fn new_service_matches_fixture() {
    // Layout per linux/ip_vs.h: nlmsghdr, genlmsghdr{cmd 1, version 1}, nested
    // IPVS_CMD_ATTR_SERVICE{AF, PROTOCOL, ADDR (16-byte nf_inet_addr), PORT (be16),
    // SCHED_NAME, FLAGS{flags, mask}, TIMEOUT, NETMASK}.
    let expected = hex("68000000 2500 0500 00000000 00000000
         01010000
         54000180
           06000100 0200 0000
           06000200 0600 0000
           14000300 c613a00a 00000000 00000000 00000000
           06000400 0050 0000
           07000600 727200 00
           0c000700 00000000 ffffffff
           08000800 00000000
           08000900 ffffffff");
    assert_eq!(
        m::encode_service(FAMILY, cmd::NEW_SERVICE, &vs("198.19.160.10", 80)),
        expected
    );
}

#[test]
fn new_dest_matches_fixture() {
    let expected = hex("8c000000 2500 0500 00000000 00000000
         05010000
         30000180
           06000100 0200 0000
           06000200 0600 0000
           14000300 c613a00a 00000000 00000000 00000000
           06000400 0050 0000
         48000280
           14000100 c6120102 00000000 00000000 00000000
           06000200 1f90 0000
           08000300 00000000
           08000400 01000000
           08000500 00000000
           08000600 00000000
           06000b00 0200 0000");
    let got = m::encode_dest(
        FAMILY,
        cmd::NEW_DEST,
        &vs("198.19.160.10", 80).key,
        &rs("198.18.1.2", 8080, 1),
    );
    assert_eq!(got, expected);
}

#[test]
fn del_dest_carries_only_the_key() {
    let msg = m::encode_dest(
        FAMILY,
        cmd::DEL_DEST,
        &vs("198.19.160.10", 80).key,
        &rs("198.18.1.2", 8080, 1),
    );
    // service nest 48 + dest nest (addr 20, port 8, family 8) 40 + headers 20
    assert_eq!(msg.len(), 20 + 48 + 40);
    assert_eq!(msg[16], cmd::DEL_DEST);
}

#[test]
fn set_timeouts_sends_only_nonzero() {
    let msg = m::encode_set_timeouts(
        FAMILY,
        &Timeouts {
            tcp: 900,
            tcp_fin: 0,
            udp: 300,
        },
    );
    let expected = hex("24000000 2500 0500 00000000 00000000
         0c010000
         08000400 84030000
         08000600 2c010000");
    assert_eq!(msg, expected);
}

#[test]
fn service_round_trips_v4_v6_persistent() {
    let mut v6 = vs("2001:db8:b::10", 443);
    v6.key.protocol = Protocol::Udp;
    v6.flags = SVC_F_PERSISTENT;
    v6.timeout = 10800;
    v6.scheduler = "mh".into();
    for s in [vs("198.19.160.10", 80), v6] {
        let decoded = m::decode_service(&payload(&m::reply::service(FAMILY, &s))).unwrap();
        assert_eq!(decoded, s);
    }
}

#[test]
fn decode_service_ignores_hashed_flag_stats_and_skips_fwmark() {
    let s = vs("198.19.160.10", 80);
    let mut b = MsgBuilder::new(FAMILY, 0).header(&[cmd::NEW_SERVICE, 1, 0, 0]);
    b.begin_nest(1);
    b.u16(1, libc::AF_INET as u16)
        .u16(2, 6)
        .attr(3, &[198, 19, 160, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.be16(4, 80)
        .str(6, "rr")
        .attr(7, &[2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])
        .u32(8, 0)
        .u32(9, 0xffff_ffff);
    b.begin_nest(10).u32(1, 5).end_nest(); // stats
    b.end_nest();
    assert_eq!(m::decode_service(&payload(&b.finish())).unwrap(), s);

    let mut b = MsgBuilder::new(FAMILY, 0).header(&[cmd::NEW_SERVICE, 1, 0, 0]);
    b.begin_nest(1)
        .u16(1, libc::AF_INET as u16)
        .u32(5, 7)
        .str(6, "rr")
        .end_nest();
    assert_eq!(
        m::decode_service(&payload(&b.finish())),
        None,
        "fwmark services are left alone"
    );
}

#[test]
fn dest_round_trips_with_counters() {
    let c = RealCounters {
        active: 3,
        inactive: 4,
        persistent: 1,
    };
    for r in [rs("198.18.1.2", 8080, 0), rs("2001:db8:a::2", 53, 7)] {
        let fam = if r.key.addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        } as u16;
        let (got, counters) =
            m::decode_dest(&payload(&m::reply::dest(FAMILY, &r, &c)), fam).unwrap();
        assert_eq!((got, counters), (r, c));
    }
}

#[test]
fn timeouts_and_info_round_trip() {
    let t = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    assert_eq!(
        m::decode_timeouts(&payload(&m::reply::timeouts(FAMILY, &t))),
        t
    );
    let i = Info {
        version: 0x010201,
        conn_tab_size: 4096,
    };
    assert_eq!(m::decode_info(&payload(&m::reply::info(FAMILY, &i))), i);
}

#[test]
fn get_family_request_matches_fixture() {
    let expected = hex("20000000 1000 0100 00000000 00000000 03010000 09000200 49505653 00 000000");
    assert_eq!(crate::ipvs::encode_get_family("IPVS"), expected);
    let mut b = MsgBuilder::new(0x10, 0).header(&[1, 2, 0, 0]);
    b.u16(1, 0x25).str(2, "IPVS");
    assert_eq!(
        crate::ipvs::decode_family_id(&payload(&b.finish())),
        Some(0x25)
    );
}

#[test]
fn rtnl_addr_round_trip() {
    let msg = crate::rtnl::encode_addr(true, 7, &ip("2001:db8:b::10"), 128);
    let a = crate::rtnl::decode_addr(&payload(&msg)).unwrap();
    assert_eq!(
        (a.index, a.addr, a.prefix_len),
        (7, ip("2001:db8:b::10"), 128)
    );
}

// ---- planning and reconciliation ----

fn port(name: &str, cluster_ip: &str, eps: &[&str]) -> ServicePort {
    let cluster_ip = ip(cluster_ip);
    let endpoints: Vec<SocketAddr> = eps.iter().map(|e| e.parse().unwrap()).collect();
    let name = ServicePortName {
        namespace: "default".into(),
        name: name.into(),
        port: "".into(),
        protocol: Protocol::Tcp,
    };
    let mut sp = ServicePort::new(name, cluster_ip, 80);
    sp.cluster_endpoints = endpoints.clone();
    sp.local_endpoints = endpoints;
    sp
}

fn state(ports: Vec<ServicePort>) -> ProxyState {
    let mut s = ProxyState::default();
    for p in ports {
        s.services.insert(p.key(), p);
    }
    s
}

#[test]
fn plan_has_a_virtual_server_per_destination() {
    let mut p = port(
        "web",
        "198.19.160.10",
        &["198.18.1.2:8080", "198.18.2.2:8080"],
    );
    p.external_ips = vec![ip("198.19.99.1")];
    p.load_balancer_ips = vec![ip("198.19.200.1")];
    p.node_port = Some(30080);
    p.external_traffic_policy = TrafficPolicy::Local;
    p.local_endpoints = vec!["198.18.1.2:8080".parse().unwrap()];
    p.session_affinity = Some(SessionAffinity {
        timeout_seconds: 600,
    });
    let d = plan::plan(
        &IpvsConfig::default(),
        &state(vec![p]),
        &[ip("198.19.0.2"), ip("2001:db8:c::2")],
    );
    let keys: Vec<String> = d.table.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        keys,
        [
            "tcp 198.19.0.2:30080",
            "tcp 198.19.99.1:80",
            "tcp 198.19.160.10:80",
            "tcp 198.19.200.1:80"
        ]
    );
    let cip = &d.table[&vs("198.19.160.10", 80).key];
    assert_eq!(cip.reals.len(), 2, "ClusterIP uses cluster endpoints");
    assert_eq!(
        (cip.service.flags, cip.service.timeout),
        (SVC_F_PERSISTENT, 600)
    );
    let np = d
        .table
        .values()
        .find(|e| e.service.key.port == 30080)
        .unwrap();
    assert_eq!(np.reals.len(), 1, "eTP=Local NodePort uses local endpoints");
    let vips: BTreeSet<IpAddr> =
        [ip("198.19.99.1"), ip("198.19.160.10"), ip("198.19.200.1")].into();
    assert_eq!(d.vips, vips, "NodePort addresses are not VIPs");
}

#[test]
fn node_port_addresses_follow_cidrs_and_skip_loopback() {
    use crate::rtnl::LinkAddr;
    let local = [
        LinkAddr {
            index: 1,
            addr: ip("127.0.0.1"),
            prefix_len: 8,
        },
        LinkAddr {
            index: 2,
            addr: ip("198.19.0.2"),
            prefix_len: 24,
        },
        LinkAddr {
            index: 2,
            addr: ip("fe80::1"),
            prefix_len: 64,
        },
        LinkAddr {
            index: 3,
            addr: ip("198.19.160.10"),
            prefix_len: 32,
        },
    ];
    let mut s = ProxySettings {
        node_ips: vec![ip("198.19.0.9")],
        ..Default::default()
    };
    assert_eq!(
        plan::node_port_addresses(&s, &local, &[1, 3]),
        vec![ip("198.19.0.9")]
    );
    s.node_port_addresses =
        NodePortAddresses::Cidrs(vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]);
    assert_eq!(
        plan::node_port_addresses(&s, &local, &[1, 3]),
        vec![ip("198.19.0.2")]
    );
}

fn desired(ports: Vec<ServicePort>) -> plan::Table {
    plan::plan(&IpvsConfig::default(), &state(ports), &[]).table
}

#[test]
fn reconcile_adds_updates_and_drains() {
    let none = |_: &IpAddr| false;
    let before = desired(vec![port(
        "a",
        "198.19.160.10",
        &["198.18.1.2:80", "198.18.1.3:80"],
    )]);
    let r = diff::reconcile(&Default::default(), &before, &none);
    assert_eq!(r.ops.len(), 3);
    assert!(matches!(r.ops[0], Op::AddService(_)));

    let after = desired(vec![port(
        "a",
        "198.19.160.10",
        &["198.18.1.2:80", "198.18.1.4:80"],
    )]);
    let r = diff::reconcile(&before, &after, &none);
    let k = vs("198.19.160.10", 80).key;
    assert_eq!(
        r.ops,
        vec![
            Op::AddReal(k, rs("198.18.1.4", 80, 1)),
            Op::UpdateReal(k, rs("198.18.1.3", 80, 0))
        ]
    );
    assert_eq!(
        r.draining,
        vec![(
            k,
            RealKey {
                addr: ip("198.18.1.3"),
                port: 80
            }
        )]
    );

    // Applying the ops gives a table whose next reconcile only keeps draining.
    let mut t = before.clone();
    r.ops.iter().for_each(|op| diff::apply(&mut t, op));
    let again = diff::reconcile(&t, &after, &none);
    assert!(again.ops.is_empty(), "{:?}", again.ops);
    assert_eq!(again.draining.len(), 1);

    // Desired again: back to weight 1.
    let back = diff::reconcile(&t, &before, &none);
    assert_eq!(
        back.ops,
        vec![
            Op::UpdateReal(k, rs("198.18.1.3", 80, 1)),
            Op::UpdateReal(k, rs("198.18.1.4", 80, 0))
        ]
    );
}

#[test]
fn reconcile_deletes_stale_services_except_excluded() {
    let current = desired(vec![
        port("a", "198.19.160.10", &[]),
        port("b", "198.19.99.5", &[]),
    ]);
    let excluded = |a: &IpAddr| {
        "198.19.99.0/24"
            .parse::<ipnet::IpNet>()
            .unwrap()
            .contains(a)
    };
    let r = diff::reconcile(&current, &Default::default(), &excluded);
    assert_eq!(r.ops, vec![Op::DelService(vs("198.19.160.10", 80).key)]);
}

#[test]
fn reconcile_updates_changed_scheduler_and_affinity() {
    let current = desired(vec![port("a", "198.19.160.10", &["198.18.1.2:80"])]);
    let mut p = port("a", "198.19.160.10", &["198.18.1.2:80"]);
    p.session_affinity = Some(SessionAffinity {
        timeout_seconds: 10800,
    });
    let r = diff::reconcile(&current, &desired(vec![p]), &|_| false);
    assert!(
        matches!(&r.ops[..], [Op::UpdateService(v)] if v.flags == SVC_F_PERSISTENT && v.timeout == 10800)
    );
}

#[test]
fn reap_waits_for_connections_or_bound() {
    let busy = RealCounters {
        active: 1,
        inactive: 0,
        persistent: 0,
    };
    assert!(!diff::reap(Some(&busy), false));
    assert!(diff::reap(Some(&busy), true));
    assert!(diff::reap(Some(&RealCounters::default()), false));
    assert!(diff::reap(None, false));
}

#[test]
fn vip_diff_keeps_excluded() {
    let cur: BTreeSet<IpAddr> = [ip("198.19.160.1"), ip("198.19.99.1")].into();
    let want: BTreeSet<IpAddr> = [ip("198.19.160.2")].into();
    let excluded = |a: &IpAddr| *a == ip("198.19.99.1");
    assert_eq!(
        diff::vips(&cur, &want, &excluded),
        (vec![ip("198.19.160.2")], vec![ip("198.19.160.1")])
    );
}

#[test]
fn desired_index_updates_match_a_full_plan() {
    let cfg = IpvsConfig::default();
    let npa = [ip("198.19.0.2")];
    let mut a = port("a", "198.19.160.10", &["198.18.1.2:80"]);
    a.external_ips = vec![ip("198.19.99.1")];
    let mut b = port("b", "198.19.160.11", &["198.18.1.3:80"]);
    b.external_ips = vec![ip("198.19.99.1")]; // same ExternalIP:port as a: a collision
    b.node_port = Some(30001);
    let mut a2 = a.clone();
    a2.cluster_endpoints.push("198.18.1.9:80".parse().unwrap());
    let mut a_other_port = port("a", "198.19.160.10", &["198.18.1.2:81"]);
    a_other_port.name.port = "metrics".into();
    a_other_port.port = 81;
    let states = [
        state(vec![]),
        state(vec![a.clone(), b.clone()]),
        state(vec![a2.clone(), b.clone(), a_other_port.clone()]),
        state(vec![a_other_port.clone()]), // ClusterIP still used by the other port: VIP stays
        state(vec![b.clone()]),
        state(vec![a, b]),
        state(vec![]),
    ];
    let mut index = plan::DesiredIndex::build(&cfg, &states[0], &npa);
    for pair in states.windows(2) {
        let changes = pair[0].diff(&pair[1]);
        let mut touched = plan::Touched::default();
        for key in changes.services.keys() {
            index.update(&cfg, key, pair[1].services.get(key), &npa, &mut touched);
        }
        assert_eq!(
            index.desired(),
            &plan::plan(&cfg, &pair[1], &npa),
            "after {:?}",
            pair[1].services.keys()
        );
        assert_eq!(
            index.desired(),
            plan::DesiredIndex::build(&cfg, &pair[1], &npa).desired()
        );
    }
}

#[test]
fn nft_rules_do_not_grow_with_services_elements_do() {
    use crate::nft_sets::{bytes, Part};
    let mut p = port("web", "198.19.160.10", &["198.18.1.2:8080"]);
    p.node_port = Some(30080);
    let mut local = port("local", "198.19.160.11", &["198.18.1.3:80"]);
    local.external_ips = vec![ip("198.19.99.1")];
    local.external_traffic_policy = TrafficPolicy::Local;
    let mut s = state(vec![p.clone(), local]);
    s.settings.masquerade_bit = 14;
    s.settings.local_detector = LocalDetector::ClusterCidrs(vec!["198.18.0.0/16".parse().unwrap()]);
    let [(_, v4), (_, v6)] = crate::nft::render(&s, &[ip("198.19.0.2")]);
    let texts: Vec<&str> = v4.services.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "ip saddr != 198.18.0.0/16 ip daddr . meta l4proto . th dport @cluster-masq meta mark set meta mark | 0x4000",
            "ip daddr . meta l4proto . th dport @external-masq meta mark set meta mark | 0x4000",
        ]
    );
    let keys = |set: &str| -> Vec<Vec<u8>> {
        v4.elements
            .get(set)
            .map(|v| v.iter().map(|e| e.key.clone()).collect())
            .unwrap_or_default()
    };
    let dpt = |a: &str, port: u16| {
        bytes(&[
            Part::Addr(ip(a)),
            Part::Proto(Protocol::Tcp),
            Part::Port(port),
        ])
    };
    assert_eq!(
        keys("cluster-masq"),
        [dpt("198.19.160.10", 80), dpt("198.19.160.11", 80)]
    );
    assert_eq!(
        keys("external-masq"),
        [dpt("198.19.0.2", 30080)],
        "eTP=Local ExternalIP is not marked"
    );
    assert_eq!(keys("short-circuit"), [dpt("198.19.99.1", 80)]);
    assert!(
        keys("no-local-endpoints").is_empty(),
        "local has a local endpoint"
    );
    assert_eq!(
        dpt("198.19.0.2", 30080),
        [198, 19, 0, 2, 6, 0, 0, 0, 0x75, 0x80, 0, 0]
    );
    let post: Vec<&str> = v4.postrouting.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(
        post,
        [
            "meta mark & 0x00004000 != 0x00000000 masquerade fully-random",
            "ip saddr . ip daddr @hairpin masquerade fully-random",
        ]
    );
    assert_eq!(keys("hairpin").len(), 2);
    assert!(v6.elements.values().all(|v| v.is_empty()));
    // A thousand more services: the same rules, more elements.
    let mut big = s.clone();
    for i in 0..1000u32 {
        let mut q = p.clone();
        q.name.name = format!("svc{i}");
        q.cluster_ip = ip(&format!("198.19.{}.{}", 161 + i / 250, i % 250 + 1));
        q.node_port = Some(31000 + i as u16);
        big.services.insert(q.key(), q);
    }
    let [(_, b4), _] = crate::nft::render(&big, &[ip("198.19.0.2")]);
    assert_eq!(b4.services, v4.services);
    assert_eq!(b4.input, v4.input);
    assert_eq!(b4.nat_prerouting, v4.nat_prerouting);
    assert_eq!(b4.elements["cluster-masq"].len(), 1002);
}

#[test]
fn nft_source_ranges_and_their_node_ip_exception() {
    let mut fw = port("fw", "198.19.160.21", &["198.18.1.2:8080"]);
    fw.load_balancer_ips = vec![ip("198.19.200.6")];
    fw.load_balancer_source_ranges = vec!["198.19.0.0/24".parse().unwrap()];
    let mut s = state(vec![fw]);
    let lb = "ip daddr 198.19.200.6 meta l4proto tcp th dport 80";
    let [(_, v4), _] = crate::nft::render(&s, &[]);
    let texts: Vec<String> = v4.services.iter().map(|r| r.text.clone()).collect();
    assert_eq!(
        texts[1..],
        [
            format!("{lb} ip saddr 198.19.0.0/24 accept"),
            format!("{lb} drop")
        ],
        "no node IP in the range: no exception"
    );
    s.settings.node_ips = vec![ip("198.19.0.2")];
    let [(_, v4), _] = crate::nft::render(&s, &[]);
    let texts: Vec<String> = v4.services.iter().map(|r| r.text.clone()).collect();
    assert_eq!(
        texts[1..],
        [
            format!("{lb} ip saddr 198.19.0.0/24 accept"),
            format!("{lb} ip saddr 198.19.200.6 accept"),
            format!("{lb} drop"),
        ]
    );
}

#[test]
fn nft_rendering_updates_per_port_and_reports_changes() {
    let a = port("a", "198.19.160.10", &["198.18.1.2:80", "198.18.1.3:80"]);
    let b = port("b", "198.19.160.11", &["198.18.1.2:80", "198.18.1.3:80"]);
    let s1 = state(vec![a.clone(), b.clone()]);
    let mut r = crate::nft::Rendering::build(&s1, &[]);
    // a loses 198.18.1.3, still used by b: no hairpin change, no ClusterIP rule (no detector).
    let a2 = port("a", "198.19.160.10", &["198.18.1.2:80"]);
    let s2 = state(vec![a2.clone(), b.clone()]);
    assert!(!r.update(&s2.settings, &a2.key(), Some(&a2), &[]));
    assert_eq!(r.rules(&s2.settings), crate::nft::render(&s2, &[]));
    // b goes too: 198.18.1.3 has no user left, its hairpin rule goes.
    let s3 = state(vec![a2.clone()]);
    assert!(r.update(&s3.settings, &b.key(), None, &[]));
    assert_eq!(r.rules(&s3.settings), crate::nft::render(&s3, &[]));
    // An ExternalIP with eTP=Cluster adds a rule.
    let mut a3 = a2.clone();
    a3.external_ips = vec![ip("198.19.99.1")];
    let s4 = state(vec![a3.clone()]);
    assert!(r.update(&s4.settings, &a3.key(), Some(&a3), &[]));
    assert_eq!(r.rules(&s4.settings), crate::nft::render(&s4, &[]));
}

#[test]
fn nft_rules_filter_vips_short_circuit_and_drop_etp_local() {
    use crate::nft_sets::{bytes, Part};
    let mut remote = port("remote", "198.19.160.20", &["198.18.1.4:8080"]);
    remote.local_endpoints.clear();
    remote.external_traffic_policy = TrafficPolicy::Local;
    remote.load_balancer_ips = vec![ip("198.19.200.5")];
    remote.node_port = Some(30092);
    let mut s = state(vec![remote]);
    s.settings.masquerade_bit = 14;
    s.settings.node_ips = vec![ip("198.19.0.2")];
    s.settings.local_detector = LocalDetector::ClusterCidrs(vec!["198.18.0.0/16".parse().unwrap()]);
    let [(_, v4), _] = crate::nft::render(&s, &[ip("198.19.0.2")]);
    let texts = |rules: &[kproxy_nft::lowlevel::Rule]| -> Vec<String> {
        rules.iter().map(|r| r.text.clone()).collect()
    };
    let key = "ip daddr . meta l4proto . th dport";
    assert_eq!(
        texts(&v4.nat_prerouting),
        [
            format!("ip saddr 198.18.0.0/16 dnat ip to {key} map @short-circuit"),
            format!("{key} @no-local-endpoints drop"),
        ]
    );
    assert_eq!(
        texts(&v4.nat_output),
        [format!(
            "meta mark set meta mark | 0x4000 dnat ip to {key} map @short-circuit"
        )]
    );
    assert_eq!(
        texts(&v4.input),
        [
            format!("{key} @service-ports accept"),
            "fib daddr type local meta l4proto . th dport @node-ports accept".to_string(),
            "ip daddr @vips ct state new reject".to_string(),
        ]
    );
    let dpt = |a: &str, port: u16| {
        bytes(&[
            Part::Addr(ip(a)),
            Part::Proto(Protocol::Tcp),
            Part::Port(port),
        ])
    };
    let sc = &v4.elements["short-circuit"];
    assert_eq!(
        sc.iter().map(|e| e.key.clone()).collect::<Vec<_>>(),
        [dpt("198.19.0.2", 30092), dpt("198.19.200.5", 80)]
    );
    let target = kproxy_nft::lowlevel::RawData::Bytes(bytes(&[
        Part::Addr(ip("198.19.160.20")),
        Part::Port(80),
    ]));
    assert!(sc.iter().all(|e| e.data == target));
    assert_eq!(v4.elements["no-local-endpoints"].len(), 2);
    // The VIPs, but not the node IP.
    let vips: Vec<Vec<u8>> = v4.elements["vips"].iter().map(|e| e.key.clone()).collect();
    assert_eq!(vips, [vec![198, 19, 160, 20], vec![198, 19, 200, 5]]);
}

#[test]
fn nft_endpoint_changes_are_element_updates_only() {
    let mut a = port("a", "198.19.160.10", &["198.18.1.2:80"]);
    a.node_port = Some(30080);
    let s1 = state(vec![a.clone()]);
    let mut r = crate::nft::Rendering::build(&s1, &[ip("198.19.0.2")]);
    let (_, rules_changed) = r.take_pending();
    assert!(rules_changed, "a new rendering replaces the table");
    let mut a2 = a.clone();
    a2.cluster_endpoints = vec!["198.18.1.3:80".parse().unwrap()];
    a2.local_endpoints = a2.cluster_endpoints.clone();
    assert!(r.update(&s1.settings, &a2.key(), Some(&a2), &[ip("198.19.0.2")]));
    let (pending, rules_changed) = r.take_pending();
    assert!(!rules_changed);
    // The hairpin element of the old endpoint deleted, the new one added.
    let changes: Vec<(&str, bool)> = pending
        .iter()
        .map(|(_, (set, _, _), add)| (*set, *add))
        .collect();
    assert_eq!(changes, [("hairpin", true), ("hairpin", false)]);
}

#[test]
fn nft_part_transactions_pass_the_fake_kernels_rules() {
    use kproxy_nft::lowlevel::FakeKernel;
    let mut p = port("web", "198.19.160.10", &["198.18.1.2:8080"]);
    p.node_port = Some(30080);
    let mut local = port("local", "198.19.160.11", &["198.18.1.3:80"]);
    local.external_ips = vec![ip("198.19.99.1")];
    local.external_traffic_policy = TrafficPolicy::Local;
    let mut a = state(vec![p.clone()]);
    a.settings.local_detector = LocalDetector::ClusterCidrs(vec!["198.18.0.0/16".parse().unwrap()]);
    let mut b = state(vec![p, local]);
    b.settings = a.settings.clone();
    let npa = [ip("198.19.0.2")];
    let mut part = crate::nft::NftPart::with_kernel(Box::new(FakeKernel::new()));
    assert!(part.sync_full(&a, &npa).expect("full sync: every reference resolves") > 0);
    let n = part.sync_changes(&b, &a.diff(&b), &npa).expect("partial sync");
    assert!(n > 0, "the new service changed the table");
    part.sync_changes(&a, &b.diff(&a), &npa).expect("and back: deletes find their elements");
    part.cleanup().expect("cleanup");
}
