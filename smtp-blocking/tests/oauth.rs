//! OAuth 2.0 token refresh in the blocking adapter, against the scripted server: the provider is asked for the
//! current token on connect, asked again after the server refuses it (RFC 7628 §3.2.2 error challenge, then
//! `535`), and AUTH is retried on the same connection; provider errors and a second refusal are typed errors.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use smtp_blocking::oauth::{TokenError, TokenRequest};
use smtp_blocking::{
    ConnectOptions, Connection, ErrorKind, Outcome, Secret, Stage, Timeouts, TlsMode,
};
use smtp_test_server::{ServerConfig, TestPki, TestServer};

const USER: &str = "alice@example.org";
const LIMIT: Duration = Duration::from_secs(5);

fn server(mechanisms: &[&str]) -> TestServer {
    let pki = TestPki::shared();
    TestServer::start(
        ServerConfig::new()
            .starttls(&pki)
            .oauth_token(USER, "good-token")
            .auth_mechanisms(mechanisms)
            .require_auth(true),
    )
    .expect("start the test server")
}

type Asked = Arc<Mutex<Vec<TokenRequest>>>;

/// A provider that hands out `tokens` in turn (`"FAIL"`: an error) and records every request.
fn provider(
    tokens: &[&str],
) -> (
    impl Fn(&TokenRequest) -> Result<Secret, TokenError> + Send + Sync + 'static,
    Asked,
) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    let tokens: Vec<String> = tokens.iter().map(|t| (*t).to_owned()).collect();
    let f = move |r: &TokenRequest| {
        let mut log = log.lock().unwrap();
        log.push(r.clone());
        match tokens.get(log.len() - 1) {
            Some(t) if t.as_str() != "FAIL" => Ok(t.as_str().into()),
            _ => Err("the identity provider is unreachable".into()),
        }
    };
    (f, asked)
}

fn opts(server: &TestServer) -> ConnectOptions {
    local(server.port(), &TestPki::shared().ca_pem())
        .with_tls(TlsMode::StartTls)
        .with_timeouts(Timeouts::submission().capped(Duration::from_secs(2)))
        .with_connect_timeout(Duration::from_secs(2))
}

#[test]
fn oauthbearer_refused_token_is_refreshed_and_retried_on_the_same_connection() {
    let server = server(&["OAUTHBEARER"]);
    let (provider, asked) = provider(&["stale-token", "good-token"]);
    let (sink, lines) = collector();
    let options = opts(&server)
        .with_oauth_token_provider(USER, provider)
        .with_transcript(sink);
    let shown = format!("{options:?}");
    assert!(
        shown.contains(USER) && !shown.contains("stale-token"),
        "{shown}"
    );
    let (report, _) = within(LIMIT, || {
        let mut conn = Connection::connect(&options).unwrap();
        assert!(conn.is_authenticated());
        let report = conn
            .send_bytes(&envelope(USER, &["b@example.org"]), &message("oauth", "hi"))
            .unwrap();
        conn.quit().unwrap();
        report
    });
    assert_eq!(report.outcome, Outcome::Accepted);
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0], TokenRequest::Initial);
    assert!(asked[1].is_refresh());
    assert_eq!(asked[1].status().as_deref(), Some("invalid_token"));
    assert_eq!(
        asked[1].scope().as_deref(),
        Some("https://mail.test.example/")
    );
    // One connection, two AUTH commands on it, authenticated as the user.
    assert_eq!(server.connections(), 1);
    let session = &server.sessions()[0];
    assert_eq!(session.lines_with_verb("AUTH").len(), 2);
    assert_eq!(session.authenticated.as_deref(), Some(USER));
    // Tokens never reach the transcript.
    let text = transcript_text(&lines);
    assert!(
        !text.contains("stale-token") && !text.contains("good-token"),
        "{text}"
    );
    assert!(text.contains("invalid_token"), "{text}");
}

#[test]
fn xoauth2_refused_token_is_refreshed() {
    let server = server(&["XOAUTH2"]);
    let (provider, asked) = provider(&["stale-token", "good-token"]);
    let options = opts(&server).with_oauth_token_provider(USER, provider);
    let (conn, _) = within(LIMIT, || Connection::connect(&options).unwrap());
    assert!(conn.is_authenticated());
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[1].status().as_deref(), Some("401"));
    conn.quit().unwrap();
}

#[test]
fn a_reconnect_asks_the_provider_for_the_current_token() {
    let server = server(&["OAUTHBEARER"]);
    let (provider, asked) = provider(&["good-token", "good-token"]);
    let options = opts(&server).with_oauth_token_provider(USER, provider);
    within(LIMIT, || {
        let mut conn = Connection::connect(&options).unwrap();
        conn.reconnect().unwrap();
        assert!(conn.is_authenticated());
        conn.quit().unwrap();
    });
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked, [TokenRequest::Initial, TokenRequest::Initial]);
    assert_eq!(server.connections(), 2);
}

#[test]
fn refused_twice_is_auth_failed_with_the_servers_status() {
    let server = server(&["OAUTHBEARER"]);
    let (provider, asked) = provider(&["stale-token", "also-stale"]);
    let options = opts(&server).with_oauth_token_provider(USER, provider);
    let (result, _) = within(LIMIT, || Connection::connect(&options));
    let err = expect_err(result);
    assert_eq!(err.stage(), Stage::Auth);
    match err.kind() {
        ErrorKind::AuthFailed { details } => {
            assert!(
                details.as_deref().unwrap_or("").contains("invalid_token"),
                "{err}"
            )
        }
        other => panic!("expected AuthFailed, got {other:?}: {err}"),
    }
    assert_eq!(err.reply().map(|r| r.code().get()), Some(535));
    assert_eq!(
        asked.lock().unwrap().len(),
        2,
        "asked once more, not in a loop"
    );
    assert_eq!(server.sessions()[0].lines_with_verb("AUTH").len(), 2);
}

#[test]
fn provider_errors_are_typed() {
    // The first token cannot be had: no connection attempt gets to AUTH.
    let first = server(&["OAUTHBEARER"]);
    let (failing, _) = provider(&["FAIL"]);
    let options = opts(&first).with_oauth_token_provider(USER, failing);
    let (result, _) = within(LIMIT, || Connection::connect(&options));
    let err = expect_err(result);
    assert_eq!(err.kind(), &ErrorKind::TokenProvider { refresh: false });
    assert!(
        err.to_string()
            .contains("the identity provider is unreachable"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 77);
    assert!(
        first
            .sessions()
            .iter()
            .all(|s| s.lines_with_verb("AUTH").is_empty())
    );

    // The refresh fails: the error says so, and the session is ended politely.
    let second = server(&["OAUTHBEARER"]);
    let (failing, asked) = provider(&["stale-token", "FAIL"]);
    let options = opts(&second).with_oauth_token_provider(USER, failing);
    let (result, _) = within(LIMIT, || Connection::connect(&options));
    let err = expect_err(result);
    assert_eq!(err.kind(), &ErrorKind::TokenProvider { refresh: true });
    assert!(
        err.to_string()
            .contains("the identity provider is unreachable"),
        "{err}"
    );
    assert_eq!(asked.lock().unwrap().len(), 2);
    assert!(second.wait_idle(LIMIT));
    let verbs = second.sessions()[0].verbs();
    assert_eq!(verbs.last().map(String::as_str), Some("QUIT"), "{verbs:?}");
}
