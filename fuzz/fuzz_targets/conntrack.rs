//! ctnetlink dumps: flows and their delete requests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = kproxy_conntrack::fuzzing::dump(data);
});
