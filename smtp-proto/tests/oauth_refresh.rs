//! OAuth 2.0 token refresh (RFC 7628 §3.2.2–3.2.3): with `Config::token_refresh`, a refused bearer token pauses the
//! session with `Event::AuthRejected` (the decoded error challenge and the final reply), `Client::retry_auth` tries
//! a fresh token once on the same connection, and a second refusal closes with the typed error.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use smtp_proto::{Credentials, ErrorKind, Event, Stage, UsageError};

const INVALID: &str =
    r#"{"status":"invalid_token","scope":"https://mail.example.com/","schemes":"Bearer"}"#;

fn oauth_session(mechanisms: &str, token: &str) -> Session {
    let mut cfg = plain();
    cfg.credentials = Some(Credentials::oauth2("u@example.com", token));
    cfg.allow_insecure_auth = true;
    cfg.token_refresh = true;
    cfg.transcript = true;
    let mut s = Session::new(cfg);
    s.server(b"220 mx\r\n");
    s.sent();
    s.server(format!("250-mx\r\n250 AUTH {mechanisms}\r\n").as_bytes());
    s
}

fn bearer(token: &str) -> String {
    format!(
        "AUTH OAUTHBEARER {}\r\n",
        B64.encode(format!("n,a=u@example.com,\x01auth=Bearer {token}\x01\x01"))
    )
}

/// The server's RFC 7628 error challenge, the client's `^A`, and the final `535`.
fn refuse(s: &mut Session) {
    s.server(format!("334 {}\r\n", B64.encode(INVALID)).as_bytes());
    assert_eq!(s.sent(), format!("{}\r\n", B64.encode("\x01")));
    s.server(b"535 5.7.8 Authentication credentials invalid\r\n");
}

fn rejected(s: &mut Session) -> smtp_proto::Error {
    let events = s.take_events();
    let mut found = None;
    for e in events {
        match e {
            Event::AuthRejected { error } => found = Some(error),
            Event::Closed { .. } | Event::Ready { .. } => panic!("unexpected {e:?}"),
            _ => {}
        }
    }
    found.expect("AuthRejected")
}

fn transcript(s: &mut Session) -> String {
    let mut t = String::new();
    while let Some(e) = s.client.poll_transcript() {
        t.push_str(&e.text);
        t.push('\n');
    }
    t
}

