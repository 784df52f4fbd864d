//! SIGTERM and SIGINT end `shutdown_signal` (the sync loop's stop future) instead of killing
//! the process. Its own test binary, since it signals its own process.

use std::time::Duration;

use kproxy_bin::sync_loop::shutdown_signal;
use nix::sys::signal::{raise, Signal};

async fn stops_on(signal: Signal) {
    let waiter = tokio::spawn(shutdown_signal());
    // Let the handlers be installed (on the future's first poll) before signalling.
    tokio::time::sleep(Duration::from_millis(100)).await;
    raise(signal).expect("raise");
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap_or_else(|_| panic!("{signal:?} did not complete shutdown_signal"))
        .expect("no panic");
}

#[tokio::test]
async fn sigterm_and_sigint_request_shutdown() {
    stops_on(Signal::SIGTERM).await;
    stops_on(Signal::SIGINT).await;
}
