//! One endpoint change -> take_changes at scale, repeated; prints the mean time per change
//! (wall and thread CPU), for profiling without criterion.
//! Usage: one_change [SERVICES] [ENDPOINTS_PER_SERVICE] [CHANGES]

use std::time::Instant;

use kproxy_benches::cpu_time::thread_cpu_ns;
use kproxy_benches::{endpoint_slices, synthetic_cluster, synthetic_settings};
use kproxy_core::event::{ClusterEvent, Update};
use kproxy_core::tracker::ChangeTracker;
use kproxy_core::translate::TranslateOptions;


fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numeric arguments")).collect();
    let (services, eps, changes) = (*args.first().unwrap_or(&10_000), *args.get(1).unwrap_or(&10), *args.get(2).unwrap_or(&10_000));
    let mut tracker = ChangeTracker::new(synthetic_settings(), TranslateOptions::default());
    for e in synthetic_cluster(services, eps) {
        tracker.apply(e);
    }
    tracker.take_state();
    let events: Vec<ClusterEvent> = (0..changes)
        .map(|i| ClusterEvent::EndpointSlice(Update::Upsert(endpoint_slices((i * 7919) % services, eps, 1 + (i / services) as u64).remove(0))))
        .collect();
    let (start, cpu) = (Instant::now(), thread_cpu_ns());
    let mut changed = 0;
    for e in events {
        tracker.apply(e);
        changed += tracker.take_changes().changes.services.len();
    }
    let (wall, cpu) = (start.elapsed(), thread_cpu_ns() - cpu);
    assert_eq!(changed, changes);
    println!(
        "{services}x{eps}: {changes} single-endpoint changes, mean {:.2} us wall, {:.2} us CPU per apply + take_changes",
        wall.as_secs_f64() * 1e6 / changes as f64,
        cpu as f64 / 1e3 / changes as f64
    );
}
