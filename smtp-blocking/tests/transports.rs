//! Transports of the blocking adapter against real servers on loopback (started by `.ci/servers/start.sh`, which
//! writes `target/test-servers/servers.env`; override with `SMTP_TEST_SERVERS_ENV`): LMTP over Dovecot's Unix
//! socket, SMTP to Postfix through Dante (SOCKS5, with and without username/password), typed proxy errors, and a
//! chosen local source address. Without the servers these tests fail: they never skip.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use smtp_blocking::error::{ProxyError, ReplyCode};
use smtp_blocking::{
    ConnectOptions, Connection, ErrorKind, Outcome, Peer, Protocol, Stage, Timeouts, TlsMode,
    TlsOptions, TlsUsed,
};

/// Every test call is bounded by this (the options' deadlines are capped well below it).
const LIMIT: Duration = Duration::from_secs(30);

fn bounded(o: ConnectOptions) -> ConnectOptions {
    o.with_timeouts(Timeouts::submission().capped(Duration::from_secs(15)))
        .with_connect_timeout(Duration::from_secs(5))
}

/// Postfix's plaintext-first port by name, STARTTLS required, trusting the test CA.
fn postfix() -> ConnectOptions {
    let e = env();
    bounded(
        ConnectOptions::new(e.get("SMTP_TEST_HOST"), e.port("POSTFIX_PLAIN_PORT"))
            .with_tls(TlsMode::StartTls)
            .with_tls_options(TlsOptions::default().with_ca_file(e.get("SMTP_TEST_CA"))),
    )
}

fn socks_address(port_key: &str) -> String {
    let e = env();
    format!("{}:{}", e.get("SOCKS_HOST"), e.port(port_key))
}

/// Waits (bounded) until a message file holding `token` appears in the maildir named by `key`.
fn in_maildir(key: &str, token: &str) -> PathBuf {
    let dir = PathBuf::from(env().get(key));
    let end = Instant::now() + Duration::from_secs(30);
    let since = SystemTime::now() - Duration::from_secs(300);
    loop {
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let recent = entry
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .is_some_and(|t| t >= since);
                if recent
                    && std::fs::read(entry.path())
                        .is_ok_and(|b| String::from_utf8_lossy(&b).contains(token))
                {
                    return entry.path();
                }
            }
        }
        assert!(
            Instant::now() < end,
            "{token} was not delivered to {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn send_token(conn: &mut Connection, to: &[&str], token: &str) -> smtp_blocking::SendReport {
    conn.send_bytes(
        &envelope("sender@example.test", to),
        &message(token, &format!("token {token}")),
    )
    .unwrap_or_else(|e| panic!("{token}: {e}"))
}

#[test]
fn lmtp_over_the_dovecot_unix_socket_with_per_recipient_results() {
    let e = env();
    let socket = e.get("DOVECOT_LMTP_SOCKET");
    let t = token("unix-lmtp");
    let o = bounded(ConnectOptions::unix(socket)).with_protocol(Protocol::Lmtp);
    let (mut conn, _) = within(LIMIT, || Connection::connect(&o).unwrap());
    assert_eq!(conn.peer_addr(), &Peer::Unix(PathBuf::from(socket)));
    assert_eq!(conn.peer_addr().to_string(), format!("unix:{socket}"));
    assert_eq!(conn.tls(), TlsUsed::None);
    let to = [e.get("TEST_USER_ALICE"), e.get("TEST_RCPT_UNKNOWN")];
    let (r, _) = within(LIMIT, || send_token(&mut conn, &to, &t));
    assert_eq!(r.outcome, Outcome::PartiallyAccepted, "{r:?}");
    assert!(r.recipients[0].accepted, "{:?}", r.recipients[0]);
    assert_eq!(r.recipients[0].code(), Some(250));
    assert!(!r.recipients[1].accepted);
    assert!(
        r.recipients[1].code().is_some_and(|c| c >= 500),
        "{:?}",
        r.recipients[1]
    );
    conn.quit().unwrap();
    in_maildir("MAILDIR_ALICE", &t);

    // The URL form.
    let t = token("unix-lmtp-url");
    let o = bounded(ConnectOptions::from_url(&format!("lmtp+unix://{socket}")).unwrap());
    assert_eq!(o.session.protocol, Protocol::Lmtp);
    let (mut conn, _) = within(LIMIT, || Connection::connect(&o).unwrap());
    let (r, _) = within(LIMIT, || {
        send_token(&mut conn, &[e.get("TEST_USER_BOB")], &t)
    });
    assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
    conn.quit().unwrap();
    in_maildir("MAILDIR_BOB", &t);
}

