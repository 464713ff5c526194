//! Certificates generated at run time: [`TestPki`], [`ServerCert`].

use std::fmt;
use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Which certificate the server presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerCert {
    /// For `localhost`, `127.0.0.1` and `::1`, signed by the test CA ([`TestPki::ca_pem`]): verifies.
    Valid,
    /// For `wrong.example` only, signed by the test CA: fails name verification for `localhost`.
    WrongName,
    /// Self-signed for `localhost`, `127.0.0.1` and `::1`: fails chain verification (unknown issuer).
    UnknownCa,
    /// For `localhost`, `127.0.0.1` and `::1`, signed by the test CA, valid 1999-01-01 to 2000-01-01: expired.
    Expired,
}

struct Identity {
    cert: CertificateDer<'static>,
    cert_pem: String,
    key_pkcs8: Vec<u8>,
}

struct Inner {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    valid: Identity,
    wrong_name: Identity,
    unknown_ca: Identity,
    expired: Identity,
}

/// A throw-away PKI: a CA and server certificates signed (or not) by it, made with rcgen (ECDSA P-256, a few
/// milliseconds), so a fresh one per test is fine. Cloning is cheap (shared inside).
///
/// Clients under test trust [`ca_pem`](Self::ca_pem) (or [`ca_der`](Self::ca_der)) and connect to `localhost`,
/// `127.0.0.1` or `::1`; the server picks its certificate by [`ServerCert`].
#[derive(Clone)]
pub struct TestPki {
    inner: Arc<Inner>,
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn leaf_params(sans: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::new(names(sans)).expect("valid subject alt names");
    params.distinguished_name.push(DnType::CommonName, sans[0]);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

fn issue(params: CertificateParams, issuer: Option<&Issuer<'_, KeyPair>>) -> Identity {
    let key = KeyPair::generate().expect("generate key");
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer),
        None => params.self_signed(&key),
    }
    .expect("sign certificate");
    Identity {
        cert_pem: cert.pem(),
        cert: cert.der().clone(),
        key_pkcs8: key.serialize_der(),
    }
}

impl TestPki {
    /// Generate a new CA and the four server certificates. Panics only if rcgen fails, which it does not for
    /// these fixed parameters.
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "smtp-test-server CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let valid = issue(leaf_params(&LOCAL_NAMES), Some(&issuer));
        let wrong_name = issue(leaf_params(&["wrong.example"]), Some(&issuer));
        let unknown_ca = issue(leaf_params(&LOCAL_NAMES), None);
        let mut expired_params = leaf_params(&LOCAL_NAMES);
        expired_params.not_before = rcgen::date_time_ymd(1999, 1, 1);
        expired_params.not_after = rcgen::date_time_ymd(2000, 1, 1);
        let expired = issue(expired_params, Some(&issuer));

        TestPki {
            inner: Arc::new(Inner {
                ca_pem: ca_cert.pem(),
                ca_der: ca_cert.der().clone(),
                valid,
                wrong_name,
                unknown_ca,
                expired,
            }),
        }
    }

    /// One PKI shared by the whole test binary, created on first use.
    pub fn shared() -> TestPki {
        static SHARED: OnceLock<TestPki> = OnceLock::new();
        SHARED.get_or_init(TestPki::new).clone()
    }

    /// The CA certificate in PEM, for the client's trust store.
    pub fn ca_pem(&self) -> String {
        self.inner.ca_pem.clone()
    }

    /// The CA certificate in DER, for the client's trust store.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.inner.ca_der.clone()
    }

    fn identity(&self, which: ServerCert) -> &Identity {
        match which {
            ServerCert::Valid => &self.inner.valid,
            ServerCert::WrongName => &self.inner.wrong_name,
            ServerCert::UnknownCa => &self.inner.unknown_ca,
            ServerCert::Expired => &self.inner.expired,
        }
    }

    /// A server certificate in PEM (e.g. to pin or trust the [`ServerCert::UnknownCa`] one explicitly).
    pub fn cert_pem(&self, which: ServerCert) -> String {
        self.identity(which).cert_pem.clone()
    }

    /// A server certificate in DER.
    pub fn cert_der(&self, which: ServerCert) -> CertificateDer<'static> {
        self.identity(which).cert.clone()
    }

    /// A root store holding only the test CA.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der()).expect("add test CA");
        roots
    }

    /// A rustls client configuration (ring provider, default protocol versions) trusting only the test CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(self.root_store())
            .with_no_client_auth();
        Arc::new(config)
    }

    /// The rustls server configuration (ring provider) presenting `which`; what the server uses for TLS.
    pub fn server_config(&self, which: ServerCert) -> Arc<rustls::ServerConfig> {
        let identity = self.identity(which);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8.clone()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_no_client_auth()
            .with_single_cert(vec![identity.cert.clone()], key)
            .expect("matching certificate and key");
        Arc::new(config)
    }
}
