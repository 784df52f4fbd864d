//! Planning (state -> desired table and VIPs) and reconciliation (table -> operations).

use std::collections::BTreeSet;

use super::*;
use crate::config::IpvsConfig;
use crate::diff;
use crate::ipvs::Op;
use crate::plan;

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
