//! The pool against the scripted server: connection bound, idle timeout, NOOP before reuse after idling (not for
//! fresh connections), reconnection on 421, a bound on messages per connection, shared clones, closing, and
//! cancellation (a dropped send never returns its connection to the pool).

mod common;

use std::time::Duration;

use common::*;
use smtp_smol::{ConnectOptions, ErrorKind, Outcome, Pool, PoolOptions, Timeouts, TlsMode};
use smtp_test_server::{Fault, ServerConfig, Stage as SStage, TestServer};

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config).expect("start the test server")
}

fn opts(server: &TestServer) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", server.port())
        .with_tls(TlsMode::None)
        .with_timeouts(Timeouts::submission().capped(Duration::from_secs(2)))
        .with_noop_after_idle(None)
}

fn pool(server: &TestServer, options: PoolOptions) -> Pool {
    Pool::new(opts(server), options).unwrap()
}

async fn send(pool: &Pool, subject: &str) -> Result<smtp_smol::SendReport, smtp_smol::Error> {
    pool.send_bytes(
        &envelope("a@example.org", &["b@example.org"]),
        message(subject, "pooled"),
    )
    .await
}

fn verbs(server: &TestServer, session: usize) -> Vec<String> {
    server.sessions()[session].verbs()
}

#[test]
fn concurrent_sends_share_at_most_max_connections() {
    let server =
        start(ServerConfig::new().fault(Fault::Delay(SStage::BdatLast, Duration::from_millis(20))));
    let pool = pool(&server, PoolOptions::default().max_connections(3));
    let results = smol::block_on(async {
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let pool = pool.clone();
                smol::spawn(async move { send(&pool, &format!("concurrent-{i}")).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        out
    });
    for (i, r) in results.iter().enumerate() {
        assert_eq!(
            r.as_ref().unwrap().outcome,
            Outcome::Accepted,
            "message {i}"
        );
    }
    assert_eq!(server.connections(), 3);
    assert_eq!(server.messages().len(), 30);
    let stats = pool.stats();
    assert_eq!(
        (stats.open, stats.idle, stats.opened),
        (3, 3, 3),
        "{stats:?}"
    );
    assert_eq!(stats.reused, 27);
}

#[test]
fn cloned_handles_share_the_pool() {
    let server = start(ServerConfig::new());
    let a = pool(&server, PoolOptions::default().max_connections(1));
    let b = a.clone();
    run(async {
        send(&a, "from-a").await.unwrap();
        send(&b, "from-b").await.unwrap();
    });
    assert_eq!(server.connections(), 1);
    assert_eq!(b.stats().reused, 1);
    assert_eq!(a.stats(), b.stats());
}

#[test]
fn idle_connections_expire() {
    let server = start(ServerConfig::new());
    let pool = pool(
        &server,
        PoolOptions::default().idle_timeout(Duration::from_millis(200)),
    );
    run(async {
        send(&pool, "first").await.unwrap();
        async_io::Timer::after(Duration::from_millis(400)).await;
        send(&pool, "second").await.unwrap();
    });
    assert_eq!(server.connections(), 2);
    assert_eq!(pool.stats().reused, 0);
    assert!(
        server.wait_for(Duration::from_secs(2), |s, _| s[0].ended),
        "the expired connection was closed"
    );
}

#[test]
fn noop_before_reuse_after_idling_but_not_for_fresh_connections() {
    let server = start(ServerConfig::new());
    let options = opts(&server).with_noop_after_idle(Some(Duration::from_millis(100)));
    let pool = Pool::new(options, PoolOptions::default().max_connections(1)).unwrap();
    run(async {
        send(&pool, "fresh").await.unwrap();
        send(&pool, "reused-at-once").await.unwrap();
        async_io::Timer::after(Duration::from_millis(250)).await;
        send(&pool, "reused-after-idling").await.unwrap();
    });
    let v = verbs(&server, 0);
    let noops: Vec<usize> = v
        .iter()
        .enumerate()
        .filter(|(_, v)| *v == "NOOP")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(noops.len(), 1, "{v:?}");
    // The NOOP comes right before the third MAIL.
    let mails: Vec<usize> = v
        .iter()
        .enumerate()
        .filter(|(_, v)| *v == "MAIL")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(noops[0] + 1, mails[2], "{v:?}");
    let stats = pool.stats();
    assert_eq!((stats.health_checks, stats.health_check_failures), (1, 0));
}

#[test]
fn a_failed_health_check_discards_the_connection() {
    let server = start(ServerConfig::new().fault_on_connection(0, Fault::Shutdown(SStage::Noop)));
    let options = opts(&server).with_noop_after_idle(Some(Duration::ZERO));
    let pool = Pool::new(options, PoolOptions::default().max_connections(1)).unwrap();
    run(async {
        send(&pool, "one").await.unwrap();
        let r = send(&pool, "two").await.unwrap();
        assert_eq!(r.outcome, Outcome::Accepted);
    });
    assert_eq!(server.connections(), 2);
    assert_eq!(server.messages().len(), 2);
    let stats = pool.stats();
    assert_eq!(
        (stats.health_checks, stats.health_check_failures, stats.open),
        (1, 1, 1),
        "{stats:?}"
    );
}

#[test]
fn a_421_reconnects_and_the_message_goes_through() {
    for stage in [
        SStage::Mail,
        SStage::Rcpt,
        SStage::Data,
        SStage::DataEnd,
        SStage::BdatLast,
    ] {
        let chunking = stage == SStage::BdatLast;
        let server = start(
            ServerConfig::new()
                .chunking(chunking)
                .fault_on_connection(0, Fault::Shutdown(stage)),
        );
        let pool = pool(&server, PoolOptions::default());
        let (r, _) = within(Duration::from_secs(4), send(&pool, "after-421"));
        let report = r.unwrap_or_else(|e| panic!("{stage:?}: {e}"));
        assert_eq!(report.outcome, Outcome::Accepted, "{stage:?}");
        assert_eq!(server.connections(), 2, "{stage:?}");
        assert_eq!(
            server.messages().len(),
            1,
            "{stage:?}: delivered exactly once"
        );
        assert_eq!(pool.stats().retries, 1);
    }
}

#[test]
fn a_persistent_421_gives_up_after_the_configured_attempts() {
    let server = start(ServerConfig::new().fault(Fault::Shutdown(SStage::Mail)));
    let pool = pool(&server, PoolOptions::default().reconnect_attempts(2));
    let report = run(send(&pool, "never")).expect("a report with the 421");
    assert_eq!(report.outcome, Outcome::Rejected);
    assert_eq!(
        report.error.as_ref().map(|e| e.kind().clone()),
        Some(ErrorKind::ServiceNotAvailable)
    );
    assert!(report.is_transient());
    assert_eq!(server.connections(), 3);
    assert_eq!(pool.stats().open, 0);
}

/// A streamed body of `left` bytes of text.
struct Lines {
    left: usize,
}

impl futures_lite::io::AsyncRead for Lines {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.left);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = if (self.left - i) % 80 == 1 {
                b'\n'
            } else {
                b'z'
            };
        }
        self.left -= n;
        std::task::Poll::Ready(Ok(n))
    }
}

