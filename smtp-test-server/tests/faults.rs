//! Every fault visibly happens.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::Client;
use smtp_test_server::{Fault, ServerConfig, Stage, TestPki, TestServer};

fn start(config: ServerConfig) -> TestServer {
    TestServer::start(config).expect("start test server")
}

fn transaction_up_to_data(c: &mut Client) {
    c.reply();
    c.cmd("EHLO x");
    assert_eq!(c.cmd("MAIL FROM:<a@b>")[0], "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<c@d>")[0], "250 2.1.5 Ok");
}

#[test]
fn silent_on_connect() {
    let server = start(ServerConfig::new().fault(Fault::SilentOnConnect));
    let mut c = Client::connect(server.addr());
    c.expect_silence(Duration::from_millis(400));
    c.send("EHLO x\r\n");
    c.expect_silence(Duration::from_millis(200));
    assert!(server.wait_for(Duration::from_secs(5), |s, _| s[0].verbs() == ["EHLO"]));
    drop(c);
    assert!(server.wait_idle(Duration::from_secs(5)));
    assert!(server.sessions()[0].sent.is_empty());
}

#[test]
fn greeting_dribbles_one_byte_per_interval_forever() {
    let interval = Duration::from_millis(40);
    let server = start(ServerConfig::new().fault(Fault::DribbleGreetingForever { interval }));
    let mut c = Client::connect(server.addr());
    let started = Instant::now();
    let mut got = Vec::new();
    let mut reads = 0;
    while got.len() < 40 {
        let chunk = c.read_once().unwrap();
        assert!(!chunk.is_empty());
        reads += 1;
        got.extend_from_slice(&chunk);
    }
    let elapsed = started.elapsed();
    // 40 bytes at one per 40 ms take about 1.6 s; reads mostly return a single byte.
    assert!(elapsed >= interval * 30, "{elapsed:?}");
    assert!(reads >= 20, "only {reads} reads for {} bytes", got.len());
    let text = String::from_utf8(got).unwrap();
    assert!(
        text.starts_with("220-test.example dribbling\r\n220-test"),
        "{text:?}"
    );
    // Never a final line.
    assert!(!text.contains("220 "));
    drop(c);
    assert!(server.wait_idle(Duration::from_secs(5)));
}

#[test]
fn greeting_delayed_then_normal() {
    let server = start(ServerConfig::new().fault(Fault::DelayGreeting(Duration::from_millis(600))));
    let started = Instant::now();
    let mut c = Client::connect(server.addr());
    c.expect_silence(Duration::from_millis(300));
    assert_eq!(c.reply(), ["220 test.example ESMTP"]);
    assert!(started.elapsed() >= Duration::from_millis(550));
    assert_eq!(c.cmd("EHLO x")[0], "250-test.example greets x");
}

#[test]
fn no_answer_to_starttls() {
    let pki = TestPki::shared();
    let server = start(
        ServerConfig::new()
            .starttls(&pki)
            .fault(Fault::SilentAfterStartTls),
    );
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO x");
    c.send("STARTTLS\r\n");
    c.expect_silence(Duration::from_millis(400));
    assert_eq!(server.sessions()[0].verbs(), ["EHLO", "STARTTLS"]);
}

#[test]
fn starttls_reply_with_injected_bytes_in_the_same_write() {
    let pki = TestPki::shared();
    let server = start(
        ServerConfig::new()
            .starttls(&pki)
            .fault(Fault::StartTlsInjection(b"250 injected\r\n".to_vec())),
    );
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO x");
    c.send("STARTTLS\r\n");
    let first_read = c.read_once().unwrap();
    assert_eq!(
        first_read,
        b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n"
    );
    // The server then waits for a handshake as usual.
    c.upgrade(pki.client_config(), "localhost")
        .expect("handshake after injection");
    assert_eq!(c.cmd("NOOP"), ["250 2.0.0 Ok"]);
}

