//! Per-stage deadlines (RFC 5321 §4.5.3.2).
//!
//! The core never reads a clock: every deadline is computed from the `now` the caller passes in, and each stage
//! arms its own deadline, so a slow-drip server cannot stretch a stage by sending a byte at a time (only a complete
//! reply counts as progress).

use std::time::Duration;

use crate::error::Stage;

/// How long each stage may take.
///
/// [`Timeouts::rfc5321`] is the profile RFC 5321 §4.5.3.2 recommends for relays. [`Timeouts::submission`] (the
/// default) fails faster before the transaction starts (greeting, EHLO, TLS, AUTH), where a slow answer almost always
/// means a wrong port or TLS mode, and keeps the RFC values inside the transaction, where a slow answer is a busy
/// server doing real work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Waiting for the `220` greeting (RFC: 5 minutes).
    pub greeting: Duration,
    /// Waiting for the reply to EHLO, HELO or LHLO.
    pub ehlo: Duration,
    /// Waiting for the reply to STARTTLS.
    pub starttls: Duration,
    /// The TLS handshake, done by the adapter between [`crate::Event::StartTls`] and
    /// [`crate::Client::tls_established`].
    pub tls_handshake: Duration,
    /// The whole AUTH exchange, per reply.
    pub auth: Duration,
    /// Waiting for the reply to MAIL (RFC: 5 minutes).
    pub mail: Duration,
    /// Waiting for the reply to each RCPT (RFC: 5 minutes).
    pub rcpt: Duration,
    /// Waiting for the `354` to DATA (RFC: 2 minutes).
    pub data_init: Duration,
    /// Between two body blocks, and for the reply to a non-final BDAT (RFC: 3 minutes).
    pub data_block: Duration,
    /// Waiting for the reply to the final dot or `BDAT ... LAST` (RFC: 10 minutes).
    pub data_termination: Duration,
    /// Waiting for the reply to RSET.
    pub rset: Duration,
    /// Waiting for the reply to NOOP.
    pub noop: Duration,
    /// Waiting for the reply to QUIT.
    pub quit: Duration,
    /// An optional cap on the whole connection, counted from [`crate::Client::new`].
    pub overall: Option<Duration>,
}

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

impl Timeouts {
    /// RFC 5321 §4.5.3.2 values, for relays talking to arbitrary MTAs.
    pub const fn rfc5321() -> Self {
        Self {
            greeting: mins(5),
            ehlo: mins(5),
            starttls: mins(5),
            tls_handshake: mins(5),
            auth: mins(5),
            mail: mins(5),
            rcpt: mins(5),
            data_init: mins(2),
            data_block: mins(3),
            data_termination: mins(10),
            rset: mins(5),
            noop: mins(5),
            quit: mins(5),
            overall: None,
        }
    }

    /// The default: 30 s for every step before the transaction (greeting, EHLO, STARTTLS, handshake, AUTH),
    /// 30 s for RSET, NOOP and QUIT, and RFC 5321 values inside the transaction.
    pub const fn submission() -> Self {
        let fast = Duration::from_secs(30);
        Self {
            greeting: fast,
            ehlo: fast,
            starttls: fast,
            tls_handshake: fast,
            auth: fast,
            rset: fast,
            noop: fast,
            quit: Duration::from_secs(10),
            ..Self::rfc5321()
        }
    }

    /// Caps every stage (and the overall deadline, if set) at `max`. Used by tools that take one `--timeout`.
    #[must_use]
    pub fn capped(mut self, max: Duration) -> Self {
        for d in [
            &mut self.greeting,
            &mut self.ehlo,
            &mut self.starttls,
            &mut self.tls_handshake,
            &mut self.auth,
            &mut self.mail,
            &mut self.rcpt,
            &mut self.data_init,
            &mut self.data_block,
            &mut self.data_termination,
            &mut self.rset,
            &mut self.noop,
            &mut self.quit,
        ] {
            *d = (*d).min(max);
        }
        self
    }

    /// The timeout of one stage.
    pub fn for_stage(&self, stage: Stage) -> Duration {
        match stage {
            Stage::Greeting => self.greeting,
            Stage::Ehlo => self.ehlo,
            Stage::StartTls => self.starttls,
            Stage::TlsHandshake => self.tls_handshake,
            Stage::Auth => self.auth,
            Stage::Mail => self.mail,
            Stage::Rcpt => self.rcpt,
            Stage::DataInit => self.data_init,
            Stage::DataBlock => self.data_block,
            Stage::DataTermination => self.data_termination,
            Stage::Rset => self.rset,
            Stage::Noop => self.noop,
            Stage::Quit => self.quit,
            // Not deadlines of the core: the adapter's connect timeout, and no deadline when idle.
            Stage::Connect | Stage::Idle => self.greeting,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::submission()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_profile_matches_section_4_5_3_2() {
        let t = Timeouts::rfc5321();
        assert_eq!(t.greeting, mins(5));
        assert_eq!(t.mail, mins(5));
        assert_eq!(t.rcpt, mins(5));
        assert_eq!(t.data_init, mins(2));
        assert_eq!(t.data_block, mins(3));
        assert_eq!(t.data_termination, mins(10));
    }

    #[test]
    fn submission_is_fast_before_the_transaction_and_rfc_inside() {
        let t = Timeouts::submission();
        assert!(t.greeting < Timeouts::rfc5321().greeting);
        assert!(t.auth < Timeouts::rfc5321().auth);
        assert_eq!(t.data_termination, mins(10));
        assert_eq!(Timeouts::default(), t);
    }

    #[test]
    fn capped_caps_every_stage() {
        let t = Timeouts::rfc5321().capped(Duration::from_secs(7));
        for s in [
            Stage::Greeting,
            Stage::Mail,
            Stage::DataTermination,
            Stage::Quit,
        ] {
            assert_eq!(t.for_stage(s), Duration::from_secs(7));
        }
    }
}