#[test]
fn a_streamed_body_is_retried_when_it_can_be_replayed() {
    for chunking in [true, false] {
        for stage in [
            SStage::Mail,
            if chunking {
                SStage::BdatLast
            } else {
                SStage::DataEnd
            },
        ] {
            // A short body is kept while it streams, so it can be sent again, whenever the 421 came.
            let server = start(
                ServerConfig::new()
                    .chunking(chunking)
                    .fault_on_connection(0, Fault::Shutdown(stage)),
            );
            let pool = pool(&server, PoolOptions::default());
            let body = message("streamed", "x");
            let report = run(pool.send(
                &envelope("a@example.org", &["b@example.org"]),
                &mut &body[..],
            ))
            .unwrap();
            assert_eq!(report.outcome, Outcome::Accepted, "{stage:?}");
            assert_eq!(server.messages().len(), 1);
            assert_eq!(
                server.messages()[0].body,
                body,
                "replayed from the first byte"
            );
        }
        // A large body that was partly or wholly read cannot be rewound: the 421 is the answer.
        let stage = if chunking {
            SStage::BdatLast
        } else {
            SStage::DataEnd
        };
        let server = start(
            ServerConfig::new()
                .chunking(chunking)
                .fault_on_connection(0, Fault::Shutdown(stage)),
        );
        let pool = self::pool(&server, PoolOptions::default());
        let report = run(pool.send(
            &envelope("a@example.org", &["b@example.org"]),
            &mut Lines { left: 200_000 },
        ))
        .unwrap();
        assert_eq!(report.outcome, Outcome::Rejected);
        assert_eq!(report.recipients[0].code(), Some(421));
        assert_eq!(server.connections(), 1);
    }
    // Without CHUNKING the body is read only after 354: a 421 to MAIL retries even a large stream.
    let server = start(
        ServerConfig::new()
            .chunking(false)
            .fault_on_connection(0, Fault::Shutdown(SStage::Mail)),
    );
    let pool = pool(&server, PoolOptions::default());
    let report = run(pool.send(
        &envelope("a@example.org", &["b@example.org"]),
        &mut Lines { left: 200_000 },
    ))
    .unwrap();
    assert_eq!(report.outcome, Outcome::Accepted);
    assert_eq!(server.connections(), 2);
}

