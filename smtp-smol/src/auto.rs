//! [`TlsMode::Auto`]: pick the mode from the port, and switch when the server shows it speaks the other one. The
//! rules are `smtp-blocking`'s ([`TlsMode::first_policy`], [`TlsMode::probe_applies`], [`TlsMode::auto_switch`]);
//! only the waiting is async here.
//!
//! * Port 465: implicit TLS (RFC 8314 §3.3). If the handshake receives a plaintext `220` reply, reconnect with
//!   STARTTLS (required).
//! * Any other port: STARTTLS, required. Unless the port is 25, if no byte arrives within the probe delay an
//!   implicit-TLS attempt starts in parallel, and whichever yields a verified, ready session first wins; the other
//!   is dropped (its socket closed). A STARTTLS attempt that fails in a way that shows the server speaks TLS first
//!   starts the implicit attempt at once.
//!
//! Never plaintext: every attempt requires TLS and verifies the certificate. The choice and its reason go to the
//! transcript; the lines of the parallel attempt reach the transcript sink when that attempt is adopted.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use async_io::Timer;
use smtp_blocking::{Error, ErrorKind, TlsMode};
use smtp_proto::{Stage, TlsPolicy};

use crate::connection::Connection;
use crate::settings::Settings;
use crate::transcript::Transcript;

type Attempt = Pin<Box<dyn Future<Output = Result<Connection, Error>> + Send>>;

enum Second {
    /// The probe delay is running.
    Waiting(Timer),
    Running(Attempt),
    Failed(Error),
    /// The first attempt heard from the server in time: no second attempt.
    NotNeeded,
}

fn attempt(settings: &Arc<Settings>, policy: TlsPolicy, transcript: Transcript) -> Attempt {
    let settings = Arc::clone(settings);
    Box::pin(async move { Connection::open_with(&settings, policy, None, transcript).await })
}

fn adopted(mut conn: Connection, why: String) -> Connection {
    let t = conn.transcript_mut();
    t.go_live();
    let why = format!("auto: {why}");
    t.note(why.clone());
    conn.set_tls_reason(why);
    conn
}

pub(crate) async fn open(settings: Arc<Settings>) -> Result<Connection, Error> {
    let mode = TlsMode::Auto;
    let port = settings.options.port;
    let sink = settings.options.transcript.clone();
    let first_policy = mode.first_policy(port);
    let mut transcript = Transcript::new(sink.clone(), false);
    transcript.note(mode.first_reason(port));
    let seen = Arc::new(AtomicBool::new(false));

    if !mode.probe_applies(port) {
        // 465 (implicit first) and 25 (no probe): one attempt, then at most one switch.
        let first =
            Connection::open_with(&settings, first_policy, Some(Arc::clone(&seen)), transcript)
                .await;
        return match first {
            Ok(mut conn) => {
                conn.set_tls_reason(mode.first_reason(port));
                Ok(conn)
            }
            Err(e) => {
                match mode.auto_switch(port, first_policy, &e, seen.load(Ordering::Relaxed)) {
                    Some((next, why)) => {
                        let mut t = Transcript::new(sink, false);
                        t.note(format!("auto: {why}"));
                        let mut conn = Connection::open_with(&settings, next, None, t).await?;
                        conn.set_tls_reason(format!("auto: {why}"));
                        Ok(conn)
                    }
                    None => Err(e),
                }
            }
        };
    }

    let probe_delay = settings.options.probe_delay;
    let mut first = Some(Box::pin(Connection::open_with(
        &settings,
        first_policy,
        Some(Arc::clone(&seen)),
        transcript,
    )));
    let mut first_error: Option<Error> = None;
    let mut second = Second::Waiting(Timer::after(probe_delay));
    let parallel = |why: String| {
        let mut t = Transcript::new(sink.clone(), true);
        t.note(format!("auto: {why}"));
        Second::Running(attempt(&settings, TlsPolicy::Implicit, t))
    };
    poll_fn(|cx| {
        if let Some(f) = first.as_mut()
            && let Poll::Ready(r) = f.as_mut().poll(cx)
        {
            first = None;
            match r {
                Ok(conn) => {
                    let why = if matches!(second, Second::Running(_)) {
                        "STARTTLS completed a verified TLS session first (implicit TLS was tried in parallel)"
                    } else {
                        "using STARTTLS"
                    };
                    return Poll::Ready(Ok(adopted(conn, why.to_owned())));
                }
                Err(e) => {
                    let switch = mode.auto_switch(port, first_policy, &e, seen.load(Ordering::Relaxed));
                    match (&second, switch) {
                        (Second::Waiting(_) | Second::NotNeeded, Some((_, why))) => second = parallel(why.to_owned()),
                        (Second::Waiting(_) | Second::NotNeeded, None) => return Poll::Ready(Err(e)),
                        (Second::Failed(b), _) => return Poll::Ready(Err(pick(e, b.clone()))),
                        (Second::Running(_), _) => {}
                    }
                    first_error = Some(e);
                }
            }
        }
        if let Second::Waiting(timer) = &mut second
            && Pin::new(timer).poll(cx).is_ready()
        {
            second = if seen.load(Ordering::Relaxed) {
                Second::NotNeeded
            } else {
                parallel(format!(
                    "no greeting on port {port} within {probe_delay:?}: trying implicit TLS in parallel"
                ))
            };
        }
        if let Second::Running(f) = &mut second
            && let Poll::Ready(r) = f.as_mut().poll(cx)
        {
            match r {
                Ok(conn) => {
                    return Poll::Ready(Ok(adopted(
                        conn,
                        "implicit TLS completed a verified TLS session first: using implicit TLS".to_owned(),
                    )));
                }
                Err(e) => {
                    if let Some(a) = first_error.take() {
                        return Poll::Ready(Err(pick(a, e)));
                    }
                    second = Second::Failed(e);
                }
            }
        }
        Poll::Pending
    })
    .await
}

/// Which error to report when both attempts failed: the STARTTLS attempt's, unless it only saw silence (then the
/// implicit attempt's error says more, e.g. an untrusted certificate).
fn pick(starttls: Error, implicit: Error) -> Error {
    let silent = starttls.stage() == Stage::Greeting
        && matches!(
            starttls.kind(),
            ErrorKind::Timeout | ErrorKind::ModeMismatch(_) | ErrorKind::ConnectionClosed
        );
    if silent { implicit } else { starttls }
}
