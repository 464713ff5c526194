//! The session transcript: every command and reply (AUTH payloads redacted by the core, bodies summarised) and the
//! adapter's own notes (which address, which TLS mode and why, the negotiated TLS version).
//!
//! Lines always go to `tracing` (target `smtp_blocking::transcript`: commands and replies at `DEBUG`, notes at
//! `INFO`), and to a [`TranscriptSink`] when one is set in [`crate::ConnectOptions::transcript`].

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// Who a transcript line comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// A command the client sent (AUTH redacted).
    Client,
    /// A reply from the server.
    Server,
    /// A note from the adapter: connecting, TLS established, the TLS mode chosen and why.
    Note,
}

impl Direction {
    /// `C`, `S` or `*`.
    pub fn marker(self) -> &'static str {
        match self {
            Self::Client => "C",
            Self::Server => "S",
            Self::Note => "*",
        }
    }
}

/// One line of the transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptLine {
    /// When it was sent or received.
    pub at: Instant,
    /// Who said it.
    pub direction: Direction,
    /// The text, safe to print (no control characters, no credentials).
    pub text: String,
}

impl fmt::Display for TranscriptLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.direction.marker(), self.text)
    }
}

/// Receives transcript lines as they happen (lines of a connection attempt that `Auto` runs in parallel are
/// delivered when that attempt is adopted).
pub type TranscriptSink = Arc<dyn Fn(&TranscriptLine) + Send + Sync>;

/// Buffers or forwards transcript lines.
pub(crate) struct Transcript {
    sink: Option<TranscriptSink>,
    buffer: Option<Vec<TranscriptLine>>,
}

impl Transcript {
    pub(crate) fn new(sink: Option<TranscriptSink>, buffered: bool) -> Self {
        Self {
            sink,
            buffer: buffered.then(Vec::new),
        }
    }

    /// Whether the core should record a transcript at all.
    pub(crate) fn wanted(sink: &Option<TranscriptSink>) -> bool {
        sink.is_some()
            || tracing::enabled!(target: "smtp_blocking::transcript", tracing::Level::DEBUG)
            || tracing::enabled!(target: "smtp_blocking::transcript", tracing::Level::INFO)
    }

    pub(crate) fn emit(&mut self, line: TranscriptLine) {
        match &mut self.buffer {
            Some(b) => b.push(line),
            None => forward(self.sink.as_ref(), &line),
        }
    }

    pub(crate) fn note(&mut self, text: impl Into<String>) {
        self.emit(TranscriptLine {
            at: Instant::now(),
            direction: Direction::Note,
            text: text.into(),
        });
    }

    /// Stops buffering: delivers what was buffered and everything after as it comes.
    pub(crate) fn go_live(&mut self) {
        if let Some(lines) = self.buffer.take() {
            for line in &lines {
                forward(self.sink.as_ref(), line);
            }
        }
    }
}

/// Sends one line to tracing and the sink.
pub(crate) fn forward(sink: Option<&TranscriptSink>, line: &TranscriptLine) {
    match line.direction {
        Direction::Note => tracing::info!(target: "smtp_blocking::transcript", "* {}", line.text),
        d => tracing::debug!(target: "smtp_blocking::transcript", "{}: {}", d.marker(), line.text),
    }
    if let Some(sink) = sink {
        sink(line);
    }
}
