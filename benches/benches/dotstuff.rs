//! DotStuffer throughput against a plain `memcpy` (`Vec::extend_from_slice`) of the same bytes, on a realistic
//! 1 MiB text body: CRLF lines of 60-76 characters with about one line in 40 starting with a dot, and the same
//! text with bare LF line endings (every line ending must become CRLF).
//!
//! Both write into a reused, pre-allocated output buffer, so neither pays for page faults or allocation. The
//! stuffer is measured as one push of the whole body and in 64 KiB pushes (what an adapter streaming a large body
//! does), each followed by `finish`.
//!
//! Run: `cargo bench -p smtp-benches --bench dotstuff`; `bash benches/ratios.sh` prints the ratios.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smtp_benches::text_body;
use smtp_proto::DotStuffer;

const LEN: usize = 1 << 20;

fn bench(c: &mut Criterion) {
    for (name, crlf) in [("crlf", true), ("lf", false)] {
        let body = text_body(LEN, crlf);
        let mut out: Vec<u8> = Vec::with_capacity(DotStuffer::max_output_len(body.len()));
        let mut group = c.benchmark_group(format!("dotstuff/{name}-1MiB"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("memcpy", |b| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(&body));
                black_box(out.len())
            })
        });
        group.bench_function("stuffer", |b| {
            b.iter(|| {
                out.clear();
                let mut stuffer = DotStuffer::new();
                stuffer.push(black_box(&body), &mut out);
                stuffer.finish(&mut out);
                black_box(out.len())
            })
        });
        group.bench_function("stuffer-64k-pushes", |b| {
            b.iter(|| {
                out.clear();
                let mut stuffer = DotStuffer::new();
                for chunk in black_box(&body).chunks(64 * 1024) {
                    stuffer.push(chunk, &mut out);
                }
                stuffer.finish(&mut out);
                black_box(out.len())
            })
        });
        group.bench_function("normalize-only", |b| {
            b.iter(|| {
                out.clear();
                let mut stuffer = DotStuffer::normalizing_only();
                stuffer.push(black_box(&body), &mut out);
                stuffer.finish(&mut out);
                black_box(out.len())
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
