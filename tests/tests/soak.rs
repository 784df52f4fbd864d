//! A short soak of the real daemon (issue 12 item 6): 300 Services on manifest files, 20
//! endpoint changes per second for 20 s. Every change reaches the kernel, latency stays
//! bounded, memory does not grow, and the final ruleset equals a fresh `kproxy --once` of the
//! final files. The full-size run is `cargo xtask bench soak` (10,000 Services, 100/s, 10 min).

use std::time::Duration;

use kproxy_tests::soak::{run, SoakConfig};

#[test]
fn daemon_under_a_steady_stream_of_endpoint_changes_stays_flat_and_ends_equal_to_once() {
    kproxy_tests::require_root();
    let config = SoakConfig {
        services: 300,
        files: 10,
        rate: 20.0,
        duration: Duration::from_secs(20),
        window: Duration::from_secs(5),
        rss_every: Duration::from_secs(2),
        min_sync_period: Some("100ms".into()),
        verbose: false,
    };
    let report = run(&config).expect("soak");
    eprintln!("{report}");
    assert_eq!(report.unseen, 0, "changes never reached the kernel:\n{report}");
    assert!(report.changes >= 390, "the writer fell behind its schedule:\n{report}");
    assert!(report.differences.is_empty(), "the daemon's ruleset differs from `kproxy --once`:\n{report}");
    assert!(report.clean_exit, "the daemon did not exit cleanly on SIGTERM:\n{report}");
    // The poll is 500 ms and the minimum sync period 100 ms, but on a loaded 2-core host a
    // debug build takes seconds to re-read the changed files (p99 4.7 s measured at load 13):
    // 15 s means stuck, not slow (and 30 s counts as never seen, above).
    assert!(report.overall.1 < Duration::from_secs(15), "p99 latency not bounded:\n{report}");
    // Memory: the first half of the run is warm-up (allocator pools, buffers sized to the
    // largest file); the second half must set no new high beyond noise (steps of a few MB are seen). A leak of
    // 40 kB per change (200 changes, each a whole file re-read) would show as 8 MB.
    // The last sample is taken after the changes stopped and drained (a different phase: it
    // has been seen a few MB higher), so it is held to the run's overall bound only.
    let half = config.duration.as_secs_f64() / 2.0;
    let (during, after) = report.rss.split_at(report.rss.len() - 1);
    let high = |late: bool| during.iter().filter(|s| (s.0 > half) == late).map(|s| s.1).fold(0.0, f64::max);
    let (warm, late) = (high(false), high(true));
    assert!(late <= warm + 6.0, "VmRSS set a new high of {late:.1} MB after warm-up (first half's high {warm:.1} MB):\n{report}");
    let last = after[0].1;
    assert!(late.max(last) <= report.rss[0].1 + 16.0, "VmRSS grew by more than 16 MB during the run:\n{report}");
}
