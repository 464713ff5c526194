//! Byte moving for one connection: plain or rustls transport, a line reader, a reply buffer, and the caps that
//! bound every wait and every endless write.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustls::ServerConnection;

use crate::server::Shared;

/// Socket read/write timeout: how often blocked I/O wakes up to check the stop flag and the caps.
pub(crate) const POLL: Duration = Duration::from_millis(50);
/// Longest any single wait (a read, a stuck write, an endless fault) may last.
pub(crate) const CAP_TIME: Duration = Duration::from_secs(120);
/// Most bytes an endless fault writes, and the largest message body or chunk accepted.
pub(crate) const CAP_BYTES: usize = 64 << 20;
const RECEIVED_CAP: usize = 16 << 20;
const SENT_CAP: usize = 1 << 20;

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Checks the stop flag and the time cap of a wait that began at `since`.
fn check(shared: &Shared, since: Instant) -> io::Result<()> {
    if shared.stop.load(Ordering::Relaxed) {
        return Err(io::Error::other("test server stopped"));
    }
    if since.elapsed() > CAP_TIME {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "test server time cap reached",
        ));
    }
    Ok(())
}

fn sock_write_all(sock: &mut TcpStream, shared: &Shared, mut data: &[u8]) -> io::Result<()> {
    let start = Instant::now();
    while !data.is_empty() {
        match sock.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if is_timeout(&e) => check(shared, start)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn tls_flush(sock: &mut TcpStream, conn: &mut ServerConnection, shared: &Shared) -> io::Result<()> {
    let start = Instant::now();
    while conn.wants_write() {
        match conn.write_tls(sock) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) => check(shared, start)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads TLS records from the socket into `conn` and processes them; `Ok(false)` at EOF.
fn tls_read_records(
    sock: &mut TcpStream,
    conn: &mut ServerConnection,
    shared: &Shared,
) -> io::Result<bool> {
    let start = Instant::now();
    let n = loop {
        match conn.read_tls(sock) {
            Ok(n) => break n,
            Err(e) if is_timeout(&e) => check(shared, start)?,
            Err(e) => return Err(e),
        }
    };
    if n == 0 {
        return Ok(false);
    }
    if let Err(e) = conn.process_new_packets() {
        // Send the alert, if any, so the client learns why.
        let _ = tls_flush(sock, conn, shared);
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    Ok(true)
}

/// A line as received, with its terminator.
pub(crate) struct Line {
    pub(crate) raw: Vec<u8>,
    pub(crate) read_seq: u64,
}

impl Line {
    /// The line without `\r\n` or `\n`.
    pub(crate) fn content(&self) -> &[u8] {
        let l = self.raw.strip_suffix(b"\n").unwrap_or(&self.raw);
        l.strip_suffix(b"\r").unwrap_or(l)
    }

    pub(crate) fn bare_lf(&self) -> bool {
        self.raw.ends_with(b"\n") && !self.raw.ends_with(b"\r\n")
    }
}

/// One connection's transport and buffers.
pub(crate) struct Io {
    sock: TcpStream,
    tls: Option<Box<ServerConnection>>,
    shared: Arc<Shared>,
    id: usize,
    inbuf: Vec<u8>,
    /// How much of `inbuf` is known to hold no `\n`.
    scanned: usize,
    outbuf: Vec<u8>,
    read_seq: u64,
}

impl Io {
    pub(crate) fn new(sock: TcpStream, shared: Arc<Shared>, id: usize) -> io::Result<Io> {
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(POLL))?;
        sock.set_write_timeout(Some(POLL))?;
        Ok(Io {
            sock,
            tls: None,
            shared,
            id,
            inbuf: Vec::new(),
            scanned: 0,
            outbuf: Vec::new(),
            read_seq: 0,
        })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Sleeps `d` in small steps, failing early if the server stops.
    pub(crate) fn pause(&self, d: Duration) -> io::Result<()> {
        let end = Instant::now() + d;
        loop {
            check(&self.shared, Instant::now())?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(Duration::from_millis(10)));
        }
    }

    /// Checks the stop flag and the time cap for a loop started at `since`.
    pub(crate) fn check(&self, since: Instant) -> io::Result<()> {
        check(&self.shared, since)
    }

    /// One read at the SMTP layer (decrypted under TLS); `Ok(0)` at EOF.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let shared = &*self.shared;
        let sock = &mut self.sock;
        match &mut self.tls {
            None => {
                let start = Instant::now();
                loop {
                    match sock.read(buf) {
                        Ok(n) => return Ok(n),
                        Err(e) if is_timeout(&e) => check(shared, start)?,
                        Err(e) => return Err(e),
                    }
                }
            }
            Some(conn) => loop {
                match conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                tls_flush(sock, conn, shared)?;
                if !tls_read_records(sock, conn, shared)? {
                    return Ok(0);
                }
            },
        }
    }

    /// Sends pending replies, then reads once more into the input buffer; `Ok(false)` at EOF.
    fn fill(&mut self) -> io::Result<bool> {
        self.flush()?;
        let mut buf = [0u8; 16 * 1024];
        let n = self.read_some(&mut buf)?;
        if n == 0 {
            return Ok(false);
        }
        self.read_seq += 1;
        self.inbuf.extend_from_slice(&buf[..n]);
        let data = &buf[..n];
        self.shared.with_session(self.id, |r| {
            r.reads += 1;
            let room = RECEIVED_CAP.saturating_sub(r.received.len());
            r.received.extend_from_slice(&data[..n.min(room)]);
        });
        Ok(true)
    }

    /// The next line (up to `max` bytes), `None` at EOF (a partial last line is dropped).
    pub(crate) fn read_line(&mut self, max: usize) -> io::Result<Option<Line>> {
        loop {
            if let Some(pos) = self.inbuf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + pos + 1;
                let raw = self.inbuf.drain(..end).collect();
                self.scanned = 0;
                return Ok(Some(Line {
                    raw,
                    read_seq: self.read_seq,
                }));
            }
            self.scanned = self.inbuf.len();
            if self.inbuf.len() > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("client line longer than {max} bytes"),
                ));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Exactly `n` bytes (a BDAT chunk), `None` if the client closes first.
    pub(crate) fn read_exact(&mut self, n: usize) -> io::Result<Option<Vec<u8>>> {
        while self.inbuf.len() < n {
            if !self.fill()? {
                return Ok(None);
            }
        }
        self.scanned = 0;
        Ok(Some(self.inbuf.drain(..n).collect()))
    }

    /// Queues bytes to send before the next blocking read (so pipelined replies go out together).
    pub(crate) fn queue(&mut self, data: &[u8]) {
        self.outbuf.extend_from_slice(data);
    }

    /// Sends queued bytes.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.outbuf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.outbuf);
        self.write_raw(&data)
    }

    /// Sends queued bytes, then `data`, now.
    pub(crate) fn write_now(&mut self, data: &[u8]) -> io::Result<()> {
        self.flush()?;
        self.write_raw(data)
    }

    fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        let shared = &*self.shared;
        let sock = &mut self.sock;
        match &mut self.tls {
            None => sock_write_all(sock, shared, data)?,
            Some(conn) => {
                let mut rest = data;
                while !rest.is_empty() {
                    let n = conn.writer().write(rest)?;
                    rest = &rest[n..];
                    tls_flush(sock, conn, shared)?;
                }
            }
        }
        self.shared.with_session(self.id, |r| {
            let room = SENT_CAP.saturating_sub(r.sent.len());
            r.sent.extend_from_slice(&data[..data.len().min(room)]);
        });
        Ok(())
    }

    /// Writes `prefix`, then `chunk` over and over until the client goes away, the server stops, or the caps
    /// (time, bytes) are reached. Always ends in `Err` or `Ok` after a cap; the caller then closes.
    pub(crate) fn write_endless(&mut self, prefix: &[u8], chunk: &[u8]) -> io::Result<()> {
        let start = Instant::now();
        self.write_now(prefix)?;
        let mut total = prefix.len();
        while total < CAP_BYTES && start.elapsed() < CAP_TIME {
            self.check(start)?;
            self.write_raw(chunk)?;
            total += chunk.len();
        }
        Ok(())
    }

    /// Switches to TLS: discards unread plaintext (recorded as injected), then runs the server handshake.
    pub(crate) fn start_tls(&mut self, config: Arc<rustls::ServerConfig>) -> io::Result<()> {
        self.flush()?;
        let discarded = std::mem::take(&mut self.inbuf);
        self.scanned = 0;
        if !discarded.is_empty() {
            self.shared.with_session(self.id, |r| {
                r.discarded_after_starttls.extend_from_slice(&discarded)
            });
        }
        let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
        let result = self.handshake(&mut conn);
        match &result {
            Ok(()) => {
                let sni = conn.server_name().map(str::to_owned);
                self.shared.with_session(self.id, |r| {
                    r.tls = true;
                    r.sni = sni;
                });
                self.tls = Some(Box::new(conn));
            }
            Err(e) => {
                let msg = e.to_string();
                self.shared
                    .with_session(self.id, |r| r.tls_error = Some(msg));
            }
        }
        result
    }

    fn handshake(&mut self, conn: &mut ServerConnection) -> io::Result<()> {
        let shared = &*self.shared;
        let sock = &mut self.sock;
        loop {
            tls_flush(sock, conn, shared)?;
            if !conn.is_handshaking() {
                return Ok(());
            }
            if !tls_read_records(sock, conn, shared)? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed during the TLS handshake",
                ));
            }
        }
    }

    /// Reads and discards until the client closes (or a cap/stop), extracting lines for the record.
    pub(crate) fn read_lines_until_eof(
        &mut self,
        mut on_line: impl FnMut(&Line),
    ) -> io::Result<()> {
        while let Some(line) = self.read_line(CAP_BYTES)? {
            on_line(&line);
        }
        Ok(())
    }

    /// Ends politely: pending replies, TLS close_notify, TCP shutdown.
    pub(crate) fn close(&mut self) {
        let _ = self.flush();
        if let Some(conn) = &mut self.tls {
            conn.send_close_notify();
            let _ = tls_flush(&mut self.sock, conn, &self.shared);
        }
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// Ends abruptly: pending replies go out, then the socket is shut down without a TLS close_notify.
    pub(crate) fn abort(&mut self) {
        let _ = self.flush();
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}
