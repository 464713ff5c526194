//! Transports of the async adapter against real servers on loopback (started by `.ci/servers/start.sh`; see
//! `common::Servers`): LMTP over Dovecot's Unix socket, SMTP to Postfix through Dante (SOCKS5, with and without
//! username/password), typed proxy errors, and a chosen local source address (socket2 bind, non-blocking
//! connect). Without the servers these tests fail: they never skip.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use smtp_smol::error::{ProxyError, ReplyCode};
use smtp_smol::{
    ConnectOptions, Connection, ErrorKind, Outcome, Peer, Pool, PoolOptions, Protocol, SendReport,
    Stage, Timeouts, TlsMode, TlsUsed,
};

/// Every test call is bounded by this (the options' deadlines are capped well below it).
const LIMIT: Duration = Duration::from_secs(30);

fn bounded(o: ConnectOptions) -> ConnectOptions {
    o.with_timeouts(Timeouts::submission().capped(Duration::from_secs(15)))
        .with_connect_timeout(Duration::from_secs(5))
}

/// Postfix's plaintext-first port by name, STARTTLS required, trusting the test CA.
fn postfix(s: &Servers) -> ConnectOptions {
    bounded(s.options("POSTFIX_PLAIN_PORT").with_tls(TlsMode::StartTls))
}

fn socks_address(s: &Servers, port_key: &str) -> String {
    format!("{}:{}", s.get("SOCKS_HOST"), s.port(port_key))
}

