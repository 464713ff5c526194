//! Embedding the sans-IO core in tokio, a runtime this project ships no adapter for.
//!
//! The machine decides every deadline; tokio only waits for bytes or for `poll_timeout()`, whichever comes first.
//! Run: `cargo run -p smtp-proto --example tokio` (starts its own loopback server).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // an adapter owns the clock and the socket

use std::time::Instant;

use smtp_proto::{Address, Client, Config, Envelope, Event, Outcome, ReversePath, TlsPolicy};
use smtp_test_server::{ServerConfig, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(ServerConfig::new())?; // a loopback ESMTP server for the example
    let mut socket = TcpStream::connect(server.addr()).await?;
    socket.set_nodelay(true)?;

    let mut config = Config::default();
    config.tls = TlsPolicy::None; // loopback only: plaintext must be asked for by name
    let mut client = Client::new(config, Instant::now());
    let mut pending = vec![Envelope::new(
        ReversePath::Mailbox("alice@example.org".parse::<Address>()?),
        [
            "bob@example.net".parse::<Address>()?,
            "carol@example.net".parse::<Address>()?,
        ],
    )];
    let body = b"Subject: from tokio\r\n\r\n.A line that starts with a dot.\r\n";
    let mut outcome = None;
    let mut buf = vec![0u8; 16 * 1024];

    loop {
        while let Some(bytes) = client.poll_transmit(Instant::now()) {
            socket.write_all(&bytes).await?;
        }
        let mut issued = false;
        while let Some(event) = client.poll_event() {
            // Handling an event may issue commands: transmit again before waiting.
            issued = true;
            match event {
                Event::Ready { capabilities, .. } => {
                    println!("server {} ready", capabilities.domain());
                    client.send_mail(pending.pop().expect("one message"))?;
                }
                Event::ReadyForBody { .. } => {
                    let mut rest = &body[..];
                    while !rest.is_empty() {
                        let n = client.write_body(rest)?;
                        rest = &rest[n..];
                        while let Some(bytes) = client.poll_transmit(Instant::now()) {
                            socket.write_all(&bytes).await?;
                        }
                    }
                    client.finish_body()?;
                }
                Event::RecipientReply { index, reply, .. } => {
                    println!("recipient {index}: {reply}")
                }
                Event::TransactionComplete(report) => {
                    println!("outcome: {:?}", report.outcome);
                    outcome = Some(report.outcome);
                    client.quit();
                }
                Event::Closed { error: Some(e) } => return Err(e.into()),
                Event::Closed { error: None } => {
                    return match outcome {
                        Some(Outcome::Accepted) => Ok(()),
                        other => Err(format!("message not accepted: {other:?}").into()),
                    };
                }
                _ => {}
            }
        }
        if issued {
            continue;
        }
        // Wait for bytes, or until the machine's deadline.
        let read = socket.read(&mut buf);
        let result = match client.poll_timeout() {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), read).await.ok(),
            None => Some(read.await),
        };
        match result {
            None => client.handle_timeout(Instant::now()),
            Some(Ok(0)) => client.receive_eof(Instant::now()),
            Some(Ok(n)) => client.receive(Instant::now(), &buf[..n]),
            Some(Err(e)) => return Err(e.into()),
        }
    }
}
