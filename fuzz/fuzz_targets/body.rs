#![no_main]
//! cargo-fuzz entry point; the target and its invariants are in `src/body.rs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| smtp_proto_fuzz::body::run(data));
