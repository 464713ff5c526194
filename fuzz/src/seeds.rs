//! Seed inputs for every target: real-shaped server replies (the shared `corpus/replies/` files and hand-written
//! Postfix, Exim, Gmail, Office 365, aiosmtpd and Dovecot LMTP replies), bodies built to break dot-stuffing, command
//! shapes, and complete session scripts.
//!
//! `smtp-proto/tests/corpus_replay.rs` replays these directly, and its ignored test `write_seed_corpus` writes them to
//! `fuzz/corpus/<target>/seed-*` (see `fuzz/README.md`).

use super::session::script::{Delivery, Kind, Script, Setup, Step};
use super::{body, command, reply};

/// The shared corpus of real-shaped replies (`corpus/replies/`).
pub const REAL_REPLIES: [(&str, &[u8]); 11] = [
    (
        "ehlo-15-lines",
        include_bytes!("../../corpus/replies/ehlo--ehlo-15-lines.txt"),
    ),
    (
        "ehlo-exim",
        include_bytes!("../../corpus/replies/ehlo--ehlo-exim.txt"),
    ),
    (
        "ehlo-gmail-submission",
        include_bytes!("../../corpus/replies/ehlo--ehlo-gmail-submission.txt"),
    ),
    (
        "ehlo-office365",
        include_bytes!("../../corpus/replies/ehlo--ehlo-office365.txt"),
    ),
    (
        "ehlo-postfix",
        include_bytes!("../../corpus/replies/ehlo--ehlo-postfix.txt"),
    ),
    (
        "220-banner-gmail",
        include_bytes!("../../corpus/replies/reply--220-banner-gmail.txt"),
    ),
    (
        "250-esc-queued-gmail",
        include_bytes!("../../corpus/replies/reply--250-esc-queued-gmail.txt"),
    ),
    (
        "250-esc-rcpt",
        include_bytes!("../../corpus/replies/reply--250-esc-rcpt.txt"),
    ),
    (
        "250-ok",
        include_bytes!("../../corpus/replies/reply--250-ok.txt"),
    ),
    (
        "354-data",
        include_bytes!("../../corpus/replies/reply--354-data.txt"),
    ),
    (
        "550-multiline-gmail",
        include_bytes!("../../corpus/replies/reply--550-multiline-gmail.txt"),
    ),
];

