//! The resolved, shareable form of [`ConnectOptions`]: the rustls configuration is built once (trust anchors read
//! once) and shared by every connection of a pool.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use smtp_blocking::tls::{build_client_config, server_name};
use smtp_blocking::{ConnectOptions, Error, TlsMode};

/// Everything needed to open a session.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) options: ConnectOptions,
    /// The name the certificate is verified against (and sent as SNI).
    pub(crate) server_name: ServerName<'static>,
    /// `None` only with [`TlsMode::None`].
    pub(crate) tls_config: Option<Arc<ClientConfig>>,
}

impl Settings {
    pub(crate) fn new(options: ConnectOptions) -> Result<Arc<Self>, Error> {
        options.validate()?;
        let tls_config = match options.tls {
            TlsMode::None => None,
            _ => Some(build_client_config(&options.tls_options)?),
        };
        let server_name = server_name(&options.host, &options.tls_options)?;
        Ok(Arc::new(Self {
            options,
            server_name,
            tls_config,
        }))
    }

    /// The name the certificate is verified against, for messages.
    pub(crate) fn verified_name(&self) -> &str {
        self.options
            .tls_options
            .server_name
            .as_deref()
            .unwrap_or(&self.options.host)
    }
}