#[test]
fn rejected_token_then_a_fresh_one_on_the_same_connection_succeeds() {
    let mut s = oauth_session("OAUTHBEARER", "old-token");
    assert_eq!(s.sent(), bearer("old-token"));
    refuse(&mut s);
    let error = rejected(&mut s);
    assert_eq!(error.stage(), Stage::Auth);
    match error.kind() {
        ErrorKind::AuthFailed { details } => {
            assert!(
                details.as_deref().unwrap().contains("invalid_token"),
                "{details:?}"
            )
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(error.reply().unwrap().code().get(), 535);
    // Paused: nothing sent, no deadline armed, still open.
    assert_eq!(s.sent(), "");
    assert!(!s.client.is_closed());
    assert!(s.client.poll_timeout().is_none());

    let now = s.now;
    s.client
        .retry_auth(Credentials::oauth2("u@example.com", "new-token"), now)
        .unwrap();
    s.drain();
    assert_eq!(s.sent(), bearer("new-token"));
    assert!(
        s.client.poll_timeout().is_some(),
        "the AUTH deadline is armed"
    );
    s.server(b"235 2.7.0 Authentication successful\r\n");
    assert!(s.client.is_authenticated());
    assert!(s.take_events().iter().any(|e| matches!(
        e,
        Event::Ready {
            authenticated: true,
            ..
        }
    )));
    let t = transcript(&mut s);
    assert!(!t.contains("old-token") && !t.contains("new-token"), "{t}");
    assert!(!t.contains(&B64.encode("n,a=u@example.com")), "{t}");
}

#[test]
fn xoauth2_rejection_then_refresh_succeeds() {
    let mut s = oauth_session("XOAUTH2", "old");
    assert!(s.sent().starts_with("AUTH XOAUTH2 "));
    let json = r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
    s.server(format!("334 {}\r\n", B64.encode(json)).as_bytes());
    assert_eq!(s.sent(), "\r\n");
    s.server(b"535 5.7.8 Username and Password not accepted\r\n");
    let error = rejected(&mut s);
    assert!(error.to_string().contains("401"), "{error}");
    let now = s.now;
    s.client
        .retry_auth(Credentials::oauth2("u@example.com", "fresh"), now)
        .unwrap();
    s.drain();
    let expected = format!(
        "AUTH XOAUTH2 {}\r\n",
        B64.encode("user=u@example.com\x01auth=Bearer fresh\x01\x01")
    );
    assert_eq!(s.sent(), expected);
    s.server(b"235 2.7.0 Accepted\r\n");
    assert!(s.client.is_authenticated());
}

#[test]
fn rejected_twice_closes_with_the_servers_status() {
    let mut s = oauth_session("OAUTHBEARER", "old");
    s.sent();
    refuse(&mut s);
    rejected(&mut s);
    let now = s.now;
    s.client
        .retry_auth(Credentials::oauth2("u@example.com", "still-bad"), now)
        .unwrap();
    s.drain();
    assert_eq!(s.sent(), bearer("still-bad"));
    refuse(&mut s);
    let e = s.closed_error().expect("closed").expect("with an error");
    assert_eq!(e.stage(), Stage::Auth);
    match e.kind() {
        ErrorKind::AuthFailed { details } => {
            assert!(
                details.as_deref().unwrap().contains("invalid_token"),
                "{details:?}"
            )
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(e.reply().unwrap().code().get(), 535);
    assert!(
        !s.events
            .iter()
            .any(|e| matches!(e, Event::AuthRejected { .. })),
        "a second refusal does not pause again"
    );
    // And no third try.
    let now = s.now;
    assert_eq!(
        s.client
            .retry_auth(Credentials::oauth2("u@example.com", "x"), now),
        Err(UsageError::NoAuthToRetry)
    );
}

#[test]
fn retry_auth_in_a_wrong_state_is_a_usage_error() {
    // Before any AUTH.
    let mut s = oauth_session("OAUTHBEARER", "tok");
    let now = s.now;
    assert_eq!(
        s.client
            .retry_auth(Credentials::oauth2("u@example.com", "x"), now),
        Err(UsageError::NoAuthToRetry)
    );
    // The machine is unchanged: the exchange in flight completes normally.
    assert_eq!(s.sent(), bearer("tok"));
    s.server(b"235 ok\r\n");
    assert!(s.client.is_authenticated());
    // After Ready.
    let now = s.now;
    assert_eq!(
        s.client
            .retry_auth(Credentials::oauth2("u@example.com", "x"), now),
        Err(UsageError::NoAuthToRetry)
    );
    assert_eq!(s.sent(), "");
}

#[test]
fn without_token_refresh_a_rejection_closes_as_before() {
    let mut cfg = plain();
    cfg.credentials = Some(Credentials::oauth2("u@example.com", "tok"));
    cfg.allow_insecure_auth = true;
    let mut s = Session::new(cfg);
    s.server(b"220 mx\r\n");
    s.sent();
    s.server(b"250-mx\r\n250 AUTH OAUTHBEARER\r\n");
    s.sent();
    refuse(&mut s);
    let e = s.closed_error().unwrap().unwrap();
    assert!(matches!(e.kind(), ErrorKind::AuthFailed { .. }));
    let now = s.now;
    assert_eq!(
        s.client
            .retry_auth(Credentials::oauth2("u@example.com", "x"), now),
        Err(UsageError::NoAuthToRetry)
    );
}

#[test]
fn quit_while_paused_ends_politely() {
    let mut s = oauth_session("OAUTHBEARER", "old");
    s.sent();
    refuse(&mut s);
    rejected(&mut s);
    s.client.quit();
    s.drain();
    assert_eq!(s.sent(), "QUIT\r\n");
    s.server(b"221 bye\r\n");
    assert_eq!(s.closed_error(), Some(None));
}
