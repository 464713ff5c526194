//! A bench-only SMTP sink that offers PIPELINING and CHUNKING and answers at once: it discards every message, so a
//! round-trip measurement through `delay-proxy` sees the client's waits only (Postfix's per-message queue commit
//! makes the differential method unusable with CHUNKING, see BENCHMARKS.md).
//!
//! ```text
//! chunking-sink --listen 127.0.0.1:2700 [--max-seconds 3600]
//! ```
//!
//! One thread per connection. Commands are read as they come and answered in order; the replies to everything
//! that arrived in one read go out in one write (as a pipelining server does). `BDAT <n> [LAST]` skips `n` bytes,
//! `DATA` reads up to the lone dot. Only loopback addresses are accepted, and the sink exits by itself after
//! `--max-seconds`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Longest command line accepted (RFC 5321: 512; generous).
const MAX_LINE: usize = 4096;

fn main() {
    let mut listen: Option<SocketAddr> = None;
    let mut max = Duration::from_secs(3600);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| die(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--listen" => {
                listen = Some(
                    value
                        .parse()
                        .unwrap_or_else(|e| die(&format!("--listen: {e}"))),
                )
            }
            "--max-seconds" => {
                max = Duration::from_secs(value.parse().unwrap_or_else(|e| die(&format!("{e}"))))
            }
            _ => die(&format!("unknown argument {flag}")),
        }
    }
    let Some(listen) = listen else {
        die("--listen is required");
    };
    if !listen.ip().is_loopback() {
        die("loopback addresses only");
    }
    let listener = TcpListener::bind(listen).unwrap_or_else(|e| die(&format!("bind: {e}")));
    let end = Instant::now() + max;
    std::thread::spawn(move || {
        std::thread::sleep(max);
        std::process::exit(0);
    });
    for conn in listener.incoming() {
        if Instant::now() >= end {
            break;
        }
        let Ok(conn) = conn else { continue };
        std::thread::spawn(move || {
            let _ = serve(conn, end);
        });
    }
}

fn die(msg: &str) -> ! {
    eprintln!("chunking-sink: {msg}");
    std::process::exit(64)
}

/// What the session is reading.
enum Mode {
    Commands,
    /// Skipping this many bytes of a BDAT chunk.
    Chunk(usize),
    /// Reading a DATA body up to the lone dot; the bytes that may be a split terminator are kept.
    Data,
}

fn serve(mut conn: TcpStream, end: Instant) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    conn.write_all(b"220 chunking-sink ESMTP\r\n")?;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut block = vec![0u8; 64 * 1024];
    let mut mode = Mode::Commands;
    let mut replies: Vec<u8> = Vec::new();
    let mut last_chunk = false;
    while Instant::now() < end {
        let n = conn.read(&mut block)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&block[..n]);
        let mut pos = 0;
        let mut quit = false;
        // Bounded by the bytes in `buf`: every iteration consumes some or breaks.
        loop {
            match mode {
                Mode::Chunk(left) => {
                    let take = left.min(buf.len() - pos);
                    pos += take;
                    if take < left {
                        mode = Mode::Chunk(left - take);
                        break;
                    }
                    mode = Mode::Commands;
                    replies.extend_from_slice(if last_chunk {
                        b"250 2.0.0 message accepted\r\n".as_slice()
                    } else {
                        b"250 2.0.0 chunk accepted\r\n".as_slice()
                    });
                }
                Mode::Data => {
                    let rest = &buf[pos..];
                    match find(rest, b"\r\n.\r\n") {
                        Some(i) => {
                            pos += i + 5;
                            mode = Mode::Commands;
                            replies.extend_from_slice(b"250 2.0.0 message accepted\r\n");
                        }
                        None => {
                            // Keep the last 4 bytes: the start of a terminator split across reads.
                            pos += rest.len().saturating_sub(4);
                            break;
                        }
                    }
                }
                Mode::Commands => {
                    let Some(i) = find(&buf[pos..], b"\r\n") else {
                        if buf.len() - pos > MAX_LINE {
                            return Ok(());
                        }
                        break;
                    };
                    let line = buf[pos..pos + i].to_ascii_uppercase();
                    pos += i + 2;
                    if line.starts_with(b"EHLO") || line.starts_with(b"LHLO") {
                        replies.extend_from_slice(
                            b"250-chunking-sink\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n\
                              250-SIZE 1073741824\r\n250 ENHANCEDSTATUSCODES\r\n",
                        );
                    } else if line.starts_with(b"HELO") {
                        replies.extend_from_slice(b"250 chunking-sink\r\n");
                    } else if line.starts_with(b"BDAT ") {
                        let mut words = line[5..].split(|&b| b == b' ');
                        let size = words
                            .next()
                            .and_then(|w| std::str::from_utf8(w).ok())
                            .and_then(|w| w.parse::<usize>().ok());
                        let Some(size) = size else {
                            replies.extend_from_slice(b"501 5.5.4 bad BDAT\r\n");
                            continue;
                        };
                        last_chunk = words.next() == Some(b"LAST".as_slice());
                        mode = Mode::Chunk(size);
                    } else if line == b"DATA" {
                        replies.extend_from_slice(b"354 go ahead\r\n");
                        mode = Mode::Data;
                        // The body cannot have been sent before the 354 by a correct client: reply now.
                        conn.write_all(&replies)?;
                        replies.clear();
                    } else if line == b"QUIT" {
                        replies.extend_from_slice(b"221 2.0.0 bye\r\n");
                        quit = true;
                        break;
                    } else if line.starts_with(b"MAIL")
                        || line.starts_with(b"RCPT")
                        || line == b"RSET"
                        || line == b"NOOP"
                    {
                        replies.extend_from_slice(b"250 2.0.0 ok\r\n");
                    } else {
                        replies.extend_from_slice(b"502 5.5.2 not implemented\r\n");
                    }
                }
            }
        }
        buf.drain(..pos);
        if !replies.is_empty() {
            conn.write_all(&replies)?;
            replies.clear();
        }
        if quit {
            return Ok(());
        }
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
