//! The whole sync path without root: state -> plan -> operations -> [`FakeIpvs`], through
//! [`IpvsBackend`] as the sync loop drives it (full syncs, partial syncs, failures and their
//! repair, graceful termination, excludeCIDRs, a restart adopting the kernel's table).

use std::collections::BTreeSet;
use std::time::Duration;

use kproxy_core::backend::{ProxyBackend, SyncKind};

use super::*;
use crate::config::IpvsConfig;
use crate::error::Error;
use crate::fake::FakeIpvs;
use crate::ipvs::Op;
use crate::kernel::IpvsKernel;
use crate::operation::Operation;
use crate::IpvsBackend;

const NODE_IP: &str = "198.19.0.2";

fn config() -> IpvsConfig {
    IpvsConfig {
        nft_rules: false,
        strict_arp: true,
        tcp_timeout: Duration::from_secs(900),
        ..IpvsConfig::default()
    }
}

/// A node with eth0 holding the node address.
fn node() -> FakeIpvs {
    let mut f = FakeIpvs::new();
    f.add_link("eth0", &[(ip(NODE_IP), 24)]);
    f
}

fn backend(cfg: IpvsConfig, kernel: FakeIpvs) -> IpvsBackend<FakeIpvs> {
    IpvsBackend::with_kernel(cfg, kernel).unwrap()
}

fn node_state(ports: Vec<ServicePort>) -> ProxyState {
    let mut s = state(ports);
    s.settings.node_name = "node".into();
    s.settings.node_ips = vec![ip(NODE_IP)];
    s
}

fn key(addr: &str, port: u16) -> ServiceKey {
    vs(addr, port).key
}

fn real(addr: &str, port: u16) -> RealKey {
    RealKey {
        addr: ip(addr),
        port,
    }
}

fn vips(b: &IpvsBackend<FakeIpvs>) -> BTreeSet<IpAddr> {
    b.kernel()
        .link_addresses("kube-ipvs0")
        .into_iter()
        .filter(|a| !crate::plan::is_link_local(a))
        .collect()
}

#[test]
fn full_sync_programs_every_destination_and_the_node() {
    let mut web = port(
        "web",
        "198.19.160.10",
        &["198.18.1.2:8080", "198.18.1.3:8080"],
    );
    web.external_ips = vec![ip("198.19.99.1")];
    web.node_port = Some(30080);
    let mut b = backend(config(), node());
    let state_again = node_state(vec![web.clone()]);
    let report = b.sync_full(&node_state(vec![web])).unwrap();
    assert_eq!(report.kind, SyncKind::Full);

    let f = b.kernel();
    assert_eq!(
        f.virtual_server_keys(),
        vec![
            key(NODE_IP, 30080),
            key("198.19.99.1", 80),
            key("198.19.160.10", 80)
        ]
    );
    for k in f.virtual_server_keys() {
        assert_eq!(
            f.reals_of(&k),
            vec![rs("198.18.1.2", 8080, 1), rs("198.18.1.3", 8080, 1)]
        );
    }
    // ClusterIP and ExternalIP are VIPs; the NodePort address is the node's own.
    assert_eq!(
        vips(&b),
        [ip("198.19.99.1"), ip("198.19.160.10")]
            .into_iter()
            .collect()
    );
    assert_eq!(b.node_port_addresses(), &[ip(NODE_IP)]);
    assert_eq!(b.kernel().sysctl("net/ipv4/vs/conntrack"), Some("1"));
    assert_eq!(
        b.kernel().sysctl("net/ipv4/conf/all/arp_announce"),
        Some("2")
    );
    assert_eq!(b.kernel().timeouts().tcp, 900);
    // One operation per VIP, virtual server and real server.
    assert_eq!(report.operations, 2 + 3 + 6);
    assert_eq!(b.table().len(), 3);

    // Nothing changed: a second full sync (a restart's, or a repair's) sends nothing.
    b.kernel_mut().take_log();
    let again = b.sync_full(&state_again).unwrap();
    assert_eq!(b.kernel().log(), &[]);
    assert_eq!(again.operations, 0);
}

