//! `Connection::send_batch` (smol): messages back to back, the next envelope pipelined behind the previous end of data,
//! against the scripted test server (the same against real servers is in `interop.rs`).

mod common;

use std::time::Duration;

use common::*;
use smtp_smol::{
    ConnectOptions, Connection, Envelope, ErrorKind, Outcome, Stage, Timeouts, TlsMode,
};
use smtp_test_server::{Fault, ServerConfig, SessionRecord, TestPki, TestServer};

const SHORT: Duration = Duration::from_secs(2);

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config).expect("start the test server")
}

fn opts(server: &TestServer) -> ConnectOptions {
    local(server.port(), &TestPki::shared().ca_pem())
        .with_tls(TlsMode::None)
        .with_timeouts(Timeouts::submission().capped(SHORT))
        .with_connect_timeout(SHORT)
}

/// The sessions, once the server is done with them.
fn sessions(server: &TestServer) -> Vec<SessionRecord> {
    assert!(server.wait_idle(Duration::from_secs(5)), "the sessions end");
    server.sessions()
}

/// `n` messages, the `i`-th to `to(i)`, with subject `batch i`.
fn batch(n: usize, to: impl Fn(usize) -> &'static str) -> Vec<(Envelope, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                envelope("a@example.org", &[to(i)]),
                message(&format!("batch {i}"), &format!("message {i}")),
            )
        })
        .collect()
}

fn send(conn: &mut Connection, messages: &[(Envelope, Vec<u8>)]) -> Vec<Outcome> {
    run(conn.send_batch(messages.iter().map(|(e, b)| (e, b.as_slice()))))
        .into_iter()
        .map(|r| r.expect("a report for every message").outcome)
        .collect()
}

/// The subjects the server stored, in order.
fn subjects(server: &TestServer) -> Vec<String> {
    server
        .messages()
        .iter()
        .map(|m| {
            let body = String::from_utf8_lossy(&m.body).into_owned();
            body.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
                .expect("a subject")
        })
        .collect()
}

#[test]
fn data_next_envelope_rides_with_the_previous_dot() {
    let server = start(ServerConfig::new().chunking(false));
    let mut conn = run(Connection::connect(&opts(&server))).unwrap();
    let messages = batch(4, |_| "b@example.org");
    assert_eq!(send(&mut conn, &messages), vec![Outcome::Accepted; 4]);
    run(conn.quit()).unwrap();
    assert_eq!(
        subjects(&server),
        ["batch 0", "batch 1", "batch 2", "batch 3"]
    );
    let s = &sessions(&server)[0];
    let mails = s.lines_with_verb("MAIL");
    let datas = s.lines_with_verb("DATA");
    assert_eq!((mails.len(), datas.len()), (4, 4));
    assert_eq!(s.lines_with_verb("RSET").len(), 0, "{:?}", s.verbs());
    for i in 1..4 {
        // DATA in one read, the body (with the next envelope) in the next one: the client did not wait for the
        // previous verdict before sending MAIL.
        assert_eq!(
            mails[i].read_seq,
            datas[i - 1].read_seq + 1,
            "message {i}'s MAIL came with message {}'s body",
            i - 1
        );
        assert_eq!(datas[i].read_seq, mails[i].read_seq);
    }
}

#[test]
fn chunking_two_messages_in_one_write() {
    let server = start(ServerConfig::new());
    let mut conn = run(Connection::connect(&opts(&server))).unwrap();
    let messages = batch(5, |_| "b@example.org");
    assert_eq!(send(&mut conn, &messages), vec![Outcome::Accepted; 5]);
    run(conn.quit()).unwrap();
    assert_eq!(
        subjects(&server),
        ["batch 0", "batch 1", "batch 2", "batch 3", "batch 4"]
    );
    let s = &sessions(&server)[0];
    let mails = s.lines_with_verb("MAIL");
    let bdats = s.lines_with_verb("BDAT");
    assert_eq!((mails.len(), bdats.len()), (5, 5));
    // An RSET in front of a message started behind another (how many depends on when the verdicts come back),
    // in the same write.
    let rsets = s.lines_with_verb("RSET");
    assert!((1..=4).contains(&rsets.len()), "{:?}", s.verbs());
    assert_eq!(rsets[0].read_seq, mails[0].read_seq);
    assert_eq!(
        mails[1].read_seq, mails[0].read_seq,
        "the second message left with the first"
    );
    assert_eq!(bdats[1].read_seq, mails[0].read_seq);
}

