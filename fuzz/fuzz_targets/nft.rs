//! nf_tables replies: set-element dumps and change notifications with the matcher.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = kproxy_nft::fuzzing::replies(data);
});
