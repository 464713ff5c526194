//! Shared inputs for the benchmarks in `benches/benches/` and the load generators in `src/bin/`.
//!
//! Everything here is deterministic: the same corpus files, the same generated bodies (a fixed-seed generator, no
//! randomness from the system), so that figures from different runs and different tools measure the same bytes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use smtp_proto::{Address, Client, Config, Envelope, Event, Outcome, ReversePath, TlsPolicy};

/// The workspace's reply corpus (`corpus/replies/*.txt`), sorted by file name: `(name without .txt, bytes)`.
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus/replies");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.strip_suffix(".txt")?.to_owned();
            Some((name, std::fs::read(&path).ok()?))
        })
        .collect();
    files.sort();
    files
}

/// One parser's whole job on one complete reply in memory, for the parsing benchmarks (`parsing.rs`,
/// `interleaved.rs`): each returns a value derived from its result, which it also passes to `black_box`.
pub mod parsers {
    use std::hint::black_box;

    use smtp_proto::Capabilities;
    use smtp_proto::framer::parse_reply;
    use stalwart_smtp_proto::EhloResponse;
    use stalwart_smtp_proto::response::parser::ResponseReceiver;

    /// Ours: framing and parsing into an owned reply.
    pub fn ours_reply(bytes: &[u8]) -> usize {
        let (reply, used) = parse_reply(bytes).expect("valid").expect("complete");
        black_box(&reply);
        used + reply.text().len()
    }

    /// Stalwart's `smtp-proto`: `ResponseReceiver::parse`.
    pub fn stalwart_reply(bytes: &[u8]) -> usize {
        let mut receiver = ResponseReceiver::default();
        let reply = receiver.parse(&mut bytes.iter()).expect("valid");
        black_box(&reply);
        reply.message.len() + usize::from(reply.code)
    }

    /// Ours: an EHLO reply to capabilities, as our client reads one that arrives whole.
    pub fn ours_ehlo(bytes: &[u8]) -> usize {
        let caps = Capabilities::parse_ehlo(bytes).expect("valid");
        black_box(&caps);
        caps.domain().len()
    }

    /// Stalwart's `smtp-proto`: `EhloResponse::parse`.
    pub fn stalwart_ehlo(bytes: &[u8]) -> usize {
        let caps = EhloResponse::parse(&mut bytes.iter()).expect("valid");
        black_box(&caps);
        caps.hostname.len()
    }
}

/// A small xorshift generator: deterministic pseudo-random text without a dependency.
#[derive(Clone, Debug)]
pub struct Xorshift(u64);

impl Xorshift {
    /// A generator with a fixed, non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "message",
    "server",
    "delivery",
    "report",
    "quarterly",
    "figures",
    "attached",
    "please",
    "review",
    "meeting",
    "tomorrow",
    "regards",
    "thanks",
    "project",
    "schedule",
    "update",
    "customer",
    "invoice",
    "http://www.example.com/a/b?c=d",
    "1234567890",
    "=E2=80=99",
    "re:",
    "fw:",
    "--",
    "...",
];

