//! Messages per second through a connection pool with 1, 8 and 64 connections: smtp-smol's `Pool` side by side with
//! lettre 0.11's tokio `AsyncSmtpTransport` pool, on the same sink, in the same run (issue 4).
//!
//! ```text
//! bash .ci/servers/start.sh                                   # starts Postfix's smtp-sink on 127.0.0.1:2600
//! cargo bench -p smtp-benches --bench pool_throughput         # POOL_BENCH_MESSAGES=10000 to change the count
//! ```
//!
//! The sink is Postfix's `smtp-sink` (`SMTP_SINK_PORT` in `target/test-servers/servers.env`): it accepts and drops
//! everything, so the figures measure the clients. Without it the benchmark fails and says how to start it.
//!
//! Both clients send the same raw message (1 KiB) with the same envelope, in plaintext, from `n` workers that each
//! send one message at a time, so exactly `n` connections are busy (lettre's `max_size` caps only idle connections;
//! the worker count is what bounds both). Both run on two worker threads (the machine has 2 cores, shared with the
//! sink): smtp-smol on an `async-executor` (smol's), lettre on a tokio multi-thread runtime. Each figure is the
//! median of 3 runs (the three clients take turns, so noise from the shared cores spreads evenly), with the
//! min–max range. Bounded: a fixed number of messages per run and a 40 s cap per run.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncTransport, Tokio1Executor};
use smtp_smol::{
    Address, ConnectOptions, Envelope, Outcome, Pool, PoolOptions, ReversePath, TlsMode,
};

const CONNECTIONS: [usize; 3] = [1, 8, 64];
const ROW_CAP: Duration = Duration::from_secs(40);
const REPEATS: usize = 3;
const FROM: &str = "bench@example.org";
const TO: &str = "sink@example.net";

fn sink_port() -> u16 {
    let env = std::env::var_os("SERVERS_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-servers/servers.env")
        });
    let text = std::fs::read_to_string(&env).unwrap_or_else(|e| {
        panic!(
            "no smtp-sink: cannot read {} ({e}); run `bash .ci/servers/start.sh` first",
            env.display()
        )
    });
    let port: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("SMTP_SINK_PORT="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "SMTP_SINK_PORT missing from {}: run `bash .ci/servers/start.sh`",
                env.display()
            )
        });
    if std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))
        .is_err()
    {
        panic!("smtp-sink is not listening on 127.0.0.1:{port}: run `bash .ci/servers/start.sh`");
    }
    port
}

fn message() -> Vec<u8> {
    let mut m = format!(
        "From: {FROM}\r\nTo: {TO}\r\nSubject: pool throughput\r\nMessage-ID: <bench@example.org>\r\n\
         Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    while m.len() < 1024 - 66 {
        m.extend_from_slice(
            b"The quick brown fox jumps over the lazy dog; pack my box with jugs.\r\n",
        );
    }
    m
}

/// How many of `total` messages each of `workers` sends.
fn share(total: usize, workers: usize, w: usize) -> usize {
    total / workers + usize::from(w < total % workers)
}

struct Row {
    sent: usize,
    failed: usize,
    took: Duration,
}

impl Row {
    fn rate(&self) -> f64 {
        self.sent as f64 / self.took.as_secs_f64()
    }
}

fn smtp_smol(port: u16, connections: usize, total: usize, noop_every_reuse: bool) -> Row {
    let options = ConnectOptions::new("127.0.0.1", port)
        .with_tls(TlsMode::None)
        .with_noop_after_idle(noop_every_reuse.then_some(Duration::ZERO));
    let pool = Pool::new(
        options,
        PoolOptions::default()
            .max_connections(connections)
            .max_messages_per_connection(u64::MAX),
    )
    .expect("pool");
    let body: Arc<[u8]> = message().into();
    let envelope = Envelope::new(
        ReversePath::Mailbox(FROM.parse::<Address>().unwrap()),
        [TO.parse::<Address>().unwrap()],
    );
    let ex = Arc::new(smol::Executor::new());
    let stop = smol::channel::bounded::<()>(1);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let (ex, rx) = (Arc::clone(&ex), stop.1.clone());
            scope.spawn(move || smol::block_on(ex.run(rx.recv())));
        }
        let run = |count: usize| {
            let failed = Arc::new(AtomicUsize::new(0));
            let deadline = Instant::now() + ROW_CAP;
            let start = Instant::now();
            let tasks: Vec<_> = (0..connections)
                .map(|w| {
                    let (pool, body, envelope, failed) = (
                        pool.clone(),
                        Arc::clone(&body),
                        envelope.clone(),
                        Arc::clone(&failed),
                    );
                    ex.spawn(async move {
                        let mut sent = 0;
                        for _ in 0..share(count, connections, w) {
                            if Instant::now() > deadline {
                                break;
                            }
                            match pool.send_bytes(&envelope, &body[..]).await {
                                Ok(r) if r.outcome == Outcome::Accepted => sent += 1,
                                _ => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        sent
                    })
                })
                .collect();
            let sent = smol::block_on(async {
                let mut sent = 0;
                for t in tasks {
                    sent += t.await;
                }
                sent
            });
            Row {
                sent,
                failed: failed.load(Ordering::Relaxed),
                took: start.elapsed(),
            }
        };
        run(connections * 20); // warm-up: open the connections
        let row = run(total);
        smol::block_on(pool.close());
        drop(stop.0);
        row
    })
}