/// Hand-written replies in the shapes real servers use (host names and addresses are documentation values).
pub const MORE_REPLIES: [(&str, &[u8]); 38] = [
    // Postfix
    ("postfix-220", b"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n"),
    ("postfix-queued", b"250 2.0.0 Ok: queued as 4Bq1Zx3Y2sz9vNL\r\n"),
    ("postfix-relay-denied", b"554 5.7.1 <rcpt@example.net>: Relay access denied\r\n"),
    ("postfix-greylist", b"450 4.2.0 <rcpt@example.net>: Recipient address rejected: Greylisted, see https://postgrey.example/\r\n"),
    ("postfix-timeout-421", b"421 4.4.2 mail.example.org Error: timeout exceeded\r\n"),
    ("postfix-need-mail", b"503 5.5.1 Error: need MAIL command\r\n"),
    ("postfix-auth-failed", b"535 5.7.8 Error: authentication failed: authentication failure\r\n"),
    ("postfix-starttls", b"220 2.0.0 Ready to start TLS\r\n"),
    ("postfix-bye", b"221 2.0.0 Bye\r\n"),
    // Exim
    ("exim-220", b"220 mx.example.net ESMTP Exim 4.96 Mon, 01 Jan 2024 00:00:00 +0000\r\n"),
    ("exim-queued", b"250 OK id=1rAbCd-000123-Ab\r\n"),
    ("exim-verify", b"550-Verification failed for <sender@example.org>\r\n550-Unrouteable address\r\n550 Sender verify failed\r\n"),
    ("exim-try-later", b"451 Temporary local problem - please try later\r\n"),
    ("exim-chunking", b"250- 1234 byte chunk, total 1234\r\n250 OK id=1rAbCd-000123-Ab\r\n"),
    // Gmail
    ("gmail-rate-421", b"421-4.7.0 [203.0.113.1      15] Our system has detected an unusual rate of\r\n421-4.7.0 unsolicited mail originating from your IP address. To protect our\r\n421 4.7.0  https://support.google.com/mail/answer/81126 a1-20020a170906 - gsmtp\r\n"),
    ("gmail-bad-credentials", b"535-5.7.8 Username and Password not accepted. For more information, go to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials a1-20020a170906 - gsmtp\r\n"),
    ("gmail-334-username", b"334 VXNlcm5hbWU6\r\n"),
    ("gmail-235", b"235 2.7.0 Accepted\r\n"),
    ("gmail-xoauth2-error", b"334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\r\n"),
    // Office 365
    ("o365-220", b"220 LO4P123CA0001.outlook.office365.com Microsoft ESMTP MAIL Service ready at Mon, 1 Jan 2024 00:00:00 +0000 08DC0A1B2C3D4E5F\r\n"),
    ("o365-queued", b"250 2.6.0 <id@example.org> [InternalId=123456789, Hostname=LO4P123MB0001.GBRP123.PROD.OUTLOOK.COM] 1234 bytes in 0.012, 100.000 KB/sec Queued mail for delivery\r\n"),
    ("o365-access-denied", b"550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. [LO4P123CA0001.GBRP123.PROD.OUTLOOK.COM]\r\n"),
    ("o365-not-authenticated", b"530 5.7.57 Client not authenticated to send mail. [LO4P123CA0001.GBRP123.PROD.OUTLOOK.COM]\r\n"),
    ("o365-busy", b"451 4.7.500 Server busy. Please try again later from [203.0.113.1]. (S77714) [LO4P123CA0001]\r\n"),
    // aiosmtpd
    ("aiosmtpd-220", b"220 localhost.localdomain Python SMTP 1.4.6\r\n"),
    ("aiosmtpd-ehlo", b"250-localhost.localdomain\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-STARTTLS\r\n250-AUTH LOGIN PLAIN\r\n250 HELP\r\n"),
    ("aiosmtpd-syntax", b"501 Syntax: MAIL FROM: <address>\r\n"),
    ("aiosmtpd-helo-first", b"503 Error: send HELO first\r\n"),
    ("aiosmtpd-auth-required", b"530 5.7.0 Authentication required\r\n"),
    ("aiosmtpd-354", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
    ("aiosmtpd-250", b"250 OK\r\n"),
    ("aiosmtpd-334-empty", b"334 \r\n"),
    ("aiosmtpd-bye", b"221 Bye\r\n"),
    // Dovecot LMTP
    ("dovecot-220", b"220 mail.example.org Dovecot ready.\r\n"),
    ("dovecot-lhlo", b"250-mail.example.org\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n"),
    ("dovecot-saved", b"250 2.0.0 <rcpt1@example.net> 4Fv2Kd1aZWXVRwAA0J78UA Saved\r\n"),
    ("dovecot-no-user", b"550 5.1.1 <nouser@example.net> User doesn't exist: nouser@example.net\r\n"),
    ("dovecot-quota", b"552 5.2.2 <rcpt2@example.net> Quota exceeded (mailbox for user is full)\r\n"),
];

/// Odd but legal or borderline framing.
pub const ODD_REPLIES: [(&str, &[u8]); 8] = [
    ("bare-code", b"250\r\n"),
    (
        "bare-lf",
        b"250-mx.example.org\n250-PIPELINING\n250 8BITMIME\n",
    ),
    ("empty-lines", b"250-\r\n250-\r\n250 \r\n"),
    ("nul-and-cr", b"250 a\0b\rc\r\n"),
    ("enhanced-only", b"550 5.1.1\r\n"),
    ("two-replies", b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"),
    (
        "utf8-text",
        "250 2.0.0 Nachricht angenommen ✓\r\n".as_bytes(),
    ),
    (
        "bidi-control",
        "250 ok \u{202e}evil\u{1b}[2J\r\n".as_bytes(),
    ),
];

/// Extra EHLO replies: the old `AUTH=` form, LIMITS, MT-PRIORITY, SIZE 0, odd spacing and case.
pub const MORE_EHLO: [(&str, &[u8]); 4] = [
    ("ehlo-auth-eq", b"250-mx.example.org\r\n250-AUTH=PLAIN LOGIN\r\n250-auth cram-md5 x-weird_1 plain\r\n250 SIZE 0\r\n"),
    ("ehlo-limits", b"250-mx.example.org\r\n250-LIMITS RCPTMAX=100 MAILMAX=0 RCPTDOMAINMAX=x\r\n250-MT-PRIORITY MIXER\r\n250-DELIVERBY 600\r\n250  REQUIRETLS  \r\n250 X-UNKNOWN a  b\r\n"),
    ("ehlo-refused", b"502 5.5.2 Error: command not recognized\r\n"),
    ("ehlo-lf-only", b"250-mx.example.org\n250-SIZE 18446744073709551616\n250 ETRN\n"),
];

/// Bodies that stress dot-stuffing and line endings (SMTP smuggling shapes included).
pub const BODIES: [(&str, &[u8]); 10] = [
    ("plain", b"Subject: hello\r\n\r\nHello, world.\r\n"),
    ("leading-dots", b".\r\n..\r\n.x\r\nx.\r\n"),
    ("smuggle-lf", b"a\n.\nMAIL FROM:<x@y>\n"),
    ("smuggle-cr", b"a\r.\rRCPT TO:<x@y>\r"),
    ("smuggle-mixed", b"a\r\n.\nb\n.\r\nc\r.\r\nd"),
    ("no-final-eol", b"line one\r\nline two"),
    ("cr-at-end", b"end with cr\r"),
    ("empty", b""),
    ("only-dot", b"."),
    ("binary", b"\0\xff\x80.\r\r\n\n\n.."),
];

/// Every seed: (target, name, bytes).
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, bytes) in REAL_REPLIES.iter().chain(&MORE_REPLIES).chain(&ODD_REPLIES) {
        out.push(("reply", (*name).to_owned(), reply::seed(bytes)));
    }
    // All of a session's replies in one stream, and with small caps.
    let stream: Vec<u8> = MORE_REPLIES
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    out.push((
        "reply",
        "all-in-one-stream".to_owned(),
        reply::seed(&stream),
    ));
    let mut small = vec![1u8, 40, 3];
    small.extend_from_slice(&200u16.to_le_bytes());
    small.push(0);
    small.extend_from_slice(REAL_REPLIES[10].1);
    out.push(("reply", "small-caps".to_owned(), small));

    for (name, bytes) in REAL_REPLIES.iter().take(5).chain(&MORE_EHLO) {
        out.push(("ehlo", (*name).to_owned(), bytes.to_vec()));
    }
    for name in ["aiosmtpd-ehlo", "dovecot-lhlo"] {
        let bytes = MORE_REPLIES
            .iter()
            .find(|(n, _)| *n == name)
            .expect("listed")
            .1;
        out.push(("ehlo", name.to_owned(), bytes.to_vec()));
    }

    for (i, (name, bytes)) in BODIES.iter().enumerate() {
        out.push((
            "body",
            format!("data-{name}"),
            body::seed(true, bytes, [0, 1, 2, 3, 7][i % 5]),
        ));
        out.push((
            "body",
            format!("bdat-{name}"),
            body::seed(false, bytes, [0, 1, 5][i % 3]),
        ));
    }

    for (name, bytes) in command::seeds() {
        out.push(("command", name.to_owned(), bytes));
    }

    for (name, script) in session_scripts() {
        out.push(("session", name, script.encode()));
    }
    out
}