#[test]
fn a_refused_message_among_others() {
    for chunking in [false, true] {
        let server = start(
            ServerConfig::new()
                .chunking(chunking)
                .reject_recipient("nobody@example.org"),
        );
        let mut conn = run(Connection::connect(&opts(&server))).unwrap();
        let messages = batch(4, |i| {
            if i == 1 {
                "nobody@example.org"
            } else {
                "b@example.org"
            }
        });
        let results = run(conn.send_batch(messages.iter().map(|(e, b)| (e, b.as_slice()))));
        let outcomes: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().unwrap().outcome)
            .collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Accepted,
                Outcome::Rejected,
                Outcome::Accepted,
                Outcome::Accepted
            ],
            "chunking {chunking}"
        );
        let refused = results[1].as_ref().unwrap();
        assert_eq!(refused.recipients[0].code(), Some(550));
        assert!(!refused.recipients[0].accepted);
        run(conn.quit()).unwrap();
        assert_eq!(
            subjects(&server),
            ["batch 0", "batch 2", "batch 3"],
            "chunking {chunking}"
        );
    }
}

#[test]
fn connection_lost_mid_batch_is_unknown_then_not_sent() {
    let server = start(
        ServerConfig::new()
            .chunking(false)
            .fault(Fault::ResetAfterBody),
    );
    let mut o = opts(&server);
    o.reconnect = false;
    let mut conn = run(Connection::connect(&o)).unwrap();
    let messages = batch(3, |_| "b@example.org");
    let results = run(conn.send_batch(messages.iter().map(|(e, b)| (e, b.as_slice()))));
    assert_eq!(results.len(), 3);
    let first = results[0].as_ref().expect("its end was sent: a report");
    assert_eq!(first.outcome, Outcome::Unknown, "never counted as sent");
    assert_eq!(
        first.error.as_ref().map(|e| (e.kind().clone(), e.stage())),
        Some((ErrorKind::ConnectionClosed, Stage::DataTermination))
    );
    for r in &results[1..] {
        let e = expect_err(r.clone());
        assert!(
            matches!(e.kind(), ErrorKind::ConnectionClosed),
            "not sent: {e}"
        );
    }
    assert!(!conn.is_open());
}

#[test]
fn lost_connection_is_reopened_for_the_rest_when_asked() {
    // Only the first connection resets after the body.
    let server = start(
        ServerConfig::new()
            .chunking(false)
            .fault_on_connection(0, Fault::ResetAfterBody),
    );
    let o = opts(&server);
    assert!(o.reconnect, "on by default");
    let mut conn = run(Connection::connect(&o)).unwrap();
    let messages = batch(3, |_| "b@example.org");
    let results = run(conn.send_batch(messages.iter().map(|(e, b)| (e, b.as_slice()))));
    assert_eq!(results[0].as_ref().unwrap().outcome, Outcome::Unknown);
    // The second was pipelined behind the first on the lost connection: not sent, reported as such.
    assert!(results[1].is_err());
    assert_eq!(results[2].as_ref().unwrap().outcome, Outcome::Accepted);
    run(conn.quit()).unwrap();
    assert_eq!(sessions(&server).len(), 2);
}

#[test]
fn without_pipelining_one_after_the_other() {
    let server = start(ServerConfig::new().pipelining(false).chunking(false));
    let mut conn = run(Connection::connect(&opts(&server))).unwrap();
    let messages = batch(3, |_| "b@example.org");
    assert_eq!(send(&mut conn, &messages), vec![Outcome::Accepted; 3]);
    run(conn.quit()).unwrap();
    assert_eq!(subjects(&server), ["batch 0", "batch 1", "batch 2"]);
    let s = &sessions(&server)[0];
    let mails = s.lines_with_verb("MAIL");
    let datas = s.lines_with_verb("DATA");
    for i in 1..3 {
        assert!(
            mails[i].read_seq > datas[i - 1].read_seq + 1,
            "MAIL waits for the verdict without PIPELINING"
        );
    }
}

