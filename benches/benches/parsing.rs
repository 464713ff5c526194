//! Reply parsing and EHLO-to-capabilities on the shared corpus (`corpus/replies/*.txt`), side by side in the same
//! run with Stalwart's `smtp-proto` crate (crates.io) and lettre 0.11's parser.
//!
//! Each function does the whole job of its crate's client on one complete reply held in memory:
//! - reply: framing + parsing into an owned reply (ours: `parse_reply`; Stalwart: `ResponseReceiver::parse`;
//!   lettre: `Response::from_str`, after the UTF-8 check lettre's client does when it reads a line);
//! - ehlo: framing + parsing + capabilities (ours: `Capabilities::parse_ehlo`, the one-pass reader our `Client` uses
//!   for an EHLO/LHLO reply that arrives whole; Stalwart: `EhloResponse::parse`; lettre: `Response::from_str` +
//!   `ServerInfo::from_response`).
//!
//! Run: `cargo bench -p smtp-benches --bench parsing`; `bash benches/ratios.sh` prints the ratios.

use std::hint::black_box;
use std::str::FromStr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lettre::transport::smtp::extension::ServerInfo;
use lettre::transport::smtp::response::Response as LettreResponse;
use smtp_benches::corpus;
use smtp_benches::parsers::{ours_ehlo, ours_reply, stalwart_ehlo, stalwart_reply};

fn lettre_reply(bytes: &[u8]) -> usize {
    let text = std::str::from_utf8(bytes).expect("ASCII corpus");
    let reply = LettreResponse::from_str(text).expect("valid");
    black_box(&reply);
    reply.message().count()
}

fn lettre_ehlo(bytes: &[u8]) -> usize {
    let text = std::str::from_utf8(bytes).expect("ASCII corpus");
    let reply = LettreResponse::from_str(text).expect("valid");
    let info = ServerInfo::from_response(&reply).expect("valid");
    black_box(&info);
    info.name().len()
}

/// Checks, once, that every parser accepts every corpus file, so a benchmark never times an error path.
fn check(corpus: &[(String, Vec<u8>)]) {
    for (name, bytes) in corpus {
        ours_reply(bytes);
        stalwart_reply(bytes);
        lettre_reply(bytes);
        if name.starts_with("ehlo--") {
            ours_ehlo(bytes);
            stalwart_ehlo(bytes);
            lettre_ehlo(bytes);
        }
        let _ = name;
    }
}

fn bench(c: &mut Criterion) {
    let corpus = corpus();
    check(&corpus);
    type Parser = fn(&[u8]) -> usize;
    let replies: [(&str, Parser); 3] = [
        ("ours", ours_reply),
        ("stalwart", stalwart_reply),
        ("lettre", lettre_reply),
    ];
    let ehlos: [(&str, Parser); 3] = [
        ("ours", ours_ehlo),
        ("stalwart", stalwart_ehlo),
        ("lettre", lettre_ehlo),
    ];
    for (name, bytes) in &corpus {
        let mut group = c.benchmark_group(format!("reply/{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        for (peer, parse) in replies {
            group.bench_function(peer, |b| b.iter(|| parse(black_box(bytes))));
        }
        group.finish();
    }
    for (name, bytes) in corpus.iter().filter(|(n, _)| n.starts_with("ehlo--")) {
        let mut group = c.benchmark_group(format!("ehlo/{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        for (peer, parse) in ehlos {
            group.bench_function(peer, |b| b.iter(|| parse(black_box(bytes))));
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
