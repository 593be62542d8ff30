//! The `pp-adaptor` command line, run as a process: `keys init` prints the
//! WN public key line, `pp create` registers at Trustee (the KBS double) and
//! prints the line for init-data, `pp delete` removes the PP's key, and a
//! bad configuration is reported with the file and field.

mod common;

use common::{Trustee, Workspace};
use ed25519_dalek::SigningKey;
use pp_forwarder_core::key::PublicKey;
use std::path::PathBuf;
use std::process::Output;

/// Runs the binary with `args` off the async runtime (the test's KBS
/// double must keep answering meanwhile).
async fn pp_adaptor(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pp-adaptor"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn write_config(workspace: &Workspace, trustee: &Trustee) -> PathBuf {
    workspace.write_admin_key(&trustee.admin_key);
    let path = workspace.path("adaptor.toml");
    let text = format!(
        "trustee_url = \"{}\"\nadmin_key = \"admin.pem\"\nkey_dir = \"keys\"\nstate_dir = \"state\"\n",
        trustee.url()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn args(config: &std::path::Path, rest: &[&str]) -> Vec<String> {
    let mut all = vec!["--config".to_owned(), config.display().to_string()];
    all.extend(rest.iter().map(|arg| (*arg).to_owned()));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_init_pp_create_and_pp_delete_work_from_the_command_line() {
    let trustee = Trustee::start(SigningKey::from_bytes(&[41; 32])).await;
    let workspace = Workspace::new();
    let config = write_config(&workspace, &trustee);

    let init = pp_adaptor(args(&config, &["keys", "init"])).await;
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let wn_line = String::from_utf8(init.stdout).unwrap();
    let wn_key = PublicKey::parse(&wn_line).unwrap();

    let create = pp_adaptor(args(&config, &["pp", "create", "--sid", "cli1"])).await;
    assert!(
        create.status.success(),
        "{}",
        String::from_utf8_lossy(&create.stderr)
    );
    assert_eq!(
        PublicKey::parse(&String::from_utf8(create.stdout).unwrap()).unwrap(),
        wn_key
    );
    let mut paths: Vec<String> = trustee
        .resources()
        .await
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        ["default/pp-cli1/privateKey", "default/sshclient/publicKey"]
    );

    let delete = pp_adaptor(args(&config, &["pp", "delete", "--sid", "cli1"])).await;
    assert!(
        delete.status.success(),
        "{}",
        String::from_utf8_lossy(&delete.stderr)
    );
    let paths: Vec<String> = trustee
        .resources()
        .await
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(paths, ["default/sshclient/publicKey"]);
    assert!(!workspace.path("keys/pp-cli1").exists());
}

#[tokio::test]
async fn a_bad_configuration_fails_with_the_file_and_the_problem() {
    let workspace = Workspace::new();
    let path = workspace.path("adaptor.toml");
    std::fs::write(&path, "trustee_url = \"https://kbs:8080\"\nadmin_key = \"a\"\nkey_dir = \"k\"\nstate_dir = \"s\"\n").unwrap();

    let output = pp_adaptor(args(&path, &["serve"])).await;

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains("http://"),
        "{stderr}"
    );
}
