//! Properties over the whole machine: split-invariance, body transparency, and robustness to arbitrary bytes.

mod common;

use std::time::Duration;

use common::*;
use proptest::prelude::*;
use smtp_proto::body::{normalize_line_endings, unstuff};
use smtp_proto::{Client, Config, Credentials, Event, Outcome, TlsPolicy};

/// A full session: AUTH over STARTTLS, then two messages, one with DATA and pipelining and one with BDAT.
/// Each segment is what the server sends before the client must act again.
fn script() -> (Config, Vec<&'static [u8]>) {
    let mut cfg = Config::default();
    cfg.credentials = Some(Credentials::password("alice", "pw"));
    cfg.tls = TlsPolicy::StartTlsRequired;
    let segments: Vec<&'static [u8]> = vec![
        b"220 mx.example.org ESMTP\r\n250-mx.example.org\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n220 2.0.0 ready\r\n",
        // (TLS handshake happens here)
        b"250-mx.example.org\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n235 2.7.0 ok\r\n",
        b"250 2.1.0 ok\r\n550 5.1.1 unknown\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n",
        b"250 2.0.0 queued as A\r\n",
        b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n",
        b"451 4.3.0 try later\r\n250 2.0.0 reset\r\n",
        b"221 2.0.0 bye\r\n",
    ];
    (cfg, segments)
}

/// Drives the script with each segment split at the given points; returns (wire bytes, event log).
fn run(splits: &[Vec<usize>]) -> (Vec<u8>, Vec<String>) {
    let (cfg, segments) = script();
    let now = base_instant();
    let mut client = Client::new(cfg, now);
    let mut wire = Vec::new();
    let mut log = Vec::new();
    let mut messages_sent = 0;
    let pump = |client: &mut Client, wire: &mut Vec<u8>, log: &mut Vec<String>, sent: &mut i32| loop {
        while let Some(b) = client.poll_transmit(now) {
            wire.extend_from_slice(&b);
        }
        let mut acted = false;
        while let Some(e) = client.poll_event() {
            log.push(format!("{e:?}"));
            match e {
                Event::StartTls => {
                    client
                        .tls_established(now)
                        .unwrap_or_else(|e| panic!("{e:?} {log:#?}"));
                    acted = true;
                }
                Event::Ready { .. } => {
                    client
                        .send_mail(envelope("a@x.org", &["b@x.org", "c@x.org", "d@x.org"]))
                        .unwrap();
                    acted = true;
                }
                Event::ReadyForBody { .. } => {
                    client.write_body(b"Subject: t\r\n\r\n.hello\r\n").unwrap();
                    client.finish_body().unwrap();
                    acted = true;
                }
                Event::TransactionComplete(_) => {
                    *sent += 1;
                    if *sent == 1 {
                        client
                            .send_mail(envelope("a@x.org", &["b@x.org"]))
                            .unwrap_or_else(|e| panic!("{e:?} {log:#?}"));
                    } else {
                        client.quit();
                    }
                    acted = true;
                }
                _ => {}
            }
        }
        if !acted {
            break;
        }
    };
    pump(&mut client, &mut wire, &mut log, &mut messages_sent);
    for (segment, cuts) in segments.iter().zip(splits) {
        let mut pieces = Vec::new();
        let mut last = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (segment.len() + 1)).collect();
        cuts.sort_unstable();
        for c in cuts {
            pieces.push(&segment[last..c]);
            last = c;
        }
        pieces.push(&segment[last..]);
        for p in pieces {
            client.receive(now, p);
            // The application reacts only between segments: draining here must not issue commands.
            while let Some(b) = client.poll_transmit(now) {
                wire.extend_from_slice(&b);
            }
        }
        pump(&mut client, &mut wire, &mut log, &mut messages_sent);
    }
    (wire, log)
}

