//! STARTTLS, implicit TLS and the bad certificates.

mod common;

use std::time::Duration;

use common::{Client, b64};
use smtp_test_server::rustls;
use smtp_test_server::{ServerCert, ServerConfig, TestPki, TestServer};

#[test]
fn starttls_upgrade_forgets_state_and_records_tls() {
    let pki = TestPki::new();
    let server =
        TestServer::start(ServerConfig::new().starttls(&pki).user("alice", "secret")).unwrap();
    let mut c = Client::connect(server.addr());
    c.reply();
    let ehlo = c.cmd("EHLO x");
    assert!(ehlo.contains(&"250-STARTTLS".to_owned()), "{ehlo:?}");
    c.cmd("MAIL FROM:<before@tls>");
    assert_eq!(c.cmd("STARTTLS"), ["220 2.0.0 Ready to start TLS"]);
    c.upgrade(pki.client_config(), "localhost")
        .expect("handshake");
    // RFC 3207 §4.2: EHLO needed again, the transaction is gone, STARTTLS no longer offered.
    assert_eq!(
        c.cmd("MAIL FROM:<a@b>")[0],
        "503 5.5.1 Error: send HELO/EHLO first"
    );
    let ehlo = c.cmd("EHLO x");
    assert!(!ehlo.iter().any(|l| l.contains("STARTTLS")), "{ehlo:?}");
    assert!(ehlo.contains(&"250-AUTH PLAIN LOGIN".to_owned()));
    assert_eq!(c.cmd("STARTTLS")[0], "503 5.5.1 Error: TLS already active");
    let auth = b64(b"\0alice\0secret");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {auth}"))[0],
        "235 2.7.0 Authentication successful"
    );
    c.cmd("MAIL FROM:<a@b>");
    c.cmd("RCPT TO:<c@d>");
    c.cmd("DATA");
    c.send("secret body\r\n.\r\n");
    assert!(c.reply()[0].starts_with("250 "));
    assert_eq!(c.cmd("QUIT"), ["221 2.0.0 Bye"]);

    let m = &server.messages()[0];
    assert!(m.tls);
    assert_eq!(m.body, b"secret body\r\n");
    assert!(server.wait_idle(Duration::from_secs(5)));
    let s = &server.sessions()[0];
    assert!(s.tls);
    assert_eq!(s.sni.as_deref(), Some("localhost"));
    assert!(s.tls_error.is_none() && s.error.is_none(), "{s:?}");
    let tls_flags: Vec<(String, bool)> = s.lines.iter().map(|l| (l.verb(), l.tls)).collect();
    assert_eq!(
        tls_flags[..3],
        [
            ("EHLO".to_owned(), false),
            ("MAIL".to_owned(), false),
            ("STARTTLS".to_owned(), false)
        ]
    );
    // No AUTH was sent before TLS.
    assert!(s.lines_with_verb("AUTH").iter().all(|l| l.tls));
}

#[test]
fn starttls_to_ip_address_name() {
    let pki = TestPki::shared();
    let server = TestServer::start(ServerConfig::new().starttls(&pki)).unwrap();
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO x");
    c.cmd("STARTTLS");
    c.upgrade(pki.client_config(), "127.0.0.1")
        .expect("IP SAN verifies");
    assert_eq!(c.cmd("EHLO x")[0], "250-test.example greets x");
    // No SNI for an IP address.
    assert!(server.sessions()[0].sni.is_none());
}

#[test]
fn plaintext_pipelined_after_starttls_is_discarded() {
    let pki = TestPki::shared();
    let server = TestServer::start(ServerConfig::new().starttls(&pki)).unwrap();
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO x");
    c.send("STARTTLS\r\nNOOP\r\n");
    assert_eq!(c.reply(), ["220 2.0.0 Ready to start TLS"]);
    c.upgrade(pki.client_config(), "localhost").unwrap();
    assert_eq!(c.cmd("NOOP"), ["250 2.0.0 Ok"]);
    let s = &server.sessions()[0];
    assert_eq!(s.discarded_after_starttls, b"NOOP\r\n");
    assert_eq!(s.verbs(), ["EHLO", "STARTTLS", "NOOP"]);
}

