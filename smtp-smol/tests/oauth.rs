//! OAuth 2.0 token refresh in the async adapter (and its pool), against the scripted server: the provider is asked
//! again after the server refuses a token and AUTH is retried on the same connection; provider errors are typed.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use smtp_smol::oauth::{TokenError, TokenRequest};
use smtp_smol::smtp_proto::Secret;
use smtp_smol::{
    ConnectOptions, Connection, ErrorKind, Outcome, Pool, PoolOptions, Timeouts, TlsMode,
};
use smtp_test_server::{ServerConfig, TestPki, TestServer};

const USER: &str = "alice@example.org";
const LIMIT: Duration = Duration::from_secs(5);

fn server() -> TestServer {
    TestServer::start(
        ServerConfig::new()
            .starttls(&TestPki::shared())
            .oauth_token(USER, "good-token")
            .auth_mechanisms(&["OAUTHBEARER", "XOAUTH2"])
            .require_auth(true),
    )
    .expect("start the test server")
}

type Asked = Arc<Mutex<Vec<TokenRequest>>>;

/// A provider handing out `tokens` in turn (`"FAIL"`: an error), recording every request.
fn provider(
    tokens: &[&str],
) -> (
    impl Fn(&TokenRequest) -> Result<Secret, TokenError> + Send + Sync + 'static,
    Asked,
) {
    let asked: Asked = Arc::default();
    let log = Arc::clone(&asked);
    let tokens: Vec<String> = tokens.iter().map(|t| (*t).to_owned()).collect();
    let f = move |r: &TokenRequest| {
        let mut log = log.lock().unwrap();
        log.push(r.clone());
        match tokens.get(log.len() - 1) {
            Some(t) if t.as_str() != "FAIL" => Ok(Secret::from(t.as_str())),
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
fn refused_token_is_refreshed_and_retried_on_the_same_connection() {
    let server = server();
    let (provider, asked) = provider(&["stale-token", "good-token"]);
    let (sink, lines) = collector();
    let options = opts(&server)
        .with_oauth_token_provider(USER, provider)
        .with_transcript(sink);
    let (report, _) = within(LIMIT, async {
        let mut conn = Connection::connect(&options).await.unwrap();
        assert!(conn.is_authenticated());
        let report = conn
            .send_bytes(&envelope(USER, &["b@example.org"]), &message("oauth", "hi"))
            .await
            .unwrap();
        conn.quit().await.unwrap();
        report
    });
    assert_eq!(report.outcome, Outcome::Accepted);
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0], TokenRequest::Initial);
    assert_eq!(asked[1].status().as_deref(), Some("invalid_token"));
    assert_eq!(server.connections(), 1);
    let session = &server.sessions()[0];
    assert_eq!(session.lines_with_verb("AUTH").len(), 2);
    assert_eq!(session.authenticated.as_deref(), Some(USER));
    let text = transcript_text(&lines);
    assert!(
        !text.contains("stale-token") && !text.contains("good-token"),
        "{text}"
    );
}

#[test]
fn the_pool_asks_the_provider_for_each_new_connection() {
    let server = server();
    let (provider, asked) = provider(&["good-token", "stale-token", "good-token"]);
    let pool = Pool::new(
        opts(&server).with_oauth_token_provider(USER, provider),
        PoolOptions::default()
            .max_connections(1)
            .max_messages_per_connection(1),
    )
    .unwrap();
    within(LIMIT, async {
        for i in 0..2 {
            let report = pool
                .send_bytes(
                    &envelope(USER, &["b@example.org"]),
                    message(&format!("pool-{i}"), "hi"),
                )
                .await
                .unwrap();
            assert_eq!(report.outcome, Outcome::Accepted);
        }
    });
    let asked = asked.lock().unwrap().clone();
    assert_eq!(
        asked
            .iter()
            .map(TokenRequest::is_refresh)
            .collect::<Vec<_>>(),
        [false, false, true],
        "{asked:?}"
    );
    assert_eq!(server.connections(), 2);
}

#[test]
fn provider_errors_are_typed() {
    let first = server();
    let (failing, _) = provider(&["FAIL"]);
    let options = opts(&first).with_oauth_token_provider(USER, failing);
    let (result, _) = within(LIMIT, Connection::connect(&options));
    let err = expect_err(result);
    assert_eq!(err.kind(), &ErrorKind::TokenProvider { refresh: false });
    assert!(
        err.to_string()
            .contains("the identity provider is unreachable"),
        "{err}"
    );

    let second = server();
    let (failing, asked) = provider(&["stale-token", "FAIL"]);
    let options = opts(&second).with_oauth_token_provider(USER, failing);
    let (result, _) = within(LIMIT, Connection::connect(&options));
    let err = expect_err(result);
    assert_eq!(err.kind(), &ErrorKind::TokenProvider { refresh: true });
    assert_eq!(asked.lock().unwrap().len(), 2);
    assert!(second.wait_idle(LIMIT));
    let verbs = second.sessions()[0].verbs();
    assert_eq!(verbs.last().map(String::as_str), Some("QUIT"), "{verbs:?}");
}
