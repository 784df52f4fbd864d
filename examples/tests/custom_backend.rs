//! The custom-backend example, driven by the change tracker: what it is asked to program.

#[allow(dead_code)] // its `main` is for `cargo run --example custom-backend`
#[path = "../custom_backend.rs"]
mod custom_backend;

use custom_backend::{drive, LogBackend, LogError};
use kproxy_core::backend::ProxyBackend;

#[test]
fn tracker_drives_the_custom_backend_full_then_changes() {
    let mut backend = LogBackend::default();
    drive(&mut backend).expect("the log backend never fails after a full sync");
    assert_eq!(
        backend.lines,
        [
            "full: 1 service ports",
            "program demo/web:http 198.19.160.10:80 -> [198.18.0.11:8080]",
            "update demo/web:http 198.19.160.10:80 -> [198.18.0.12:8080, 198.18.0.13:8080]",
            "remove demo/web:http 198.19.160.10:80 -> [198.18.0.12:8080, 198.18.0.13:8080]",
        ]
    );
    assert_eq!(backend.programmed(), Some(0), "the Service was deleted");
}

#[test]
fn changes_before_a_full_sync_are_refused() {
    let mut backend = LogBackend::default();
    let state = kproxy_core::model::ProxyState::default();
    let err = backend.sync_changes(&state, &Default::default()).expect_err("nothing to apply changes to");
    assert!(matches!(err, LogError::NoFullSync));
    assert!(err.to_string().contains("call sync_full first"), "{err}");
}
