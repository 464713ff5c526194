//! Instruction counts (Callgrind, through gungraun): stable on a noisy, shared machine.
//!
//! - `transaction`: one whole session through the core, in memory: `Client::new`, greeting, EHLO and its
//!   capabilities, MAIL + RCPT + DATA pipelined (or MAIL + RCPT + `BDAT n LAST` with CHUNKING), a 2 KiB message
//!   dot-stuffed, the final reply and the report.
//! - `reply` / `ehlo`: the same work as the criterion `parsing` bench, ours and Stalwart's, in instructions.
//!
//! Run: `cargo bench -p smtp-benches --bench instructions` (needs valgrind and
//! `cargo install gungraun-runner --version 0.20.0`).

#![allow(missing_docs)] // gungraun's macros generate undocumented public items.

use std::hint::black_box;
use std::time::Instant;

use gungraun::{library_benchmark, library_benchmark_group, main};
use smtp_benches::{SCRIPT_CHUNKING, SCRIPT_PIPELINING, Script, core_transaction, message};
use smtp_proto::{Capabilities, Outcome};

/// The inputs, after one untimed transaction (one-time costs paid first, as in a running client).
fn setup_transaction(script: Script) -> (Script, Vec<u8>, Instant) {
    let body = message(2048);
    let now = Instant::now();
    core_transaction(&script, &body, now);
    (script, body, now)
}

#[library_benchmark]
#[bench::pipelining_data(args = (SCRIPT_PIPELINING,), setup = setup_transaction)]
#[bench::pipelining_chunking(args = (SCRIPT_CHUNKING,), setup = setup_transaction)]
fn transaction((script, body, now): (Script, Vec<u8>, Instant)) -> (Outcome, usize) {
    let result = core_transaction(black_box(&script), black_box(&body), now);
    assert_eq!(result.0, Outcome::Accepted);
    black_box(result)
}

/// The corpus file, after one untimed call of every parser on it: one-time costs (the CPU feature detection
/// behind `memchr`, the allocator's first use) are paid before the measured call, as in a running client.
fn corpus_file(name: &str) -> Vec<u8> {
    let bytes = smtp_benches::corpus()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, bytes)| bytes)
        .unwrap_or_else(|| panic!("no corpus file {name}"));
    let _ = smtp_proto::framer::parse_reply(&bytes);
    let _ = Capabilities::parse_ehlo(&bytes);
    let _ =
        stalwart_smtp_proto::response::parser::ResponseReceiver::default().parse(&mut bytes.iter());
    let _ = stalwart_smtp_proto::EhloResponse::parse(&mut bytes.iter());
    bytes
}

#[library_benchmark]
#[bench::ok(args = ("reply--250-ok",), setup = corpus_file)]
#[bench::queued(args = ("reply--250-esc-queued-gmail",), setup = corpus_file)]
#[bench::multiline(args = ("reply--550-multiline-gmail",), setup = corpus_file)]
fn reply_ours(bytes: Vec<u8>) -> usize {
    let (reply, used) = smtp_proto::framer::parse_reply(black_box(&bytes))
        .expect("valid")
        .expect("complete");
    black_box(reply);
    // The input's free is not the parser's cost.
    std::mem::forget(bytes);
    used
}

#[library_benchmark]
#[bench::ok(args = ("reply--250-ok",), setup = corpus_file)]
#[bench::queued(args = ("reply--250-esc-queued-gmail",), setup = corpus_file)]
#[bench::multiline(args = ("reply--550-multiline-gmail",), setup = corpus_file)]
fn reply_stalwart(bytes: Vec<u8>) -> usize {
    let mut receiver = stalwart_smtp_proto::response::parser::ResponseReceiver::default();
    let reply = receiver
        .parse(&mut black_box(&bytes).iter())
        .expect("valid");
    let n = black_box(reply.message.len());
    drop(reply);
    std::mem::forget(bytes);
    n
}

#[library_benchmark]
#[bench::postfix(args = ("ehlo--ehlo-postfix",), setup = corpus_file)]
#[bench::fifteen_lines(args = ("ehlo--ehlo-15-lines",), setup = corpus_file)]
#[bench::exim(args = ("ehlo--ehlo-exim",), setup = corpus_file)]
#[bench::gmail(args = ("ehlo--ehlo-gmail-submission",), setup = corpus_file)]
#[bench::office365(args = ("ehlo--ehlo-office365",), setup = corpus_file)]
fn ehlo_ours(bytes: Vec<u8>) -> usize {
    let caps = Capabilities::parse_ehlo(black_box(&bytes)).expect("valid");
    let n = black_box(caps.domain().len());
    drop(caps);
    std::mem::forget(bytes);
    n
}

#[library_benchmark]
#[bench::postfix(args = ("ehlo--ehlo-postfix",), setup = corpus_file)]
#[bench::fifteen_lines(args = ("ehlo--ehlo-15-lines",), setup = corpus_file)]
#[bench::exim(args = ("ehlo--ehlo-exim",), setup = corpus_file)]
#[bench::gmail(args = ("ehlo--ehlo-gmail-submission",), setup = corpus_file)]
#[bench::office365(args = ("ehlo--ehlo-office365",), setup = corpus_file)]
fn ehlo_stalwart(bytes: Vec<u8>) -> usize {
    let caps =
        stalwart_smtp_proto::EhloResponse::parse(&mut black_box(&bytes).iter()).expect("valid");
    let n = black_box(caps.hostname.len());
    drop(caps);
    std::mem::forget(bytes);
    n
}

library_benchmark_group!(name = core; benchmarks = transaction);
library_benchmark_group!(name = parsers; benchmarks = reply_ours, reply_stalwart, ehlo_ours, ehlo_stalwart);
main!(library_benchmark_groups = core, parsers);