#[test]
fn starttls_not_advertised() {
    let pki = TestPki::shared();
    let server = start(ServerConfig::new().starttls(&pki).fault(Fault::NoStartTls));
    let mut c = Client::connect(server.addr());
    c.reply();
    let ehlo = c.cmd("EHLO x");
    assert!(!ehlo.iter().any(|l| l.contains("STARTTLS")), "{ehlo:?}");
    assert_eq!(
        c.cmd("STARTTLS"),
        ["502 5.5.1 Error: command not implemented"]
    );
}

#[test]
fn endless_ehlo_until_client_closes() {
    let server = start(ServerConfig::new().fault(Fault::EndlessEhlo));
    let mut c = Client::connect(server.addr());
    c.reply();
    c.send("EHLO x\r\n");
    assert_eq!(c.read_line(), "250-test.example");
    let mut lines = 0;
    while lines < 200_000 {
        assert_eq!(c.read_line(), "250-x");
        lines += 1;
    }
    drop(c);
    assert!(server.wait_idle(Duration::from_secs(10)));
    assert!(server.sessions()[0].error.is_some());
}

#[test]
fn endless_line_without_crlf() {
    let server = start(ServerConfig::new().fault(Fault::EndlessLine(Stage::Greeting)));
    let mut c = Client::connect(server.addr());
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    while total < 24 << 20 {
        let n = c.stream.read(&mut buf).unwrap();
        assert!(n > 0);
        let chunk = &buf[..n];
        if head.len() < 16 {
            head.extend_from_slice(chunk);
        }
        assert!(!chunk.contains(&b'\n'));
        total += n;
    }
    assert!(head.starts_with(b"220 xxxxxxxx"), "{head:?}");
    drop(c);
    assert!(server.wait_idle(Duration::from_secs(10)));
}

#[test]
fn reset_after_final_dot() {
    let server = start(ServerConfig::new().fault(Fault::ResetAfterBody));
    let mut c = Client::connect(server.addr());
    transaction_up_to_data(&mut c);
    assert_eq!(c.cmd("DATA")[0], "354 End data with <CR><LF>.<CR><LF>");
    c.send("body\r\n.\r\n");
    assert!(c.read_to_end().is_empty(), "no reply after the dot");
    assert!(server.messages().is_empty());
    assert!(server.wait_idle(Duration::from_secs(5)));
    assert!(server.sessions()[0].received.ends_with(b"body\r\n.\r\n"));
}

#[test]
fn reset_after_bdat_last() {
    let server = start(ServerConfig::new().fault(Fault::ResetAfterBody));
    let mut c = Client::connect(server.addr());
    transaction_up_to_data(&mut c);
    assert_eq!(
        {
            c.send("BDAT 3\r\nabc");
            c.reply()
        },
        ["250 2.0.0 3 octets received"]
    );
    c.send("BDAT 3 LAST\r\ndef");
    let rest = c.read_to_end();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(server.messages().is_empty());
}

#[test]
fn shutdown_421_at_each_stage() {
    for stage in [
        Stage::Greeting,
        Stage::Ehlo,
        Stage::Mail,
        Stage::Rcpt,
        Stage::Data,
        Stage::DataEnd,
    ] {
        let server = start(ServerConfig::new().fault(Fault::Shutdown(stage)));
        let mut c = Client::connect(server.addr());
        let mut replies = vec![c.reply()];
        let script = [
            "EHLO x",
            "MAIL FROM:<a@b>",
            "RCPT TO:<c@d>",
            "DATA",
            "body\r\n.",
        ];
        for command in script {
            if replies.last().unwrap()[0].starts_with("421") {
                break;
            }
            replies.push(c.cmd(command));
        }
        let last = replies.last().unwrap();
        assert_eq!(last, &["421 4.3.2 shutting down"], "{stage:?}: {replies:?}");
        assert!(c.read_to_end().is_empty(), "{stage:?}: closed after 421");
        assert!(server.messages().is_empty(), "{stage:?}");
    }
}

#[test]
fn garbage_instead_of_greeting() {
    let garbage = b"\x00\x01garbage\xff\r\n".to_vec();
    let server = start(ServerConfig::new().fault(Fault::GarbageGreeting(garbage.clone())));
    let mut c = Client::connect(server.addr());
    assert_eq!(c.read_once().unwrap(), garbage);
    // The server carries on normally if the client does.
    assert_eq!(c.cmd("NOOP"), ["250 2.0.0 Ok"]);
}

