//! Benchmarks live in benches/ (in progress).