#[test]
fn too_many_recipients_are_sent_again_after_the_batch() {
    let server = start(ServerConfig::new().chunking(false).max_recipients(1));
    let mut conn = run(Connection::connect(&opts(&server))).unwrap();
    let messages = [
        (
            envelope("a@example.org", &["b@example.org", "c@example.org"]),
            message("two rcpts", "hello"),
        ),
        (
            envelope("a@example.org", &["d@example.org"]),
            message("one rcpt", "hello"),
        ),
    ];
    let results = run(conn.send_batch(messages.iter().map(|(e, b)| (e, b.as_slice()))));
    let first = results[0].as_ref().unwrap();
    assert_eq!(first.outcome, Outcome::Accepted, "{first:?}");
    assert!(first.recipients.iter().all(|r| r.accepted));
    assert_eq!(
        first.recipients.len(),
        2,
        "the first message's report, merged, first"
    );
    assert_eq!(results[1].as_ref().unwrap().recipients.len(), 1);
    assert_eq!(results[1].as_ref().unwrap().outcome, Outcome::Accepted);
    run(conn.quit()).unwrap();
    let delivered: Vec<Vec<String>> = server
        .messages()
        .iter()
        .map(|m| m.rcpt_to.clone())
        .collect();
    assert_eq!(delivered.len(), 3, "{delivered:?}");
    assert!(
        delivered
            .iter()
            .flatten()
            .any(|r| r.contains("c@example.org"))
    );
}

#[test]
fn large_bodies_back_to_back_arrive_whole() {
    for chunking in [false, true] {
        let server = start(ServerConfig::new().chunking(chunking));
        // Bodies larger than the core's send buffer: the next envelope waits for the previous body's back-pressure.
        // Stage deadlines of 10 s and a 5 s cap on the whole connection: a drive loop that waited for input while it
        // had body bytes to hand over would sit until a deadline (7.5 s) and fail; the work takes well under 1 s.
        let mut timeouts = Timeouts::submission().capped(Duration::from_secs(10));
        timeouts.overall = Some(Duration::from_secs(5));
        let options = opts(&server).with_timeouts(timeouts);
        let mut conn = run(Connection::connect(&options)).unwrap();
        let messages: Vec<(Envelope, Vec<u8>)> = (0..3)
            .map(|i| {
                let line = format!("line of message {i} .. padding padding padding padding\r\n");
                let mut body = format!("Subject: big {i}\r\n\r\n").into_bytes();
                while body.len() < 300 * 1024 {
                    body.extend_from_slice(line.as_bytes());
                    body.extend_from_slice(b".starts with a dot\r\n");
                }
                (envelope("a@example.org", &["b@example.org"]), body)
            })
            .collect();
        assert_eq!(
            send(&mut conn, &messages),
            vec![Outcome::Accepted; 3],
            "chunking {chunking}"
        );
        run(conn.quit()).unwrap();
        let stored = server.messages();
        assert_eq!(stored.len(), 3);
        for (m, (_, body)) in stored.iter().zip(&messages) {
            assert_eq!(
                &m.body, body,
                "chunking {chunking}: the body arrives unchanged"
            );
        }
    }
}

#[test]
fn with_a_callback_results_come_in_order_and_messages_are_taken_as_they_go() {
    for chunking in [false, true] {
        let server = start(ServerConfig::new().chunking(chunking));
        let mut conn = run(Connection::connect(&opts(&server))).unwrap();
        let messages = batch(20, |_| "b@example.org");
        let taken = std::cell::Cell::new(0);
        let mut seen = Vec::new();
        run(conn.send_batch_with(
            messages.iter().map(|(e, b)| {
                taken.set(taken.get() + 1);
                (e, b.as_slice())
            }),
            |index, result| {
                // The batch is never read ahead: when message `index` is reported, the two behind it may be in
                // flight already and one more taken, waiting for its turn.
                assert!(
                    taken.get() <= index + 4,
                    "message {index} reported with {} taken",
                    taken.get()
                );
                seen.push((index, result.expect("a report").outcome));
            },
        ));
        assert_eq!(
            seen,
            (0..20).map(|i| (i, Outcome::Accepted)).collect::<Vec<_>>(),
            "chunking {chunking}"
        );
        run(conn.quit()).unwrap();
        assert_eq!(server.messages().len(), 20);
    }
}
