//! An https Trustee (the KBS test double behind TLS with the test's own CA):
//! with `trustee_ca` naming that CA the adaptor registers keys and the KBS
//! proxy reaches the PP's key; a certificate from another CA, or one for
//! another host name, is refused with the reason and nothing is stored.

mod common;

use common::{Trustee, Workspace, proxy_on_tcp};
use ed25519_dalek::SigningKey;
use pp_adaptor::adaptor::{Adaptor, AdaptorError};
use pp_adaptor::admin_jwt::{AdminClaims, AdminTokenSigner};
use pp_adaptor::sid::Sid;
use pp_adaptor::trustee_admin::TrusteeAdmin;
use pp_adaptor::upstream::{TrusteeUrl, Upstream};
use std::path::PathBuf;
use std::sync::Arc;

/// A CA, and a certificate for `localhost` it signed.
struct TestPki {
    ca_pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn test_pki(name: &str) -> TestPki {
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
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
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    }
}

/// An https double with `pki`'s certificate, and `ca_pem` written as the
/// adaptor's trustee_ca.
async fn https_trustee(
    workspace: &Workspace,
    pki: TestPki,
    ca_pem: &str,
    seed: u8,
) -> (Trustee, u16, PathBuf) {
    let (trustee, address) =
        Trustee::start_tls(SigningKey::from_bytes(&[seed; 32]), pki.acceptor).await;
    let ca_file = workspace.path("trustee-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    (trustee, address.port(), ca_file)
}

fn https_url(host: &str, port: u16) -> TrusteeUrl {
    TrusteeUrl::parse(&format!("https://{host}:{port}")).unwrap()
}

#[tokio::test]
async fn with_the_configured_ca_the_adaptor_registers_keys_at_an_https_trustee() {
    let workspace = Workspace::new();
    let pki = test_pki("test Trustee CA");
    let ca_pem = pki.ca_pem.clone();
    let (trustee, port, ca_file) = https_trustee(&workspace, pki, &ca_pem, 41).await;
    let mut config = workspace.config(
        https_url("localhost", port),
        workspace.write_admin_key(&trustee.admin_key),
    );
    config.trustee_ca = Some(ca_file);
    let adaptor = Adaptor::new(&config).unwrap();

    adaptor
        .create_pp(&Sid::parse("tls1").unwrap())
        .await
        .unwrap();

    assert_eq!(
        trustee.resource_paths().await,
        ["default/pp-tls1/privateKey", "default/sshclient/publicKey"]
    );
}

#[tokio::test]
async fn the_kbs_proxy_attests_through_to_an_https_trustee() {
    let workspace = Workspace::new();
    let pki = test_pki("test Trustee CA");
    let ca_pem = pki.ca_pem.clone();
    let (trustee, port, ca_file) = https_trustee(&workspace, pki, &ca_pem, 42).await;
    let upstream = Upstream::new(https_url("localhost", port), Some(&ca_file)).unwrap();
    let admin = TrusteeAdmin::new(
        upstream.clone(),
        AdminTokenSigner::new(trustee.admin_key.clone(), AdminClaims::default()),
    );
    let sid = Sid::parse("podT").unwrap();
    admin
        .set_pp_private_key(&sid, b"the key of pod T")
        .await
        .unwrap();
    let proxy = proxy_on_tcp(upstream, "podT").await;

    let url = pp_testdoubles::kbs_url::KbsUrl::parse(&format!("http://{proxy}")).unwrap();
    let resource =
        pp_testdoubles::resource_path::ResourcePath::parse("default/pp-sid/privateKey").unwrap();
    let key = pp_testdoubles::kbs_client::fetch_resource(url, None, &resource)
        .await
        .unwrap();

    assert_eq!(key, b"the key of pod T");
}

/// `pp create` against `url` with `ca_pem` as trustee_ca fails; returns the
/// error text, after checking that the double stored nothing.
async fn create_is_refused(host: &str, ca_pem_of: Option<&str>, seed: u8) -> String {
    let workspace = Workspace::new();
    let pki = test_pki("test Trustee CA");
    let ca_pem = ca_pem_of.map_or_else(|| pki.ca_pem.clone(), str::to_owned);
    let (trustee, port, ca_file) = https_trustee(&workspace, pki, &ca_pem, seed).await;
    let mut config = workspace.config(
        https_url(host, port),
        workspace.write_admin_key(&trustee.admin_key),
    );
    config.trustee_ca = Some(ca_file);
    let adaptor = Adaptor::new(&config).unwrap();

    let error = adaptor
        .create_pp(&Sid::parse("nope").unwrap())
        .await
        .unwrap_err();

    assert!(matches!(error, AdaptorError::Trustee(_)), "{error}");
    assert!(trustee.resources().await.is_empty());
    error.to_string()
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_and_nothing_is_stored() {
    let other_ca = test_pki("another CA").ca_pem;
    let message = create_is_refused("localhost", Some(&other_ca), 43).await;
    assert!(
        message.contains("cannot reach Trustee at https://localhost")
            && message.contains("UnknownIssuer"),
        "{message}"
    );
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused() {
    // The certificate names localhost; the URL names 127.0.0.1.
    let message = create_is_refused("127.0.0.1", None, 44).await;
    assert!(message.contains("not valid for name"), "{message}");
}