#[test]
fn the_script_runs_to_a_clean_end() {
    let (wire, log) = run(&vec![vec![]; 7]);
    let text = String::from_utf8_lossy(&wire);
    assert!(
        text.starts_with("EHLO localhost\r\nSTARTTLS\r\nEHLO localhost\r\nAUTH PLAIN "),
        "{text}"
    );
    assert!(text.ends_with("RSET\r\nQUIT\r\n"), "{text}");
    assert!(
        log.last().unwrap().contains("Closed { error: None }"),
        "{log:#?}"
    );
    let completes: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("TransactionComplete"))
        .collect();
    assert_eq!(completes.len(), 2);
    assert!(completes[0].contains("PartiallyAccepted"));
    assert!(completes[1].contains("Rejected"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any split of the server's bytes into `receive` calls gives the same events and the same output.
    #[test]
    fn any_split_gives_the_same_session(splits in proptest::collection::vec(proptest::collection::vec(0usize..400, 0..6), 7)) {
        let reference = run(&vec![vec![]; 7]);
        let split = run(&splits);
        prop_assert_eq!(split.0, reference.0);
        prop_assert_eq!(split.1, reference.1);
    }

    /// Whatever the chunking of `write_body`, the DATA payload un-stuffs to the CRLF-normalized body, and the
    /// terminator appears only at the end.
    #[test]
    fn body_is_transparent_for_any_chunking(body in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a')], 0..300),
                                            cuts in proptest::collection::vec(1usize..40, 0..20)) {
        let mut s = Session::ready(plain(), EHLO_PIPELINING);
        s.client.send_mail(envelope("a@x.org", &["b@x.org"])).unwrap();
        s.drain();
        s.server(b"250 ok\r\n250 ok\r\n354 go\r\n");
        s.sent();
        let mut rest = &body[..];
        let mut cuts = cuts.into_iter();
        while !rest.is_empty() {
            let want = cuts.next().unwrap_or(rest.len()).min(rest.len());
            let n = s.client.write_body(&rest[..want]).unwrap();
            prop_assert!(n > 0);
            rest = &rest[n..];
            s.drain();
        }
        s.client.finish_body().unwrap();
        s.drain();
        let payload = s.sent().into_bytes();
        let decoded = unstuff(&payload).expect("a terminated payload");
        let mut expected = normalize_line_endings(&body);
        if !expected.is_empty() && !expected.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        prop_assert_eq!(decoded, expected);
        let first_end = payload.windows(5).position(|w| w == b"\r\n.\r\n");
        if let Some(p) = first_end {
            prop_assert_eq!(p + 5, payload.len());
        }
        s.server(b"250 ok\r\n");
        prop_assert_eq!(s.report().unwrap().outcome, Outcome::Accepted);
    }

    /// No server bytes make the machine panic, buffer without bound, close twice, or transmit after closing.
    #[test]
    fn arbitrary_server_bytes_are_survived(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20),
                                           tls in 0u8..4, ticks in proptest::collection::vec(0u64..120, 0..20)) {
        let mut cfg = Config::default();
        cfg.tls = [TlsPolicy::None, TlsPolicy::StartTlsRequired, TlsPolicy::StartTlsOpportunistic, TlsPolicy::Implicit][tls as usize];
        cfg.credentials = Some(Credentials::password("u", "p"));
        let mut now = base_instant();
        let mut client = Client::new(cfg, now);
        let mut closed = 0;
        let mut ticks = ticks.into_iter();
        for chunk in chunks {
            client.receive(now, &chunk);
            now += Duration::from_secs(ticks.next().unwrap_or(1));
            client.handle_timeout(now);
            let mut sent_after_close = false;
            while let Some(b) = client.poll_transmit(now) {
                if closed > 0 { sent_after_close = true; }
                // No credentials may travel before TLS.
                if !client.is_tls() {
                    prop_assert!(!b.windows(5).any(|w| w == b"AUTH "));
                }
            }
            prop_assert!(!sent_after_close);
            while let Some(e) = client.poll_event() {
                match e {
                    Event::Closed { .. } => closed += 1,
                    Event::StartTls => { let _ = client.tls_established(now); }
                    Event::Ready { .. } => { let _ = client.send_mail(envelope("a@x.org", &["b@x.org"])); }
                    Event::ReadyForBody { .. } => { let _ = client.write_body(b"x"); let _ = client.finish_body(); }
                    Event::TransactionComplete(r) => prop_assert!(!(r.outcome.is_delivered() && r.final_reply.is_none() && r.recipients.iter().all(|x| x.data_reply.is_none()))),
                    _ => {}
                }
            }
            prop_assert!(closed <= 1);
        }
    }
}
