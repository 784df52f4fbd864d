//! IPVS and rtnetlink replies: service, destination, config and info dumps, links, addresses.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kproxy_ipvs::fuzzing::replies(data);
});
