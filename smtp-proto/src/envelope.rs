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

    /// True when an address needs SMTPUTF8.
    pub fn needs_smtputf8(&self) -> bool {
        matches!(&self.from, ReversePath::Mailbox(a) if a.needs_smtputf8())
            || self.recipients.iter().any(|r| r.address.needs_smtputf8())
    }
}
