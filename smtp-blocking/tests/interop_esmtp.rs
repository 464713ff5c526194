//! ESMTP extensions against the real Postfix on loopback (started by `.ci/servers/start.sh`, which writes
//! `target/test-servers/servers.env`; path overridable with `SMTP_TEST_SERVERS_ENV`): DSN (RFC 3461) parameters
//! accepted and acted on, and SIZE (RFC 1870) declared and enforced before any byte of the body is sent. Without
//! the servers these tests fail: they never skip.

mod common;

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use smtp_blocking::smtp_proto::UsageError;
use smtp_blocking::smtp_proto::path::{EnvelopeId, Notify, OriginalRecipient, Ret};
use smtp_blocking::{
    ConnectOptions, Connection, Direction, ErrorKind, Outcome, Timeouts, TlsMode, TlsOptions,
    TlsUsed,
};

/// Postfix's `message_size_limit` in `.ci/servers/templates/postfix-main.cf.in`.
const POSTFIX_SIZE_LIMIT: u64 = 52_428_800;

/// Postfix's plain port (2525) with STARTTLS, trusting the test CA.
fn postfix() -> ConnectOptions {
    let e = env();
    ConnectOptions::new(e.get("SMTP_TEST_HOST"), e.port("POSTFIX_PLAIN_PORT"))
        .with_tls(TlsMode::StartTls)
        .with_tls_options(TlsOptions::default().with_ca_file(e.get("SMTP_TEST_CA")))
        .with_timeouts(Timeouts::submission().capped(Duration::from_secs(20)))
        .with_connect_timeout(Duration::from_secs(5))
}