#[test]
fn partial_syncs_send_only_the_difference() {
    let a = port("a", "198.19.160.10", &["198.18.1.2:80"]);
    let b_port = port("b", "198.19.160.11", &["198.18.1.3:80"]);
    let s1 = node_state(vec![a.clone(), b_port.clone()]);
    let mut b = backend(config(), node());
    b.sync_full(&s1).unwrap();
    b.kernel_mut().take_log();

    // One endpoint more for "a": one real server added, nothing else.
    let s2 = node_state(vec![
        port("a", "198.19.160.10", &["198.18.1.2:80", "198.18.1.4:80"]),
        b_port.clone(),
    ]);
    let r = b.sync_changes(&s2, &s1.diff(&s2)).unwrap();
    assert_eq!(r.kind, SyncKind::Partial);
    let k = key("198.19.160.10", 80);
    assert_eq!(
        b.kernel_mut().take_log(),
        vec![Operation::Ipvs(Op::AddReal(k, rs("198.18.1.4", 80, 1)))]
    );

    // "b" removed: its virtual server and its VIP go.
    let s3 = node_state(vec![port(
        "a",
        "198.19.160.10",
        &["198.18.1.2:80", "198.18.1.4:80"],
    )]);
    b.sync_changes(&s3, &s2.diff(&s3)).unwrap();
    let link = b.kernel().link("kube-ipvs0").unwrap();
    assert_eq!(
        b.kernel_mut().take_log(),
        vec![
            Operation::Ipvs(Op::DelService(key("198.19.160.11", 80))),
            Operation::DeleteAddress {
                link,
                addr: ip("198.19.160.11")
            },
        ]
    );
    assert_eq!(vips(&b), [ip("198.19.160.10")].into_iter().collect());
}

#[test]
fn removed_endpoints_drain_at_weight_zero_then_go() {
    let s1 = node_state(vec![port(
        "a",
        "198.19.160.10",
        &["198.18.1.2:80", "198.18.1.3:80", "198.18.1.4:80"],
    )]);
    let mut b = backend(config(), node());
    b.sync_full(&s1).unwrap();
    let k = key("198.19.160.10", 80);
    // .3 has a live connection; .4 has none.
    assert!(b
        .kernel_mut()
        .set_connections(&k, &real("198.18.1.3", 80), 1, 0));

    let s2 = node_state(vec![port("a", "198.19.160.10", &["198.18.1.2:80"])]);
    b.sync_changes(&s2, &s1.diff(&s2)).unwrap();
    // .3 keeps serving its connection at weight 0; .4 was deleted at once.
    assert_eq!(
        b.kernel().reals_of(&k),
        vec![rs("198.18.1.2", 80, 1), rs("198.18.1.3", 80, 0)]
    );
    assert_eq!(b.draining().count(), 1);
    assert_eq!(b.reap_draining().unwrap(), 0);

    // Its connection ends: the next reap deletes it.
    b.kernel_mut()
        .set_connections(&k, &real("198.18.1.3", 80), 0, 0);
    assert_eq!(b.reap_draining().unwrap(), 1);
    assert_eq!(b.kernel().reals_of(&k), vec![rs("198.18.1.2", 80, 1)]);
    assert_eq!(b.draining().count(), 0);
}

#[test]
fn a_draining_endpoint_past_its_bound_goes_and_one_desired_again_comes_back() {
    let cfg = IpvsConfig {
        graceful_termination_bound: Duration::ZERO,
        ..config()
    };
    let two = node_state(vec![port(
        "a",
        "198.19.160.10",
        &["198.18.1.2:80", "198.18.1.3:80"],
    )]);
    let one = node_state(vec![port("a", "198.19.160.10", &["198.18.1.2:80"])]);
    let k = key("198.19.160.10", 80);

    // Bound zero: removed even with connections.
    let mut b = backend(cfg, node());
    b.sync_full(&two).unwrap();
    b.kernel_mut()
        .set_connections(&k, &real("198.18.1.3", 80), 5, 0);
    b.sync_changes(&one, &two.diff(&one)).unwrap();
    assert_eq!(b.kernel().reals_of(&k), vec![rs("198.18.1.2", 80, 1)]);

    // Default bound: desired again while draining, it is set back to weight 1.
    let mut b = backend(config(), node());
    b.sync_full(&two).unwrap();
    b.kernel_mut()
        .set_connections(&k, &real("198.18.1.3", 80), 5, 0);
    b.sync_changes(&one, &two.diff(&one)).unwrap();
    b.sync_changes(&two, &one.diff(&two)).unwrap();
    assert_eq!(
        b.kernel().reals_of(&k),
        vec![rs("198.18.1.2", 80, 1), rs("198.18.1.3", 80, 1)]
    );
    assert_eq!(b.draining().count(), 0);
}

