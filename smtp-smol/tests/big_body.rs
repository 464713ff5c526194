//! A 1 GiB body, generated lazily by an `AsyncRead` (never stored), streamed through a loopback sink with a flat
//! memory profile: the peak RSS of the whole test process (`VmHWM`) stays under 64 MiB.
//!
//! The 1 GiB goes as BINARYMIME with BDAT (RFC 3030: counted chunks, nothing to encode), so the test measures
//! the adapter's back-pressure rather than the dot-stuffer of an unoptimized test build; a second message of
//! 64 MiB goes with DATA and dot-stuffing, through the same back-pressure, in the same process.
//!
//! Its own test binary, so no other test's allocations count against the process's peak.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use futures_lite::io::AsyncRead;
use smtp_smol::smtp_proto::BodyType;
use smtp_smol::{Address, ConnectOptions, Connection, Envelope, Outcome, ReversePath, TlsMode};

const GIB: u64 = 1024 * 1024 * 1024;
const DATA_SIZE: u64 = 64 * 1024 * 1024;
const LIMIT_KIB: u64 = 64 * 1024;

/// Lines of 1022 letters and CRLF, produced on demand from one 64 KiB pattern.
struct Lazy {
    pattern: Vec<u8>,
    pos: usize,
    left: u64,
}

impl Lazy {
    fn new(len: u64) -> Self {
        let mut line = vec![b'x'; 1022];
        line.extend_from_slice(b"\r\n");
        let pattern = line.repeat(64);
        Self {
            pattern,
            pos: 0,
            left: len,
        }
    }
}

impl AsyncRead for Lazy {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = buf
            .len()
            .min(this.pattern.len() - this.pos)
            .min(usize::try_from(this.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&this.pattern[this.pos..this.pos + n]);
        this.pos = (this.pos + n) % this.pattern.len();
        this.left -= n as u64;
        Poll::Ready(Ok(n))
    }
}

/// What the sink saw of the messages.
#[derive(Debug, Default)]
struct Seen {
    /// Bytes after DATA, terminator included.
    data_bytes: u64,
    /// Bytes in BDAT chunks.
    bdat_bytes: u64,
    bdat_chunks: u64,
    messages: u32,
}

/// A plaintext SMTP sink on loopback: answers every command, counts and discards DATA and BDAT bytes.
fn sink() -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = Arc::clone(&seen);
    thread::spawn(move || {
        for _ in 0..2 {
            let (sock, _) = listener.accept().unwrap();
            let _ = serve(sock, &s2);
        }
    });
    (port, seen)
}

fn serve(sock: TcpStream, seen: &Mutex<Seen>) -> io::Result<()> {
    sock.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut w = sock.try_clone()?;
    let mut r = BufReader::with_capacity(64 * 1024, sock);
    w.write_all(b"220 sink.test ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => w.write_all(
                b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 BINARYMIME\r\n",
            )?,
            "BDAT" => {
                let mut words = line.split_whitespace().skip(1);
                let size: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let last = words.next().is_some_and(|w| w.eq_ignore_ascii_case("LAST"));
                let copied = io::copy(&mut (&mut r).take(size), &mut io::sink())?;
                if copied < size {
                    return Ok(());
                }
                let mut s = seen.lock().unwrap();
                s.bdat_bytes += size;
                s.bdat_chunks += 1;
                if last {
                    s.messages += 1;
                }
                drop(s);
                w.write_all(b"250 2.0.0 chunk received\r\n")?;
            }
            "DATA" => {
                w.write_all(b"354 go ahead\r\n")?;
                // The terminator ends a read: the client sends nothing after it before the reply.
                let mut tail = [0u8; 5];
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = r.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    seen.lock().unwrap().data_bytes += n as u64;
                    let mut joined = tail.to_vec();
                    joined.extend_from_slice(&buf[n.saturating_sub(5)..n]);
                    tail.copy_from_slice(&joined[joined.len() - 5..]);
                    if &tail == b"\r\n.\r\n" {
                        break;
                    }
                }
                seen.lock().unwrap().messages += 1;
                w.write_all(b"250 2.0.0 discarded\r\n")?;
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => w.write_all(b"250 ok\r\n")?,
        }
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

fn envelope() -> Envelope {
    Envelope::new(
        ReversePath::Mailbox("big@example.org".parse::<Address>().unwrap()),
        ["sink@example.org".parse::<Address>().unwrap()],
    )
}

#[test]
fn one_gib_body_streams_with_flat_memory() {
    let (port, seen) = sink();
    let options = ConnectOptions::new("127.0.0.1", port).with_tls(TlsMode::None);
    let mut data_options = options.clone();
    data_options.session.chunking = false;
    let before = peak_rss_kib();
    let start = Instant::now();
    let (big, small) = async_io::block_on(async {
        let mut conn = Connection::connect(&options).await.unwrap();
        let big = conn
            .send(
                &envelope().with_body_type(BodyType::BinaryMime),
                &mut Lazy::new(GIB),
            )
            .await
            .unwrap();
        conn.quit().await.unwrap();
        let mut conn = Connection::connect(&data_options).await.unwrap();
        let small = conn
            .send(&envelope(), &mut Lazy::new(DATA_SIZE))
            .await
            .unwrap();
        conn.quit().await.unwrap();
        (big, small)
    });
    let took = start.elapsed();
    let peak = peak_rss_kib();
    let seen = seen.lock().unwrap();
    eprintln!(
        "1 GiB (BDAT) + 64 MiB (DATA) in {took:?}; peak RSS {} MiB (before the sends: {} MiB); {} BDAT chunks",
        peak / 1024,
        before / 1024,
        seen.bdat_chunks
    );
    assert_eq!(big.outcome, Outcome::Accepted);
    assert_eq!(big.body_bytes, GIB);
    assert_eq!(seen.bdat_bytes, GIB);
    // Bounded chunks (the core's max_buffered_body), not one huge one.
    assert!(
        seen.bdat_chunks >= GIB / (256 * 1024),
        "{} chunks",
        seen.bdat_chunks
    );
    assert_eq!(small.outcome, Outcome::Accepted);
    assert_eq!(small.body_bytes, DATA_SIZE);
    // The body ends with CRLF: the wire carries it plus ".\r\n" (no line starts with a dot, nothing stuffed).
    assert_eq!(seen.data_bytes, DATA_SIZE + 3);
    assert_eq!(seen.messages, 2);
    assert!(
        peak < LIMIT_KIB,
        "peak RSS {peak} KiB is over {LIMIT_KIB} KiB: the body was buffered"
    );
}