fn auto(kind: Kind, flags: u8, hold: bool) -> Step {
    Step::Auto {
        kind,
        flags,
        delivery: Delivery {
            hold,
            cuts: Vec::new(),
        },
    }
}

fn positive(n: usize, flags: u8) -> Vec<Step> {
    (0..n).map(|_| auto(Kind::Positive, flags, false)).collect()
}

fn raw(bytes: &[u8]) -> Step {
    Step::Raw {
        bytes: bytes.to_vec(),
        delivery: Delivery::default(),
    }
}

fn reply_named(name: &str) -> &'static [u8] {
    REAL_REPLIES
        .iter()
        .chain(&MORE_REPLIES)
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no reply {name}"))
        .1
}

/// The STARTTLS + AUTH + pipelining + chunking setup the issue describes.
pub fn full_setup() -> Setup {
    Setup {
        tls: 1,
        credentials: 1,
        allow_insecure_auth: false,
        pipelining: true,
        chunking: true,
        lmtp: false,
        small_limits: false,
        small_body_buffer: false,
        overall_deadline: false,
        auto_handshake: true,
        port_465: false,
        declare_size: false,
        eight_bit: false,
        back_to_back: false,
        bodies: [BODIES[0].1.to_vec(), BODIES[4].1.to_vec()],
        write_size: 0,
    }
}

