//! One cold-sync pipeline pass (translate -> plan -> record -> netlink batch) for profilers:
//! `valgrind --tool=callgrind target/release/examples/profile_pipeline 10000 10` counts the
//! instructions of each step deterministically, unlike the shared machine's timings.

use kproxy_benches::{synthetic_objects, synthetic_settings};
use kproxy_core::tracker::translate;
use kproxy_core::translate::TranslateOptions;
use kproxy_nft::netlink::full_batch;
use kproxy_nft::record::Record;
use kproxy_nft::{NftConfig, Plan};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("usage: profile_pipeline SERVICES EPS"));
    let services = args.next().unwrap_or(10_000);
    let eps = args.next().unwrap_or(10);
    let objects = synthetic_objects(services, eps);
    let settings = synthetic_settings();
    let t = translate(&objects.as_input(), &settings, &TranslateOptions::default());
    let plan = Plan::render(&t.state);
    let record = Record::from_elements(&plan.elements);
    let (bytes, labels) = full_batch(&plan, &record, &NftConfig::default()).finish();
    println!("{} bytes, {} messages", bytes.len(), labels.len());
}