/// Waits (bounded) for a message file in the maildir `key` that contains every one of `needles`. Only files
/// changed in the last few minutes are read: the maildirs grow with every run.
fn in_maildir(key: &str, needles: &[&str], timeout: Duration) -> Option<String> {
    let dir = PathBuf::from(env().get(key));
    let dirs = [dir.join("new"), dir.join("cur")];
    let end = Instant::now() + timeout;
    let since = SystemTime::now() - Duration::from_secs(300);
    let mut rejected = HashSet::new();
    loop {
        for d in &dirs {
            let Ok(entries) = std::fs::read_dir(d) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let recent = entry
                    .metadata()
                    .ok()
                    .filter(|m| m.is_file())
                    .and_then(|m| m.modified().ok())
                    .is_some_and(|t| t >= since);
                if !recent || rejected.contains(&path) {
                    continue;
                }
                if let Ok(text) = std::fs::read_to_string(&path) {
                    if needles.iter().all(|n| text.contains(n)) {
                        return Some(text);
                    }
                    rejected.insert(path);
                }
            }
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn client_lines(lines: &Arc<std::sync::Mutex<Vec<smtp_blocking::TranscriptLine>>>) -> Vec<String> {
    lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.direction == Direction::Client)
        .map(|l| l.text.clone())
        .collect()
}

// ----- DSN (RFC 3461) -----

#[test]
fn dsn_parameters_are_accepted_and_postfix_sends_the_success_notice() {
    let e = env();
    let alice = e.get("TEST_USER_ALICE").to_owned();
    let bob = e.get("TEST_USER_BOB").to_owned();
    let t = token("dsn");
    // '+' and '=' must be xtext-encoded (RFC 3461 §4): `+2B`, `+3D`.
    let envid_text = format!("env+{t}=1");
    let envid_wire = format!("env+2B{t}+3D1");
    let orcpt_addr = format!("orig+{t}@example.test");

    let mut envelope = envelope(&alice, &[&bob]);
    envelope.params.ret = Some(Ret::Headers);
    envelope.params.envid = Some(EnvelopeId::new(&envid_text).unwrap());
    envelope.recipients[0].params.notify = Notify::SUCCESS.and(Notify::FAILURE);
    envelope.recipients[0].params.orcpt =
        Some(OriginalRecipient::new("rfc822", &orcpt_addr).unwrap());

    let (sink, lines) = collector();
    let (report, _) = within(Duration::from_secs(30), || {
        let mut conn = Connection::connect(&postfix().with_transcript(sink)).unwrap();
        assert_eq!(conn.tls(), TlsUsed::StartTls);
        let caps = conn.capabilities().expect("capabilities");
        assert!(
            caps.supports(smtp_blocking::smtp_proto::Extension::Dsn),
            "Postfix offers DSN"
        );
        let body = message(&t, &format!("secret-body-line {t}"));
        let report = conn.send_bytes(&envelope, &body).unwrap();
        conn.quit().unwrap();
        report
    });
    assert_eq!(report.outcome, Outcome::Accepted, "{report:?}");

    // What went on the wire.
    let sent = client_lines(&lines);
    let mail = sent.iter().find(|l| l.starts_with("MAIL FROM:")).unwrap();
    assert!(mail.contains(" RET=HDRS"), "{mail}");
    assert!(mail.contains(&format!(" ENVID={envid_wire}")), "{mail}");
    let rcpt = sent.iter().find(|l| l.starts_with("RCPT TO:")).unwrap();
    assert!(rcpt.contains(" NOTIFY=SUCCESS,FAILURE"), "{rcpt}");
    assert!(
        rcpt.contains(&format!(" ORCPT=rfc822;orig+2B{t}@example.test")),
        "{rcpt}"
    );

    // Delivered to Bob.
    let delivered = in_maildir("MAILDIR_BOB", &[&t], Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{t} was not delivered to Bob"));
    assert!(delivered.contains(&format!("secret-body-line {t}")));

    // NOTIFY=SUCCESS: Postfix sends Alice a delivery status notification (RFC 3464) that carries the envelope id
    // and the original recipient back, and with RET=HDRS only the headers of the message.
    let dsn = in_maildir(
        "MAILDIR_ALICE",
        &["Original-Envelope-Id:", &envid_text],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|| panic!("no delivery status notification for {t} reached Alice"));
    assert!(
        dsn.contains("Subject: Successful Mail Delivery Report"),
        "{dsn}"
    );
    // Postfix decoded the xtext: the identifier comes back exactly as given, `+` and `=` included.
    let field = |name: &str| {
        dsn.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {dsn}"))
            .trim()
            .to_owned()
    };
    assert_eq!(field("Original-Envelope-Id:"), envid_text);
    assert_eq!(field("Original-Recipient:"), format!("rfc822;{orcpt_addr}"));
    assert_eq!(field("Final-Recipient:"), format!("rfc822; {bob}"));
    assert_eq!(field("Status:"), "2.0.0");
    // Dovecot's LMTP offers no DSN, so Postfix reports the hand-off as "relayed" (RFC 3464 §2.3.3).
    assert!(
        ["delivered", "relayed"].contains(&field("Action:").as_str()),
        "{dsn}"
    );
    assert!(dsn.contains("text/rfc822-headers"), "{dsn}");
    assert!(dsn.contains(&format!("Subject: {t}")), "{dsn}");
    assert!(
        !dsn.contains("secret-body-line"),
        "RET=HDRS: the body must not come back: {dsn}"
    );
}

// ----- SIZE (RFC 1870) -----

/// A body source that counts the bytes taken from it.
struct Counting {
    inner: io::Cursor<Vec<u8>>,
    taken: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[test]
fn size_over_postfix_limit_is_refused_before_the_body_and_under_it_is_declared() {
    let bob = env().get("TEST_USER_BOB").to_owned();
    let (sink, lines) = collector();
    let mut conn = Connection::connect(&postfix().with_transcript(sink)).unwrap();
    let caps = conn.capabilities().expect("capabilities");
    assert_eq!(
        caps.size(),
        Some(POSTFIX_SIZE_LIMIT),
        "Postfix advertises its limit"
    );

    // Declared one byte over the limit: refused by the client before MAIL, nothing read from the body.
    let t = token("size-over");
    let taken = Arc::new(AtomicU64::new(0));
    let body = Counting {
        inner: io::Cursor::new(message(&t, "x")),
        taken: Arc::clone(&taken),
    };
    let over = envelope("sender@example.test", &[&bob]).with_size(POSTFIX_SIZE_LIMIT + 1);
    let (result, _) = within(Duration::from_secs(5), || conn.send(&over, body));
    let err = expect_err(result);
    match err.kind() {
        ErrorKind::Message(UsageError::MessageTooLarge { size, limit }) => {
            assert_eq!(
                (*size, *limit),
                (POSTFIX_SIZE_LIMIT + 1, POSTFIX_SIZE_LIMIT)
            );
        }
        other => panic!("expected MessageTooLarge, got {other:?}: {err}"),
    }
    assert!(err.to_string().contains("52428800"), "{err}");
    assert_eq!(taken.load(Ordering::Relaxed), 0, "no body byte was read");
    let sent = client_lines(&lines);
    assert!(
        !sent
            .iter()
            .any(|l| l.starts_with("MAIL") || l.starts_with("DATA") || l.starts_with("BDAT")),
        "nothing of the transaction was sent: {sent:?}"
    );

    // The connection is still usable; a message under the limit goes with SIZE=<its length>.
    let t = token("size-under");
    let body = message(&t, &format!("size token {t}"));
    let report = conn
        .send_bytes(&envelope("sender@example.test", &[&bob]), &body)
        .unwrap();
    assert_eq!(report.outcome, Outcome::Accepted, "{report:?}");
    conn.quit().unwrap();
    let sent = client_lines(&lines);
    let mail = sent.iter().find(|l| l.starts_with("MAIL FROM:")).unwrap();
    assert!(
        mail.split(' ').any(|p| p == format!("SIZE={}", body.len())),
        "{mail}"
    );
    assert!(in_maildir("MAILDIR_BOB", &[&t], Duration::from_secs(30)).is_some());
}
