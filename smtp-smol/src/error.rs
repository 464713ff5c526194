//! Errors are `smtp-blocking`'s [`Error`]: one typed enum for both adapters (kind, stage, the server's reply, the
//! cause, [`Error::is_transient`], a `Display` sentence a user can act on). This module only adds the pool's own
//! cases.

pub use smtp_blocking::error::{ProxyError, ReplyCode};
pub use smtp_blocking::{Error, ErrorKind};
use smtp_proto::Stage;

/// The error of a send on a pool that was closed with [`crate::Pool::close`].
pub(crate) fn pool_closed() -> Error {
    Error::new(ErrorKind::Closed, Stage::Connect)
        .with_context("the connection pool was closed (Pool::close); no new messages are accepted")
}