/// Waits (bounded) until a message file holding `token` appears in the maildir named by `key`.
fn in_maildir(s: &Servers, key: &str, token: &str) -> PathBuf {
    let dir = PathBuf::from(s.get(key));
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

async fn send_token(conn: &mut Connection, to: &[&str], token: &str) -> SendReport {
    conn.send_bytes(
        &envelope("sender@example.test", to),
        &message(token, &format!("token {token}")),
    )
    .await
    .unwrap_or_else(|e| panic!("{token}: {e}"))
}

#[test]
fn lmtp_over_the_dovecot_unix_socket_with_per_recipient_results() {
    let s = Servers::load();
    let socket = s.get("DOVECOT_LMTP_SOCKET");
    let (alice, unknown) = (s.get("TEST_USER_ALICE"), s.get("TEST_RCPT_UNKNOWN"));
    let t = token("smol-unix-lmtp");
    let o = bounded(ConnectOptions::unix(&socket)).with_protocol(Protocol::Lmtp);
    let (r, _) = within(LIMIT, async {
        let mut conn = Connection::connect(&o).await.unwrap();
        assert_eq!(conn.peer_addr(), &Peer::Unix(PathBuf::from(&socket)));
        assert_eq!(conn.tls(), TlsUsed::None);
        let r = send_token(&mut conn, &[&alice, &unknown], &t).await;
        conn.quit().await.unwrap();
        r
    });
    assert_eq!(r.outcome, Outcome::PartiallyAccepted, "{r:?}");
    assert!(r.recipients[0].accepted && r.recipients[0].code() == Some(250));
    assert!(!r.recipients[1].accepted);
    assert!(
        r.recipients[1].code().is_some_and(|c| c >= 500),
        "{:?}",
        r.recipients[1]
    );
    in_maildir(&s, "MAILDIR_ALICE", &t);

    // The URL form, through a pool.
    let t = token("smol-unix-lmtp-url");
    let o = bounded(ConnectOptions::from_url(&format!("lmtp+unix://{socket}")).unwrap());
    let bob = s.get("TEST_USER_BOB");
    let (r, _) = within(LIMIT, async {
        let pool = Pool::new(o, PoolOptions::default().max_connections(1)).unwrap();
        let r = pool
            .send_bytes(
                &envelope("sender@example.test", &[&bob]),
                &message(&t, "via the pool"),
            )
            .await
            .unwrap();
        pool.close().await;
        r
    });
    assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
    in_maildir(&s, "MAILDIR_BOB", &t);
}

#[test]
fn a_missing_unix_socket_is_a_clear_connect_error() {
    let path = std::env::temp_dir().join(format!("{}.sock", token("smol-no-such-socket")));
    let o = bounded(ConnectOptions::unix(&path));
    let (r, _) = within(Duration::from_secs(5), Connection::connect(&o));
    let err = expect_err(r);
    assert_eq!(err.kind(), &ErrorKind::Connect);
    assert_eq!(err.stage(), Stage::Connect);
    let text = err.to_string();
    assert!(text.contains(&format!("unix:{}", path.display())), "{text}");
    assert!(text.contains("check the socket path"), "{text}");
}

#[test]
fn smtp_through_socks5_without_authentication() {
    let s = Servers::load();
    let t = token("smol-socks-noauth");
    let bob = s.get("TEST_USER_BOB");
    let (sink, lines) = collector();
    // `localhost` goes to the proxy as a domain name: Dante resolves it.
    let o = postfix(&s)
        .with_socks5(socks_address(&s, "SOCKS_PORT"), None)
        .with_transcript(sink);
    let (r, _) = within(LIMIT, async {
        let mut conn = Connection::connect(&o).await.unwrap();
        match conn.peer_addr() {
            Peer::Socks5 { proxy, target } => {
                assert_eq!(proxy.port(), s.port("SOCKS_PORT"));
                assert_eq!(
                    target,
                    &format!(
                        "{}:{}",
                        s.get("SMTP_TEST_HOST"),
                        s.port("POSTFIX_PLAIN_PORT")
                    )
                );
            }
            other => panic!("not through the proxy: {other:?}"),
        }
        assert_eq!(conn.tls(), TlsUsed::StartTls);
        let r = send_token(&mut conn, &[&bob], &t).await;
        conn.quit().await.unwrap();
        r
    });
    assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
    in_maildir(&s, "MAILDIR_BOB", &t);
    assert!(transcript_text(&lines).contains("SOCKS5 proxy"));
}

#[test]
fn smtp_through_socks5_with_username_and_password() {
    let s = Servers::load();
    let t = token("smol-socks-auth");
    let (bob, pass) = (s.get("TEST_USER_BOB"), s.get("SOCKS_PASS"));
    let (sink, lines) = collector();
    // An IP literal goes to the proxy as an address; TLS still verifies the certificate's name.
    let mut o = postfix(&s)
        .with_socks5(
            socks_address(&s, "SOCKS_AUTH_PORT"),
            Some((s.get("SOCKS_USER"), pass.clone().into())),
        )
        .with_transcript(sink);
    o.host = s.get("SMTP_TEST_IPV4");
    o.tls_options = o.tls_options.with_server_name(s.get("SMTP_TEST_HOST"));
    let (r, _) = within(LIMIT, async {
        let mut conn = Connection::connect(&o).await.unwrap();
        assert!(matches!(conn.peer_addr(), Peer::Socks5 { .. }));
        let r = send_token(&mut conn, &[&bob], &t).await;
        conn.quit().await.unwrap();
        r
    });
    assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
    in_maildir(&s, "MAILDIR_BOB", &t);
    assert!(!transcript_text(&lines).contains(&pass));
}

#[test]
fn a_wrong_socks5_password_is_a_typed_error_without_the_password() {
    let s = Servers::load();
    let wrong = "wrong-smol-socks-password-91c2";
    let (sink, lines) = collector();
    let o = postfix(&s)
        .with_socks5(
            socks_address(&s, "SOCKS_AUTH_PORT"),
            Some((s.get("SOCKS_USER"), wrong.into())),
        )
        .with_transcript(sink);
    let (r, _) = within(LIMIT, Connection::connect(&o));
    let err = expect_err(r);
    assert!(
        matches!(err.kind(), ErrorKind::Proxy(ProxyError::AuthFailed { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("refused the user name or password"), "{text}");
    for shown in [text, format!("{err:?}"), transcript_text(&lines)] {
        assert!(!shown.contains(wrong), "the password leaked: {shown}");
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

#[test]
fn socks5_to_a_closed_port_is_typed_with_its_rfc_1928_meaning() {
    let s = Servers::load();
    let o = bounded(
        ConnectOptions::new("127.0.0.1", closed_port())
            .with_tls(TlsMode::None)
            .with_socks5(socks_address(&s, "SOCKS_PORT"), None),
    );
    let (r, _) = within(LIMIT, Connection::connect(&o));
    let err = expect_err(r);
    assert_eq!(
        err.kind(),
        &ErrorKind::Proxy(ProxyError::Refused(ReplyCode::ConnectionRefused)),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("reply 5 (connection refused by the destination"),
        "{err}"
    );
    assert!(err.is_transient());
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
    within(LIMIT, async {
        let conn = Connection::connect(&o).await.unwrap();
        assert_eq!(conn.peer_addr(), &Peer::Tcp(addr));
        conn.quit().await.unwrap();
    });
    let seen = server.join().unwrap();
    assert_eq!(seen.ip(), source, "the server saw {seen}");

    // A closed port from a chosen source: the non-blocking connect's error (SO_ERROR) is reported.
    let o = bounded(
        ConnectOptions::new("127.0.0.1", closed_port())
            .with_tls(TlsMode::None)
            .with_local_address(source),
    );
    let err = expect_err(within(LIMIT, Connection::connect(&o)).0);
    assert_eq!(err.kind(), &ErrorKind::Connect, "{err}");
    assert!(
        err.to_string().contains("from local address 127.0.0.2"),
        "{err}"
    );

    // Through the proxy: the source address applies to the connection to the proxy. Postfix then delivers.
    let s = Servers::load();
    let t = token("smol-socks-source");
    let bob = s.get("TEST_USER_BOB");
    let o = postfix(&s)
        .with_socks5(socks_address(&s, "SOCKS_PORT"), None)
        .with_local_address(source);
    let (r, _) = within(LIMIT, async {
        let mut conn = Connection::connect(&o).await.unwrap();
        let r = send_token(&mut conn, &[&bob], &t).await;
        conn.quit().await.unwrap();
        r
    });
    assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
    in_maildir(&s, "MAILDIR_BOB", &t);
}