#[test]
fn a_failed_partial_sync_keeps_what_succeeded_and_a_full_sync_repairs() {
    let s1 = node_state(vec![
        port("a", "198.19.160.10", &["198.18.1.2:80"]),
        port("b", "198.19.160.11", &["198.18.1.3:80"]),
    ]);
    let mut b = backend(config(), node());
    b.sync_full(&s1).unwrap();
    // Someone deletes "a"'s virtual server behind kproxy's back.
    let ka = key("198.19.160.10", 80);
    let v = b
        .kernel_mut()
        .apply(&[Operation::Ipvs(Op::DelService(ka))])
        .unwrap();
    assert_eq!(v, vec![Ok(())]);

    let s2 = node_state(vec![
        port("a", "198.19.160.10", &["198.18.1.2:80", "198.18.1.4:80"]),
        port("b", "198.19.160.11", &["198.18.1.3:80", "198.18.1.5:80"]),
    ]);
    let err = b.sync_changes(&s2, &s1.diff(&s2)).unwrap_err();
    let Error::PartialSync {
        applied,
        total,
        failures,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*applied, *total), (1, 2));
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].contains("198.18.1.4") && failures[0].contains("No such process"),
        "{err}"
    );
    // What succeeded stays.
    let kb = key("198.19.160.11", 80);
    assert_eq!(b.kernel().reals_of(&kb).len(), 2);

    // The sync loop answers with a full sync, which re-reads the kernel and repairs.
    b.sync_full(&s2).unwrap();
    assert_eq!(
        b.kernel().reals_of(&ka),
        vec![rs("198.18.1.2", 80, 1), rs("198.18.1.4", 80, 1)]
    );
}

#[test]
fn excluded_cidrs_are_never_deleted() {
    let mut f = node();
    let link = f.ensure_dummy_link("kube-ipvs0").unwrap();
    let theirs = vs("198.19.250.7", 443);
    let stale = vs("198.19.160.99", 80);
    let setup = [
        Operation::Ipvs(Op::AddService(theirs.clone())),
        Operation::Ipvs(Op::AddService(stale.clone())),
        Operation::AddAddress {
            link,
            addr: theirs.key.addr,
        },
        Operation::AddAddress {
            link,
            addr: stale.key.addr,
        },
    ];
    assert!(f.apply(&setup).unwrap().iter().all(Result::is_ok));
    let cfg = IpvsConfig {
        exclude_cidrs: vec!["198.19.250.0/24".parse().unwrap()],
        ..config()
    };
    let mut b = backend(cfg, f);
    b.sync_full(&node_state(vec![port("a", "198.19.160.10", &[])]))
        .unwrap();
    assert_eq!(
        b.kernel().virtual_server_keys(),
        vec![key("198.19.160.10", 80), theirs.key]
    );
    assert_eq!(
        vips(&b),
        [ip("198.19.160.10"), ip("198.19.250.7")]
            .into_iter()
            .collect()
    );

    // Cleanup leaves them too, and removes the dummy link.
    b.cleanup().unwrap();
    assert_eq!(b.kernel().virtual_server_keys(), vec![theirs.key]);
    assert_eq!(b.kernel().link("kube-ipvs0"), None);
}

