#![no_main]
//! cargo-fuzz entry point; the target and its invariants are in `src/reply.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| smtp_proto_fuzz::reply::run(data));
