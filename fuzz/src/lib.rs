//! Fuzz targets for the `smtp-proto` core, and the invariants they check.
//!
//! Every target is a plain function `run(data: &[u8])` that panics when an invariant breaks. The same file is used in
//! two ways:
//! - as this crate's library, called by the cargo-fuzz binaries in `fuzz_targets/` (one line each);
//! - as a module of the stable test `smtp-proto/tests/corpus_replay.rs` (`#[path = "../../fuzz/src/lib.rs"]`),
//!   which replays every checked-in corpus file through the same functions without libFuzzer, and of
//!   `smtp-proto/tests/state_machine.rs`, which drives the session harness with proptest-generated scripts.
//!
//! So the code here depends only on what smtp-proto's tests can use too (smtp-proto and its own dependencies, never
//! `libfuzzer-sys`), and refers to sibling modules with `super::`, never `crate::`.

pub mod body;
pub mod command;
pub mod ehlo;
pub mod input;
pub mod reference;
pub mod reply;
pub mod seeds;
pub mod session;

/// A target: it panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// The targets, by name: the name is the directory under `fuzz/corpus/` and the cargo-fuzz binary.
pub const TARGETS: [(&str, Target); 5] = [
    ("reply", reply::run),
    ("ehlo", ehlo::run),
    ("session", session::run),
    ("body", body::run),
    ("command", command::run),
];
