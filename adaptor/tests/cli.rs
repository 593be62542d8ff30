//! The `pp-adaptor` command line, run as a process: `keys init` prints the
//! WN public key line, `pp create` registers at Trustee (the KBS double) and
//! prints the line for init-data, `pp delete` removes the PP's key (and
//! succeeds when run again), and a
//! bad configuration is reported with the file and field, and `serve`
//! prints one stdout line per PP status change up to the Kubernetes phase.

mod common;

use common::fake_pp::{FakePp, FakePpOptions};
use common::{Trustee, Workspace};
use ed25519_dalek::SigningKey;
use pp_ssh_key::PublicKey;
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
        "trustee_url = \"{}\"\nadmin_key = \"admin.pem\"\nkey_dir = \"keys\"\nstate_dir = \"state\"\ncontrol_socket = \"control.sock\"\n",
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
    assert_eq!(
        trustee.resource_paths().await,
        ["default/pp-cli1/privateKey", "default/sshclient/publicKey"]
    );

    // Twice: the second delete meets the real KBS's 401 for a missing
    // resource and must still succeed (teardown is idempotent).
    for _ in 0..2 {
        let delete = pp_adaptor(args(&config, &["pp", "delete", "--sid", "cli1"])).await;
        assert!(
            delete.status.success(),
            "{}",
            String::from_utf8_lossy(&delete.stderr)
        );
    }
    assert_eq!(
        trustee.resource_paths().await,
        ["default/sshclient/publicKey"]
    );
    assert!(!workspace.path("keys/pp-cli1").exists());
}

#[tokio::test]
async fn a_bad_configuration_fails_with_the_file_and_the_problem() {
    let workspace = Workspace::new();
    let path = workspace.path("adaptor.toml");
    std::fs::write(
        &path,
        "trustee_url = \"ftp://kbs:8080\"\nadmin_key = \"a\"\nkey_dir = \"k\"\nstate_dir = \"s\"\n",
    )
    .unwrap();

    let output = pp_adaptor(args(&path, &["serve"])).await;

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains("http://"),
        "{stderr}"
    );
}

/// Kills the child when the test ends, also on failure.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_each_phase_of_a_pp_on_stdout() {
    let trustee = Trustee::start(SigningKey::from_bytes(&[42; 32])).await;
    let workspace = Workspace::new();
    let config = write_config(&workspace, &trustee);
    let create = pp_adaptor(args(&config, &["pp", "create", "--sid", "demo"])).await;
    assert!(
        create.status.success(),
        "{}",
        String::from_utf8_lossy(&create.stderr)
    );
    let pp = FakePp::start(FakePpOptions::default()).await;
    let pp_table = format!("\n[[pp]]\nsid = \"demo\"\nforwarder = \"{}\"\n", pp.address);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&pp_table);
    std::fs::write(&config, text).unwrap();

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_pp-adaptor"))
        .args(args(&config, &["serve"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.starts_with("pp demo: Kubernetes phase");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(std::time::Duration::from_secs(30), lines)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        lines.first().map(String::as_str),
        Some("pp demo: connecting"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("pp demo: attestation phase (host key SHA256:")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line == "pp demo: upgrading to the Kubernetes phase"),
        "{lines:?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("pp demo: Kubernetes phase (host key SHA256:"),
        "{lines:?}"
    );
}
