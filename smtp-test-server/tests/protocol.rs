//! The well-behaved server: greeting, EHLO, DATA, BDAT, AUTH, LMTP, checks, recording.

mod common;

use std::time::{Duration, Instant};

use common::{Client, b64};
use smtp_test_server::{BodyTransfer, Fault, ServerConfig, TestServer};

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config).expect("start test server")
}

#[test]
fn greeting_and_default_ehlo() {
    let server = start(ServerConfig::new());
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), ["220 test.example ESMTP"]);
    let ehlo = c.cmd("EHLO client.example");
    assert_eq!(
        ehlo,
        [
            "250-test.example greets client.example",
            "250-PIPELINING",
            "250-SIZE 10485760",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250 CHUNKING",
        ]
    );
    assert_eq!(c.cmd("HELO client.example"), ["250 test.example"]);
    assert_eq!(c.cmd("NOOP"), ["250 2.0.0 Ok"]);
    assert_eq!(c.cmd("RSET"), ["250 2.0.0 Ok"]);
    assert_eq!(c.cmd("XYZZY"), ["500 5.5.2 Error: command not recognized"]);
    assert_eq!(c.cmd("QUIT"), ["221 2.0.0 Bye"]);
    assert!(c.read_to_end().is_empty());
    assert!(server.wait_idle(Duration::from_secs(5)));
    let s = &server.sessions()[0];
    assert_eq!(s.verbs(), ["EHLO", "HELO", "NOOP", "RSET", "XYZZY", "QUIT"]);
    assert!(s.ended && s.error.is_none() && !s.tls);
    assert_eq!(s.peer.unwrap().ip(), c.tcp().local_addr().unwrap().ip());
}

#[test]
fn configured_extensions() {
    let server = start(
        ServerConfig::new()
            .hostname("mx.test")
            .pipelining(false)
            .chunking(false)
            .smtputf8(false)
            .eightbitmime(false)
            .enhanced_status_codes(false)
            .size(None)
            .limits(Some("RCPTMAX=2 MAILMAX=5"))
            .extension("DSN")
            .user("alice", "secret"),
    );
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), ["220 mx.test ESMTP"]);
    assert_eq!(
        c.cmd("EHLO me"),
        [
            "250-mx.test greets me",
            "250-AUTH PLAIN LOGIN",
            "250-LIMITS RCPTMAX=2 MAILMAX=5",
            "250 DSN"
        ]
    );
    // No enhanced status codes in replies when not advertised.
    assert_eq!(c.cmd("NOOP"), ["250 Ok"]);
    assert_eq!(
        c.cmd("MAIL FROM:<a@b> BODY=8BITMIME"),
        ["555 Unsupported parameter BODY"]
    );
    assert_eq!(c.cmd("MAIL FROM:<a@b> RET=HDRS"), ["250 Ok"]);
    assert_eq!(
        {
            c.send("BDAT 3 LAST\r\nabc");
            c.reply()
        },
        ["502 Error: command not implemented"]
    );
}

#[test]
fn custom_greeting_multiline() {
    let server = start(ServerConfig::new().greeting("220-first line\n220 second line"));
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), ["220-first line", "220 second line"]);
}

