//! Target `ehlo`: [`Capabilities::parse_ehlo`] on raw bytes (the whole input is the reply).
//!
//! Invariants:
//! - it fails exactly when `parse_reply` fails or finds no complete reply, and otherwise equals
//!   `Capabilities::from_ehlo` of that reply (nothing advertised for a non-2yz reply);
//! - every known extension is reported supported exactly when an independent reading of the lines finds its keyword
//!   (case-insensitive, first word of a line after the first; `AUTH=` counts as AUTH);
//! - `size()` is a nonzero number from a line `SIZE <digits>`; `limits()` values are nonzero;
//! - mechanism names are 1-20 of `A-Z 0-9 - _`, without duplicates, and only with AUTH advertised;
//! - the domain and every string handed out are printable (no control character);
//! - unknown keywords are upper-cased ehlo-keywords that are not known extensions.

use smtp_proto::framer::parse_reply;
use smtp_proto::{Capabilities, Extension, Reply};

use super::reply::check_printable;

/// Every extension the core knows, with its keyword.
pub const EXTENSIONS: [(Extension, &str); 16] = [
    (Extension::Size, "SIZE"),
    (Extension::Pipelining, "PIPELINING"),
    (Extension::EightBitMime, "8BITMIME"),
    (Extension::SmtpUtf8, "SMTPUTF8"),
    (Extension::Chunking, "CHUNKING"),
    (Extension::BinaryMime, "BINARYMIME"),
    (Extension::Dsn, "DSN"),
    (Extension::EnhancedStatusCodes, "ENHANCEDSTATUSCODES"),
    (Extension::StartTls, "STARTTLS"),
    (Extension::Auth, "AUTH"),
    (Extension::RequireTls, "REQUIRETLS"),
    (Extension::Limits, "LIMITS"),
    (Extension::MtPriority, "MT-PRIORITY"),
    (Extension::DeliverBy, "DELIVERBY"),
    (Extension::Etrn, "ETRN"),
    (Extension::Vrfy, "VRFY"),
];

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let parsed = Capabilities::parse_ehlo(data);
    match parse_reply(data) {
        Ok(Some((reply, _))) => {
            let caps = parsed.expect("parse_ehlo failed on a complete reply");
            assert_eq!(caps, Capabilities::from_ehlo(&reply));
            check_capabilities(&caps, &reply);
        }
        Ok(None) | Err(_) => assert!(
            parsed.is_err(),
            "parse_ehlo succeeded without a complete reply"
        ),
    }
}

/// Checks capabilities against an independent reading of the reply they came from.
pub fn check_capabilities(caps: &Capabilities, reply: &Reply) {
    // (A tab inside the first word is shown as a space by the sanitizer, so no "no space" check here.)
    check_printable(caps.domain());
    if !reply.is_positive_completion() {
        assert_eq!(
            *caps,
            Capabilities::none(),
            "a {} reply advertised something",
            reply.code()
        );
        return;
    }
    // The first word of each line after the first, spaces trimmed.
    let keywords: Vec<Vec<u8>> = reply
        .lines()
        .skip(1)
        .map(|line| {
            let word = line
                .split(|&b| b == b' ')
                .find(|w| !w.is_empty())
                .unwrap_or_default();
            word.to_ascii_uppercase()
        })
        .collect();
    for (ext, keyword) in EXTENSIONS {
        let advertised = keywords.iter().any(|k| {
            k == keyword.as_bytes() || (ext == Extension::Auth && k.starts_with(b"AUTH="))
        });
        assert_eq!(caps.supports(ext), advertised, "{keyword} in {reply:?}");
    }
    if let Some(size) = caps.size() {
        assert!(size > 0);
        assert!(caps.supports(Extension::Size));
        let text = size.to_string();
        assert!(
            reply.lines().skip(1).any(|l| {
                let words: Vec<&[u8]> = l.split(|&b| b == b' ').filter(|w| !w.is_empty()).collect();
                words.len() >= 2
                    && words[0].eq_ignore_ascii_case(b"SIZE")
                    && words[1]
                        .iter()
                        .skip_while(|&&b| b == b'0')
                        .eq(text.as_bytes().iter())
            }),
            "SIZE {size} not in {reply:?}"
        );
    }
    let limits = caps.limits();
    for v in [limits.rcpt_max, limits.mail_max, limits.rcpt_domain_max]
        .into_iter()
        .flatten()
    {
        assert!(v > 0);
        assert!(caps.supports(Extension::Limits));
    }
    let mechanisms = caps.auth_mechanisms();
    if !mechanisms.is_empty() {
        assert!(caps.supports(Extension::Auth));
    }
    for (i, m) in mechanisms.iter().enumerate() {
        let name = m.as_str();
        assert!(
            (1..=20).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_uppercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || b == b'_'),
            "mechanism {name:?}"
        );
        assert!(!mechanisms[..i].contains(m), "duplicate mechanism {name}");
    }
    if let Some(profile) = caps.mt_priority_profile() {
        check_printable(profile);
        assert!(caps.supports(Extension::MtPriority));
    }
    for (keyword, params) in caps.other() {
        assert!(
            keyword
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
                && keyword
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-'),
            "keyword {keyword:?}"
        );
        assert!(
            !EXTENSIONS.iter().any(|(_, k)| k == keyword),
            "known keyword {keyword} in other()"
        );
        assert!(
            keywords.iter().any(|k| k == keyword.as_bytes()),
            "{keyword} was not advertised"
        );
        for p in params {
            check_printable(p);
            assert!(!p.is_empty(), "empty parameter of {keyword}");
        }
    }
}
