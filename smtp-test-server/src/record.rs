//! What the server saw: [`SessionRecord`], [`ClientLine`], [`Message`].

use std::net::SocketAddr;

/// One line the client sent outside message data: a command, or a response to an `AUTH` `334` prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLine {
    /// The line as received, without its line ending (`\r\n` or bare `\n`). May be non-UTF-8.
    pub bytes: Vec<u8>,
    /// Whether TLS was active when the line was received.
    pub tls: bool,
    /// Which `read` on the connection completed this line (counted from 1, separately from the TLS layer's own reads).
    /// Lines sharing a `read_seq` arrived together: that is how to check that commands were pipelined.
    pub read_seq: u64,
    /// The line ended with a bare `\n` rather than `\r\n`.
    pub bare_lf: bool,
}

impl ClientLine {
    /// The line as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The first word in upper case (`"MAIL"`, `"EHLO"`, …); for an `AUTH` continuation, the base64 payload upper-cased.
    pub fn verb(&self) -> String {
        let text = self.text();
        text.split(' ').next().unwrap_or("").to_ascii_uppercase()
    }
}

/// Everything recorded about one accepted connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionRecord {
    /// Accept order, from 0 (the index used by [`ServerConfig::fault_on_connection`](crate::ServerConfig::fault_on_connection)).
    pub id: usize,
    /// The client's address, when known.
    pub peer: Option<SocketAddr>,
    /// Command lines and `AUTH` responses, in order.
    pub lines: Vec<ClientLine>,
    /// Every byte read from the client at the SMTP layer (after TLS decryption; message data included), capped at 16 MiB.
    pub received: Vec<u8>,
    /// Every byte the server wrote at the SMTP layer, capped at 1 MiB (endless faults are truncated here).
    pub sent: Vec<u8>,
    /// Number of successful reads from the client at the SMTP layer.
    pub reads: u64,
    /// A TLS handshake completed on this connection.
    pub tls: bool,
    /// The SNI name the client sent, if any.
    pub sni: Option<String>,
    /// Why a TLS handshake failed (e.g. the client rejected the certificate), if one did.
    pub tls_error: Option<String>,
    /// Bytes the client sent after `STARTTLS` in the same read, discarded by the server (RFC 3207 §5).
    pub discarded_after_starttls: Vec<u8>,
    /// The user that authenticated successfully, if any.
    pub authenticated: Option<String>,
    /// Why the connection ended abnormally (I/O error, server stopped, cap reached), if it did.
    pub error: Option<String>,
    /// The connection is over (the server thread finished with it).
    pub ended: bool,
}

impl SessionRecord {
    /// The command lines as text (invalid UTF-8 replaced).
    pub fn commands(&self) -> Vec<String> {
        self.lines.iter().map(ClientLine::text).collect()
    }

    /// The first word of every line, upper-cased: e.g. `["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", …]`.
    pub fn verbs(&self) -> Vec<String> {
        self.lines.iter().map(ClientLine::verb).collect()
    }

    /// The lines whose verb is `verb` (case-insensitive).
    pub fn lines_with_verb(&self, verb: &str) -> Vec<&ClientLine> {
        self.lines
            .iter()
            .filter(|l| l.verb().eq_ignore_ascii_case(verb))
            .collect()
    }
}

/// How a message body was transferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyTransfer {
    /// `DATA`, dot-terminated.
    Data,
    /// `BDAT` chunks (RFC 3030).
    Bdat {
        /// Number of `BDAT` commands, including the `LAST` one.
        chunks: usize,
    },
}

/// A message the server accepted (final `250` after the body; in LMTP, for at least one recipient).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The [`SessionRecord::id`] of the connection that delivered it.
    pub session: usize,
    /// The reverse path, without the angle brackets (empty for the null sender `<>`).
    pub mail_from: String,
    /// The `MAIL FROM` parameters as sent, e.g. `["SIZE=1234", "BODY=8BITMIME"]`.
    pub mail_params: Vec<String>,
    /// The recipients that were accepted (in LMTP: those whose after-body reply was 2xx), without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The body: for `DATA`, dot-unstuffed, ending with the CRLF before the final `.` (line endings kept as received);
    /// for `BDAT`, the chunks concatenated.
    pub body: Vec<u8>,
    /// `DATA` or `BDAT`.
    pub transfer: BodyTransfer,
    /// TLS was active during the transaction.
    pub tls: bool,
    /// The authenticated user, if any.
    pub authenticated: Option<String>,
}
