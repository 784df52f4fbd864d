//! nftables render benchmarks (pure: no kernel).
//!
//! Goals: render of 100k endpoints (10,000 services x 10) well inside the 50 ms budget it
//! shares with translation; delta + message encoding of one endpoint change <= 50 us.
//! Run: `cargo bench -p kproxy-benches --bench render`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kproxy_benches::synthetic_state;
use kproxy_core::model::{Change, ChangeSet, ProxyState};
use kproxy_nft::lowlevel::batch_bytes;
use kproxy_nft::record::Record;
use kproxy_nft::{script, transaction, NftConfig, Plan};

const EPS: usize = 10;

fn full_render(c: &mut Criterion) {
    let mut group = c.benchmark_group("nft_render_full");
    group.sample_size(10);
    for services in [1_000, 10_000] {
        let state = synthetic_state(services, EPS);
        group.throughput(Throughput::Elements((services * EPS) as u64));
        group.bench_function(format!("plan/{services}x{EPS}"), |b| b.iter(|| Plan::render(black_box(&state))));
        group.bench_function(format!("plan+record/{services}x{EPS}"), |b| {
            b.iter(|| {
                let plan = Plan::render(black_box(&state));
                Record::from_elements(&plan.elements)
            })
        });
        let plan = Plan::render(&state);
        let record = Record::from_elements(&plan.elements);
        group.bench_function(format!("netlink-encode/{services}x{EPS}"), |b| {
            let cfg = NftConfig::default();
            b.iter(|| batch_bytes(&transaction::full(black_box(&plan), &record, &cfg.table_name), cfg.max_message_bytes))
        });
        group.bench_function(format!("script/{services}x{EPS}"), |b| {
            b.iter(|| script::script(black_box(&plan), &NftConfig::default()))
        });
    }
    group.finish();
}

/// One endpoint of the first service replaced by a new address.
fn one_endpoint_change(state: &ProxyState) -> (ProxyState, ChangeSet) {
    let mut next = state.clone();
    let (key, sp) = next.services.iter_mut().next().expect("a service");
    let old = sp.clone();
    let new_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 255, 254)), 9999);
    sp.cluster_endpoints[0] = new_addr;
    sp.cluster_endpoints.sort();
    sp.endpoints[0].addr = new_addr;
    sp.endpoints.sort();
    let change = Change::Modified { old, new: sp.clone() };
    let changes = ChangeSet { services: BTreeMap::from([(key.clone(), change)]), ..ChangeSet::default() };
    (next, changes)
}

fn partial(c: &mut Criterion) {
    let mut group = c.benchmark_group("nft_render_partial");
    let state = synthetic_state(10_000, EPS);
    let record = Record::from_elements(&Plan::render(&state).elements);
    let (next, changes) = one_endpoint_change(&state);
    group.bench_function("one-endpoint-change/10000x10", |b| {
        b.iter(|| {
            let delta = record.delta(black_box(&next), black_box(&changes));
            let cfg = NftConfig::default();
            batch_bytes(&transaction::delta(&delta, &next.settings, &cfg.table_name), cfg.max_message_bytes)
        })
    });
    group.finish();
}

criterion_group!(benches, full_render, partial);
criterion_main!(benches);
