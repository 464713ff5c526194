//! The transcript reaches `tracing` with AUTH redacted. In its own test binary: `tracing` caches each callsite's
//! interest process-wide, so a test running in parallel that hits the same callsites before the scoped subscriber
//! is installed could hide them from it.

mod common;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use common::*;
use smtp_smol::{Outcome, TRANSCRIPT_TARGET};

/// A minimal `tracing` subscriber that keeps the events of the transcript target as text.
struct Capture(Arc<Mutex<String>>);

struct Visitor<'a>(&'a mut String);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "[{}={value:?}] ", field.name());
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == TRANSCRIPT_TARGET
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap();
        let _ = write!(text, "{} ", event.metadata().level());
        event.record(&mut Visitor(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn transcript_goes_to_tracing_with_auth_redacted() {
    let s = starttls_auth_server();
    let text = Arc::new(Mutex::new(String::new()));
    let o = starttls_auth_options(&s);
    tracing::subscriber::with_default(Capture(Arc::clone(&text)), || {
        assert_eq!(async_io::block_on(send_one(o, "traced")), Outcome::Accepted);
    });
    let text = text.lock().unwrap();
    assert!(text.contains("C: EHLO"), "{text}");
    assert!(text.contains("C: STARTTLS"), "{text}");
    assert!(text.contains("TLS established"), "{text}");
    assert!(text.contains("C: AUTH PLAIN <redacted>"), "{text}");
    assert!(text.contains("S: 235"), "{text}");
    assert!(
        text.contains("[conn="),
        "each line names its connection: {text}"
    );
    assert!(!text.contains("pa55-w0rd"), "{text}");
    // base64("\0alice\0pa55-w0rd") must not appear either.
    assert!(!text.contains("AGFsaWNlAHBhNTUtdzByZA"), "{text}");
}