#[test]
fn implicit_tls_greets_inside_tls() {
    let pki = TestPki::shared();
    let server = TestServer::start(ServerConfig::new().implicit_tls(&pki).user("u", "p")).unwrap();
    let mut c = Client::connect_tls(server.addr(), &pki, "localhost").expect("handshake");
    assert_eq!(c.reply(), ["220 test.example ESMTP"]);
    let ehlo = c.cmd("EHLO x");
    assert!(!ehlo.iter().any(|l| l.contains("STARTTLS")));
    assert_eq!(c.cmd("STARTTLS")[0], "503 5.5.1 Error: TLS already active");
    assert!(server.sessions()[0].lines.iter().all(|l| l.tls));
}

#[test]
fn implicit_tls_server_is_silent_to_a_plaintext_client() {
    let pki = TestPki::shared();
    let server = TestServer::start(ServerConfig::new().implicit_tls(&pki)).unwrap();
    let mut c = Client::connect(server.addr());
    // The client waits for a greeting that never comes: the server waits for a ClientHello.
    c.expect_silence(Duration::from_millis(300));
    // Speaking plaintext anyway gets a TLS alert (or a close), never SMTP.
    c.send("EHLO x\r\n");
    let rest = c.read_to_end();
    assert!(
        !rest.starts_with(b"2") && !rest.starts_with(b"5"),
        "{rest:?}"
    );
    assert!(server.wait_idle(Duration::from_secs(5)));
    assert!(server.sessions()[0].tls_error.is_some());
}

#[test]
fn plaintext_server_answers_tls_client_with_220() {
    // The mismatch the other way round: a client starting TLS on a plaintext port receives "220 " bytes.
    let server = TestServer::start(ServerConfig::new()).unwrap();
    let pki = TestPki::shared();
    let err = Client::connect_tls(server.addr(), &pki, "localhost")
        .err()
        .expect("handshake fails");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert!(server.wait_for(Duration::from_secs(5), |s, _| {
        s[0].sent.starts_with(b"220 test.example ESMTP\r\n")
    }));
}

fn handshake_error(cert: ServerCert) -> rustls::Error {
    let pki = TestPki::new();
    let server = TestServer::start(ServerConfig::new().starttls(&pki).certificate(cert)).unwrap();
    let mut c = Client::connect(server.addr());
    c.reply();
    c.cmd("EHLO x");
    assert_eq!(c.cmd("STARTTLS")[0], "220 2.0.0 Ready to start TLS");
    let err = c
        .upgrade(pki.client_config(), "localhost")
        .expect_err("the client must reject this certificate");
    assert!(server.wait_idle(Duration::from_secs(5)));
    let s = &server.sessions()[0];
    assert!(!s.tls && s.tls_error.is_some(), "{s:?}");
    *err.into_inner()
        .expect("rustls error inside")
        .downcast::<rustls::Error>()
        .expect("a rustls::Error")
}

#[test]
fn wrong_name_certificate_is_rejected() {
    let err = handshake_error(ServerCert::WrongName);
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. }
            ) | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
        ),
        "{err:?}"
    );
}

#[test]
fn unknown_ca_certificate_is_rejected() {
    let err = handshake_error(ServerCert::UnknownCa);
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    );
}

#[test]
fn expired_certificate_is_rejected() {
    let err = handshake_error(ServerCert::Expired);
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }
            )
        ),
        "{err:?}"
    );
}

#[test]
fn pki_exports() {
    let pki = TestPki::new();
    assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(!pki.ca_der().is_empty());
    assert_ne!(
        pki.cert_der(ServerCert::Valid),
        pki.cert_der(ServerCert::UnknownCa)
    );
    assert!(pki.cert_pem(ServerCert::WrongName).contains("CERTIFICATE"));
    // Two PKIs do not trust each other.
    let other = TestPki::new();
    assert_ne!(pki.ca_der(), other.ca_der());
    let server = TestServer::start(ServerConfig::new().implicit_tls(&other)).unwrap();
    assert!(Client::connect_tls(server.addr(), &pki, "localhost").is_err());
}