#[test]
fn non_utf8_reply_text() {
    let server = start(ServerConfig::new().fault(Fault::NonUtf8Replies));
    let mut c = Client::connect(server.addr());
    let line = c.read_line_bytes().unwrap();
    assert!(line.starts_with(b"220 test.example ESMTP"));
    assert!(line.ends_with(b"\r\n"));
    assert!(std::str::from_utf8(&line).is_err());
    c.send("NOOP\r\n");
    assert!(std::str::from_utf8(&c.read_line_bytes().unwrap()).is_err());
}

#[test]
fn bare_lf_line_endings() {
    let server = start(ServerConfig::new().fault(Fault::BareLfReplies));
    let mut c = Client::connect(server.addr());
    assert_eq!(c.read_line_bytes().unwrap(), b"220 test.example ESMTP\n");
    c.send("EHLO x\r\n");
    let first = c.read_line_bytes().unwrap();
    assert_eq!(first, b"250-test.example greets x\n");
    loop {
        let line = c.read_line_bytes().unwrap();
        assert!(!line.ends_with(b"\r\n"));
        if line[3] == b' ' {
            break;
        }
    }
}

#[test]
fn fault_on_one_connection_only() {
    let server =
        start(ServerConfig::new().fault_on_connection(0, Fault::Shutdown(Stage::Greeting)));
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), ["421 4.3.2 shutting down"]);
    let mut c = Client::connect(server.addr());
    assert_eq!(c.reply(), ["220 test.example ESMTP"]);
}

#[test]
fn generic_faults() {
    let server = start(
        ServerConfig::new()
            .fault(Fault::Reply(
                Stage::Rcpt,
                "452 4.5.3 slow down\n".to_owned(),
            ))
            .fault(Fault::Dribble(Stage::Mail, Duration::from_millis(5)))
            .fault(Fault::Delay(Stage::Noop, Duration::from_millis(300)))
            .fault(Fault::Raw(Stage::Rset, b"250-a\r\n250 b\r\n".to_vec()))
            .fault(Fault::Close(Stage::Quit)),
    );
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO x");
    let started = Instant::now();
    assert_eq!(c.cmd("MAIL FROM:<a@b>"), ["250 2.1.0 Ok"]);
    assert!(started.elapsed() >= Duration::from_millis(5 * 13));
    assert_eq!(c.cmd("RCPT TO:<c@d>"), ["452 4.5.3 slow down"]);
    let started = Instant::now();
    assert_eq!(c.cmd("NOOP"), ["250 2.0.0 Ok"]);
    assert!(started.elapsed() >= Duration::from_millis(280));
    assert_eq!(c.cmd("RSET"), ["250-a", "250 b"]);
    c.send("QUIT\r\n");
    assert!(c.read_to_end().is_empty());

    let server = start(ServerConfig::new().fault(Fault::Silent(Stage::Data)));
    let mut c = Client::connect(server.addr());
    transaction_up_to_data(&mut c);
    c.send("DATA\r\n");
    c.expect_silence(Duration::from_millis(300));
}

#[test]
fn dropping_the_server_ends_endless_faults() {
    let server = start(ServerConfig::new().fault(Fault::EndlessLine(Stage::Greeting)));
    let mut c = Client::connect(server.addr());
    let first = c.read_once().unwrap();
    assert!(first.starts_with(b"220 "));
    // The client stops reading but stays connected; the server's writes block.
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(1));
    // Drain: the stream ends soon after the drop.
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn endless_ehlo_inside_tls() {
    let pki = TestPki::shared();
    let server = start(
        ServerConfig::new()
            .implicit_tls(&pki)
            .fault(Fault::EndlessEhlo),
    );
    let mut c = Client::connect_tls(server.addr(), &pki, "localhost").unwrap();
    c.reply();
    c.send("EHLO x\r\n");
    assert_eq!(c.read_line(), "250-test.example");
    for _ in 0..100_000 {
        assert_eq!(c.read_line(), "250-x");
    }
    drop(c);
    assert!(server.wait_idle(Duration::from_secs(10)));
}
