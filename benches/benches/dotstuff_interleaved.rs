//! The DotStuffer against `memcpy` of the same bytes, interleaved: the same 1 MiB bodies and work per call as
//! `benches/dotstuff.rs`, but each round times a batch of `memcpy` and then a batch of the stuffer (the order
//! alternating between rounds), so that both see the same machine, and the ratio is taken per round. On a shared
//! machine criterion's separate measurement windows drift apart by tens of percent; this does not.
//!
//! Reports, per body and encoder, the median of the per-round throughput ratios (encoder / memcpy) with their range,
//! and the ratio of the best batches.
//!
//! Run: `cargo bench -p smtp-benches --bench dotstuff_interleaved`.

use std::hint::black_box;
use std::time::Instant;

use smtp_benches::{Interleaved, text_body};
use smtp_proto::DotStuffer;

/// Rounds per body and encoder (odd, for the median).
const ROUNDS: usize = 41;
/// Calls per batch (1 MiB each: about 1-5 ms per batch here).
const CALLS: usize = 24;
const LEN: usize = 1 << 20;

type Encode = fn(&[u8], &mut Vec<u8>);

fn memcpy(body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(body);
}

fn stuffer(body: &[u8], out: &mut Vec<u8>) {
    let mut stuffer = DotStuffer::new();
    stuffer.push(body, out);
    stuffer.finish(out);
}

fn stuffer_64k_pushes(body: &[u8], out: &mut Vec<u8>) {
    let mut stuffer = DotStuffer::new();
    for chunk in body.chunks(64 * 1024) {
        stuffer.push(chunk, out);
    }
    stuffer.finish(out);
}

fn normalize_only(body: &[u8], out: &mut Vec<u8>) {
    let mut stuffer = DotStuffer::normalizing_only();
    stuffer.push(body, out);
    stuffer.finish(out);
}

/// Seconds per call over a batch, writing into the reused `out` (no allocation, no page faults).
fn batch(encode: Encode, body: &[u8], out: &mut Vec<u8>) -> f64 {
    let start = Instant::now();
    for _ in 0..CALLS {
        out.clear();
        encode(black_box(body), out);
        black_box(out.len());
    }
    start.elapsed().as_secs_f64() / CALLS as f64
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    println!(
        "{ROUNDS} interleaved rounds of {CALLS} calls per encoder and body; ratio = memcpy time / encoder time \
         (1.00x = memcpy's throughput).\n"
    );
    println!(
        "| body | encoder | memcpy, best batch (GiB/s) | encoder, best batch (GiB/s) \
         | median of per-round ratios (range) | ratio of best batches |"
    );
    println!("|---|---|---|---|---|---|");
    let gib = (1u64 << 30) as f64;
    for (name, crlf) in [("crlf-1MiB", true), ("lf-1MiB", false)] {
        let body = text_body(LEN, crlf);
        let mut out: Vec<u8> = Vec::with_capacity(DotStuffer::max_output_len(body.len()));
        for (encoder, encode) in [
            ("stuffer", stuffer as Encode),
            ("stuffer, 64 KiB pushes", stuffer_64k_pushes as Encode),
            ("normalize only", normalize_only as Encode),
        ] {
            // Warm-up: page in the output and settle the clock.
            batch(memcpy, &body, &mut out);
            batch(encode, &body, &mut out);
            // `out` is used by one side at a time.
            let out = std::cell::RefCell::new(&mut out);
            let r = Interleaved::run(
                ROUNDS,
                || batch(encode, &body, &mut out.borrow_mut()),
                || batch(memcpy, &body, &mut out.borrow_mut()),
            );
            let ((low, high), (best_encode, best_copy)) = (r.range, r.best);
            println!(
                "| {name} | {encoder} | {:.1} | {:.1} | **{:.2}x** ({low:.2}-{high:.2}) | {:.2}x |",
                LEN as f64 / best_copy / gib,
                LEN as f64 / best_encode / gib,
                r.median,
                best_copy / best_encode
            );
        }
    }
}
