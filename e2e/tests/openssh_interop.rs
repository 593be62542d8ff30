//! Interop with stock OpenSSH: keys made by `ssh-keygen -t ed25519` work as
//! they are (the adaptor registers them; the forwarder gets them through
//! Trustee), and Debian's `ssh` client authenticates in the Kubernetes
//! phase, verifies the PP host key through known_hosts, and moves bytes
//! through the KATAAGENT tunnel (`exec tunnel KATAAGENT`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pp_adaptor::pp_status::PpStatus;
use pp_adaptor::sid::Sid;
use pp_e2e::openssh::{ssh_command, ssh_keygen};
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::world::World;
use pp_ssh_key::PublicKey;

const SID: &str = "e2e-openssh";

fn ssh(pp: &Pp, identity: &Path, known_hosts: &Path) -> Command {
    let mut command = ssh_command(identity, pp.ssh_port, Some(known_hosts));
    command.args(["peerpod@127.0.0.1", "tunnel", "KATAAGENT"]);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_openssh_with_ssh_keygen_keys_reaches_the_kata_agent() {
    let world = World::start_with(|keys| {
        ssh_keygen(&keys.join("wn"), "made-by-ssh-keygen");
        ssh_keygen(&keys.join(format!("pp-{SID}")), "made-by-ssh-keygen");
    });
    let keys = world.dir.path().join("adaptor").join("keys");
    let pp_public = std::fs::read_to_string(keys.join(format!("pp-{SID}.pub"))).expect("pp key");
    let pp = Pp::start(PpOptions {
        wn_key: Some(world.adaptor.wn_public_key()),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let handle = world.serve(&world.adaptor, SID, &pp).await;
    let status = handle
        .wait_for(Duration::from_secs(90), |s| {
            matches!(s, PpStatus::Kubernetes { .. })
        })
        .await;
    let Ok(PpStatus::Kubernetes { fingerprint }) = status else {
        panic!(
            "no Kubernetes phase: {status:?}\n{}",
            pp.forwarder().output()
        );
    };
    assert_eq!(
        fingerprint,
        PublicKey::parse(&pp_public)
            .expect("ssh-keygen key")
            .fingerprint()
    );

    // Hand the PP over to OpenSSH: the adaptor stops (and deletes the PP key
    // at the KBS, as on teardown; the PP already has it).
    world
        .adaptor
        .teardown(&Sid::parse(SID).expect("sid"))
        .await
        .expect("teardown");
    world.kbs.wait_for(
        &format!("deleted resource default/pp-{SID}/privateKey"),
        Duration::from_secs(5),
    );

    let known_hosts = world.dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{} {pp_public}", pp.ssh_port),
    )
    .expect("known_hosts");
    let mut child = ssh(&pp, &keys.join("wn"), &known_hosts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"hello through openssh\n").expect("write");
    stdin.flush().expect("flush");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the echo");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(line, "hello through openssh\n");

    // A host key that is not the PP's is refused by OpenSSH itself.
    let other = world.dir.path().join("other");
    ssh_keygen(&other, "other");
    let other_public = std::fs::read_to_string(other.with_extension("pub")).expect("other key");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{} {other_public}", pp.ssh_port),
    )
    .expect("known_hosts");
    let refused = ssh(&pp, &keys.join("wn"), &known_hosts)
        .stdin(Stdio::null())
        .output()
        .expect("ssh runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("HOST IDENTIFICATION HAS CHANGED"));
}
