//! Registration at Trustee's admin API (against the KBS test double, which
//! checks the EdDSA admin JWT): `pp create` stores the WN public key and the
//! PP's private key, teardown deletes the PP's key there and locally (and
//! succeeds again when the key is already gone), a KBS that names an issuer
//! refuses a token without it with a hint, and a wrong admin key is refused
//! with Trustee's error kind.

mod common;

use common::{Trustee, Workspace};
use ed25519_dalek::SigningKey;
use pp_adaptor::adaptor::{Adaptor, AdaptorError};
use pp_adaptor::sid::Sid;

#[tokio::test]
async fn creating_a_pp_registers_the_wn_public_key_and_the_pp_private_key() {
    let trustee = Trustee::start(SigningKey::from_bytes(&[11; 32])).await;
    let workspace = Workspace::new();
    let config = workspace.config(trustee.url(), workspace.write_admin_key(&trustee.admin_key));
    let adaptor = Adaptor::new(&config).unwrap();
    let sid = Sid::parse("abc123").unwrap();

    adaptor.create_pp(&sid).await.unwrap();

    let private_key_file = std::fs::read(workspace.path("keys/pp-abc123")).unwrap();
    let wn_line = adaptor.wn_public_key_line();
    let mut resources = trustee.resources().await;
    resources.sort();
    assert_eq!(
        resources,
        [
            (
                "default/pp-abc123/privateKey".to_owned(),
                private_key_file.len() as u64
            ),
            (
                "default/sshclient/publicKey".to_owned(),
                wn_line.len() as u64
            ),
        ]
    );
}

#[tokio::test]
async fn teardown_deletes_the_pp_key_at_trustee_and_the_local_key_pair_and_can_be_repeated() {
    let trustee = Trustee::start(SigningKey::from_bytes(&[12; 32])).await;
    let workspace = Workspace::new();
    let config = workspace.config(trustee.url(), workspace.write_admin_key(&trustee.admin_key));
    let adaptor = Adaptor::new(&config).unwrap();
    let sid = Sid::parse("gone").unwrap();
    adaptor.create_pp(&sid).await.unwrap();

    adaptor.teardown(&sid).await.unwrap();
    // Again: the KBS (double and real) now answers the DELETE with 401
    // PluginInternalError "resource not found"; teardown is idempotent.
    adaptor.teardown(&sid).await.unwrap();

    assert_eq!(
        trustee.resource_paths().await,
        ["default/sshclient/publicKey"]
    );
    assert!(!workspace.path("keys/pp-gone").exists());
    assert!(!workspace.path("keys/pp-gone.pub").exists());
    assert!(
        workspace.path("keys/wn").exists(),
        "the WN key is shared and stays"
    );
}

#[tokio::test]
async fn a_kbs_naming_an_issuer_refuses_the_default_token_with_a_hint_to_set_it() {
    let trustee = Trustee::start_with_identity_provider(
        SigningKey::from_bytes(&[16; 32]),
        Some("pp-adaptor"),
        Some("trustee"),
    )
    .await;
    let workspace = Workspace::new();
    let mut config = workspace.config(trustee.url(), workspace.write_admin_key(&trustee.admin_key));

    let refused = Adaptor::new(&config)
        .unwrap()
        .create_pp(&Sid::parse("iss").unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("Cannot verify token with any of the issuers")
            && refused.contains("[admin_token] issuer")
            && refused.contains("identity_providers"),
        "{refused}"
    );
    assert!(trustee.resources().await.is_empty());

    config.admin_claims.issuer = Some("pp-adaptor".to_owned());
    config.admin_claims.audience = Some("trustee".to_owned());
    let adaptor = Adaptor::new(&config).unwrap();
    adaptor
        .create_pp(&Sid::parse("iss").unwrap())
        .await
        .unwrap();
    assert_eq!(trustee.resources().await.len(), 2);
}

#[tokio::test]
async fn an_admin_key_trustee_does_not_know_is_refused_with_trustees_error() {
    let trustee = Trustee::start(SigningKey::from_bytes(&[13; 32])).await;
    let workspace = Workspace::new();
    let config = workspace.config(
        trustee.url(),
        workspace.write_admin_key(&SigningKey::from_bytes(&[14; 32])),
    );
    let adaptor = Adaptor::new(&config).unwrap();

    let error = adaptor
        .create_pp(&Sid::parse("x").unwrap())
        .await
        .unwrap_err();

    assert!(matches!(error, AdaptorError::Trustee(_)), "{error}");
    let message = error.to_string();
    assert!(message.contains("401"), "{message}");
    assert!(
        message.contains("check that Trustee's admin public key"),
        "{message}"
    );
    assert!(trustee.resources().await.is_empty());
}

#[tokio::test]
async fn an_unreachable_trustee_is_reported_with_its_url() {
    let workspace = Workspace::new();
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = pp_adaptor::upstream::TrusteeUrl::parse(&format!(
        "http://{}",
        unused.local_addr().unwrap()
    ))
    .unwrap();
    drop(unused);
    let config = workspace.config(
        url.clone(),
        workspace.write_admin_key(&SigningKey::from_bytes(&[15; 32])),
    );
    let adaptor = Adaptor::new(&config).unwrap();

    let message = adaptor.register_wn_key().await.unwrap_err().to_string();

    assert!(
        message.contains("cannot reach Trustee") && message.contains(&url.to_string()),
        "{message}"
    );
}