#[test]
fn a_missing_unix_socket_is_a_clear_connect_error() {
    let path = std::env::temp_dir().join(format!("{}.sock", token("no-such-socket")));
    let o = bounded(ConnectOptions::unix(&path));
    let (r, _) = within(Duration::from_secs(5), || Connection::connect(&o));
    let err = expect_err(r);
    assert_eq!(err.kind(), &ErrorKind::Connect);
    assert_eq!(err.stage(), Stage::Connect);
    let text = err.to_string();
    assert!(text.contains(&format!("unix:{}", path.display())), "{text}");
    assert!(text.contains("check the socket path"), "{text}");
    assert!(err.is_transient());

    // A Unix socket cannot be combined with a proxy or a source address.
    let o = ConnectOptions::unix(&path).with_socks5(socks_address("SOCKS_PORT"), None);
    assert!(matches!(
        expect_err(Connection::connect(&o)).kind(),
        ErrorKind::Config { .. }
    ));
}

#[test]
fn smtp_through_socks5_without_authentication() {
    let e = env();
    let t = token("socks-noauth");
    let (sink, lines) = collector();
    // `localhost` goes to the proxy as a domain name: Dante resolves it.
    let o = postfix()
        .with_socks5(socks_address("SOCKS_PORT"), None)
        .with_transcript(sink);
    let (mut conn, _) = within(LIMIT, || Connection::connect(&o).unwrap());
    match conn.peer_addr() {
        Peer::Socks5 { proxy, target } => {
            assert_eq!(proxy.port(), e.port("SOCKS_PORT"));
            assert_eq!(
                target,
                &format!(
                    "{}:{}",
                    e.get("SMTP_TEST_HOST"),
                    e.port("POSTFIX_PLAIN_PORT")
                )
            );
        }
        other => panic!("not through the proxy: {other:?}"),
    }
    assert!(conn.peer_addr().to_string().contains("via SOCKS5 proxy"));
    assert_eq!(conn.tls(), TlsUsed::StartTls);
    let (r, _) = within(LIMIT, || {
        send_token(&mut conn, &[e.get("TEST_USER_BOB")], &t)
    });
    assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
    conn.quit().unwrap();
    in_maildir("MAILDIR_BOB", &t);
    assert!(transcript_text(&lines).contains("via SOCKS5 proxy"));
}

#[test]
fn smtp_through_socks5_with_username_and_password() {
    let e = env();
    let t = token("socks-auth");
    let (sink, lines) = collector();
    // An IP literal goes to the proxy as an address; TLS still verifies the certificate's name.
    let mut o = postfix()
        .with_socks5(
            socks_address("SOCKS_AUTH_PORT"),
            Some((e.get("SOCKS_USER").to_owned(), e.get("SOCKS_PASS").into())),
        )
        .with_transcript(sink);
    o.host = e.get("SMTP_TEST_IPV4").to_owned();
    o.tls_options = o.tls_options.with_server_name(e.get("SMTP_TEST_HOST"));
    assert!(!format!("{o:?}").contains(e.get("SOCKS_PASS")));
    let (mut conn, _) = within(LIMIT, || Connection::connect(&o).unwrap());
    assert!(matches!(conn.peer_addr(), Peer::Socks5 { .. }));
    let (r, _) = within(LIMIT, || {
        send_token(&mut conn, &[e.get("TEST_USER_BOB")], &t)
    });
    assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
    conn.quit().unwrap();
    in_maildir("MAILDIR_BOB", &t);
    assert!(!transcript_text(&lines).contains(e.get("SOCKS_PASS")));
}

