//! A throw-away PKI for tests of TLS paths (an https Trustee, a registry
//! behind the egress tunnel): a fresh CA and a certificate it signed for
//! `localhost`, as a server acceptor and a client connector.

extern crate std;

use std::borrow::ToOwned;
use std::string::String;
use std::sync::Arc;
use std::vec;
use std::vec::Vec;

/// A CA, and a certificate for `localhost` it signed.
pub struct TestPki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    /// A TLS server with the `localhost` certificate.
    pub acceptor: tokio_rustls::TlsAcceptor,
}

/// A fresh CA with `name` as its common name, and its `localhost` certificate.
pub fn test_pki(name: &str) -> TestPki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    TestPki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    }
}

impl TestPki {
    /// A TLS client that trusts this CA only.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
