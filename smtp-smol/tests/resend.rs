//! Automatic re-send of `retry_separately` recipients (LIMITS RCPTMAX, RFC 9422; "too many recipients", RFC 5321
//! §4.5.3.1.10) and LIMITS MAILMAX in the async adapter and its pool, against the scripted server.

mod common;

use std::time::Duration;

use common::*;
use smtp_smol::{
    ConnectOptions, Connection, Outcome, Pool, PoolOptions, SendReport, Timeouts, TlsMode,
};
use smtp_test_server::{ServerConfig, TestServer};

const LIMIT: Duration = Duration::from_secs(10);

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config).expect("start the test server")
}

fn opts(server: &TestServer) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", server.port())
        .with_tls(TlsMode::None)
        .with_timeouts(Timeouts::submission().capped(Duration::from_secs(2)))
        .with_connect_timeout(Duration::from_secs(2))
}

fn rcpts(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("r{i}@example.org")).collect()
}

fn addresses(report: &SendReport) -> Vec<String> {
    report
        .recipients
        .iter()
        .map(|r| r.address.clone())
        .collect()
}

fn assert_all_delivered(report: &SendReport, to: &[String]) {
    assert_eq!(report.outcome, Outcome::Accepted, "{report:?}");
    assert_eq!(addresses(report), to);
    for r in &report.recipients {
        assert!(r.accepted && !r.retry_separately, "{r:?}");
        assert_eq!(r.code(), Some(250), "{r:?}");
    }
}

fn delivered(server: &TestServer) -> Vec<Vec<String>> {
    server.messages().into_iter().map(|m| m.rcpt_to).collect()
}

#[test]
fn rcptmax_two_of_five_takes_three_transactions_on_one_connection() {
    let server = start(
        ServerConfig::new()
            .limits(Some("RCPTMAX=2"))
            .max_recipients(2),
    );
    let to = rcpts(5);
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let (report, _) = within(LIMIT, async {
        let mut conn = Connection::connect(&opts(&server)).await.unwrap();
        let report = conn
            .send_bytes(&envelope("a@example.org", &refs), &message("rcptmax", "hi"))
            .await
            .unwrap();
        conn.quit().await.unwrap();
        report
    });
    assert_all_delivered(&report, &to);
    assert_eq!(report.transactions, 3);
    assert_eq!(server.connections(), 1);
    assert_eq!(
        delivered(&server),
        [to[0..2].to_vec(), to[2..4].to_vec(), to[4..5].to_vec()]
    );
    let session = &server.sessions()[0];
    assert_eq!(session.lines_with_verb("MAIL").len(), 3);
    assert_eq!(session.lines_with_verb("RCPT").len(), 5);
    assert!(!String::from_utf8_lossy(&session.sent).contains("452"));
}

#[test]
fn too_many_recipients_after_three_goes_in_a_second_transaction() {
    let server = start(ServerConfig::new().max_recipients(3));
    let to = rcpts(5);
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let (report, _) = within(LIMIT, async {
        let mut conn = Connection::connect(&opts(&server)).await.unwrap();
        conn.send_bytes(&envelope("a@example.org", &refs), &message("452", "hi"))
            .await
            .unwrap()
    });
    assert_all_delivered(&report, &to);
    assert_eq!(report.transactions, 2);
    assert_eq!(delivered(&server), [to[0..3].to_vec(), to[3..5].to_vec()]);
    assert!(String::from_utf8_lossy(&server.sessions()[0].sent).contains("452 4.5.3"));
}

#[test]
fn mailmax_reconnects_between_the_transactions() {
    let server = start(
        ServerConfig::new()
            .limits(Some("RCPTMAX=2 MAILMAX=2"))
            .max_recipients(2),
    );
    let to = rcpts(5);
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let (report, _) = within(LIMIT, async {
        let mut conn = Connection::connect(&opts(&server)).await.unwrap();
        conn.send_bytes(&envelope("a@example.org", &refs), &message("mailmax", "hi"))
            .await
            .unwrap()
    });
    assert_all_delivered(&report, &to);
    assert_eq!(report.transactions, 3);
    assert_eq!(server.connections(), 2);
    let mails: Vec<usize> = server
        .sessions()
        .iter()
        .map(|s| s.lines_with_verb("MAIL").len())
        .collect();
    assert_eq!(mails, [2, 1]);
    assert_eq!(
        server.sessions()[0].verbs().last().map(String::as_str),
        Some("QUIT")
    );
}

#[test]
fn a_streamed_body_reports_retry_separately_and_is_not_sent_again() {
    let server = start(
        ServerConfig::new()
            .limits(Some("RCPTMAX=2"))
            .max_recipients(2),
    );
    let to = rcpts(3);
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let body = message("streamed", "hi");
    let (report, _) = within(LIMIT, async {
        let mut conn = Connection::connect(&opts(&server)).await.unwrap();
        conn.send(
            &envelope("a@example.org", &refs),
            futures_lite::io::Cursor::new(body),
        )
        .await
        .unwrap()
    });
    assert_eq!(report.outcome, Outcome::PartiallyAccepted, "{report:?}");
    assert_eq!(report.transactions, 1);
    assert_eq!(addresses(&report), to);
    let flags: Vec<_> = report
        .recipients
        .iter()
        .map(|r| (r.accepted, r.retry_separately))
        .collect();
    assert_eq!(flags, [(true, false), (true, false), (false, true)]);
    assert_eq!(delivered(&server), [to[0..2].to_vec()]);
}

#[test]
fn send_reopen_opens_the_body_once_per_transaction() {
    let server = start(ServerConfig::new().max_recipients(2));
    let to = rcpts(3);
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let body = message("reopen", "hi");
    let mut opened = 0;
    let (report, _) = within(LIMIT, async {
        let mut conn = Connection::connect(&opts(&server)).await.unwrap();
        conn.send_reopen(&envelope("a@example.org", &refs), || {
            opened += 1;
            Ok(futures_lite::io::Cursor::new(body.clone()))
        })
        .await
        .unwrap()
    });
    assert_all_delivered(&report, &to);
    assert_eq!(opened, 2);
    assert_eq!(server.messages().len(), 2);
}

#[test]
fn the_pool_resends_and_retires_connections_at_mailmax() {
    let server = start(
        ServerConfig::new()
            .limits(Some("RCPTMAX=2 MAILMAX=2"))
            .max_recipients(2),
    );
    let pool = Pool::new(
        opts(&server).with_noop_after_idle(None),
        PoolOptions::default().max_connections(1),
    )
    .unwrap();
    let to = rcpts(5);
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let (report, _) = within(LIMIT, async {
        pool.send_bytes(&envelope("a@example.org", &refs), message("pool", "hi"))
            .await
            .unwrap()
    });
    assert_all_delivered(&report, &to);
    assert_eq!(report.transactions, 3);
    assert_eq!(
        delivered(&server),
        [to[0..2].to_vec(), to[2..4].to_vec(), to[4..5].to_vec()]
    );
    // Two transactions on the first connection, then QUIT; the third on a new one.
    assert_eq!(server.connections(), 2);
    let first = server.sessions()[0].verbs();
    assert_eq!(first.iter().filter(|v| *v == "MAIL").count(), 2);
    assert_eq!(first.last().map(String::as_str), Some("QUIT"));
}