#[test]
fn a_restart_adopts_the_kernels_table_and_fixes_only_what_differs() {
    let s1 = node_state(vec![
        port("a", "198.19.160.10", &["198.18.1.2:80", "198.18.1.3:80"]),
        port("b", "198.19.160.11", &["198.18.1.4:80"]),
    ]);
    let mut first = backend(config(), node());
    first.sync_full(&s1).unwrap();
    let mut kernel = first.kernel().clone();
    // A real server someone else added to "a", and a changed weight on "b".
    let ka = key("198.19.160.10", 80);
    let kb = key("198.19.160.11", 80);
    let v = kernel
        .apply(&[
            Operation::Ipvs(Op::AddReal(ka, rs("198.18.9.9", 80, 1))),
            Operation::Ipvs(Op::UpdateReal(kb, rs("198.18.1.4", 80, 3))),
        ])
        .unwrap();
    assert!(v.iter().all(Result::is_ok));
    kernel.take_log();

    // The new process: "b" is gone from its state, "a" unchanged.
    let s2 = node_state(vec![port(
        "a",
        "198.19.160.10",
        &["198.18.1.2:80", "198.18.1.3:80"],
    )]);
    let mut second = backend(config(), kernel);
    second.sync_full(&s2).unwrap();
    let link = second.kernel().link("kube-ipvs0").unwrap();
    assert_eq!(
        second.kernel().log(),
        &[
            // The stranger drains like any undesired real server (no connections: deleted).
            Operation::Ipvs(Op::DelService(kb)),
            Operation::Ipvs(Op::UpdateReal(ka, rs("198.18.9.9", 80, 0))),
            Operation::DeleteAddress {
                link,
                addr: ip("198.19.160.11")
            },
            Operation::Ipvs(Op::DelReal(ka, rs("198.18.9.9", 80, 0))),
        ]
    );
    assert_eq!(second.kernel().virtual_server_keys(), vec![ka]);
    assert_eq!(
        second.kernel().reals_of(&ka),
        vec![rs("198.18.1.2", 80, 1), rs("198.18.1.3", 80, 1)]
    );
}

#[test]
fn a_scheduler_the_kernel_lacks_fails_the_sync_per_virtual_server() {
    let mut f = node();
    f.remove_scheduler("mh");
    let cfg = IpvsConfig {
        scheduler: crate::Scheduler::Mh,
        ..config()
    };
    let mut b = backend(cfg, f);
    let err = b
        .sync_full(&node_state(vec![port(
            "a",
            "198.19.160.10",
            &["198.18.1.2:80"],
        )]))
        .unwrap_err();
    // The virtual server fails (ENOENT), so does its real server (ESRCH); the VIP is there.
    let Error::PartialSync { failures, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(failures.len(), 2, "{err}");
    assert!(failures[0].contains("No such file or directory"), "{err}");
    assert!(b.table().is_empty());
    assert_eq!(vips(&b), [ip("198.19.160.10")].into_iter().collect());
}

/// Someone else deletes a virtual server, deletes a real server, or adds a virtual server:
/// the periodic check names it, and the full sync the sync loop answers with repairs it.
#[test]
fn check_finds_what_someone_else_changed_and_a_full_sync_repairs_it() {
    let web = port("web", "198.19.160.10", &["198.18.1.2:8080", "198.18.1.3:8080"]);
    let api = port("api", "198.19.160.11", &["198.18.1.4:8080"]);
    let state = node_state(vec![web, api]);
    let mut b = backend(config(), node());
    assert_eq!(b.check().unwrap(), None, "nothing programmed yet: nothing to check");
    b.sync_full(&state).unwrap();
    assert_eq!(b.check().unwrap(), None, "the kernel holds what was programmed");

    let ops = [Operation::Ipvs(Op::DelService(key("198.19.160.10", 80)))];
    b.kernel_mut().apply(&ops).unwrap()[0].clone().unwrap();
    let diff = b.check().unwrap().expect("a deleted virtual server is found");
    assert!(diff.contains("virtual server tcp 198.19.160.10:80 is missing"), "{diff}");
    assert!(diff.starts_with("1 virtual servers in the kernel, 2 programmed"), "{diff}");
    b.sync_full(&state).unwrap();
    assert_eq!(b.check().unwrap(), None, "repaired");

    let ops = [Operation::Ipvs(Op::DelReal(key("198.19.160.10", 80), rs("198.18.1.3", 8080, 1)))];
    b.kernel_mut().apply(&ops).unwrap()[0].clone().unwrap();
    let diff = b.check().unwrap().expect("a deleted real server is found");
    assert!(diff.contains("real server 198.18.1.3:8080 of tcp 198.19.160.10:80 is missing"), "{diff}");
    b.sync_full(&state).unwrap();
    assert_eq!(b.kernel().reals_of(&key("198.19.160.10", 80)).len(), 2, "repaired");

    let ops = [Operation::Ipvs(Op::AddService(vs("198.19.160.99", 80)))];
    b.kernel_mut().apply(&ops).unwrap()[0].clone().unwrap();
    let diff = b.check().unwrap().expect("an added virtual server is found");
    assert!(diff.contains("virtual server tcp 198.19.160.99:80 was added"), "{diff}");
    b.sync_full(&state).unwrap();
    assert_eq!(b.check().unwrap(), None, "the stray virtual server was removed");
}