#[test]
fn a_wrong_socks5_password_is_a_typed_error_without_the_password() {
    let e = env();
    let wrong = "wrong-socks-password-7f3a";
    let (sink, lines) = collector();
    let o = postfix()
        .with_socks5(
            socks_address("SOCKS_AUTH_PORT"),
            Some((e.get("SOCKS_USER").to_owned(), wrong.into())),
        )
        .with_transcript(sink);
    let (r, _) = within(LIMIT, || Connection::connect(&o));
    let err = expect_err(r);
    assert!(
        matches!(err.kind(), ErrorKind::Proxy(ProxyError::AuthFailed { .. })),
        "{err:?}"
    );
    assert_eq!(err.stage(), Stage::Connect);
    let text = err.to_string();
    assert!(text.contains("refused the user name or password"), "{text}");
    assert!(text.contains(&socks_address("SOCKS_AUTH_PORT")), "{text}");
    assert_eq!(err.exit_code(), 77);
    assert!(!err.is_transient());
    for shown in [text, format!("{err:?}"), transcript_text(&lines)] {
        assert!(!shown.contains(wrong), "the password leaked: {shown}");
    }

    // No credentials for a proxy that requires them: said so.
    let o = postfix().with_socks5(socks_address("SOCKS_AUTH_PORT"), None);
    let err = expect_err(within(LIMIT, || Connection::connect(&o)).0);
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Proxy(ProxyError::NoAcceptableMethod { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("requires authentication"), "{err}");
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

#[test]
fn socks5_reply_codes_are_typed_with_their_rfc_1928_meaning() {
    let o = bounded(
        ConnectOptions::new("127.0.0.1", closed_port())
            .with_tls(TlsMode::None)
            .with_socks5(socks_address("SOCKS_PORT"), None),
    );
    let (r, _) = within(LIMIT, || Connection::connect(&o));
    let err = expect_err(r);
    assert_eq!(
        err.kind(),
        &ErrorKind::Proxy(ProxyError::Refused(ReplyCode::ConnectionRefused)),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("reply 5 (connection refused by the destination"),
        "{text}"
    );
    assert!(err.is_transient());
    assert_eq!(err.exit_code(), 75);

    // Dante's ruleset allows 127.0.0.1 only: 127.0.0.2 is "not allowed by ruleset" (reply 2).
    let o = bounded(
        ConnectOptions::new("127.0.0.2", 25)
            .with_tls(TlsMode::None)
            .with_socks5(socks_address("SOCKS_PORT"), None),
    );
    let err = expect_err(within(LIMIT, || Connection::connect(&o)).0);
    assert_eq!(
        err.kind(),
        &ErrorKind::Proxy(ProxyError::Refused(ReplyCode::NotAllowed)),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("not allowed by the proxy's ruleset"),
        "{err}"
    );

    // A proxy that is not there is a connect error naming the proxy.
    let o = bounded(
        ConnectOptions::new("localhost", 25)
            .with_socks5(format!("127.0.0.1:{}", closed_port()), None),
    );
    let err = expect_err(within(LIMIT, || Connection::connect(&o)).0);
    assert_eq!(err.kind(), &ErrorKind::Connect);
    assert!(err.to_string().contains("SOCKS5 proxy"), "{err}");
}

/// A one-connection SMTP server that records the client's address: greeting, EHLO, QUIT.
fn observing_server() -> (SocketAddr, std::thread::JoinHandle<SocketAddr>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut sock, peer) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        sock.write_all(b"220 observer ESMTP\r\n").unwrap();
        let mut reader = BufReader::new(sock.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 observer\r\n",
                "QUIT" => b"221 bye\r\n",
                _ => b"502 not here\r\n",
            };
            sock.write_all(reply).unwrap();
            if verb == "QUIT" {
                break;
            }
            line.clear();
        }
        peer
    });
    (addr, handle)
}

#[test]
fn a_chosen_source_address_is_what_the_server_sees() {
    let (addr, server) = observing_server();
    let source: IpAddr = "127.0.0.2".parse().unwrap();
    let o = bounded(
        ConnectOptions::new("127.0.0.1", addr.port())
            .with_tls(TlsMode::None)
            .with_local_address(source),
    );
    let (conn, _) = within(LIMIT, || Connection::connect(&o).unwrap());
    assert_eq!(conn.peer_addr(), &Peer::Tcp(addr));
    conn.quit().unwrap();
    let seen = server.join().unwrap();
    assert_eq!(seen.ip(), source, "the server saw {seen}");

    // Through the proxy too: the source address applies to the connection to the proxy. Postfix then delivers.
    let e = env();
    let t = token("socks-source");
    let o = postfix()
        .with_socks5(socks_address("SOCKS_PORT"), None)
        .with_local_address(source);
    let (mut conn, _) = within(LIMIT, || Connection::connect(&o).unwrap());
    let (r, _) = within(LIMIT, || {
        send_token(&mut conn, &[e.get("TEST_USER_BOB")], &t)
    });
    assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
    conn.quit().unwrap();
    in_maildir("MAILDIR_BOB", &t);

    // A family mismatch is refused before connecting.
    let o =
        ConnectOptions::new("127.0.0.1", addr.port()).with_local_address("::1".parse().unwrap());
    let err = expect_err(Connection::connect(&o));
    assert!(matches!(err.kind(), ErrorKind::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("different IP families"), "{err}");
}
