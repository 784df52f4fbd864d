//! Manifest files (YAML and JSON) decoded and translated by the change tracker.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = kproxy_core::fuzzing::manifest(data);
});
