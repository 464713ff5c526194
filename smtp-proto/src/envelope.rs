//! The envelope of one transaction: reverse path, recipients, and their ESMTP parameters.

use crate::path::{Address, BodyType, MailParameters, RcptParameters, ReversePath};

/// One recipient with its RCPT parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The forward path.
    pub address: Address,
    /// NOTIFY, ORCPT and other RCPT parameters.
    pub params: RcptParameters,
}

impl From<Address> for Recipient {
    fn from(address: Address) -> Self {
        Self {
            address,
            params: RcptParameters::default(),
        }
    }
}

/// What [`crate::Client::send_mail`] sends: MAIL FROM, the RCPTs, and hints about the body.
///
/// The machine adds what the server needs and the envelope implies: `SMTPUTF8` when an address is non-ASCII,
/// `SIZE` when [`Envelope::size`] is known and the server takes it, `BODY=` from [`MailParameters::body`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path (`MAIL FROM:<...>`); `ReversePath::Null` for bounces.
    pub from: ReversePath,
    /// The recipients, in order; results are reported in this order.
    pub recipients: Vec<Recipient>,
    /// MAIL parameters (BODY, RET, ENVID, REQUIRETLS, MT-PRIORITY, extra).
    pub params: MailParameters,
    /// The message size in bytes, when known in advance (sent as `SIZE=` and checked against the server's limit).
    pub size: Option<u64>,
}

impl Envelope {
    /// An envelope with default parameters.
    pub fn new(
        from: impl Into<ReversePath>,
        recipients: impl IntoIterator<Item = Address>,
    ) -> Self {
        Self {
            from: from.into(),
            recipients: recipients.into_iter().map(Recipient::from).collect(),
            params: MailParameters::default(),
            size: None,
        }
    }

    /// Sets the known message size.
    #[must_use]
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// Declares the body type (7BIT, 8BITMIME, BINARYMIME).
    #[must_use]
    pub fn with_body_type(mut self, body: BodyType) -> Self {
        self.params.body = Some(body);
        self
    }

    /// Declares what a complete message needs from the server, by scanning it once: `BODY=8BITMIME` when a byte
    /// is above 127 (RFC 6152), `BODY=BINARYMIME` when it holds a NUL (RFC 3030), and `SMTPUTF8` when the header
    /// section holds UTF-8 (RFC 6532). [`crate::Client::send_mail`] then refuses, before sending anything, a message
    /// the server cannot take. For a streamed body, declare [`MailParameters::body`] yourself.
    #[must_use]
    pub fn declare_body(mut self, message: &[u8]) -> Self {
        let needs = scan_message(message);
        if needs.binary {
            self.params.body = Some(BodyType::BinaryMime);
        } else if needs.eight_bit && self.params.body.is_none_or(|b| b == BodyType::SevenBit) {
            self.params.body = Some(BodyType::EightBitMime);
        }
        self.params.smtputf8 |= needs.utf8_headers;
        self
    }

    /// True when an address needs SMTPUTF8.
    pub fn needs_smtputf8(&self) -> bool {
        matches!(&self.from, ReversePath::Mailbox(a) if a.needs_smtputf8())
            || self.recipients.iter().any(|r| r.address.needs_smtputf8())
    }
}

/// What a message needs from the transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Needs {
    eight_bit: bool,
    binary: bool,
    utf8_headers: bool,
}

fn scan_message(message: &[u8]) -> Needs {
    // The header section ends at the first empty line (RFC 5322 §2.1).
    let header_end = memchr::memmem::find(message, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(message, b"\n\n"))
        .unwrap_or(message.len());
    let high = |b: &[u8]| b.iter().any(|&c| c >= 0x80);
    Needs {
        eight_bit: high(message),
        binary: memchr::memchr(0, message).is_some(),
        utf8_headers: high(&message[..header_end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::Address;

    fn env() -> Envelope {
        let a: Address = "a@x.org".parse().unwrap();
        Envelope::new(ReversePath::Mailbox(a.clone()), [a])
    }

    #[test]
    fn declares_what_the_message_needs() {
        let e = env().declare_body(b"Subject: hi\r\n\r\nplain ascii\r\n");
        assert_eq!(e.params.body, None);
        assert!(!e.params.smtputf8);
        let e = env().declare_body("Subject: hi\r\n\r\ncaf\u{e9}\r\n".as_bytes());
        assert_eq!(e.params.body, Some(BodyType::EightBitMime));
        assert!(!e.params.smtputf8);
        let e = env().declare_body("Subject: caf\u{e9}\r\n\r\nx\r\n".as_bytes());
        assert!(e.params.smtputf8);
        let e = env().declare_body(b"Subject: x\r\n\r\n\0bin");
        assert_eq!(e.params.body, Some(BodyType::BinaryMime));
    }
}
