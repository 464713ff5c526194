//! `Connection::send_and_quit`: QUIT pipelined behind the end of the message (smol), against the scripted test server.

mod common;

use std::time::Duration;

use common::*;
use smtp_smol::{ConnectOptions, Connection, ErrorKind, Outcome, Stage, Timeouts, TlsMode};
use smtp_test_server::{Fault, ServerConfig, SessionRecord, TestPki, TestServer};

const SHORT: Duration = Duration::from_secs(1);

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config).expect("start the test server")
}

fn opts(server: &TestServer) -> ConnectOptions {
    local(server.port(), &TestPki::shared().ca_pem())
        .with_tls(TlsMode::None)
        .with_timeouts(Timeouts::submission().capped(SHORT))
        .with_connect_timeout(SHORT)
}

/// The one session, once the server is done with it.
fn session(server: &TestServer) -> SessionRecord {
    assert!(server.wait_idle(Duration::from_secs(5)), "the session ends");
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1);
    sessions.into_iter().next().expect("one session")
}

fn read_of(s: &SessionRecord, verb: &str) -> u64 {
    let lines = s.lines_with_verb(verb);
    assert_eq!(lines.len(), 1, "one {verb}: {:?}", s.verbs());
    lines[0].read_seq
}

#[test]
fn chunking_message_and_quit_in_one_write() {
    let server = start(ServerConfig::new());
    let conn = run(Connection::connect(&opts(&server))).unwrap();
    let report = run(conn.send_and_quit(
        &envelope("a@example.org", &["b@example.org"]),
        message("one write", "hello").as_slice(),
    ))
    .unwrap();
    assert_eq!(report.outcome, Outcome::Accepted);
    assert!(report.error.is_none(), "a clean QUIT is no error");
    let s = session(&server);
    assert_eq!(s.verbs(), ["EHLO", "MAIL", "RCPT", "BDAT", "QUIT"]);
    let mail = read_of(&s, "MAIL");
    assert_eq!(read_of(&s, "RCPT"), mail);
    assert_eq!(read_of(&s, "BDAT"), mail, "the body with the envelope");
    assert_eq!(read_of(&s, "QUIT"), mail, "QUIT with the message");
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn data_message_then_quit_pipelined() {
    let server = start(ServerConfig::new().chunking(false));
    let conn = run(Connection::connect(&opts(&server))).unwrap();
    let report = run(conn.send_and_quit(
        &envelope("a@example.org", &["b@example.org"]),
        message("data", "hello").as_slice(),
    ))
    .unwrap();
    assert_eq!(report.outcome, Outcome::Accepted);
    let s = session(&server);
    assert_eq!(s.verbs(), ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]);
    assert!(
        read_of(&s, "QUIT") > read_of(&s, "DATA"),
        "QUIT follows the body"
    );
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn connection_lost_after_the_end_is_unknown() {
    let server = start(ServerConfig::new().fault(Fault::ResetAfterBody));
    let conn = run(Connection::connect(&opts(&server))).unwrap();
    let report = run(conn.send_and_quit(
        &envelope("a@example.org", &["b@example.org"]),
        message("reset", "hello").as_slice(),
    ))
    .expect("a report: the end of the message was sent");
    assert_eq!(report.outcome, Outcome::Unknown, "never counted as sent");
    let e = report.error.as_ref().expect("the session error");
    assert_eq!(
        (e.kind(), e.stage()),
        (&ErrorKind::ConnectionClosed, Stage::DataTermination)
    );
}

#[test]
fn refused_recipient_gets_quit_not_rset() {
    let server = start(ServerConfig::new().reject_recipient("nobody@example.org"));
    let conn = run(Connection::connect(&opts(&server))).unwrap();
    let report = run(conn.send_and_quit(
        &envelope("a@example.org", &["nobody@example.org"]),
        message("refused", "hello").as_slice(),
    ))
    .unwrap();
    assert_eq!(report.outcome, Outcome::Rejected);
    let s = session(&server);
    assert_eq!(s.lines_with_verb("RSET").len(), 0, "{:?}", s.verbs());
    assert_eq!(s.lines_with_verb("QUIT").len(), 1, "{:?}", s.verbs());
    assert!(server.messages().is_empty());
}

#[test]
fn reused_connection_sends_each_chunking_message_in_one_write() {
    let server = start(ServerConfig::new());
    let mut conn = run(Connection::connect(&opts(&server))).unwrap();
    for i in 0..3 {
        let body = message(&format!("reuse {i}"), "hello");
        let report =
            run(conn.send_bytes(&envelope("a@example.org", &["b@example.org"]), &body)).unwrap();
        assert_eq!(report.outcome, Outcome::Accepted);
    }
    run(conn.quit()).unwrap();
    let s = session(&server);
    let mails = s.lines_with_verb("MAIL");
    let bdats = s.lines_with_verb("BDAT");
    assert_eq!((mails.len(), bdats.len()), (3, 3));
    for (m, b) in mails.iter().zip(&bdats) {
        assert_eq!(m.read_seq, b.read_seq, "envelope and body in one write");
    }
}
