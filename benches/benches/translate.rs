//! Translation and change-tracking benchmarks.
//!
//! Goals: a full translation of 100k endpoints well under 50 ms (translation plus the nft
//! render must fit 50 ms), and one endpoint change -> `take_changes` at 10k services in a few
//! microseconds (the 50 us budget includes the render).
//!
//! Measured in thread CPU time ([`CpuTime`]): the benchmark machine is shared and wall time
//! mostly measures waiting for a core.

use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kproxy_benches::cpu_time::CpuTime;
use kproxy_benches::{endpoint_slices, synthetic_cluster, synthetic_manifest_json, synthetic_objects, synthetic_settings};
use kproxy_core::event::{ClusterEvent, Update};
use kproxy_core::manifest::parse_manifest;
use kproxy_core::tracker::{translate, ChangeTracker};
use kproxy_core::translate::TranslateOptions;

const EPS: usize = 10;

fn full_translation<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("translate_full");
    group.sample_size(10);
    for services in [1_000, 10_000] {
        let objects = synthetic_objects(services, EPS);
        group.throughput(Throughput::Elements((services * EPS) as u64));
        group.bench_function(format!("{services}x{EPS}"), |b| {
            b.iter(|| translate(black_box(&objects.as_input()), &synthetic_settings(), &TranslateOptions::default()))
        });
    }
    group.finish();
}

fn tracker_initial_sync<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("tracker_initial");
    group.sample_size(10);
    for services in [1_000, 10_000] {
        let events = synthetic_cluster(services, EPS);
        group.throughput(Throughput::Elements((services * EPS) as u64));
        group.bench_function(format!("{services}x{EPS}"), |b| {
            b.iter_batched(
                || events.clone(),
                |events| {
                    let mut t = ChangeTracker::new(synthetic_settings(), TranslateOptions::default());
                    for e in events {
                        t.apply(e);
                    }
                    t.take_state();
                    t
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn one_endpoint_change<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let services = 10_000;
    let mut tracker = ChangeTracker::new(synthetic_settings(), TranslateOptions::default());
    for e in synthetic_cluster(services, EPS) {
        tracker.apply(e);
    }
    tracker.take_state();
    let mut generation = 0u64;
    c.bench_function("tracker_one_endpoint_change/10000x10", |b| {
        b.iter_batched(
            || {
                generation += 1;
                let slice = endpoint_slices(services / 2, EPS, generation).remove(0);
                ClusterEvent::EndpointSlice(Update::Upsert(slice))
            },
            |event| {
                tracker.apply(event);
                let taken = tracker.take_changes();
                assert_eq!(taken.changes.services.len(), 1);
                taken
            },
            BatchSize::SmallInput,
        )
    });
}

fn manifest_parse<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("manifest_parse_json");
    group.sample_size(10);
    let services = 10_000;
    let text = synthetic_manifest_json(services, EPS);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function(format!("{services}x{EPS}"), |b| b.iter(|| parse_manifest(black_box(&text), "synthetic.json")));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = full_translation, tracker_initial_sync, one_endpoint_change, manifest_parse
}
criterion_main!(benches);
