//! Netlink framing: messages, ACKs and extended ACKs, attributes and nests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = kproxy_netlink::fuzzing::messages(data);
});
