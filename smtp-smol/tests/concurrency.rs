//! 1,000 concurrent SMTP sessions in one process against an async loopback sink: every session is open at the same
//! time (a barrier holds them until all are ready), every message arrives exactly once (a unique marker per message,
//! recorded by the sink), and every result is reported per message.
//!
//! Runs on `async-executor` with two worker threads (no smol, no tokio), in its own test binary.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_executor::Executor;
use async_io::{Async, Timer};
use event_listener::Event;
use futures_lite::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use smtp_smol::{
    Address, ConnectOptions, Connection, Envelope, Outcome, ReversePath, Timeouts, TlsMode,
};

const SESSIONS: usize = 1000;

/// Raises the soft limit on open files: 1,000 client sockets and 1,000 server sockets live in this process.
fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let want = 4 * SESSIONS as u64 + 256;
    if limit.current.is_some_and(|c| c < want) {
        limit.current = Some(limit.maximum.map_or(want, |m| m.min(want)));
        setrlimit(Resource::Nofile, limit).expect("raise RLIMIT_NOFILE");
    }
}

#[derive(Default)]
struct Sink {
    /// Marker -> how many times a message carrying it was accepted.
    markers: Mutex<HashMap<String, usize>>,
    open: AtomicUsize,
    max_open: AtomicUsize,
}

/// One server session: greeting, EHLO with PIPELINING, MAIL/RCPT/DATA, the body up to the final dot (recording its
/// `X-Marker`), QUIT.
async fn serve(stream: Async<std::net::TcpStream>, sink: Arc<Sink>) -> std::io::Result<()> {
    let open = sink.open.fetch_add(1, Ordering::SeqCst) + 1;
    sink.max_open.fetch_max(open, Ordering::SeqCst);
    let result = async {
        let mut writer = &stream;
        let mut reader = BufReader::new(&stream);
        writer.write_all(b"220 sink.test ESMTP\r\n").await?;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => {
                    writer
                        .write_all(b"250-sink.test\r\n250 PIPELINING\r\n")
                        .await?
                }
                "DATA" => {
                    writer.write_all(b"354 go ahead\r\n").await?;
                    let mut marker = None;
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await? == 0 {
                            return Ok(());
                        }
                        if line == ".\r\n" {
                            break;
                        }
                        if let Some(m) = line.strip_prefix("X-Marker: ") {
                            marker = Some(m.trim().to_owned());
                        }
                    }
                    if let Some(m) = marker {
                        *sink.markers.lock().unwrap().entry(m).or_default() += 1;
                    }
                    writer.write_all(b"250 2.0.0 accepted\r\n").await?;
                }
                "QUIT" => {
                    writer.write_all(b"221 bye\r\n").await?;
                    return Ok(());
                }
                _ => writer.write_all(b"250 ok\r\n").await?,
            }
        }
    }
    .await;
    sink.open.fetch_sub(1, Ordering::SeqCst);
    result
}

/// Waits until `count` reaches `target` (or the deadline passes: the assertions will tell).
async fn barrier(count: &AtomicUsize, event: &Event, target: usize, deadline: Instant) {
    loop {
        if count.load(Ordering::SeqCst) >= target {
            return;
        }
        let listener = event.listen();
        if count.load(Ordering::SeqCst) >= target {
            return;
        }
        let woke = futures_lite::future::or(
            async {
                listener.await;
                true
            },
            async {
                Timer::at(deadline).await;
                false
            },
        )
        .await;
        if !woke {
            return;
        }
    }
}

#[test]
fn a_thousand_concurrent_sessions_deliver_every_message_exactly_once() {
    raise_nofile();
    let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // A backlog for 1,000 simultaneous connects (std binds with 128).
    rustix::net::listen(&std_listener, SESSIONS as i32 + 24).expect("listen backlog");
    let listener = Async::new(std_listener).unwrap();
    let port = listener.get_ref().local_addr().unwrap().port();
    let sink = Arc::new(Sink::default());
    let ex = Arc::new(Executor::new());
    let stop = Event::new();

    let start = Instant::now();
    let results = std::thread::scope(|scope| {
        for _ in 0..2 {
            let ex = Arc::clone(&ex);
            let stop = &stop;
            scope.spawn(move || async_io::block_on(ex.run(stop.listen())));
        }
        let results = async_io::block_on(ex.run(async {
            let accept = ex.spawn({
                let (ex, sink) = (Arc::clone(&ex), Arc::clone(&sink));
                async move {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        ex.spawn(serve(stream, Arc::clone(&sink))).detach();
                    }
                }
            });
            let options = ConnectOptions::new("127.0.0.1", port)
                .with_tls(TlsMode::None)
                .with_timeouts(Timeouts::submission().capped(Duration::from_secs(30)));
            let ready = Arc::new((AtomicUsize::new(0), Event::new()));
            let deadline = Instant::now() + Duration::from_secs(30);
            let tasks: Vec<_> = (0..SESSIONS)
                .map(|i| {
                    let (options, ready) = (options.clone(), Arc::clone(&ready));
                    ex.spawn(async move {
                        let marker = format!("msg-{i:04}");
                        let result = async {
                            let mut conn = Connection::connect(&options).await?;
                            ready.0.fetch_add(1, Ordering::SeqCst);
                            ready.1.notify(usize::MAX);
                            // Every session is open before any message is sent.
                            barrier(&ready.0, &ready.1, SESSIONS, deadline).await;
                            let envelope = Envelope::new(
                                ReversePath::Mailbox(
                                    "load@example.org".parse::<Address>().unwrap(),
                                ),
                                [format!("rcpt{i}@example.org").parse::<Address>().unwrap()],
                            );
                            let body = format!(
                                "Subject: {marker}\r\nX-Marker: {marker}\r\n\r\nmessage {i}\r\n"
                            );
                            let report = conn.send_bytes(&envelope, body.as_bytes()).await?;
                            conn.quit().await?;
                            Ok::<_, smtp_smol::Error>(report)
                        }
                        .await;
                        (marker, result)
                    })
                })
                .collect();
            let mut results = Vec::with_capacity(SESSIONS);
            for t in tasks {
                results.push(t.await);
            }
            drop(accept);
            results
        }));
        stop.notify(usize::MAX);
        results
    });
    let took = start.elapsed();
    eprintln!(
        "{SESSIONS} concurrent sessions in {took:?}; at most {} open at once",
        sink.max_open.load(Ordering::SeqCst)
    );

    // Per-message results.
    assert_eq!(results.len(), SESSIONS);
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, r)| !matches!(r, Ok(report) if report.outcome == Outcome::Accepted))
        .map(|(m, r)| format!("{m}: {r:?}"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} messages not accepted, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    for (marker, r) in &results {
        let report = r.as_ref().unwrap();
        assert_eq!(report.recipients.len(), 1, "{marker}");
        assert!(report.recipients[0].accepted, "{marker}");
    }
    // Exactly once each.
    let markers = sink.markers.lock().unwrap();
    assert_eq!(markers.len(), SESSIONS);
    for i in 0..SESSIONS {
        assert_eq!(markers.get(&format!("msg-{i:04}")), Some(&1), "msg-{i:04}");
    }
    // They really were concurrent.
    assert_eq!(sink.max_open.load(Ordering::SeqCst), SESSIONS);
}