/// Appends one line of text (no line ending) of about `target` bytes to `out`; the line starts with a dot with
/// probability 1/`dot_every`.
fn text_line(rng: &mut Xorshift, target: usize, dot_every: u64, out: &mut Vec<u8>) {
    let start = out.len();
    if rng.below(dot_every) == 0 {
        out.push(b'.');
    }
    loop {
        let word = WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes();
        if out.len() - start + word.len() + 1 > target {
            break;
        }
        if out.len() > start && out[out.len() - 1] != b'.' {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
}

/// A realistic text body of exactly `len` bytes: lines of 60-76 characters (quoted-printable-like width), ended
/// by CRLF (`crlf`) or bare LF, about one line in 40 starting with a dot.
pub fn text_body(len: usize, crlf: bool) -> Vec<u8> {
    let mut rng = Xorshift::new(0x5eed_b0d1);
    let mut out = Vec::with_capacity(len + 128);
    while out.len() < len {
        let target = 60 + rng.below(17) as usize;
        text_line(&mut rng, target, 40, &mut out);
        if crlf {
            out.extend_from_slice(b"\r\n");
        } else {
            out.push(b'\n');
        }
    }
    out.truncate(len);
    // End on a line break, as a real body does.
    if crlf {
        out.truncate(len - 2);
        out.extend_from_slice(b"\r\n");
    } else {
        out.truncate(len - 1);
        out.push(b'\n');
    }
    out
}

/// Two timings compared in interleaved rounds: each round times one batch of each side, the order alternating
/// between rounds, so that both see the same machine; the ratio `b / a` is taken per round. On a shared machine
/// whose speed drifts by tens of percent between separate measurement windows, these ratios do not drift with it.
#[derive(Debug, Clone, Copy)]
pub struct Interleaved {
    /// The median of the per-round ratios `b / a`.
    pub median: f64,
    /// The lowest and highest per-round ratio.
    pub range: (f64, f64),
    /// The best (lowest) batch time of each side.
    pub best: (f64, f64),
}

impl Interleaved {
    /// Runs `rounds` rounds (odd, for the median) of `a` and `b`, each call timing one batch and returning its
    /// time (any unit, the same for both).
    pub fn run(rounds: usize, mut a: impl FnMut() -> f64, mut b: impl FnMut() -> f64) -> Self {
        let (mut ratios, mut best_a, mut best_b) = (Vec::with_capacity(rounds), f64::MAX, f64::MAX);
        for round in 0..rounds {
            let (ta, tb) = if round % 2 == 0 {
                let ta = a();
                (ta, b())
            } else {
                let tb = b();
                (a(), tb)
            };
            ratios.push(tb / ta);
            best_a = best_a.min(ta);
            best_b = best_b.min(tb);
        }
        let range = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r)));
        ratios.sort_by(f64::total_cmp);
        Self {
            median: ratios[ratios.len() / 2],
            range,
            best: (best_a, best_b),
        }
    }
}

/// A message (headers and a text body) of exactly `len` bytes with CRLF line endings.
pub fn message(len: usize) -> Vec<u8> {
    let headers = b"From: Bench Sender <sender@example.test>\r\nTo: <rcpt@sink.example.test>\r\n\
Subject: benchmark message\r\nMessage-ID: <bench@example.test>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\r\n";
    assert!(len > headers.len() + 2);
    let mut out = headers.to_vec();
    out.extend_from_slice(&text_body(len - headers.len(), true));
    out
}

/// Generates a large CRLF text body on the fly, chunk by chunk, so that a 1 GiB message is never held in memory.
///
/// The body is a fixed 64 KiB block of text lines repeated (so generation costs a `memcpy`, not the client's time).
#[derive(Debug)]
pub struct BodyStream {
    block: Vec<u8>,
    remaining: u64,
    offset: usize,
}

impl BodyStream {
    /// A stream of exactly `len` bytes (ending with CRLF when `len >= 2`).
    pub fn new(len: u64) -> Self {
        Self {
            block: text_body(64 * 1024, true),
            remaining: len,
            offset: 0,
        }
    }

    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next piece of the body (at most 64 KiB; empty at the end).
    pub fn next_chunk(&mut self) -> &[u8] {
        if self.remaining == 0 {
            return &[];
        }
        let available = self.block.len() - self.offset;
        let n = available.min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let start = self.offset;
        self.offset = (self.offset + n) % self.block.len();
        self.remaining -= n as u64;
        // A body cut mid-line still ends the DATA cleanly: the stuffer adds the CRLF.
        &self.block[start..start + n]
    }
}

impl std::io::Read for BodyStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let chunk = self.next_chunk();
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        // Give back what was not copied.
        let unread = chunk.len() - n;
        if unread > 0 {
            self.offset = (self.offset + self.block.len() - unread) % self.block.len();
            self.remaining += unread as u64;
        }
        Ok(n)
    }
}

/// The server side of one in-memory transaction, as the bytes a server would send in answer to each flight.
#[derive(Clone, Copy, Debug)]
pub struct Script {
    /// The EHLO reply.
    pub ehlo: &'static [u8],
    /// The replies to the pipelined MAIL/RCPT/DATA batch (or MAIL/RCPT then BDAT).
    pub envelope: &'static [u8],
    /// The final reply.
    pub final_reply: &'static [u8],
}

/// A Postfix-like server with PIPELINING (DATA).
pub const SCRIPT_PIPELINING: Script = Script {
    ehlo:
        b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-ENHANCEDSTATUSCODES\r\n\
250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n",
    envelope: b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
    final_reply: b"250 2.0.0 Ok: queued as 4ZbQ2K1yq5z9vR\r\n",
};

