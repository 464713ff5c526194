//! Diagnosing TLS-mode and port mistakes from what the peer actually sent.
//!
//! Go's `net/smtp` pointed at an implicit-TLS port waits for a greeting that never comes and reports a timeout. The
//! classifier below lets the core (greeting phase) and the adapters (TLS handshake) say what was observed instead.

use std::fmt;

/// What the first bytes from a peer look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerSpeaks {
    /// Nothing was received.
    Nothing,
    /// A TLS record header: content type 0x14..=0x18 followed by major version 3 (RFC 8446 §5.1).
    TlsRecord,
    /// Three digits and a space, hyphen or line end: an SMTP reply, typically a `220` greeting.
    SmtpReply,
    /// Too few bytes to tell yet.
    Undecided,
    /// Something else.
    Other,
}

/// Classifies the first bytes a peer sent on a connection.
pub fn classify(first: &[u8]) -> PeerSpeaks {
    match first {
        [] => PeerSpeaks::Nothing,
        [t, ..] if (0x14..=0x18).contains(t) => match first.get(1) {
            None => PeerSpeaks::Undecided,
            Some(3) => PeerSpeaks::TlsRecord,
            Some(_) => PeerSpeaks::Other,
        },
        [d, ..] if d.is_ascii_digit() => {
            let digits = first
                .iter()
                .take(3)
                .take_while(|b| b.is_ascii_digit())
                .count();
            match (digits, first.get(3)) {
                (3, Some(b' ' | b'-' | b'\r' | b'\n')) => PeerSpeaks::SmtpReply,
                (n, None) if n == first.len() => PeerSpeaks::Undecided,
                _ => PeerSpeaks::Other,
            }
        }
        _ => PeerSpeaks::Other,
    }
}

/// Ports conventionally used for implicit TLS submission (RFC 8314 §3.3).
pub fn is_implicit_tls_port(port: u16) -> bool {
    port == 465
}

/// A diagnosed mismatch between the configured TLS mode and what the server speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// No greeting arrived on a port that conventionally expects implicit TLS.
    ImplicitTlsExpected {
        /// The port.
        port: u16,
    },
    /// The server sent TLS records while the client waited for a plaintext greeting.
    ServerSpeaksTls,
    /// A TLS handshake received a plaintext SMTP reply: the server wants plaintext first (STARTTLS).
    ServerSpeaksPlaintext {
        /// The start of what was received (at most one line, for the message).
        observed: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ImplicitTlsExpected { port } => write!(
                f,
                "no greeting from the server on port {port}; this port most likely expects implicit TLS \
                 (smtps://, TLS mode `implicit`): connect with implicit TLS or use port 587 with STARTTLS"
            ),
            Self::ServerSpeaksTls => f.write_str(
                "the server answered with TLS records instead of an SMTP greeting; this port expects implicit \
                 TLS (smtps://, TLS mode `implicit`)",
            ),
            Self::ServerSpeaksPlaintext { observed } => write!(
                f,
                "the TLS handshake received a plaintext SMTP reply ({observed:?}); this server speaks \
                 plaintext SMTP first: use STARTTLS (smtp://, TLS mode `starttls`) instead of implicit TLS"
            ),
        }
    }
}

/// The first line of `bytes`, printable, at most 60 characters: for messages that quote what the peer sent.
pub fn excerpt(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line)
        .chars()
        .filter(|c| !c.is_control())
        .take(60)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(classify(b""), PeerSpeaks::Nothing);
        assert_eq!(classify(b"220 mx ESMTP\r\n"), PeerSpeaks::SmtpReply);
        assert_eq!(classify(b"220-mx\r\n"), PeerSpeaks::SmtpReply);
        assert_eq!(classify(b"22"), PeerSpeaks::Undecided);
        assert_eq!(
            classify(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            PeerSpeaks::TlsRecord
        );
        assert_eq!(classify(&[0x15, 0x03, 0x03]), PeerSpeaks::TlsRecord);
        assert_eq!(classify(&[0x16]), PeerSpeaks::Undecided);
        assert_eq!(classify(b"HTTP/1.1 400"), PeerSpeaks::Other);
        assert_eq!(classify(b"2x0 "), PeerSpeaks::Other);
    }

    #[test]
    fn messages_name_the_fix() {
        let m = Mismatch::ImplicitTlsExpected { port: 465 }.to_string();
        assert!(m.contains("implicit TLS (smtps://"), "{m}");
        let m = Mismatch::ServerSpeaksPlaintext {
            observed: excerpt(b"220 mx ESMTP\r\n"),
        }
        .to_string();
        assert!(m.contains("use STARTTLS"), "{m}");
        assert!(m.contains("220 mx ESMTP"), "{m}");
    }
}
