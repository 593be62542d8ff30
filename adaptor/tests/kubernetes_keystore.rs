//! The Kubernetes key store (Secrets) against the Secrets API test double,
//! reached through a kubeconfig as an operator's would be: the WN key made
//! once and shared, a race of adaptors ending with one key, PP keys made
//! and deleted with their labels, a stale update retried, and the errors an
//! operator meets (RBAC, credentials, SIDs that cannot name a Secret).

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pp_adaptor::keystore::kubernetes::{
    KIND_LABEL, PP_SECRET_PREFIX, PRIVATE_KEY_DATA, PUBLIC_KEY_DATA, SID_ANNOTATION, SID_LABEL,
    SecretsConfig, WN_SECRET,
};
use pp_adaptor::keystore::{KeyStore, KeyStoreConfig, KeyStoreError, public_line};
use pp_adaptor::sid::Sid;
use pp_ssh_key::{PrivateKey, PublicKey};
use pp_testdoubles::secrets_api_double::SecretsApiDouble;
use serde_json::json;

const NAMESPACE: &str = "peerpod";
const TOKEN: &str = "service-account-token";

struct Cluster {
    double: Arc<SecretsApiDouble>,
    url: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let double = SecretsApiDouble::new(NAMESPACE, Some(TOKEN));
        let url = double.start().await.unwrap();
        Cluster {
            double,
            url,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A kubeconfig for the double with `token`.
    fn kubeconfig(&self, token: &str) -> PathBuf {
        let path = self.dir.path().join(format!("kubeconfig-{token}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: {}\n\
             users:\n- name: adaptor\n  user:\n    token: {token}\n\
             contexts:\n- name: double\n  context:\n    cluster: double\n    user: adaptor\n\
             current-context: double\n",
            self.url
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn store_in(&self, namespace: &str, token: &str) -> KeyStore {
        KeyStore::open(&KeyStoreConfig::Kubernetes(SecretsConfig {
            namespace: namespace.into(),
            kubeconfig: Some(self.kubeconfig(token)),
        }))
        .await
        .unwrap()
    }

    async fn store(&self) -> KeyStore {
        self.store_in(NAMESPACE, TOKEN).await
    }

    fn data(&self, name: &str, key: &str) -> String {
        let secret = self.double.secret(name).expect("the Secret exists");
        let encoded = secret["data"][key].as_str().expect("the data key exists");
        String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap()
    }
}

#[tokio::test]
async fn the_wn_key_is_made_once_as_a_labelled_secret_and_then_reused() {
    let cluster = Cluster::start().await;
    let store = cluster.store().await;
    let first = store.load_or_create_wn().await.unwrap();
    let second = cluster.store().await.load_or_create_wn().await.unwrap();
    assert_eq!(first.public(), second.public());
    assert_eq!(cluster.double.requests("POST"), 1);
    let stored = PrivateKey::parse(&cluster.data(WN_SECRET, PRIVATE_KEY_DATA)).unwrap();
    assert_eq!(stored.public(), first.public());
    assert_eq!(
        cluster.data(WN_SECRET, PUBLIC_KEY_DATA),
        public_line(&first)
    );
    let secret = cluster.double.secret(WN_SECRET).unwrap();
    assert_eq!(secret["metadata"]["labels"][KIND_LABEL], "wn");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(store.load_wn().await.unwrap().public(), first.public());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptors_racing_to_make_the_wn_key_all_end_with_the_winners_key() {
    let cluster = Arc::new(Cluster::start().await);
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(cluster.store().await);
    }
    let racers: Vec<_> = stores
        .into_iter()
        .map(|store| tokio::spawn(async move { store.load_or_create_wn().await.unwrap().public() }))
        .collect();
    let mut keys: Vec<PublicKey> = Vec::new();
    for racer in racers {
        keys.push(racer.await.unwrap());
    }
    let stored = PrivateKey::parse(&cluster.data(WN_SECRET, PRIVATE_KEY_DATA)).unwrap();
    assert!(keys.iter().all(|key| *key == stored.public()), "{keys:?}");
    assert_eq!(cluster.double.names(), vec![WN_SECRET.to_owned()]);
}

#[tokio::test]
async fn a_pp_key_is_a_secret_labelled_with_its_sid_and_removal_deletes_it_idempotently() {
    let cluster = Cluster::start().await;
    let store = cluster.store().await;
    let sid = Sid::parse(&"0123456789abcdef".repeat(4)).unwrap();
    let key = store.load_or_create_pp(&sid).await.unwrap();
    let name = format!("{PP_SECRET_PREFIX}{sid}");
    let secret = cluster.double.secret(&name).expect("the PP's Secret");
    assert_eq!(secret["metadata"]["labels"][KIND_LABEL], "pp");
    assert_eq!(secret["metadata"]["labels"][SID_LABEL], &sid.as_str()[..63]);
    assert_eq!(
        secret["metadata"]["annotations"][SID_ANNOTATION],
        sid.as_str()
    );
    assert_eq!(store.pp_public_key(&sid).await.unwrap(), key.public());
    let file = store.pp_private_key_file(&sid).await.unwrap();
    assert_eq!(PrivateKey::parse(&file).unwrap().public(), key.public());
    assert_eq!(
        store.load_or_create_pp(&sid).await.unwrap().public(),
        key.public()
    );

    store.remove_pp(&sid).await.unwrap();
    assert!(cluster.double.secret(&name).is_none());
    store.remove_pp(&sid).await.unwrap();
    let error = store.pp_public_key(&sid).await.unwrap_err();
    assert!(
        matches!(error, KeyStoreError::MissingPpKey { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("pp-adaptor pp create"),
        "{error}"
    );
}

#[tokio::test]
async fn a_secret_without_its_public_key_gets_it_added_and_a_stale_update_is_read_again() {
    let cluster = Cluster::start().await;
    let key = PrivateKey::from_seed([5; 32]).with_comment("made-by-hand");
    cluster
        .double
        .insert(json!({
            "metadata": {"name": WN_SECRET},
            "stringData": {PRIVATE_KEY_DATA: key.emit(1).as_str()},
        }))
        .unwrap();
    cluster.double.change_after_next_get(WN_SECRET);
    let store = cluster.store().await;
    assert_eq!(store.load_wn().await.unwrap().public(), key.public());
    // The first update carried the version read before the change: 409
    // Conflict, read again, update again.
    assert_eq!(cluster.double.requests("PUT"), 2);
    assert_eq!(cluster.double.requests("GET"), 2);
    assert_eq!(cluster.data(WN_SECRET, PUBLIC_KEY_DATA), public_line(&key));
}

#[tokio::test]
async fn a_public_key_that_does_not_match_is_refused() {
    let cluster = Cluster::start().await;
    let key = PrivateKey::from_seed([6; 32]);
    let other = PrivateKey::from_seed([7; 32]);
    cluster
        .double
        .insert(json!({
            "metadata": {"name": WN_SECRET},
            "stringData": {PRIVATE_KEY_DATA: key.emit(1).as_str(), PUBLIC_KEY_DATA: public_line(&other)},
        }))
        .unwrap();
    let error = cluster.store().await.load_wn().await.unwrap_err();
    assert!(
        matches!(error, KeyStoreError::PairMismatch { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn rbac_credentials_and_unusable_sids_fail_with_what_to_do() {
    let cluster = Cluster::start().await;
    let forbidden = cluster
        .store_in("kube-system", TOKEN)
        .await
        .load_or_create_wn()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        forbidden.contains("403 Forbidden") && forbidden.contains("deploy/rbac.yaml"),
        "{forbidden}"
    );
    let unauthorized = cluster
        .store_in(NAMESPACE, "wrong-token")
        .await
        .load_wn()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        unauthorized.contains("401") && unauthorized.contains("credentials"),
        "{unauthorized}"
    );
    let missing = cluster
        .store()
        .await
        .load_wn()
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("pp-adaptor keys init"), "{missing}");
    let upper = Sid::parse("ABC_1").unwrap();
    let unusable = cluster
        .store()
        .await
        .load_or_create_pp(&upper)
        .await
        .unwrap_err()
        .to_string();
    assert!(unusable.contains("lowercase"), "{unusable}");
    assert!(cluster.double.names().is_empty());
}

#[tokio::test]
async fn a_missing_kubeconfig_names_the_file_and_the_fix() {
    let error = KeyStore::open(&KeyStoreConfig::Kubernetes(SecretsConfig {
        namespace: NAMESPACE.into(),
        kubeconfig: Some("/nonexistent/kubeconfig".into()),
    }))
    .await
    .err()
    .expect("no such kubeconfig")
    .to_string();
    assert!(
        error.contains("/nonexistent/kubeconfig") && error.contains("[kubernetes_secrets]"),
        "{error}"
    );
}