#[test]
fn messages_per_connection_are_bounded_and_retired_with_quit() {
    let server = start(ServerConfig::new());
    let pool = pool(
        &server,
        PoolOptions::default()
            .max_connections(1)
            .max_messages_per_connection(3),
    );
    run(async {
        for i in 0..7 {
            send(&pool, &format!("bounded-{i}")).await.unwrap();
        }
    });
    assert_eq!(server.connections(), 3);
    assert_eq!(server.messages().len(), 7);
    let sessions = server.sessions();
    for s in &sessions[..2] {
        let v = s.verbs();
        assert_eq!(v.iter().filter(|v| *v == "MAIL").count(), 3, "{v:?}");
        assert_eq!(v.last().map(String::as_str), Some("QUIT"), "{v:?}");
    }
}

#[test]
fn a_closed_pool_fails_new_sends_clearly_and_quits_idle_connections() {
    let server = start(ServerConfig::new());
    let pool = pool(&server, PoolOptions::default());
    let clone = pool.clone();
    run(async {
        send(&pool, "before-close").await.unwrap();
        pool.close().await;
        let e = expect_err(send(&clone, "after-close").await);
        assert_eq!(e.kind(), &ErrorKind::Closed, "{e}");
        assert!(format!("{e:?}").contains("pool was closed"), "{e:?}");
    });
    assert!(clone.is_closed());
    assert_eq!(clone.stats().open, 0);
    assert_eq!(
        server.sessions()[0].verbs().last().map(String::as_str),
        Some("QUIT")
    );
    assert_eq!(server.connections(), 1);
}

#[test]
fn closing_wakes_waiters_with_the_error() {
    let server = start(
        ServerConfig::new().fault(Fault::Delay(SStage::BdatLast, Duration::from_millis(500))),
    );
    let pool = pool(&server, PoolOptions::default().max_connections(1));
    let (first, second) = smol::block_on(async {
        let busy = smol::spawn({
            let pool = pool.clone();
            async move { send(&pool, "busy").await }
        });
        async_io::Timer::after(Duration::from_millis(100)).await;
        let waiting = smol::spawn({
            let pool = pool.clone();
            async move { send(&pool, "waiting").await }
        });
        async_io::Timer::after(Duration::from_millis(100)).await;
        pool.close().await;
        (busy.await, waiting.await)
    });
    // The message in flight completes; the one waiting for a connection fails at once.
    assert_eq!(first.unwrap().outcome, Outcome::Accepted);
    assert_eq!(expect_err(second).kind(), &ErrorKind::Closed);
    // The busy connection was retired with QUIT after its message, not returned to the closed pool.
    assert_eq!(pool.stats().open, 0);
    assert!(server.wait_idle(Duration::from_secs(2)));
    assert_eq!(
        server.sessions()[0].verbs().last().map(String::as_str),
        Some("QUIT")
    );
}

#[test]
fn a_dropped_send_never_returns_its_connection_to_the_pool() {
    let server = start(
        ServerConfig::new()
            .fault_on_connection(0, Fault::Delay(SStage::BdatLast, Duration::from_secs(3))),
    );
    let pool = pool(&server, PoolOptions::default().max_connections(1));
    run(async {
        let raced = futures_lite::future::or(async { Some(send(&pool, "dropped").await) }, async {
            async_io::Timer::after(Duration::from_millis(300)).await;
            None
        })
        .await;
        assert!(
            raced.is_none(),
            "the send should still be waiting for the verdict"
        );
        let stats = pool.stats();
        assert_eq!(
            (stats.open, stats.idle),
            (0, 0),
            "the poisoned connection was discarded: {stats:?}"
        );
        // The slot is free again: the next message uses a new connection.
        assert_eq!(
            send(&pool, "next").await.unwrap().outcome,
            Outcome::Accepted
        );
    });
    assert_eq!(server.connections(), 2);
}

#[test]
fn pooled_connections_can_be_checked_out_for_several_messages() {
    let server = start(ServerConfig::new());
    let pool = pool(&server, PoolOptions::default().max_connections(2));
    run(async {
        let mut conn = pool.get().await.unwrap();
        assert!(!conn.is_reused());
        for i in 0..3 {
            let r = conn
                .send_bytes(
                    &envelope("a@example.org", &["b@example.org"]),
                    &message(&format!("checked-out-{i}"), "x"),
                )
                .await
                .unwrap();
            assert_eq!(r.outcome, Outcome::Accepted);
        }
        assert_eq!(pool.stats().idle, 0);
        drop(conn);
        assert_eq!(pool.stats().idle, 1);
        let conn = pool.get().await.unwrap();
        assert!(conn.is_reused());
        let detached = conn.detach();
        assert_eq!(
            pool.stats().open,
            0,
            "a detached connection no longer counts"
        );
        detached.quit().await.unwrap();
    });
}
