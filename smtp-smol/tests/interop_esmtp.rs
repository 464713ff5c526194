//! SIZE (RFC 1870) against the real Postfix on loopback (started by `.ci/servers/start.sh`): the advertised limit
//! is read, a message declared over it is refused before any byte of the body is read or sent, and a message in
//! memory goes with `SIZE=<its length>`. Fails, never skips, when the servers are not running.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use futures_lite::io::AsyncRead;
use smtp_smol::smtp_proto::UsageError;
use smtp_smol::{Connection, Direction, ErrorKind, Outcome, Timeouts, TlsMode, TlsUsed};

/// Postfix's `message_size_limit` in `.ci/servers/templates/postfix-main.cf.in`.
const POSTFIX_SIZE_LIMIT: u64 = 52_428_800;

/// A body source that counts the bytes taken from it.
struct Counting {
    inner: futures_lite::io::Cursor<Vec<u8>>,
    taken: Arc<AtomicU64>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let taken = Arc::clone(&self.taken);
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            taken.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
}

#[test]
fn size_over_postfix_limit_is_refused_before_the_body_and_under_it_is_declared() {
    let s = Servers::load();
    let bob = s.get("TEST_USER_BOB");
    let (sink, lines) = collector();
    let options = s
        .options("POSTFIX_PLAIN_PORT")
        .with_tls(TlsMode::StartTls)
        .with_timeouts(Timeouts::submission().capped(Duration::from_secs(10)))
        .with_transcript(sink);
    let client_lines = || -> Vec<String> {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.direction == Direction::Client)
            .map(|l| l.text.clone())
            .collect()
    };
    let t_under = token("smol-size-under");
    let body_under = message(&t_under, &format!("size token {t_under}"));
    let taken = Arc::new(AtomicU64::new(0));
    let (over, under) = within(Duration::from_secs(20), async {
        let mut conn = Connection::connect(&options).await.unwrap();
        assert_eq!(conn.tls(), TlsUsed::StartTls);
        assert_eq!(
            conn.capabilities().and_then(|c| c.size()),
            Some(POSTFIX_SIZE_LIMIT)
        );
        let body = Counting {
            inner: futures_lite::io::Cursor::new(message("over", "x")),
            taken: Arc::clone(&taken),
        };
        let over = conn
            .send(
                &envelope("sender@example.test", &[&bob]).with_size(POSTFIX_SIZE_LIMIT + 1),
                body,
            )
            .await;
        let under = conn
            .send_bytes(&envelope("sender@example.test", &[&bob]), &body_under)
            .await;
        conn.quit().await.unwrap();
        (over, under)
    })
    .0;
    let err = expect_err(over);
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

    let report = under.unwrap();
    assert_eq!(report.outcome, Outcome::Accepted, "{report:?}");
    // Exactly one transaction went on the wire: the one under the limit, with its size declared.
    let mails: Vec<String> = client_lines()
        .into_iter()
        .filter(|l| l.starts_with("MAIL FROM:"))
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0]
            .split(' ')
            .any(|p| p == format!("SIZE={}", body_under.len())),
        "{}",
        mails[0]
    );
    let maildir = std::path::PathBuf::from(s.get("MAILDIR_BOB"));
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let recent = Duration::from_secs(300);
    let found = loop {
        let hit = ["new", "cur"].iter().any(|sub| {
            std::fs::read_dir(maildir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    // Recent and small: the maildir also holds other tests' 25 MiB messages.
                    e.metadata().is_ok_and(|m| {
                        m.len() < 1 << 20
                            && m.modified()
                                .is_ok_and(|t| t.elapsed().is_ok_and(|a| a < recent))
                    })
                })
                .any(|e| {
                    std::fs::read(e.path())
                        .is_ok_and(|b| b.windows(t_under.len()).any(|w| w == t_under.as_bytes()))
                })
        });
        if hit || std::time::Instant::now() >= end {
            break hit;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(found, "{t_under} was not delivered to Bob");
}
