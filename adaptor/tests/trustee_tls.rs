//! An https Trustee (the KBS test double behind TLS with the test's own CA):
//! with `trustee_ca` naming that CA the adaptor registers keys and the KBS
//! proxy reaches the PP's key; a certificate from another CA, or one for
//! another host name, is refused with the reason and nothing is stored.

mod common;

use common::{Trustee, Workspace, fetch_pp_sid_key, proxy_on_tcp};
use ed25519_dalek::SigningKey;
use pp_adaptor::adaptor::{Adaptor, AdaptorError};
use pp_adaptor::config::AdaptorConfig;
use pp_adaptor::sid::Sid;
use pp_adaptor::upstream::{TrusteeUrl, Upstream};
use pp_test_support::tls::test_pki;
use std::path::PathBuf;

/// The KBS double serving https with a certificate for `localhost` from a
/// fresh test CA, and the adaptor's trustee_ca file: that CA's certificate,
/// or `trusted_ca` instead when given.
struct HttpsTrustee {
    trustee: Trustee,
    port: u16,
    ca_file: PathBuf,
}

impl HttpsTrustee {
    async fn start(workspace: &Workspace, seed: u8, trusted_ca: Option<&str>) -> Self {
        let pki = test_pki("test Trustee CA");
        let ca_file = workspace.path("trustee-ca.pem");
        std::fs::write(&ca_file, trusted_ca.unwrap_or(&pki.ca_pem)).unwrap();
        let (trustee, address) =
            Trustee::start_tls(SigningKey::from_bytes(&[seed; 32]), pki.acceptor).await;
        Self {
            trustee,
            port: address.port(),
            ca_file,
        }
    }

    fn url(&self, host: &str) -> TrusteeUrl {
        TrusteeUrl::parse(&format!("https://{host}:{}", self.port)).unwrap()
    }

    /// The adaptor's configuration for this Trustee, reached as `host`.
    fn config(&self, workspace: &Workspace, host: &str) -> AdaptorConfig {
        let mut config = workspace.config(
            self.url(host),
            workspace.write_admin_key(&self.trustee.admin_key),
        );
        config.trustee_ca = Some(self.ca_file.clone());
        config
    }
}

#[tokio::test]
async fn with_the_configured_ca_the_adaptor_registers_keys_at_an_https_trustee() {
    let workspace = Workspace::new();
    let https = HttpsTrustee::start(&workspace, 41, None).await;
    let adaptor = Adaptor::new(&https.config(&workspace, "localhost")).unwrap();

    adaptor
        .create_pp(&Sid::parse("tls1").unwrap())
        .await
        .unwrap();

    assert_eq!(
        https.trustee.resource_paths().await,
        ["default/pp-tls1/privateKey", "default/sshclient/publicKey"]
    );
}

#[tokio::test]
async fn the_kbs_proxy_attests_through_to_an_https_trustee() {
    let workspace = Workspace::new();
    let https = HttpsTrustee::start(&workspace, 42, None).await;
    let upstream = Upstream::new(https.url("localhost"), Some(&https.ca_file)).unwrap();
    https
        .trustee
        .admin(upstream.clone())
        .set_pp_private_key(&Sid::parse("podT").unwrap(), b"the key of pod T")
        .await
        .unwrap();
    let proxy = proxy_on_tcp(upstream, "podT").await;

    let key = fetch_pp_sid_key(proxy).await;

    assert_eq!(key, b"the key of pod T");
}

/// `pp create` against the https double reached as `host`, with
/// `trusted_ca` as trustee_ca when given, fails; returns the error text,
/// after checking that the double stored nothing.
async fn create_is_refused(host: &str, trusted_ca: Option<&str>, seed: u8) -> String {
    let workspace = Workspace::new();
    let https = HttpsTrustee::start(&workspace, seed, trusted_ca).await;
    let adaptor = Adaptor::new(&https.config(&workspace, host)).unwrap();

    let error = adaptor
        .create_pp(&Sid::parse("nope").unwrap())
        .await
        .unwrap_err();

    assert!(matches!(error, AdaptorError::Trustee(_)), "{error}");
    assert!(https.trustee.resources().await.is_empty());
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