#[test]
fn pipelined_data_transaction_is_unstuffed_and_recorded() {
    let server = start(
        ServerConfig::new()
            .reject_recipient("NoBody@example.org")
            .tempfail_recipient("later@example.org"),
    );
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO client");
    c.send(concat!(
        "MAIL FROM:<sender@example.org> SIZE=100 BODY=8BITMIME\r\n",
        "RCPT TO:<rcpt@example.org>\r\n",
        "RCPT TO:<nobody@example.org>\r\n",
        "RCPT TO:<later@example.org>\r\n",
        "DATA\r\n",
    ));
    assert_eq!(c.reply(), ["250 2.1.0 Ok"]);
    assert_eq!(c.reply(), ["250 2.1.5 Ok"]);
    assert_eq!(
        c.reply(),
        ["550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown"]
    );
    assert_eq!(
        c.reply(),
        ["450 4.2.1 <later@example.org>: Recipient address temporarily unavailable"]
    );
    assert_eq!(c.reply(), ["354 End data with <CR><LF>.<CR><LF>"]);
    c.send("..leading dot\r\nmiddle\r\n...\r\n.\r\n");
    let done = c.reply();
    assert!(done[0].starts_with("250 2.0.0 Ok: queued as"), "{done:?}");

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.mail_from, "sender@example.org");
    assert_eq!(m.mail_params, ["SIZE=100", "BODY=8BITMIME"]);
    assert_eq!(m.rcpt_to, ["rcpt@example.org"]);
    assert_eq!(m.body, b".leading dot\r\nmiddle\r\n..\r\n");
    assert_eq!(m.transfer, BodyTransfer::Data);
    assert!(!m.tls && m.authenticated.is_none());
    assert_eq!(m.session, 0);

    // The five pipelined commands arrived in one read.
    let s = &server.sessions()[0];
    let seqs: Vec<u64> = s.lines[1..6].iter().map(|l| l.read_seq).collect();
    assert!(seqs.iter().all(|&q| q == seqs[0]), "{seqs:?}");
    assert_ne!(s.lines[0].read_seq, seqs[0]);
    // Message data is not in `lines`, but is in `received`.
    assert_eq!(s.lines.len(), 6);
    assert!(s.received.windows(13).any(|w| w == b"..leading dot"));
}

#[test]
fn data_body_edge_cases() {
    let server = start(ServerConfig::new());
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("HELO client");
    // Empty body.
    c.cmd("MAIL FROM:<>");
    c.cmd("RCPT TO:<r@x>");
    assert_eq!(c.cmd("DATA")[0], "354 End data with <CR><LF>.<CR><LF>");
    c.send(".\r\n");
    assert!(c.reply()[0].starts_with("250 "));
    // A bare LF before a dot line does not end the body, and is kept.
    c.cmd("MAIL FROM:<>");
    c.cmd("RCPT TO:<r@x>");
    c.cmd("DATA");
    c.send("a\n.\r\nb\r\n.\r\n");
    assert!(c.reply()[0].starts_with("250 "));
    let messages = server.messages();
    assert_eq!(messages[0].body, b"");
    assert_eq!(messages[0].mail_from, "");
    assert_eq!(messages[1].body, b"a\n.\r\nb\r\n");
}

#[test]
fn sequence_errors() {
    let server = start(ServerConfig::new().max_recipients(1).size(Some(100)));
    let mut c = Client::connect(server.addr());
    c.reply();
    assert_eq!(
        c.cmd("MAIL FROM:<a@b>")[0],
        "503 5.5.1 Error: send HELO/EHLO first"
    );
    assert_eq!(c.cmd("EHLO")[0], "501 5.5.4 Syntax: EHLO hostname");
    assert_eq!(c.cmd("LHLO x")[0], "500 5.5.1 Error: LHLO is for LMTP");
    c.cmd("EHLO x");
    assert_eq!(
        c.cmd("RCPT TO:<a@b>")[0],
        "503 5.5.1 Error: need MAIL command"
    );
    assert_eq!(c.cmd("DATA")[0], "503 5.5.1 Error: need MAIL command");
    assert_eq!(
        c.cmd("MAIL FROM:a@b")[0],
        "501 5.5.4 Syntax: MAIL FROM:<address>"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@b> SIZE=101")[0],
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<j\u{f6}rg@b>")[0],
        "553 5.6.7 Non-ASCII address requires SMTPUTF8"
    );
    assert_eq!(c.cmd("MAIL FROM:<j\u{f6}rg@b> SMTPUTF8")[0], "250 2.1.0 Ok");
    assert_eq!(
        c.cmd("MAIL FROM:<a@b>")[0],
        "503 5.5.1 Error: nested MAIL command"
    );
    assert_eq!(c.cmd("DATA")[0], "554 5.5.1 Error: no valid recipients");
    assert_eq!(c.cmd("RCPT TO:<r1@b>")[0], "250 2.1.5 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<r2@b>")[0],
        "452 4.5.3 Error: too many recipients"
    );
    c.cmd("DATA");
    c.send(&format!("{}\r\n.\r\n", "x".repeat(200)));
    assert_eq!(
        c.reply(),
        ["552 5.3.4 Message size exceeds fixed maximum message size"]
    );
    assert!(server.messages().is_empty());
}

