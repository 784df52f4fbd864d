//! The reconciler through the crate's public API, against a fake conntrack table (no root):
//! which entries it deletes, when it reads the table at all, and how failures are reported.

use std::sync::{Arc, Mutex};

use kproxy_conntrack::{ConntrackTable, DeleteFailure, DeleteReport, Error, Reconciler};
use kproxy_core::conntrack::{Flow, Tuple};
use kproxy_core::model::{Endpoint, IpFamily, Protocol, ProxyState, ServicePort, ServicePortName};

/// What the fake holds, shared with the test after the reconciler took the table.
#[derive(Default)]
struct Kernel {
    flows: Vec<Flow>,
    dumps: usize,
    /// errno for the next dump.
    fail_next_dump: Option<i32>,
    /// errno the kernel answers when deleting an entry to this destination port.
    refuse_port: Option<(u16, i32)>,
}

#[derive(Clone, Default)]
struct FakeTable(Arc<Mutex<Kernel>>);

impl ConntrackTable for FakeTable {
    fn dump(&mut self, family: IpFamily, protocol: Protocol) -> Result<Vec<Flow>, Error> {
        let mut k = self.0.lock().unwrap();
        k.dumps += 1;
        if let Some(errno) = k.fail_next_dump.take() {
            return Err(Error::DumpRefused(std::io::Error::from_raw_os_error(errno)));
        }
        Ok(k.flows.iter().copied().filter(|f| f.family() == family && f.orig.proto == protocol.number()).collect())
    }

    fn delete(&mut self, flows: &[Flow]) -> Result<DeleteReport, Error> {
        let mut k = self.0.lock().unwrap();
        let mut report = DeleteReport::default();
        for flow in flows {
            match k.refuse_port {
                Some((port, errno)) if port == flow.orig.dst_port => {
                    report.errors.push(DeleteFailure { flow: *flow, errno })
                }
                _ => match k.flows.iter().position(|f| f == flow) {
                    Some(i) => {
                        k.flows.remove(i);
                        report.deleted += 1;
                    }
                    None => report.gone += 1,
                },
            }
        }
        Ok(report)
    }

    fn kernel_filters(&self) -> bool {
        true
    }
}

/// errno values, spelled out rather than pulling in libc for two numbers.
const ENOMEM: i32 = 12;
const EPERM: i32 = 1;

fn udp_service(name: &str, ip: &str, port: u16, endpoints: &[&str]) -> ServicePort {
    let name =
        ServicePortName { namespace: "ns".into(), name: name.into(), port: String::new(), protocol: Protocol::Udp };
    let mut p = ServicePort::new(name, ip.parse().unwrap(), port);
    p.endpoints = endpoints
        .iter()
        .map(|a| Endpoint { addr: a.parse().unwrap(), local: false, ready: true, serving: true, terminating: false })
        .collect();
    p
}

fn state(ports: Vec<ServicePort>) -> ProxyState {
    ProxyState { services: ports.into_iter().map(|p| (p.key(), p)).collect(), ..Default::default() }
}

/// A client at 198.18.0.5:`sport` sending to `dst`, answered by `endpoint`.
fn flow(sport: u16, dst: &str, endpoint: &str) -> Flow {
    let dst: std::net::SocketAddr = dst.parse().unwrap();
    let endpoint: std::net::SocketAddr = endpoint.parse().unwrap();
    let client = "198.18.0.5".parse().unwrap();
    Flow {
        orig: Tuple { src: client, dst: dst.ip(), proto: 17, src_port: sport, dst_port: dst.port() },
        reply: Tuple { src: endpoint.ip(), dst: client, proto: 17, src_port: endpoint.port(), dst_port: sport },
        zone: 0,
        id: Some(u32::from(sport)),
    }
}

