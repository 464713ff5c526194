//! The adapter needs no particular runtime: the same send works on `smol`, on `async_io::block_on`, and on an
//! `async-executor` driven by plain threads (the transcript's `tracing` output: tests/tracing_transcript.rs).

mod common;

use std::sync::Arc;

use common::*;
use smtp_smol::{Outcome, Pool, PoolOptions};

#[test]
fn runs_on_smol() {
    let s = starttls_auth_server();
    let o = starttls_auth_options(&s);
    assert_eq!(
        smol::block_on(smol::spawn(send_one(o, "on-smol"))),
        Outcome::Accepted
    );
}

#[test]
fn runs_on_async_io_block_on() {
    let s = starttls_auth_server();
    assert_eq!(
        async_io::block_on(send_one(starttls_auth_options(&s), "on-async-io")),
        Outcome::Accepted
    );
}

#[test]
fn runs_on_async_executor_with_worker_threads() {
    let s = starttls_auth_server();
    let pool = Pool::new(
        starttls_auth_options(&s),
        PoolOptions::default().max_connections(2),
    )
    .unwrap();
    let ex = Arc::new(async_executor::Executor::new());
    let stop = event_listener::Event::new();
    let outcomes = std::thread::scope(|scope| {
        for _ in 0..2 {
            let (ex, stop) = (Arc::clone(&ex), &stop);
            scope.spawn(move || futures_lite::future::block_on(ex.run(stop.listen())));
        }
        // The main thread only waits: the tasks run on the workers, async-io's reactor drives the sockets.
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let pool = pool.clone();
                ex.spawn(async move {
                    pool.send_bytes(
                        &envelope("a@example.org", &["b@example.org"]),
                        message(&format!("ex-{i}"), "x"),
                    )
                    .await
                    .map(|r| r.outcome)
                })
            })
            .collect();
        let out: Vec<_> = tasks
            .into_iter()
            .map(futures_lite::future::block_on)
            .collect();
        stop.notify(usize::MAX);
        out
    });
    assert!(
        outcomes.iter().all(|o| matches!(o, Ok(Outcome::Accepted))),
        "{outcomes:?}"
    );
    assert_eq!(s.messages().len(), 10);
    assert!(s.connections() <= 2);
}
