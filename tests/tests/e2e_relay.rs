//! [`e2e_support::ApiRelay`]: a process inside a test network namespace (where kproxy runs
//! in the traffic tests) reaches the API server through the relay, with TLS verified
//! against the harness CA, and cannot reach it directly (the namespace has no link to the
//! root namespace). Needs root (network namespaces).
//!
//! Run with `cargo xtask e2e` (ignored under plain `cargo test`).

mod e2e_support;

use e2e_support::{ApiRelay, E2eEnv};
use k8s_openapi::api::core::v1::Service;
use kproxy_bin::source::kube::build_client;
use kube::api::{Api, ListParams};

/// Lists Services through `master`, from the calling thread's network namespace.
fn list_services_via(env: &E2eEnv, master: &str) -> Result<usize, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut opts = env.kproxy_options("unused");
        opts.master = Some(master.to_string());
        let client = build_client(&opts).await.map_err(|e| e.to_string())?;
        let list = tokio::time::timeout(std::time::Duration::from_secs(10), Api::<Service>::all(client).list(&ListParams::default()))
            .await
            .map_err(|_| "list timed out after 10 s".to_string())?
            .map_err(|e| e.to_string())?;
        Ok(list.items.len())
    })
}

#[test]
#[ignore = "needs the real API server: run `cargo xtask e2e`"]
fn relay_reaches_api_server_from_a_netns() {
    let env = E2eEnv::require();
    kproxy_tests::require_root();
    let ns = kproxy_tests::Netns::new("e2e-relay").expect("create netns");
    let relay = ApiRelay::start(&ns, &env.url).expect("start relay");

    let via_relay = ns.run_in(|| list_services_via(&env, &relay.url())).expect("enter netns");
    let n = via_relay.expect("listing Services through the relay from inside the netns");
    assert!(n >= 1, "expected at least the default/kubernetes Service, got {n}");

    // The API server's own address is the root namespace's loopback: not reachable inside.
    let direct = ns.run_in(|| list_services_via(&env, &env.url)).expect("enter netns");
    match direct {
        Ok(n) => panic!("the netns reached the root namespace's API server directly ({n} Services)"),
        Err(e) => println!("direct attempt from inside the netns failed as expected: {e}"),
    }
}