#[test]
fn bdat_chunks() {
    let server = start(ServerConfig::new());
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO x");
    // Pipelined: MAIL, RCPT, two chunks; the chunk data may contain anything, including CRLF.CRLF.
    c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 10\r\nhello\r\n.\r\nBDAT 7 LAST\r\n world!");
    assert_eq!(c.reply(), ["250 2.1.0 Ok"]);
    assert_eq!(c.reply(), ["250 2.1.5 Ok"]);
    assert_eq!(c.reply(), ["250 2.0.0 10 octets received"]);
    assert!(c.reply()[0].starts_with("250 2.0.0 Ok: queued"));
    // BDAT 0 LAST is a valid (empty) end.
    c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 0 LAST\r\n");
    c.reply();
    c.reply();
    assert!(c.reply()[0].starts_with("250 "));
    // A chunk without a transaction is consumed, then refused.
    assert_eq!(
        {
            c.send("BDAT 4\r\nQUIT");
            c.reply()
        },
        ["503 5.5.1 Error: need MAIL command"]
    );
    assert_eq!(c.cmd("BDAT x"), ["501 5.5.4 Syntax: BDAT size [LAST]"]);
    let m = server.messages();
    assert_eq!(m[0].body, b"hello\r\n.\r\n world!");
    assert_eq!(m[0].transfer, BodyTransfer::Bdat { chunks: 2 });
    assert_eq!(m[1].body, b"");
}

#[test]
fn auth_plain_and_login() {
    let server = start(ServerConfig::new().user("alice", "secret"));
    let mut c = Client::connect(server.addr());
    c.reply();
    let ehlo = c.cmd("EHLO x");
    assert!(
        ehlo.contains(&"250-AUTH PLAIN LOGIN".to_owned()),
        "{ehlo:?}"
    );
    let wrong = b64(b"\0alice\0wrong");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {wrong}")),
        ["535 5.7.8 Authentication credentials invalid"]
    );
    assert_eq!(
        c.cmd("AUTH CRAM-MD5"),
        ["504 5.5.4 Unrecognized authentication type"]
    );
    assert_eq!(c.cmd("AUTH PLAIN"), ["334 "]);
    assert_eq!(c.cmd("*"), ["501 5.7.0 Authentication aborted"]);
    assert_eq!(c.cmd("AUTH PLAIN"), ["334 "]);
    assert_eq!(
        c.cmd(&b64(b"\0alice\0secret")),
        ["235 2.7.0 Authentication successful"]
    );
    assert_eq!(
        c.cmd("AUTH PLAIN"),
        ["503 5.5.1 Error: already authenticated"]
    );
    let s = &server.sessions()[0];
    assert_eq!(s.authenticated.as_deref(), Some("alice"));
    assert!(s.lines_with_verb("AUTH").iter().all(|l| !l.tls));

    // LOGIN with and without an initial response.
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO x");
    assert_eq!(c.cmd("AUTH LOGIN"), ["334 VXNlcm5hbWU6"]);
    assert_eq!(c.cmd(&b64(b"alice")), ["334 UGFzc3dvcmQ6"]);
    assert_eq!(
        c.cmd(&b64(b"nope"))[0],
        "535 5.7.8 Authentication credentials invalid"
    );
    assert_eq!(
        c.cmd(&format!("AUTH LOGIN {}", b64(b"alice"))),
        ["334 UGFzc3dvcmQ6"]
    );
    assert_eq!(
        c.cmd(&b64(b"secret"))[0],
        "235 2.7.0 Authentication successful"
    );
    c.cmd("MAIL FROM:<alice@x>");
    c.cmd("RCPT TO:<bob@x>");
    c.cmd("DATA");
    c.send("hi\r\n.\r\n");
    c.reply();
    assert_eq!(server.messages()[0].authenticated.as_deref(), Some("alice"));
}

