//! Model-based state-machine tests: proptest generates what a server says, from a grammar of valid and invalid
//! replies, plus time and application actions, and drives the client through the same harness and server model as
//! the `session` fuzz target (`fuzz/src/session/`), so every fuzz invariant is checked here too, on stable, over
//! thousands of cases: bounded buffering, `Closed` once, nothing after it, no credentials before TLS, a valid command
//! stream, replies matched in RFC 2920 order, deadlines armed while waiting, honest outcomes.
//!
//! On top of those invariants, two properties check the model's predictions:
//! - with only right answers (in any split, with any pause short of a deadline), every configuration ends with both
//!   messages accepted and a clean QUIT;
//! - one fault at any point (421, EOF, a deadline, an over-long line, a garbage line) ends the session with exactly
//!   the typed error the model predicts, and no message is reported accepted after the fault.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code, unreachable_pub, missing_docs)]
mod targets;

use proptest::prelude::*;
use smtp_proto::{ErrorKind, Outcome, ReplyError};
use targets::session::script::{Delivery, Kind, Script, Setup, Step};
use targets::session::{Summary, run_script};

/// EHLO flags: PIPELINING, CHUNKING, STARTTLS, AUTH, 8BITMIME/SMTPUTF8/SIZE, ENHANCEDSTATUSCODES/DSN; bits 4-5 pick
/// the mechanisms (2: XOAUTH2 OAUTHBEARER PLAIN, which every credential kind can use).
const EVERYTHING: u8 = 0b1110_1111;

fn body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => Just(&b"text"[..]),
        3 => Just(&b"\r\n"[..]),
        2 => Just(&b"."[..]),
        1 => Just(&b"\n"[..]),
        1 => Just(&b"\r"[..]),
        1 => Just(&b"\r\n.\r\n"[..]),
        1 => Just(&b"\0\xff"[..]),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        (
            0u8..4,
            0u8..3,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            body(),
            body(),
            prop_oneof![Just(0u8), 1u8..40],
        ),
    )
        .prop_map(
            |(
                (tls, credentials, allow_insecure_auth, pipelining, chunking, lmtp),
                (small_limits, small_body_buffer, overall_deadline, auto_handshake, port_465),
                (declare_size, eight_bit, back_to_back, b0, b1, write_size),
            )| Setup {
                tls,
                credentials,
                allow_insecure_auth,
                pipelining,
                chunking,
                lmtp,
                small_limits,
                small_body_buffer,
                overall_deadline,
                auto_handshake,
                port_465,
                declare_size,
                eight_bit,
                back_to_back,
                bodies: [b0, b1],
                write_size,
            },
        )
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        prop::bool::weighted(0.2),
        prop::collection::vec(any::<u16>(), 0..3),
    )
        .prop_map(|(hold, cuts)| Delivery { hold, cuts })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        12 => Just(Kind::Positive),
        2 => Just(Kind::Multiline),
        2 => Just(Kind::BareLf),
        1 => Just(Kind::OddPositive),
        2 => Just(Kind::Transient),
        2 => Just(Kind::Permanent),
        1 => Just(Kind::Wrong),
        1 => Just(Kind::Closing),
    ]
}

/// The grammar of what happens next: mostly the server model's replies (right codes, wrong codes, 4yz/5yz, 421,
/// multiline, bare LF), plus hand-built replies with any code, garbage, floods, EOF, time and application calls.
fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        40 => (kind(), prop_oneof![Just(EVERYTHING), any::<u8>()], delivery())
            .prop_map(|(kind, flags, delivery)| Step::Auto { kind, flags, delivery }),
        3 => (0u16..1000, any::<u8>(), prop::collection::vec(prop_oneof![Just(b'a'), Just(b' '), Just(b'-'), Just(b'\r'), any::<u8>()], 0..20), any::<bool>(), delivery())
            .prop_map(|(code, lines, text, bare_lf, delivery)| Step::Reply { code, lines, text, bare_lf, delivery }),
        2 => (prop::collection::vec(prop_oneof![Just(b'2'), Just(b'5'), Just(b'0'), Just(b' '), Just(b'-'), Just(b'\n'), Just(b'\r'), any::<u8>()], 0..40), delivery())
            .prop_map(|(bytes, delivery)| Step::Raw { bytes, delivery }),
        1 => (0u8..4, 0u16..9000).prop_map(|(shape, len)| Step::Flood { shape, len }),
        1 => Just(Step::Eof),
        3 => prop_oneof![0u16..20, 0u16..4000].prop_map(|seconds| Step::Tick { seconds }),
        1 => Just(Step::FireDeadline),
        2 => prop::bool::weighted(0.8).prop_map(|ok| Step::Handshake { ok }),
        1 => Just(Step::Noop),
        1 => Just(Step::Quit),
        1 => any::<u8>().prop_map(|which| Step::Misuse { which }),
    ]
}

/// A setup whose happy path must succeed: the server offers what the client needs, AUTH only where allowed.
fn happy_setup() -> impl Strategy<Value = Setup> {
    setup().prop_map(|mut s| {
        if s.tls == 0 && s.credentials != 0 {
            s.allow_insecure_auth = true;
        }
        s.small_limits = false; // the EHLO reply with every extension is longer than 8 lines
        s.auto_handshake = true;
        s.overall_deadline = false;
        s
    })
}

/// Right answers only, each in any split, with pauses shorter than any deadline.
fn happy_steps() -> impl Strategy<Value = Vec<Step>> {
    let answer = (
        prop::collection::vec(any::<u16>(), 0..3),
        prop::option::weighted(0.2, 0u16..5),
    )
        .prop_map(|(cuts, pause)| {
            let mut steps: Vec<Step> = pause
                .map(|seconds| Step::Tick { seconds })
                .into_iter()
                .collect();
            steps.push(Step::Auto {
                kind: Kind::Positive,
                flags: EVERYTHING,
                delivery: Delivery { hold: false, cuts },
            });
            steps
        });
    prop::collection::vec(answer, 60).prop_map(|s| s.concat())
}

