//! The AA, CDH and api-server-rest doubles as separate processes, seen
//! from outside: they fail at start where the real ones do, api-server-rest
//! answers 500 until CDH is there, and a resource then comes from the KBS
//! double through api-server-rest -> CDH -> KBS, with AA checked per
//! request. Sockets live in a scratch directory (`--attestation_sock`,
//! `--aa-socket` and `socket =` in cdh.toml; the image uses the real paths).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{AdminKey, RunningDouble, post_resource, send_once, start_kbs};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unix(path: &Path) -> String {
    format!("unix://{}", path.display())
}

/// Runs the CDH double to its end; returns the exit status and stderr.
fn cdh_exits(config: &Path, aa_socket: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_confidential-data-hub-double"))
        .arg("-c")
        .arg(config)
        .arg("--aa-socket")
        .arg(unix(aa_socket))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_split_doubles_start_like_the_real_ones_and_fetch_through_the_kbs() {
    let scratch = Scratch(std::env::temp_dir().join(format!("split-gc-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let aa_socket = scratch.0.join("aa/attestation-agent.sock");
    let cdh_socket = scratch.0.join("cdh.sock");
    let admin = AdminKey::new("split-gc");
    let kbs = start_kbs(&admin, &[]);
    let config = scratch.0.join("cdh.toml");
    std::fs::write(
        &config,
        format!(
            "socket = \"{}\"\ncredentials = []\n[kbc]\nname = \"cc_kbc\"\nurl = \"http://{}\"\n",
            unix(&cdh_socket),
            kbs.address
        ),
    )
    .unwrap();

    let (status, stderr) = cdh_exits(&scratch.0.join("missing.toml"), &aa_socket);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("failed to read config file"), "{stderr}");
    let (status, stderr) = cdh_exits(&config, &aa_socket);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("attestation agent at"), "{stderr}");

    let api = RunningDouble::start(
        env!("CARGO_BIN_EXE_api-server-rest-double"),
        &[
            "--features",
            "resource",
            "--listen",
            "127.0.0.1:0",
            "--cdh-socket",
            &unix(&cdh_socket),
        ],
    );
    let early = send_once(&api.address, "GET", "/cdh/resource/default/k/1", &[], b"").await;
    assert_eq!(early.status, 500);
    assert!(String::from_utf8_lossy(&early.body).starts_with("ttrpc request error"));

    let aa = RunningDouble::start(
        env!("CARGO_BIN_EXE_attestation-agent-double"),
        &[
            "-c",
            config.to_str().unwrap(),
            "--attestation_sock",
            &unix(&aa_socket),
        ],
    );
    let _cdh = RunningDouble::start(
        env!("CARGO_BIN_EXE_confidential-data-hub-double"),
        &[
            "-c",
            config.to_str().unwrap(),
            "--aa-socket",
            &unix(&aa_socket),
        ],
    );
    let stored = post_resource(
        &kbs.address,
        &admin.valid_bearer(),
        "default/k/1",
        b"secret",
    )
    .await;
    assert_eq!(stored.status, 200);
    let fetched = send_once(&api.address, "GET", "/cdh/resource/default/k/1", &[], b"").await;
    assert_eq!(
        fetched.status,
        200,
        "{}",
        String::from_utf8_lossy(&fetched.body)
    );
    assert_eq!(fetched.body, b"secret");
    kbs.wait_for_log("-> 200 released resource default/k/1");

    drop(aa);
    let without_aa = send_once(&api.address, "GET", "/cdh/resource/default/k/1", &[], b"").await;
    assert_eq!(without_aa.status, 500);
    assert!(
        String::from_utf8_lossy(&without_aa.body).contains("attestation agent at"),
        "{}",
        String::from_utf8_lossy(&without_aa.body)
    );
}
