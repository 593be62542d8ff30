//! Keys made by the operators' usual tools are accepted as they are:
//! `ssh-keygen -t ed25519` for the WN and PP key pairs and the admin key,
//! `openssl genpkey -algorithm ed25519` for the admin key (as Trustee's
//! docs make it). Needs `ssh-keygen` and `openssl` on PATH
//! (`apt-get install -y openssh-client openssl`).

mod common;

use common::{Trustee, Workspace};
use ed25519_dalek::SigningKey;
use pp_adaptor::adaptor::Adaptor;
use pp_adaptor::admin_key::load_admin_key;
use pp_adaptor::keystore::directory::DirectoryKeys;
use pp_adaptor::sid::Sid;
use pp_ssh_key::PublicKey;
use std::path::Path;
use std::process::Command;

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|error| {
            panic!("cannot run {program} ({error}): apt-get install -y openssh-client openssl")
        });
    assert!(status.success(), "{program} {args:?} failed");
}

fn ssh_keygen(path: &Path) {
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "made-by-ssh-keygen",
            "-f",
            path.to_str().unwrap(),
        ],
    );
}

#[test]
fn ssh_keygen_key_pairs_serve_as_wn_and_pp_keys() {
    let workspace = Workspace::new();
    let keys = DirectoryKeys::open(&workspace.path("keys")).unwrap();
    ssh_keygen(&workspace.path("keys/wn"));
    ssh_keygen(&workspace.path("keys/pp-abc"));

    let wn = keys.load_wn().unwrap();
    let pp_public = keys.pp_public_key(&Sid::parse("abc").unwrap()).unwrap();

    let wn_pub_line = std::fs::read_to_string(workspace.path("keys/wn.pub")).unwrap();
    assert_eq!(PublicKey::parse(&wn_pub_line).unwrap(), wn.public());
    let pp_pub_line = std::fs::read_to_string(workspace.path("keys/pp-abc.pub")).unwrap();
    assert_eq!(PublicKey::parse(&pp_pub_line).unwrap(), pp_public);
}

#[test]
fn an_ssh_keygen_admin_key_signs_tokens_with_its_own_key() {
    let workspace = Workspace::new();
    let path = workspace.path("admin");
    ssh_keygen(&path);
    let key = load_admin_key(&path).unwrap();
    let public_line = std::fs::read_to_string(workspace.path("admin.pub")).unwrap();
    assert_eq!(
        key.verifying_key().to_bytes(),
        *PublicKey::parse(&public_line).unwrap().as_bytes()
    );
}

#[tokio::test]
async fn an_openssl_admin_key_is_accepted_by_trustees_admin_api() {
    let workspace = Workspace::new();
    let path = workspace.path("admin.pem");
    run(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            path.to_str().unwrap(),
        ],
    );
    let admin_key: SigningKey = load_admin_key(&path).unwrap();
    let trustee = Trustee::start(admin_key).await;
    let adaptor = Adaptor::new(&workspace.config(trustee.url(), path)).unwrap();

    adaptor.register_wn_key().await.unwrap();

    assert_eq!(trustee.resources().await.len(), 1);
}
