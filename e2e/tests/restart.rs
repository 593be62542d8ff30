//! The phase record in guest memory: `kill -9` the forwarder in each phase
//! and start it again. It resumes where it was, never reopens the
//! attestation phase, and fails closed on a record it cannot trust.

use std::time::Duration;

use pp_adaptor::local_tunnels::LocalAddress;
use pp_adaptor::pp_status::PpStatus;
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::ssh;
use pp_e2e::world::{World, random_key};
use pp_forwarder_core::record::{PhaseRecord, RecordedPhase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(60);

fn record_file(pp: &Pp) -> std::path::PathBuf {
    pp.state_dir().join("phase.record")
}

#[tokio::test]
async fn restart_before_any_client_keeps_the_attestation_phase_open() {
    let mut pp = Pp::start(PpOptions::default());
    pp.wait_listening();
    pp.forwarder_mut().kill9();
    pp.start_forwarder();
    pp.wait_listening();
    assert!(ssh::attempt(&pp.ssh_addr(), None, WAIT).await.authenticated);
}

#[tokio::test]
async fn restart_after_the_attestation_claim_fails_closed_for_the_rest_of_the_boot() {
    let wn = random_key();
    let mut pp = Pp::start(PpOptions {
        wn_key: Some(wn.public()),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let winner = ssh::attempt(&pp.ssh_addr(), Some(&wn), WAIT).await;
    assert!(winner.authenticated);
    pp.forwarder()
        .wait_for("admitted in the attestation phase", WAIT);
    pp.forwarder_mut().kill9();

    pp.start_forwarder();
    pp.wait_fail_closed("the attestation phase is never reopened");
    // And it stays failed: the record now says so.
    pp.start_forwarder();
    pp.wait_fail_closed("failed earlier in this boot");
}

#[tokio::test]
async fn a_damaged_record_fails_closed() {
    for damage in ["flip a byte", "garbage", "truncate"] {
        let mut pp = Pp::start(PpOptions::default());
        pp.wait_listening();
        assert!(ssh::attempt(&pp.ssh_addr(), None, WAIT).await.authenticated);
        pp.forwarder()
            .wait_for("admitted in the attestation phase", WAIT);
        pp.forwarder_mut().kill9();
        let mut bytes = std::fs::read(record_file(&pp)).expect("the claim was persisted");
        match damage {
            "flip a byte" => bytes[0] ^= 0x40,
            "garbage" => bytes = b"not a phase record at all".to_vec(),
            _ => bytes.truncate(bytes.len() / 2),
        }
        std::fs::write(record_file(&pp), bytes).expect("write the damaged record");
        pp.start_forwarder();
        pp.wait_fail_closed("phase record");
    }
}

#[tokio::test]
async fn a_record_of_another_boot_is_ignored() {
    let mut pp = Pp::start(PpOptions::default());
    pp.wait_listening();
    pp.forwarder_mut().kill9();
    let old = PhaseRecord {
        boot_id: [7; 16],
        phase: RecordedPhase::Failed {
            reason: "old boot".into(),
        },
    };
    std::fs::write(record_file(&pp), old.emit()).expect("write a record of another boot");
    pp.start_forwarder();
    pp.wait_listening();
    pp.forwarder()
        .wait_for("record of an earlier boot, ignored", WAIT);
    assert!(ssh::attempt(&pp.ssh_addr(), None, WAIT).await.authenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_in_the_kubernetes_phase_resumes_with_the_same_keys() {
    let world = World::start();
    let mut pp = Pp::start(PpOptions {
        wn_key: Some(world.adaptor.wn_public_key()),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let handle = world.serve(&world.adaptor, "e2e-restart", &pp).await;
    let before = handle
        .wait_for(WAIT, |s| matches!(s, PpStatus::Kubernetes { .. }))
        .await
        .expect("Kubernetes phase");

    pp.forwarder_mut().kill9();
    handle
        .wait_for(WAIT, |s| !matches!(s, PpStatus::Kubernetes { .. }))
        .await
        .expect("the adaptor notices");
    pp.start_forwarder();
    let after = handle
        .wait_for(WAIT, |s| matches!(s, PpStatus::Kubernetes { .. }))
        .await
        .expect("back in the Kubernetes phase");
    assert_eq!(
        before, after,
        "the same PP host key is served after the restart"
    );
    pp.forwarder()
        .wait_for("restored the Kubernetes phase", WAIT);
    assert!(!pp.forwarder().output().contains("attestation phase open"));

    let Some(LocalAddress::Tcp(agent)) = handle.tunnel_address("KATAAGENT").cloned() else {
        panic!("KATAAGENT listens on TCP");
    };
    let mut stream = tokio::net::TcpStream::connect(agent)
        .await
        .expect("connect");
    stream.write_all(b"after restart").await.expect("write");
    stream.shutdown().await.expect("half-close");
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.expect("read");
    assert_eq!(back, b"after restart");
}
