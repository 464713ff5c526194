//! A deliberately dumb std-only SMTP client for checking what the test server sends. Every read is bounded by a
//! socket read timeout.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_test_server::TestPki;
use smtp_test_server::rustls::{self, ClientConnection, StreamOwned};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// Plain or TLS stream under the test client.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub(crate) struct Client {
    pub(crate) stream: Stream,
    pub(crate) buf: Vec<u8>,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> Client {
        let sock = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
        sock.set_read_timeout(Some(TIMEOUT)).unwrap();
        sock.set_write_timeout(Some(TIMEOUT)).unwrap();
        Client {
            stream: Stream::Plain(sock),
            buf: Vec::new(),
        }
    }

    /// Connects and does a TLS handshake right away (implicit TLS).
    pub(crate) fn connect_tls(
        addr: SocketAddr,
        pki: &TestPki,
        name: &str,
    ) -> Result<Client, io::Error> {
        let mut client = Client::connect(addr);
        client.upgrade(pki.client_config(), name)?;
        Ok(client)
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        match &self.stream {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }

    pub(crate) fn set_timeout(&self, d: Duration) {
        self.tcp().set_read_timeout(Some(d)).unwrap();
    }

    /// Switches to TLS and completes the handshake; errors (certificate rejected…) are returned.
    pub(crate) fn upgrade(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> io::Result<()> {
        assert!(self.buf.is_empty(), "unread plaintext before TLS");
        let sock = match &self.stream {
            Stream::Plain(s) => s.try_clone()?,
            Stream::Tls(_) => panic!("already TLS"),
        };
        let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let conn = ClientConnection::new(config, server_name).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    pub(crate) fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes());
    }

    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// One read from the stream (after draining the local buffer).
    pub(crate) fn read_once(&mut self) -> io::Result<Vec<u8>> {
        if !self.buf.is_empty() {
            return Ok(std::mem::take(&mut self.buf));
        }
        let mut buf = vec![0u8; 64 * 1024];
        let n = self.stream.read(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// A line with its terminator, as raw bytes.
    pub(crate) fn read_line_bytes(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(self.buf.drain(..=pos).collect());
            }
            let mut buf = [0u8; 4096];
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&buf[..n]);
        }
    }

    /// A line without its CRLF.
    pub(crate) fn read_line(&mut self) -> String {
        let line = self.read_line_bytes().expect("read line");
        let text = String::from_utf8(line).expect("UTF-8 line");
        text.strip_suffix("\r\n")
            .expect("CRLF-terminated line")
            .to_owned()
    }

    /// One (possibly multiline) reply, lines without CRLF.
    pub(crate) fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines;
            }
        }
    }

    /// Sends a command and returns its reply.
    pub(crate) fn cmd(&mut self, command: &str) -> Vec<String> {
        self.send(&format!("{command}\r\n"));
        self.reply()
    }

    /// Reads until EOF (or a reset), returning what came; panics on timeout.
    pub(crate) fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return out,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return out,
                Err(e) => panic!("expected EOF, got {e}"),
            }
        }
    }

    /// Asserts nothing arrives within `d`.
    pub(crate) fn expect_silence(&mut self, d: Duration) {
        assert!(self.buf.is_empty(), "buffered: {:?}", self.buf);
        self.set_timeout(d);
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            other => panic!("expected silence, got {other:?}"),
        }
        self.set_timeout(TIMEOUT);
    }
}

/// Base64 for AUTH payloads (a tiny, independent encoder).
pub(crate) fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Polls `f` until it returns true or `timeout` passes.
pub(crate) fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}
