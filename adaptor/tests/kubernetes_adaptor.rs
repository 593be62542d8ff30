//! The adaptor in a cluster's setting, against the KBS and Secrets API
//! test doubles: `pp create` keeps the PP key pair as a Secret and
//! registers it at Trustee, teardown deletes both, two adaptors share one
//! WN key; a Trustee admin key mounted as a Secret volume is rotated by
//! swapping its `..data` link and the next admin call uses the new key.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Trustee, Workspace, kubelet_publish};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use pp_adaptor::adaptor::Adaptor;
use pp_adaptor::admin_key::AdminKey;
use pp_adaptor::keystore::KeyStoreConfig;
use pp_adaptor::keystore::kubernetes::{PP_SECRET_PREFIX, PRIVATE_KEY_DATA, SecretsConfig};
use pp_adaptor::sid::Sid;
use pp_testdoubles::secrets_api_double::SecretsApiDouble;

#[tokio::test]
async fn pp_keys_live_as_secrets_registered_at_trustee_and_go_with_the_pod() {
    let trustee = Trustee::start(SigningKey::from_bytes(&[21; 32])).await;
    let secrets = SecretsApiDouble::new("peerpod", None);
    let url = secrets.start().await.unwrap();
    let workspace = Workspace::new();
    let kubeconfig = workspace.path("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
             current-context: c\n"
        ),
    )
    .unwrap();
    let mut config = workspace.config(trustee.url(), workspace.write_admin_key(&trustee.admin_key));
    config.key_store = KeyStoreConfig::Kubernetes(SecretsConfig {
        namespace: "peerpod".into(),
        kubeconfig: Some(kubeconfig),
    });
    let first = Adaptor::open(&config).await.unwrap();
    let second = Adaptor::open(&config).await.unwrap();
    assert_eq!(first.wn_public_key_line(), second.wn_public_key_line());

    let sid = Sid::parse("0a1b2c").unwrap();
    first.create_pp(&sid).await.unwrap();
    let name = format!("{PP_SECRET_PREFIX}{sid}");
    let stored = secrets.secret(&name).expect("the PP's Secret");
    let private_key = STANDARD
        .decode(stored["data"][PRIVATE_KEY_DATA].as_str().unwrap())
        .unwrap();
    let registered = trustee.resources().await;
    assert!(
        registered.contains(&(
            "default/pp-0a1b2c/privateKey".to_owned(),
            private_key.len() as u64
        )),
        "{registered:?}"
    );
    assert!(Adaptor::new(&config).is_err(), "a Secrets store needs open");

    // Another node's adaptor tears the pod down: the Secret and the
    // registration go.
    second.teardown(&sid).await.unwrap();
    assert!(secrets.secret(&name).is_none());
    assert!(
        !trustee
            .resources()
            .await
            .iter()
            .any(|(path, _)| path.contains("pp-0a1b2c"))
    );
    second.teardown(&sid).await.unwrap();
}

#[tokio::test]
async fn a_rotated_admin_key_secret_volume_is_used_from_the_next_admin_call_on() {
    let old = SigningKey::from_bytes(&[31; 32]);
    let new = SigningKey::from_bytes(&[32; 32]);
    let pem = |key: &SigningKey| key.to_pkcs8_pem(Default::default()).unwrap().to_string();
    // Trustee already trusts the new key; the volume still holds the old one.
    let trustee = Trustee::start(new.clone()).await;
    let workspace = Workspace::new();
    let volume = workspace.path("admin");
    std::fs::create_dir(&volume).unwrap();
    kubelet_publish(&volume, "admin.pem", 1, &pem(&old), 0o400);
    let config = workspace.config(trustee.url(), volume.join("admin.pem"));
    let adaptor = Adaptor::new(&config).unwrap();
    let refused = adaptor.register_wn_key().await.unwrap_err().to_string();
    assert!(refused.contains("401"), "{refused}");

    kubelet_publish(&volume, "admin.pem", 2, &pem(&new), 0o400);
    adaptor.register_wn_key().await.unwrap();
    assert_eq!(trustee.resources().await.len(), 1);

    // An update that is not a usable key (or that others can read) keeps
    // the last good key.
    let watched = AdminKey::watch_file(&volume.join("admin.pem")).unwrap();
    kubelet_publish(&volume, "admin.pem", 3, "garbage", 0o400);
    assert_eq!(watched.current().to_bytes(), new.to_bytes());
    kubelet_publish(&volume, "admin.pem", 4, &pem(&old), 0o644);
    assert_eq!(watched.current().to_bytes(), new.to_bytes());
    adaptor.register_wn_key().await.unwrap();
    kubelet_publish(&volume, "admin.pem", 5, &pem(&old), 0o400);
    assert_eq!(watched.current().to_bytes(), old.to_bytes());
}