fn lettre(port: u16, connections: usize, total: usize) -> Row {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let body: Arc<[u8]> = message().into();
    let envelope =
        lettre::address::Envelope::new(Some(FROM.parse().unwrap()), vec![TO.parse().unwrap()])
            .unwrap();
    runtime.block_on(async {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .pool_config(PoolConfig::new().max_size(connections as u32))
            .build();
        let run = |count: usize| {
            let transport = transport.clone();
            let (body, envelope) = (Arc::clone(&body), envelope.clone());
            async move {
                let failed = Arc::new(AtomicUsize::new(0));
                let deadline = Instant::now() + ROW_CAP;
                let start = Instant::now();
                let tasks: Vec<_> = (0..connections)
                    .map(|w| {
                        let (transport, body, envelope, failed) = (
                            transport.clone(),
                            Arc::clone(&body),
                            envelope.clone(),
                            Arc::clone(&failed),
                        );
                        tokio::spawn(async move {
                            let mut sent = 0;
                            for _ in 0..share(count, connections, w) {
                                if Instant::now() > deadline {
                                    break;
                                }
                                match transport.send_raw(&envelope, &body).await {
                                    Ok(r) if r.is_positive() => sent += 1,
                                    _ => {
                                        failed.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                            sent
                        })
                    })
                    .collect();
                let mut sent = 0;
                for t in tasks {
                    sent += t.await.expect("task");
                }
                Row {
                    sent,
                    failed: failed.load(Ordering::Relaxed),
                    took: start.elapsed(),
                }
            }
        };
        run(connections * 20).await; // warm-up: open the connections
        run(total).await
    })
}

/// Median and range of the rates of several runs, as table text.
fn summary(name: &str, n: usize, total: usize, runs: &[Row]) -> (f64, String) {
    for r in runs {
        if r.failed > 0 || r.sent < total {
            eprintln!(
                "note: {name} with {n} connections sent {} of {total} ({} failed) within the {ROW_CAP:?} cap",
                r.sent, r.failed
            );
        }
    }
    let mut rates: Vec<f64> = runs.iter().map(Row::rate).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let text = format!(
        "{median:.0} ({:.0}–{:.0})",
        rates[0],
        rates[rates.len() - 1]
    );
    (median, text)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let total: usize = std::env::var("POOL_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let port = sink_port();
    println!(
        "pool throughput: {total} messages of {} bytes per run to smtp-sink on 127.0.0.1:{port}, plaintext; \
         median of {REPEATS} runs (min–max)",
        message().len()
    );
    println!();
    println!(
        "| connections | smtp-smol msg/s | smtp-smol, NOOP on every reuse, msg/s | lettre 0.11 (tokio) msg/s | \
         smtp-smol / lettre (medians) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for n in CONNECTIONS {
        let (mut ours, mut ours_noop, mut peer) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            ours.push(smtp_smol(port, n, total, false));
            ours_noop.push(smtp_smol(port, n, total, true));
            peer.push(lettre(port, n, total));
        }
        let (a, a_text) = summary("smtp-smol", n, total, &ours);
        let (_, b_text) = summary("smtp-smol+noop", n, total, &ours_noop);
        let (c, c_text) = summary("lettre", n, total, &peer);
        println!("| {n} | {a_text} | {b_text} | {c_text} | {:.1}x |", a / c);
    }
}
