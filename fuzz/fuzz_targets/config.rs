//! KubeProxyConfiguration files (YAML and JSON): parse, default, validate, write back.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kproxy_core::fuzzing::config(data);
});