/// A Postfix-like server with PIPELINING and CHUNKING (BDAT LAST).
pub const SCRIPT_CHUNKING: Script = Script {
    ehlo:
        b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-ENHANCEDSTATUSCODES\r\n\
250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
    envelope: b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n",
    final_reply: b"250 2.0.0 Ok: queued as 4ZbQ2K1yq5z9vR\r\n",
};

/// One whole session through the core, in memory: greeting, EHLO, one pipelined transaction with `body`, the final
/// reply. Returns the outcome and the number of bytes the client wrote. Used by the instruction-count benchmark.
///
/// `now` is passed in so that the measured code reads no clock.
pub fn core_transaction(script: &Script, body: &[u8], now: Instant) -> (Outcome, usize) {
    let mut config = Config::default();
    config.tls = TlsPolicy::None;
    let mut client = Client::new(config, now);
    let mut written = 0;
    let mut outcome = None;
    let from = ReversePath::Mailbox("sender@example.test".parse::<Address>().expect("valid"));
    let to = "rcpt@sink.example.test".parse::<Address>().expect("valid");
    let mut envelope = Some(Envelope::new(from, [to]));
    let mut replies = [
        &b"220 mx.example.test ESMTP Postfix\r\n"[..],
        script.ehlo,
        script.envelope,
        script.final_reply,
    ]
    .into_iter();
    let mut body_left = body;
    let mut t = now;
    loop {
        while let Some(bytes) = client.poll_transmit(t) {
            written += bytes.len();
        }
        let mut progressed = false;
        while let Some(event) = client.poll_event() {
            progressed = true;
            match event {
                Event::Ready { .. } => {
                    let envelope = envelope.take().expect("one transaction");
                    client.send_mail(envelope).expect("ready");
                }
                Event::ReadyForBody { .. } => {
                    // As an adapter does: offer the body, drain only when the machine pushes back, and finish
                    // before draining so that the last chunk and its end go out together.
                    while !body_left.is_empty() {
                        let n = client.write_body(body_left).expect("body expected");
                        body_left = &body_left[n..];
                        if n == 0 {
                            let mut drained = false;
                            while let Some(bytes) = client.poll_transmit(t) {
                                written += bytes.len();
                                drained = true;
                            }
                            assert!(
                                drained,
                                "write_body took nothing and there was nothing to send"
                            );
                        }
                    }
                    client.finish_body().expect("body open");
                }
                Event::TransactionComplete(report) => outcome = Some(report.outcome),
                Event::Closed { .. } => return (Outcome::Unknown, written),
                _ => {}
            }
        }
        if outcome.is_some() {
            break;
        }
        if progressed {
            continue;
        }
        let Some(reply) = replies.next() else { break };
        t += Duration::from_micros(100);
        client.receive(t, reply);
    }
    (outcome.unwrap_or(Outcome::Unknown), written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_requested_shape() {
        let crlf = text_body(1 << 20, true);
        assert_eq!(crlf.len(), 1 << 20);
        assert!(crlf.ends_with(b"\r\n"));
        let lines: Vec<&[u8]> = crlf.split(|&b| b == b'\n').collect();
        assert!(lines.iter().all(|l| l.len() <= 80));
        let dots = lines.iter().filter(|l| l.first() == Some(&b'.')).count();
        assert!(dots > 100, "{dots} dot lines");
        let lf = text_body(1 << 20, false);
        assert!(!lf.contains(&b'\r'));
        assert_eq!(message(2048).len(), 2048);
    }

    #[test]
    fn stream_yields_exactly_len_bytes() {
        use std::io::Read;
        let mut s = BodyStream::new(1_000_000);
        let mut total = 0u64;
        while !s.next_chunk().is_empty() {}
        assert_eq!(s.remaining(), 0);
        let mut s = BodyStream::new(300_001);
        let mut buf = [0u8; 7000];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        assert_eq!(total, 300_001);
    }

    #[test]
    fn core_transaction_is_accepted() {
        let body = message(2048);
        for script in [SCRIPT_PIPELINING, SCRIPT_CHUNKING] {
            let (outcome, written) = core_transaction(&script, &body, Instant::now());
            assert_eq!(outcome, Outcome::Accepted);
            assert!(written > 2048, "{written}");
        }
    }

    #[test]
    fn corpus_is_there() {
        let corpus = corpus();
        assert!(corpus.len() >= 10);
        assert!(corpus.iter().any(|(n, _)| n.starts_with("ehlo--")));
    }
}