fn outcomes(summary: &Summary) -> Vec<Outcome> {
    summary.reports.iter().map(|r| r.outcome).collect()
}

/// Mostly right answers (split anywhere, sometimes held to make one read of several replies), short pauses and
/// harmless application calls: this takes sessions deep (TLS, AUTH, both transactions) before the hostile part.
fn mostly_right() -> impl Strategy<Value = Step> {
    prop_oneof![
        30 => (prop::bool::weighted(0.1), prop::collection::vec(any::<u16>(), 0..3))
            .prop_map(|(hold, cuts)| Step::Auto { kind: Kind::Positive, flags: EVERYTHING, delivery: Delivery { hold, cuts } }),
        1 => (prop_oneof![Just(Kind::Multiline), Just(Kind::BareLf), Just(Kind::Transient), Just(Kind::Permanent)], delivery())
            .prop_map(|(kind, delivery)| Step::Auto { kind, flags: EVERYTHING, delivery }),
        2 => (0u16..5).prop_map(|seconds| Step::Tick { seconds }),
        1 => Just(Step::Noop),
        1 => any::<u8>().prop_map(|which| Step::Misuse { which }),
    ]
}

/// Setups: mostly ones whose happy path works, sometimes anything.
fn any_setup() -> impl Strategy<Value = Setup> {
    prop_oneof![3 => happy_setup(), 1 => setup()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2500, max_shrink_iters: 4000, ..ProptestConfig::default() })]

    /// Any setup, a mostly-right prefix of any length, then anything from the grammar: every invariant of the
    /// session harness holds.
    #[test]
    fn grammar_sessions_keep_every_invariant(
        setup in any_setup(),
        prefix in prop::collection::vec(mostly_right(), 0..40),
        tail in prop::collection::vec(step(), 0..24),
    ) {
        let steps = [prefix, tail].concat();
        // (run_script panics, with the step and the wire so far, when an invariant breaks.)
        let summary = run_script(&Script { setup, steps });
        prop_assert!(summary.reports.iter().all(|r| !r.outcome.is_delivered() || r.accepted_count() > 0));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The model's prediction for right answers: two messages accepted, a clean QUIT, in every configuration.
    #[test]
    fn right_answers_deliver_both_messages(setup in happy_setup(), steps in happy_steps()) {
        let script = Script { setup, steps };
        let summary = run_script(&script);
        prop_assert_eq!(outcomes(&summary), vec![Outcome::Accepted, Outcome::Accepted], "{}", script.describe());
        prop_assert!(summary.closed.is_none(), "{:?}\n{}", summary.closed, script.describe());
        prop_assert!(summary.wire.ends_with(b"QUIT\r\n"));
        prop_assert!(summary.ready);
    }

    /// One fault after `k` right answers ends the session with the predicted error; nothing is accepted after it.
    #[test]
    fn one_fault_ends_the_session_as_predicted(setup in happy_setup(), k in 0usize..30, fault in 0u8..5) {
        let answer = || Step::Auto { kind: Kind::Positive, flags: EVERYTHING, delivery: Delivery::default() };
        // How many replies the whole session takes without a fault.
        let full = run_script(&Script { setup: setup.clone(), steps: (0..60).map(|_| answer()).collect() });
        let mut steps: Vec<Step> = (0..k).map(|_| answer()).collect();
        let before = run_script(&Script { setup: setup.clone(), steps: steps.clone() });
        prop_assume!(before.open_at_end && k < full.replies);
        let quitting = before.wire.ends_with(b"QUIT\r\n");
        let greeting_on_465 = k == 0 && setup.port_465 && setup.tls != 3;
        steps.push(match fault {
            0 => Step::Auto { kind: Kind::Closing, flags: 0, delivery: Delivery::default() },
            1 => Step::Eof,
            2 => Step::FireDeadline,
            3 => Step::Flood { shape: 0, len: 8999 },
            _ => Step::Raw { bytes: b"hello there\r\n".to_vec(), delivery: Delivery::default() },
        });
        steps.extend((0..40).map(|_| answer()));
        let script = Script { setup, steps };
        let summary = run_script(&script);
        let kind = summary.closed.as_ref().map(|e| e.kind().clone());
        // After QUIT, a 421, an EOF or the deadline end the session as the QUIT would.
        let expected = match fault {
            0..=2 if quitting => None,
            0 => Some(ErrorKind::ServiceNotAvailable),
            1 => Some(ErrorKind::ConnectionClosed),
            2 if greeting_on_465 => Some(ErrorKind::ModeMismatch(smtp_proto::Mismatch::ImplicitTlsExpected { port: 465 })),
            2 => Some(ErrorKind::Timeout),
            _ => Some(ErrorKind::Reply(ReplyError::LineTooLong { limit: 4096 })),
        };
        if fault == 4 {
            prop_assert!(matches!(kind, Some(ErrorKind::Reply(ReplyError::Malformed { .. }))), "{:?}\n{}", kind, script.describe());
        } else {
            prop_assert_eq!(&kind, &expected, "{}", script.describe());
        }
        // Nothing is accepted that was not accepted before the fault.
        let accepted_before = before.reports.iter().filter(|r| r.outcome.is_delivered()).count();
        let accepted_after = summary.reports.iter().filter(|r| r.outcome.is_delivered()).count();
        prop_assert_eq!(accepted_after, accepted_before, "{}", script.describe());
    }
}