#[test]
fn deletes_flows_to_removed_endpoints_and_deleted_services_only() {
    let to_removed = flow(40000, "198.19.160.10:53", "198.18.0.10:5353");
    let to_serving = flow(40001, "198.19.160.10:53", "198.18.0.12:5353");
    let to_other = flow(40002, "198.19.160.20:53", "198.18.0.11:5353");
    let not_a_service = flow(40003, "198.18.0.11:7777", "198.18.0.11:7777");
    let table = FakeTable::default();
    table.0.lock().unwrap().flows = vec![to_removed, to_serving, to_other, not_a_service];
    let mut reconciler = Reconciler::with_table(table.clone());
    assert_eq!(reconciler.kernel_filters(), Some(true));

    let a = udp_service("a", "198.19.160.10", 53, &["198.18.0.12:5353"]);
    let b = udp_service("b", "198.19.160.20", 53, &["198.18.0.11:5353"]);
    let reports = reconciler.reconcile(&state(vec![a.clone(), b])).unwrap();
    let families: Vec<_> = reports.iter().map(|(f, _)| *f).collect();
    assert_eq!(families, vec![IpFamily::V4, IpFamily::V6]);
    let v4 = &reports[0].1;
    assert_eq!((v4.examined, v4.stale, v4.deletes.deleted, v4.deletes.gone), (4, 1, 1, 0), "{reports:?}");
    assert_eq!(table.0.lock().unwrap().flows, vec![to_serving, to_other, not_a_service]);

    // Service b is deleted: its flow is stale now, though no current service names it.
    let reports = reconciler.reconcile(&state(vec![a])).unwrap();
    assert_eq!(reports[0].1.deletes.deleted, 1, "{reports:?}");
    assert_eq!(table.0.lock().unwrap().flows, vec![to_serving, not_a_service]);
}

#[test]
fn the_table_is_read_only_when_udp_destinations_change() {
    let table = FakeTable::default();
    let mut reconciler = Reconciler::with_table(table.clone());
    let a = udp_service("a", "198.19.160.10", 53, &["198.18.0.12:5353"]);
    assert!(reconciler.reconcile(&ProxyState::default()).unwrap().is_empty(), "no UDP service, nothing to look at");
    assert_eq!(table.0.lock().unwrap().dumps, 0);
    assert_eq!(reconciler.reconcile(&state(vec![a.clone()])).unwrap().len(), 2);
    assert_eq!(table.0.lock().unwrap().dumps, 2, "one dump per family");
    assert!(reconciler.reconcile(&state(vec![a])).unwrap().is_empty());
    assert_eq!(table.0.lock().unwrap().dumps, 2, "unchanged destinations: the table is not read again");
}

#[test]
fn a_failed_reconciliation_is_retried_and_per_entry_failures_are_reported() {
    let stale = flow(40000, "198.19.160.10:53", "198.18.0.10:5353");
    let table = FakeTable::default();
    {
        let mut k = table.0.lock().unwrap();
        k.flows = vec![stale];
        k.fail_next_dump = Some(ENOMEM);
        k.refuse_port = Some((53, EPERM));
    }
    let mut reconciler = Reconciler::with_table(table.clone());
    let s = state(vec![udp_service("a", "198.19.160.10", 53, &["198.18.0.12:5353"])]);
    let err = reconciler.reconcile(&s).unwrap_err();
    assert!(matches!(err, Error::DumpRefused(_)), "{err:?}");
    assert!(err.to_string().contains("refused the conntrack dump"), "{err}");

    // The same state again: the failed attempt did not count, so the table is read again.
    let reports = reconciler.reconcile(&s).unwrap();
    let v4 = &reports[0].1;
    assert_eq!((v4.stale, v4.deletes.deleted), (1, 0), "{reports:?}");
    assert_eq!(v4.deletes.errors, vec![DeleteFailure { flow: stale, errno: EPERM }]);
    let text = v4.deletes.errors[0].to_string();
    assert!(text.starts_with("deleting proto 17 198.18.0.5:40000 -> 198.19.160.10:53"), "{text}");
    assert!(text.contains("Operation not permitted"), "{text}");
}