#[test]
fn auth_and_tls_requirements() {
    let server = start(ServerConfig::new().require_auth(true).user("u", "p"));
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO x");
    assert_eq!(
        c.cmd("MAIL FROM:<a@b>"),
        ["530 5.7.0 Authentication required"]
    );

    let server = start(ServerConfig::new().require_tls(true).user("u", "p"));
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO x");
    assert_eq!(
        c.cmd("AUTH PLAIN"),
        ["530 5.7.0 Must issue a STARTTLS command first"]
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@b>"),
        ["530 5.7.0 Must issue a STARTTLS command first"]
    );

    let server = start(ServerConfig::new());
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO x");
    assert_eq!(
        c.cmd("AUTH PLAIN"),
        ["502 5.5.1 Error: authentication not enabled"]
    );
    assert_eq!(
        c.cmd("STARTTLS"),
        ["502 5.5.1 Error: command not implemented"]
    );
}

#[test]
fn lmtp_replies_per_recipient() {
    let server = start(ServerConfig::new().lmtp().lmtp_reply(
        "full@example.org",
        "552 5.2.2 <full@example.org> mailbox full",
    ));
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), ["220 test.example LMTP"]);
    assert_eq!(c.cmd("EHLO x"), ["500 5.5.1 Error: this is LMTP, use LHLO"]);
    assert_eq!(c.cmd("LHLO x")[0], "250-test.example greets x");
    c.send("MAIL FROM:<s@x>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<full@example.org>\r\nDATA\r\n");
    for _ in 0..3 {
        assert!(c.reply()[0].starts_with("250"));
    }
    assert_eq!(c.reply()[0], "354 End data with <CR><LF>.<CR><LF>");
    c.send("body\r\n.\r\n");
    assert_eq!(c.reply(), ["250 2.0.0 <a@example.org> delivered"]);
    assert_eq!(c.reply(), ["552 5.2.2 <full@example.org> mailbox full"]);
    // BDAT in LMTP also gets one reply per recipient.
    c.send("MAIL FROM:<s@x>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nBDAT 4 LAST\r\nbody");
    c.reply();
    c.reply();
    c.reply();
    assert_eq!(c.reply(), ["250 2.0.0 <a@example.org> delivered"]);
    assert_eq!(c.reply(), ["250 2.0.0 <b@example.org> delivered"]);
    let m = server.messages();
    assert_eq!(m[0].rcpt_to, ["a@example.org"]);
    assert_eq!(m[0].body, b"body\r\n");
    assert_eq!(m[1].rcpt_to, ["a@example.org", "b@example.org"]);
}

#[test]
fn ipv6_when_available() {
    let server = match TestServer::start(ServerConfig::new().ipv6(true)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("no IPv6 loopback here ({e}); skipping");
            return;
        }
    };
    assert!(server.addr().is_ipv6());
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), ["220 test.example ESMTP"]);
}

#[test]
fn drop_is_quick_even_with_clients_connected() {
    let server = start(ServerConfig::new().fault(Fault::SilentOnConnect));
    let mut c = Client::connect(server.addr());
    assert!(common::eventually(Duration::from_secs(5), || server
        .connections()
        == 1));
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(1));
    // The connection thread notices and closes the socket.
    assert!(c.read_to_end().is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn wait_for_sees_messages() {
    let server = start(ServerConfig::new());
    assert!(!server.wait_idle(Duration::from_millis(50)));
    let mut c = Client::connect(server.addr());
    c.reply();
    c.send("HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
    assert!(server.wait_for(Duration::from_secs(5), |_, m| m.len() == 1));
    assert!(server.wait_idle(Duration::from_secs(5)));
    assert_eq!(
        server.sessions()[0].verbs(),
        ["HELO", "MAIL", "RCPT", "DATA", "QUIT"]
    );
}
