//! `kproxy-ipvs-vmtest`: the IPVS integration tests, run inside the test VM by
//! `cargo xtask vm` (needs root, a kernel with IPVS, and iproute2/ipvsadm at /usr/sbin).
//!
//! Prints one `VMTEST ok NAME (SECONDS)` or `VMTEST FAIL NAME: WHY` line per case and exits
//! non-zero if any failed. Arguments filter cases by substring.

mod cases;
mod config_cases;
mod explain_cases;
mod fake_cases;
mod netns;
mod nft_cases;
mod seed;
mod sync_cases;
mod takeover_cases;
mod topo;
mod traffic_cases;

use std::time::Instant;

type Case = (&'static str, fn() -> Result<(), String>);

const CASES: &[Case] = &[
    (
        "tcp_v4_destinations_rr",
        traffic_cases::tcp_v4_destinations_rr,
    ),
    ("udp_and_ipv6", traffic_cases::udp_and_ipv6),
    ("schedulers_and_sctp", traffic_cases::schedulers_and_sctp),
    (
        "nft_masquerade_and_source_ranges",
        traffic_cases::nft_masquerade_and_source_ranges,
    ),
    (
        "nft_filtering_and_short_circuit",
        nft_cases::nft_filtering_and_short_circuit,
    ),
    ("session_affinity", traffic_cases::session_affinity),
    ("graceful_termination", sync_cases::graceful_termination),
    ("timeouts_and_sysctls", config_cases::timeouts_and_sysctls),
    ("partial_sync_is_a_diff", sync_cases::partial_sync_is_a_diff),
    (
        "failed_sync_is_repaired",
        sync_cases::failed_sync_is_repaired,
    ),
    (
        "restart_reconcile_and_cleanup",
        sync_cases::restart_reconcile_and_cleanup,
    ),
    ("seed_configs", config_cases::seed_configs),
    (
        "kproxy_binary_seed_configs",
        config_cases::kproxy_binary_seed_configs,
    ),
    ("kproxy_binary_explain", explain_cases::kproxy_binary_explain),
    ("sync_scale", sync_cases::sync_scale),
    (
        "fake_matches_kernel_errnos",
        fake_cases::fake_matches_kernel_errnos,
    ),
    ("kube_proxy_ipvs_leftovers", takeover_cases::kube_proxy_ipvs_leftovers),
];

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in CASES {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        let result = std::panic::catch_unwind(case).unwrap_or_else(|_| Err("panicked".to_string()));
        let secs = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                passed += 1;
                println!("VMTEST ok   {name} ({secs:.1}s)");
            }
            Err(e) => {
                failed += 1;
                println!("VMTEST FAIL {name} ({secs:.1}s): {e}");
            }
        }
    }
    println!("VMTEST summary: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}