/// Complete session scripts (happy paths in every mode, and the classic faults).
pub fn session_scripts() -> Vec<(String, Script)> {
    // EHLO flags: PIPELINING CHUNKING STARTTLS AUTH(PLAIN LOGIN) 8BITMIME.. ENHANCEDSTATUSCODES..
    const ALL: u8 = 0b1100_1111;
    let mut out = Vec::new();
    let s = |setup: Setup, steps: Vec<Step>| Script { setup, steps };

    out.push(("full-bdat".to_owned(), s(full_setup(), positive(24, ALL))));
    let mut setup = full_setup();
    setup.chunking = false;
    out.push(("full-data".to_owned(), s(setup.clone(), positive(24, ALL))));
    // Pipelined replies held and delivered together, cut in odd places.
    let mut steps = positive(5, ALL);
    for _ in 0..4 {
        steps.push(auto(Kind::Positive, ALL, true));
    }
    steps.push(Step::Auto {
        kind: Kind::Positive,
        flags: ALL,
        delivery: Delivery {
            hold: false,
            cuts: vec![3, 17, 40],
        },
    });
    steps.extend(positive(12, ALL));
    out.push(("full-data-held".to_owned(), s(setup.clone(), steps)));
    setup.small_body_buffer = true;
    setup.write_size = 5;
    setup.bodies = [vec![b'x'; 100], BODIES[1].1.to_vec()];
    out.push(("data-back-pressure".to_owned(), s(setup, positive(30, ALL))));
    let mut setup = full_setup();
    setup.small_body_buffer = true;
    setup.bodies = [vec![b'y'; 120], BODIES[3].1.to_vec()];
    out.push(("bdat-back-pressure".to_owned(), s(setup, positive(40, ALL))));

    // Plaintext, no pipelining: one command at a time.
    let mut setup = full_setup();
    setup.tls = 0;
    setup.credentials = 0;
    setup.pipelining = false;
    setup.chunking = false;
    out.push((
        "plain-lockstep".to_owned(),
        s(setup.clone(), positive(20, 0)),
    ));
    setup.allow_insecure_auth = true;
    setup.credentials = 1;
    out.push((
        "plain-insecure-auth".to_owned(),
        s(setup.clone(), positive(20, ALL & !4)),
    ));
    setup.allow_insecure_auth = false;
    out.push((
        "plain-auth-refused".to_owned(),
        s(setup, positive(4, ALL & !4)),
    ));

    // LMTP: one verdict per accepted recipient.
    let mut setup = full_setup();
    setup.lmtp = true;
    setup.tls = 0;
    setup.credentials = 0;
    setup.chunking = false;
    let mut steps = positive(5, ALL);
    steps.push(auto(Kind::Permanent, ALL, false));
    steps.extend(positive(12, ALL));
    out.push(("lmtp-data".to_owned(), s(setup.clone(), steps)));
    setup.chunking = true;
    out.push(("lmtp-bdat".to_owned(), s(setup, positive(20, ALL))));

    // Implicit TLS and the OAuth mechanisms.
    let mut setup = full_setup();
    setup.tls = 3;
    setup.credentials = 2;
    setup.port_465 = true;
    out.push((
        "implicit-xoauth2".to_owned(),
        s(setup.clone(), positive(20, ALL | 0b10_0000)),
    ));
    setup.auto_handshake = false;
    let mut steps = vec![Step::Handshake { ok: true }];
    steps.extend(positive(20, ALL | 0b10_0000));
    out.push((
        "implicit-manual-handshake".to_owned(),
        s(setup.clone(), steps),
    ));
    out.push((
        "implicit-plaintext-server".to_owned(),
        s(setup.clone(), vec![raw(reply_named("postfix-220"))]),
    ));
    out.push((
        "implicit-no-greeting-465".to_owned(),
        s(
            setup,
            vec![Step::Handshake { ok: true }, Step::FireDeadline],
        ),
    ));

    // AUTH LOGIN (only AUTH=LOGIN offered) and CRAM-MD5 challenges; an XOAUTH2 error challenge.
    let mut setup = full_setup();
    setup.chunking = false;
    out.push((
        "auth-login".to_owned(),
        s(setup.clone(), positive(26, ALL | 0b11_0000)),
    ));
    out.push((
        "auth-cram-md5".to_owned(),
        s(setup.clone(), positive(26, ALL | 0b01_0000)),
    ));
    setup.credentials = 2;
    let mut steps = positive(4, ALL | 0b10_0000);
    steps.push(raw(reply_named("gmail-xoauth2-error")));
    steps.push(raw(reply_named("gmail-bad-credentials")));
    out.push(("auth-xoauth2-error".to_owned(), s(setup, steps)));

    // Faults.
    let setup = full_setup();
    let mut steps = positive(5, ALL);
    steps.push(auto(Kind::Closing, ALL, false));
    out.push(("fault-421-at-mail".to_owned(), s(setup.clone(), steps)));
    let mut steps = positive(5, ALL);
    steps.extend([
        auto(Kind::Positive, ALL, false),
        auto(Kind::Transient, ALL, false),
    ]);
    steps.extend(positive(2, ALL));
    steps.push(auto(Kind::Permanent, ALL, false));
    steps.extend(positive(6, ALL));
    out.push((
        "fault-partial-then-rejected".to_owned(),
        s(setup.clone(), steps),
    ));
    let mut steps = positive(9, ALL);
    steps.push(Step::Eof);
    out.push((
        "fault-eof-before-verdict".to_owned(),
        s(setup.clone(), steps),
    ));
    let mut steps = positive(9, ALL);
    steps.push(Step::Tick { seconds: 30 });
    steps.push(Step::FireDeadline);
    out.push((
        "fault-deadline-before-verdict".to_owned(),
        s(setup.clone(), steps),
    ));
    out.push((
        "fault-greeting-timeout".to_owned(),
        s(
            setup.clone(),
            vec![Step::Tick { seconds: 10 }, Step::FireDeadline],
        ),
    ));
    let mut steps = positive(2, ALL);
    steps.push(auto(Kind::Positive, ALL, true));
    steps.push(raw(b"250 injected\r\n"));
    out.push((
        "fault-starttls-injection".to_owned(),
        s(setup.clone(), steps),
    ));
    let mut manual = setup.clone();
    manual.auto_handshake = false;
    let mut steps = positive(3, ALL);
    steps.push(raw(b"250 injected after the 220\r\n"));
    out.push((
        "fault-injection-before-handshake".to_owned(),
        s(manual, steps),
    ));
    let mut steps = positive(5, ALL);
    steps.extend([
        auto(Kind::Wrong, ALL, false),
        auto(Kind::BareLf, ALL, false),
        auto(Kind::Multiline, ALL, false),
    ]);
    steps.extend(positive(10, ALL));
    out.push(("fault-wrong-codes".to_owned(), s(setup.clone(), steps)));
    let mut small = setup.clone();
    small.small_limits = true;
    let mut steps = positive(2, ALL);
    steps.push(Step::Flood {
        shape: 1,
        len: 2000,
    });
    out.push(("fault-flood-lines".to_owned(), s(small, steps)));
    let mut steps = positive(1, ALL);
    steps.push(Step::Flood {
        shape: 0,
        len: 8999,
    });
    out.push(("fault-flood-long-line".to_owned(), s(setup.clone(), steps)));
    let mut steps = vec![auto(Kind::Permanent, ALL, false)];
    steps.extend(positive(2, ALL));
    out.push(("fault-greeting-554".to_owned(), s(setup.clone(), steps)));
    let mut steps = positive(5, ALL);
    steps.extend([
        Step::Noop,
        Step::Misuse { which: 0 },
        Step::Misuse { which: 2 },
        Step::Quit,
    ]);
    steps.extend(positive(6, ALL));
    out.push(("app-misuse-and-quit".to_owned(), s(setup.clone(), steps)));
    let mut overall = setup;
    overall.overall_deadline = true;
    let mut steps = positive(5, ALL);
    steps.extend([Step::Tick { seconds: 3000 }, Step::FireDeadline]);
    out.push(("fault-overall-deadline".to_owned(), s(overall, steps)));

    // Real servers' replies as raw bytes.
    let mut setup = full_setup();
    setup.tls = 2;
    setup.credentials = 0;
    setup.chunking = false;
    let steps = vec![
        raw(reply_named("220-banner-gmail")),
        raw(reply_named("ehlo-postfix")),
        raw(reply_named("postfix-starttls")),
        raw(reply_named("ehlo-gmail-submission")),
        raw(&[
            reply_named("250-esc-rcpt"),
            reply_named("250-esc-rcpt"),
            reply_named("postfix-greylist"),
        ]
        .concat()),
        raw(&[reply_named("dovecot-no-user"), reply_named("354-data")].concat()),
        raw(reply_named("250-esc-queued-gmail")),
        raw(&[reply_named("250-ok"), reply_named("550-multiline-gmail")].concat()),
        raw(reply_named("aiosmtpd-250")),
        raw(reply_named("postfix-bye")),
    ];
    out.push(("real-gmail-postfix".to_owned(), s(setup.clone(), steps)));
    let mut lmtp = setup.clone();
    lmtp.lmtp = true;
    lmtp.tls = 0;
    let steps = vec![
        raw(reply_named("dovecot-220")),
        raw(reply_named("dovecot-lhlo")),
        raw(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 <rcpt2@example.net> User doesn't exist: rcpt2@example.net\r\n250 2.1.5 OK\r\n354 OK\r\n"),
        raw(&[reply_named("dovecot-saved"), reply_named("dovecot-quota")].concat()),
        raw(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 OK\r\n"),
        raw(reply_named("dovecot-saved")),
        raw(b"221 2.0.0 Bye\r\n"),
    ];
    out.push(("real-dovecot-lmtp".to_owned(), s(lmtp, steps)));
    let mut aio = setup;
    aio.tls = 0;
    aio.pipelining = false;
    let steps = vec![
        raw(reply_named("aiosmtpd-220")),
        raw(reply_named("aiosmtpd-ehlo")),
        raw(reply_named("aiosmtpd-250")),
        raw(reply_named("aiosmtpd-250")),
        raw(reply_named("o365-not-authenticated")),
        raw(reply_named("aiosmtpd-250")),
        raw(reply_named("aiosmtpd-354")),
        raw(reply_named("o365-queued")),
        raw(reply_named("aiosmtpd-250")),
        raw(reply_named("aiosmtpd-250")),
        raw(reply_named("aiosmtpd-354")),
        raw(reply_named("exim-queued")),
        raw(reply_named("aiosmtpd-bye")),
    ];
    out.push(("real-aiosmtpd-lockstep".to_owned(), s(aio, steps)));
    out
}
