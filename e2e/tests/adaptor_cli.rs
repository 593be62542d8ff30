//! The `pp-adaptor` command line as an operator runs it: keys created and
//! registered with `pp create`, PPs served with `serve`, a Kubernetes-phase
//! reconnect after the adaptor process is killed and restarted, teardown
//! with `pp delete`, and one adaptor process serving 50 PPs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::process::Process;
use pp_e2e::world::World;
use pp_e2e::{bin, free_port};
use pp_ssh_key::PublicKey;

const WAIT: Duration = Duration::from_secs(120);

struct PpEntry<'a> {
    sid: String,
    pp: &'a Pp,
    agent_port: u16,
}

fn write_config(world: &World, dir: &Path, pps: &[PpEntry]) -> PathBuf {
    let mut text = format!(
        "trustee_url = \"http://127.0.0.1:{}\"\nadmin_key = \"{}\"\nkey_dir = \"keys\"\nstate_dir = \"state\"\ncontrol_socket = \"control.sock\"\n\n\
         [timing]\nbackoff_initial_ms = 100\nbackoff_max_secs = 1\n",
        world.kbs_port,
        world.admin_key_path().display()
    );
    for entry in pps {
        text.push_str(&format!(
            "\n[[pp]]\nsid = \"{}\"\nforwarder = \"{}\"\ninit_data_has_wn_key = true\n\
             tunnels = [\"KUBERNETES_PHASE:KATAAGENT:127.0.0.1:{}\"]\n",
            entry.sid,
            entry.pp.ssh_addr(),
            entry.agent_port
        ));
    }
    let path = dir.join("adaptor.toml");
    std::fs::write(&path, text).expect("write adaptor.toml");
    path
}

fn adaptor_cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(bin("pp-adaptor"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("pp-adaptor runs");
    assert!(
        out.status.success(),
        "pp-adaptor {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn echo(port: u16, payload: &[u8]) -> Vec<u8> {
    pp_e2e::daemon::echo(&format!("127.0.0.1:{port}"), payload).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptor_restart_reconnects_in_the_kubernetes_phase_and_delete_removes_the_key() {
    let world = World::start();
    let dir = world.dir.path().join("cli");
    std::fs::create_dir_all(&dir).expect("mkdir");
    // The PP must exist (with its address) before the config can name it;
    // its init-data needs the WN key, which `pp create` makes: write a
    // config without PPs first.
    let bootstrap = write_config(&world, &dir, &[]);
    let wn_line = adaptor_cli(&bootstrap, &["pp", "create", "--sid", "cli-one"]);
    let wn = PublicKey::parse(wn_line.trim()).expect("pp create prints the WN key line");
    let pp = Pp::start(PpOptions {
        wn_key: Some(wn),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let agent_port = free_port();
    let config = write_config(
        &world,
        &dir,
        &[PpEntry {
            sid: "cli-one".into(),
            pp: &pp,
            agent_port,
        }],
    );

    let serve_args = [
        "--config".to_string(),
        config.display().to_string(),
        "serve".to_string(),
    ];
    let mut adaptor = Process::spawn(&bin("pp-adaptor"), &serve_args);
    adaptor.wait_for("pp cli-one: Kubernetes phase", WAIT);
    assert_eq!(echo(agent_port, b"first adaptor").await, b"first adaptor");

    adaptor.kill9();
    let adaptor = Process::spawn(&bin("pp-adaptor"), &serve_args);
    adaptor.wait_for("pp cli-one: Kubernetes phase", WAIT);
    assert_eq!(
        echo(agent_port, b"restarted adaptor").await,
        b"restarted adaptor"
    );
    pp.forwarder()
        .wait_for_count("admitted in the kubernetes phase", 2, WAIT);
    let forwarder = pp.forwarder().output();
    assert_eq!(
        forwarder
            .matches("admitted in the attestation phase")
            .count(),
        1,
        "{forwarder}"
    );
    drop(adaptor);

    adaptor_cli(&config, &["pp", "delete", "--sid", "cli-one"]);
    world.kbs.wait_for(
        "deleted resource default/pp-cli-one/privateKey",
        Duration::from_secs(5),
    );
    assert!(
        !dir.join("keys").join("pp-cli-one").exists(),
        "the local PP key pair is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_adaptor_process_serves_50_pps() {
    const PPS: usize = 50;
    let world = World::start();
    let dir = world.dir.path().join("cli");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let bootstrap = write_config(&world, &dir, &[]);
    let sids: Vec<String> = (0..PPS).map(|i| format!("many-{i}")).collect();
    let mut wn = None;
    for sid in &sids {
        let line = adaptor_cli(&bootstrap, &["pp", "create", "--sid", sid]);
        wn = Some(PublicKey::parse(line.trim()).expect("WN key line"));
    }
    let pps: Vec<Pp> = (0..PPS)
        .map(|_| {
            Pp::start(PpOptions {
                wn_key: wn,
                ..PpOptions::default()
            })
        })
        .collect();
    for pp in &pps {
        pp.wait_listening();
    }
    let entries: Vec<PpEntry> = sids
        .iter()
        .zip(&pps)
        .map(|(sid, pp)| PpEntry {
            sid: sid.clone(),
            pp,
            agent_port: free_port(),
        })
        .collect();
    let config = write_config(&world, &dir, &entries);
    let adaptor = Process::spawn(
        &bin("pp-adaptor"),
        &[
            "--config".into(),
            config.display().to_string(),
            "serve".into(),
        ],
    );
    for entry in &entries {
        adaptor.wait_for(
            &format!("pp {}: Kubernetes phase", entry.sid),
            Duration::from_secs(300),
        );
    }
    for entry in &entries {
        let payload = entry.sid.as_bytes();
        assert_eq!(
            echo(entry.agent_port, payload).await,
            payload,
            "{}",
            entry.sid
        );
    }
}
