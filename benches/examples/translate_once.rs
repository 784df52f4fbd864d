//! Translate a synthetic cluster a few times and print the time of each run; for profiling
//! (`perf stat` / `perf record`) without criterion's machinery.
//! Usage: translate_once [SERVICES] [ENDPOINTS_PER_SERVICE] [RUNS]

use std::time::Instant;

use kproxy_benches::cpu_time::thread_cpu_ns;
use kproxy_benches::{synthetic_objects, synthetic_settings};
use kproxy_core::tracker::translate;
use kproxy_core::translate::TranslateOptions;


fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numeric arguments")).collect();
    let (services, eps, runs) = (*args.first().unwrap_or(&10_000), *args.get(1).unwrap_or(&10), *args.get(2).unwrap_or(&5));
    let objects = synthetic_objects(services, eps);
    for _ in 0..runs {
        let (start, cpu) = (Instant::now(), thread_cpu_ns());
        let t = translate(&objects.as_input(), &synthetic_settings(), &TranslateOptions::default());
        let (translated, translated_cpu) = (start.elapsed(), thread_cpu_ns() - cpu);
        drop(t);
        println!(
            "{services}x{eps}: translate {translated:?} wall, {:.1} ms CPU; with drop {:.1} ms CPU",
            translated_cpu as f64 / 1e6,
            (thread_cpu_ns() - cpu) as f64 / 1e6
        );
    }
}
