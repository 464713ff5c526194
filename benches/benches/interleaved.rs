//! Ours against Stalwart's `smtp-proto` on every corpus reply, interleaved: on a shared machine whose speed drifts
//! by tens of percent between one criterion benchmark and the next, each round times a batch of our parser and then
//! a batch of Stalwart's (the order alternating between rounds), so both see the same machine; the ratio is taken
//! per round. Reports the median of the per-round ratios (with their range) and the ratio of the best batch times.
//!
//! The same work per call as `benches/parsing.rs` (the functions of `smtp_benches::parsers`): reply = framing +
//! parsing into an owned reply; EHLO = framing + parsing + capabilities, as our client does for a reply that
//! arrives whole (`Capabilities::parse_ehlo`).
//!
//! Run: `cargo bench -p smtp-benches --bench interleaved`.

use std::hint::black_box;
use std::time::Instant;

use smtp_benches::parsers::{ours_ehlo, ours_reply, stalwart_ehlo, stalwart_reply};
use smtp_benches::{Interleaved, corpus};

/// Rounds per corpus file (odd, for the median).
const ROUNDS: usize = 41;
/// Time one batch should take, roughly.
const BATCH_NS: f64 = 2_000_000.0;

type Parser = fn(&[u8]) -> usize;

/// Nanoseconds per call over `n` calls.
fn batch(parse: Parser, bytes: &[u8], n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        black_box(parse(black_box(bytes)));
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn compare(name: &str, bytes: &[u8], ours: Parser, theirs: Parser) {
    // Calls per batch, from a short calibration of the slower side.
    let probe = batch(theirs, bytes, 1000)
        .max(batch(ours, bytes, 1000))
        .max(1.0);
    let n = ((BATCH_NS / probe) as usize).clamp(100, 1_000_000);
    let r = Interleaved::run(ROUNDS, || batch(ours, bytes, n), || batch(theirs, bytes, n));
    let ((low, high), (best_ours, best_theirs)) = (r.range, r.best);
    println!(
        "| {name} | {best_ours:.0} | {best_theirs:.0} | **{:.2}x** ({low:.2}-{high:.2}) | {:.2}x |",
        r.median,
        best_theirs / best_ours
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let corpus = corpus();
    println!(
        "{ROUNDS} interleaved rounds of about 2 ms per parser and file; ratio = Stalwart time / our time.\n"
    );
    for (title, prefix, ours, theirs) in [
        (
            "Reply parsing",
            "",
            ours_reply as Parser,
            stalwart_reply as Parser,
        ),
        (
            "EHLO reply to capabilities",
            "ehlo--",
            ours_ehlo as Parser,
            stalwart_ehlo as Parser,
        ),
    ] {
        println!("#### {title}\n");
        println!(
            "| corpus file | ours, best batch (ns) | Stalwart, best batch (ns) | median of per-round ratios (range) | ratio of best batches |"
        );
        println!("|---|---|---|---|---|");
        for (name, bytes) in corpus.iter().filter(|(n, _)| n.starts_with(prefix)) {
            compare(name, bytes, ours, theirs);
        }
        println!();
    }
}
