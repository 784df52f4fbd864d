//! The whole pure pipeline of one cold nftables sync, measured as one number: Kubernetes
//! objects -> translation -> nft plan -> commit record -> encoded netlink batch (everything a
//! sync does before the kernel sees a byte). Issue goal: <= 50 ms for 100k endpoints.
//!
//! Measured in thread CPU time, like the translate bench: the machine is shared.
//! Run: `cargo bench -p kproxy-benches --bench pipeline`.

use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kproxy_benches::cpu_time::CpuTime;
use kproxy_benches::{synthetic_objects, synthetic_settings};
use kproxy_core::tracker::translate;
use kproxy_core::translate::TranslateOptions;
use kproxy_nft::netlink::full_batch;
use kproxy_nft::record::Record;
use kproxy_nft::{NftConfig, Plan};

const EPS: usize = 10;

fn cold_sync_pipeline<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("cold_sync_pipeline");
    group.sample_size(10);
    let cfg = NftConfig::default();
    for services in [1_000, 10_000] {
        let objects = synthetic_objects(services, EPS);
        let settings = synthetic_settings();
        group.throughput(Throughput::Elements((services * EPS) as u64));
        group.bench_function(format!("translate+plan+record+encode/{services}x{EPS}"), |b| {
            b.iter(|| {
                let t = translate(black_box(&objects.as_input()), &settings, &TranslateOptions::default());
                let plan = Plan::render(&t.state);
                let record = Record::from_elements(&plan.elements);
                full_batch(&plan, &record, &cfg).finish()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = cold_sync_pipeline
}
criterion_main!(benches);
