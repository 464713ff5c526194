//! The session transcript: the core's lines (AUTH payloads already redacted by the core, bodies summarised) and
//! the adapter's notes (addresses, TLS mode chosen and why, TLS version), sent to `tracing` and to the
//! [`TranscriptSink`] of the options.
//!
//! `tracing` target [`TRANSCRIPT_TARGET`]: commands and replies at `DEBUG`, notes at `INFO`, each with the
//! connection's `conn` id (several sessions run at once in one process).

use std::time::Instant;

use smtp_blocking::transcript::{Direction, TranscriptLine, TranscriptSink};

/// The `tracing` target of session transcripts.
pub const TRANSCRIPT_TARGET: &str = "smtp_smol::transcript";

/// One connection's transcript.
pub(crate) struct Transcript {
    id: u64,
    sink: Option<TranscriptSink>,
    /// Lines held back from the sink while the attempt runs in an Auto race.
    buffer: Option<Vec<TranscriptLine>>,
}

impl Transcript {
    pub(crate) fn new(sink: Option<TranscriptSink>, buffered: bool) -> Self {
        Self {
            id: 0,
            sink,
            buffer: buffered.then(Vec::new),
        }
    }

    pub(crate) fn set_id(&mut self, id: u64) {
        self.id = id;
    }

    /// Whether the core should record a transcript at all.
    pub(crate) fn wanted(&self) -> bool {
        self.sink.is_some()
            || tracing::enabled!(target: TRANSCRIPT_TARGET, tracing::Level::DEBUG)
            || tracing::enabled!(target: TRANSCRIPT_TARGET, tracing::Level::INFO)
    }

    pub(crate) fn note(&mut self, text: impl Into<String>) {
        self.emit(TranscriptLine {
            at: Instant::now(),
            direction: Direction::Note,
            text: text.into(),
        });
    }

    pub(crate) fn core(&mut self, entry: smtp_proto::TranscriptEntry) {
        let direction = match entry.direction {
            smtp_proto::Direction::Client => Direction::Client,
            _ => Direction::Server,
        };
        self.emit(TranscriptLine {
            at: entry.at,
            direction,
            text: entry.text,
        });
    }

    fn emit(&mut self, line: TranscriptLine) {
        let conn = self.id;
        match line.direction {
            Direction::Note => tracing::info!(target: TRANSCRIPT_TARGET, conn, "* {}", line.text),
            d => tracing::debug!(target: TRANSCRIPT_TARGET, conn, "{}: {}", d.marker(), line.text),
        }
        match &mut self.buffer {
            Some(b) => b.push(line),
            None => {
                if let Some(sink) = &self.sink {
                    sink(&line);
                }
            }
        }
    }

    /// Delivers what was held back to the sink, and everything after as it comes.
    pub(crate) fn go_live(&mut self) {
        if let Some(lines) = self.buffer.take()
            && let Some(sink) = &self.sink
        {
            for line in &lines {
                sink(line);
            }
        }
    }
}
