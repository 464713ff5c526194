//! Sends N messages concurrently through a connection pool, with a progress line.
//!
//! ```text
//! cargo run -p smtp-smol --example bulk                        # 1000 messages to a loopback server it starts
//! cargo run -p smtp-smol --example bulk -- -n 5000 -c 16       # more messages, 16 connections
//! cargo run -p smtp-smol --example bulk -- --url 'smtp://localhost:2525?tls=none' --to someone@sink.example.test
//! SMTP_PASSWORD=... cargo run -p smtp-smol --example bulk -- --url smtp://alice@mail.example.org --ca-file ca.pem
//! ```
//!
//! Options: `--url URL` (else a loopback test server is started), `-n N` messages (1000), `-c C` connections (8),
//! `--from ADDR`, `--to ADDR`, `--ca-file PEM`, `--per-connection M` messages before a connection is renewed (100).
//! A user name in the URL takes its password from `SMTP_PASSWORD`.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use smtp_smol::{
    Address, ConnectOptions, Envelope, Outcome, Pool, PoolOptions, ReversePath, SendReport, TlsMode,
};

struct Args {
    url: Option<String>,
    count: usize,
    connections: usize,
    per_connection: u64,
    from: String,
    to: String,
    ca_file: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: None,
        count: 1000,
        connections: 8,
        per_connection: 100,
        from: "bulk@example.org".into(),
        to: "rcpt@example.org".into(),
        ca_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = Some(value()?),
            "-n" | "--count" => args.count = value()?.parse().map_err(|e| format!("-n: {e}"))?,
            "-c" | "--connections" => {
                args.connections = value()?.parse().map_err(|e| format!("-c: {e}"))?
            }
            "--per-connection" => {
                args.per_connection = value()?.parse().map_err(|e| format!("{flag}: {e}"))?
            }
            "--from" => args.from = value()?,
            "--to" => args.to = value()?,
            "--ca-file" => args.ca_file = Some(value()?),
            "-h" | "--help" => {
                return Err("usage: bulk [--url URL] [-n N] [-c CONNECTIONS] [--per-connection M] [--from ADDR] \
                            [--to ADDR] [--ca-file PEM]"
                    .into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// Counters for the progress line.
#[derive(Default)]
struct Progress {
    done: AtomicUsize,
    accepted: AtomicUsize,
    failed: AtomicUsize,
}

fn print_progress(p: &Progress, total: usize, start: Instant, last: bool) {
    let done = p.done.load(Ordering::Relaxed);
    let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9);
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r{done}/{total} done, {} accepted, {} failed, {rate:.0} msg/s   ",
        p.accepted.load(Ordering::Relaxed),
        p.failed.load(Ordering::Relaxed)
    );
    if last {
        let _ = writeln!(err);
    }
    let _ = err.flush();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    // Without a URL, a loopback test server (plaintext, PIPELINING, CHUNKING) receives the messages.
    let (server, mut options) = match &args.url {
        Some(url) => (None, ConnectOptions::from_url(url)?),
        None => {
            let server =
                smtp_test_server::TestServer::start(smtp_test_server::ServerConfig::new())?;
            let options = ConnectOptions::new("127.0.0.1", server.port()).with_tls(TlsMode::None);
            eprintln!("started a loopback test server on {}", server.addr());
            (Some(server), options)
        }
    };
    if let Some(ca) = &args.ca_file {
        options = options.with_ca_file(ca);
    }
    if let Some(creds) = &options.session.credentials
        && let Ok(password) = std::env::var("SMTP_PASSWORD")
    {
        let user = creds.username().to_owned();
        options = options.with_password(user, password);
    }
    let pool = Pool::new(
        options,
        PoolOptions::default()
            .max_connections(args.connections)
            .max_messages_per_connection(args.per_connection),
    )?;
    let from: Address = args.from.parse()?;
    let to: Address = args.to.parse()?;

    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    let results: Vec<(usize, Result<SendReport, smtp_smol::Error>)> = smol::block_on(async {
        let ticker = smol::spawn({
            let progress = Arc::clone(&progress);
            let total = args.count;
            async move {
                loop {
                    async_io::Timer::after(Duration::from_millis(200)).await;
                    print_progress(&progress, total, start, false);
                }
            }
        });
        let tasks: Vec<_> = (0..args.count)
            .map(|i| {
                let (pool, progress) = (pool.clone(), Arc::clone(&progress));
                let envelope = Envelope::new(ReversePath::Mailbox(from.clone()), [to.clone()]);
                smol::spawn(async move {
                    let body = format!(
                        "From: {}\r\nTo: {}\r\nSubject: bulk message {i}\r\nMessage-ID: <bulk-{i}-{}@example.org>\r\n\r\n\
                         This is message {i} of a bulk run.\r\n",
                        envelope.from, envelope.recipients[0].address, std::process::id()
                    );
                    let result = pool.send_bytes(&envelope, body).await;
                    match &result {
                        Ok(r) if r.outcome == Outcome::Accepted => progress.accepted.fetch_add(1, Ordering::Relaxed),
                        _ => progress.failed.fetch_add(1, Ordering::Relaxed),
                    };
                    progress.done.fetch_add(1, Ordering::Relaxed);
                    (i, result)
                })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for t in tasks {
            results.push(t.await);
        }
        ticker.cancel().await;
        pool.close().await;
        results
    });
    print_progress(&progress, args.count, start, true);

    let took = start.elapsed();
    let stats = pool.stats();
    println!(
        "{} messages in {:.2?} ({:.0} msg/s) over {} connections (opened {}, reused {}, retries {})",
        args.count,
        took,
        args.count as f64 / took.as_secs_f64(),
        args.connections,
        stats.opened,
        stats.reused,
        stats.retries
    );
    let mut shown = 0;
    for (i, r) in &results {
        let line = match r {
            Ok(report) if report.outcome == Outcome::Accepted => continue,
            Ok(report) => format!("message {i}: {}: {:?}", report.outcome, report.recipients),
            Err(e) => format!("message {i}: {e}"),
        };
        if shown < 10 {
            eprintln!("{line}");
        }
        shown += 1;
    }
    if let Some(server) = server {
        println!(
            "the loopback server recorded {} messages",
            server.messages().len()
        );
    }
    if shown > 0 {
        return Err(format!("{shown} of {} messages were not accepted", args.count).into());
    }
    Ok(())
}
