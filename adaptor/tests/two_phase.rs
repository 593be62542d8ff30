//! The adaptor's two-phase driver against a fake PP (tests/common/fake_pp.rs,
//! an SSH server behaving like the forwarder) and the KBS test double as
//! Trustee: attestation, upgrade, Kubernetes phase, local tunnels, the
//! relay check, restarts, and the deadlines that keep a silent PP from
//! hanging anything.

mod common;

use common::fake_pp::{FakePp, FakePpOptions};
use common::{Trustee, Workspace};
use ed25519_dalek::SigningKey;
use pp_adaptor::adaptor::{Adaptor, PpHandle};
use pp_adaptor::config::{AdaptorConfig, PpConfig, Timing};
use pp_adaptor::local_tunnels::LocalAddress;
use pp_adaptor::pp_status::PpStatus;
use pp_adaptor::sid::Sid;
use pp_adaptor::ssh_connect::SshSettings;
use pp_ssh_key::PrivateKey;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const WAIT: Duration = Duration::from_secs(30);

fn quick_timing() -> Timing {
    Timing {
        attestation_deadline: Duration::from_secs(60),
        ssh: SshSettings {
            connect_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
        },
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        tunnel_wait: Duration::from_secs(20),
        upgrade_grace: Duration::from_secs(2),
        info_timeout: Duration::from_secs(5),
        udp_idle: Duration::from_secs(60),
    }
}

/// Trustee (the KBS double), a workspace and its configuration.
struct World {
    trustee: Trustee,
    workspace: Workspace,
    config: AdaptorConfig,
}

impl World {
    async fn new() -> Self {
        let trustee = Trustee::start(SigningKey::from_bytes(&[31; 32])).await;
        let workspace = Workspace::new();
        let mut config =
            workspace.config(trustee.url(), workspace.write_admin_key(&trustee.admin_key));
        config.timing = quick_timing();
        Self {
            trustee,
            workspace,
            config,
        }
    }

    fn adaptor(&self) -> Adaptor {
        Adaptor::new(&self.config).unwrap()
    }
}

fn pp_config(sid: &Sid, pp: &FakePp, init_data_has_wn_key: bool) -> PpConfig {
    PpConfig::new(sid.clone(), &pp.address.to_string(), init_data_has_wn_key)
        .with_tunnels(&["KUBERNETES_PHASE:KATAAGENT:127.0.0.1:0"])
        .unwrap()
}

/// Every status the PP goes through, collected in the background.
fn record_statuses(handle: &PpHandle) -> std::sync::Arc<std::sync::Mutex<Vec<PpStatus>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![handle.status()]));
    let mut watch = handle.watch();
    let record = seen.clone();
    tokio::spawn(async move {
        while watch.changed().await.is_ok() {
            let status = watch.borrow_and_update().clone();
            record.lock().unwrap().push(status);
        }
    });
    seen
}

async fn wait_for_kubernetes(handle: &PpHandle) -> String {
    match handle
        .wait_for(WAIT, |status| matches!(status, PpStatus::Kubernetes { .. }))
        .await
    {
        Ok(PpStatus::Kubernetes { fingerprint }) => fingerprint,
        other => panic!("the PP did not reach the Kubernetes phase: {other:?}"),
    }
}

async fn wait_for_failure(handle: &PpHandle) -> String {
    match handle
        .wait_for(WAIT, |status| matches!(status, PpStatus::Failed { .. }))
        .await
    {
        Ok(PpStatus::Failed { reason }) => reason,
        other => panic!("the PP did not fail: {other:?}"),
    }
}

async fn echo_through_tunnel(handle: &PpHandle, payload: &[u8]) -> Vec<u8> {
    let Some(LocalAddress::Tcp(address)) = handle.tunnel_address("KATAAGENT") else {
        panic!("no KATAAGENT listener");
    };
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket.write_all(payload).await.unwrap();
    socket.shutdown().await.unwrap();
    let mut echoed = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    echoed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pp_with_the_wn_key_in_init_data_goes_through_both_phases_and_carries_a_local_tunnel() {
    common::init_logs();
    let world = World::new().await;
    let adaptor = world.adaptor();
    let sid = Sid::parse("both-phases").unwrap();
    let pp_key = adaptor.create_pp(&sid).await.unwrap();
    let pp = FakePp::start(FakePpOptions {
        init_data_wn_key: Some(adaptor.wn_public_key()),
        ..Default::default()
    })
    .await;

    let handle = adaptor.serve_pp(pp_config(&sid, &pp, true)).await.unwrap();
    let statuses = record_statuses(&handle);

    assert_eq!(wait_for_kubernetes(&handle).await, pp_key.fingerprint());
    assert!(pp.upgraded(), "{:?}", pp.log());
    let statuses = statuses.lock().unwrap().clone();
    let attestation_at = statuses
        .iter()
        .position(|s| matches!(s, PpStatus::Attestation { .. }));
    let upgrading_at = statuses.iter().position(|s| *s == PpStatus::Upgrading);
    assert!(
        attestation_at.is_some() && attestation_at < upgrading_at,
        "{statuses:?}"
    );
    assert_eq!(
        echo_through_tunnel(&handle, b"hello kata-agent").await,
        b"hello kata-agent"
    );
    // The fake is an old PP (pp-mux-v1 only, and a refused channel is
    // gone): on every connection the adaptor asked for v2, then for v1 on
    // the same channel, then for v1 on a fresh channel.
    let asked: Vec<String> = pp
        .log()
        .into_iter()
        .filter(|line| line.starts_with("subsystem"))
        .collect();
    let connection = [
        "subsystem pp-mux-v2 requested",
        "subsystem pp-mux-v1 requested",
        "subsystem pp-mux-v1 requested",
    ];
    assert_eq!(asked[..3], connection, "the attestation connection");
    assert_eq!(asked[3..6], connection, "the Kubernetes-phase connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pp_without_a_wn_key_in_init_data_is_attested_with_none_auth() {
    common::init_logs();
    let world = World::new().await;
    let adaptor = world.adaptor();
    let sid = Sid::parse("none-auth").unwrap();
    let pp_key = adaptor.create_pp(&sid).await.unwrap();
    let pp = FakePp::start(FakePpOptions::default()).await;

    let handle = adaptor.serve_pp(pp_config(&sid, &pp, false)).await.unwrap();

    assert_eq!(wait_for_kubernetes(&handle).await, pp_key.fingerprint());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_to_a_key_that_is_not_the_pps_stops_serving_it() {
    common::init_logs();
    let world = World::new().await;
    let adaptor = world.adaptor();
    let sid = Sid::parse("wrong-upgrade").unwrap();
    adaptor.create_pp(&sid).await.unwrap();
    let stranger = PrivateKey::from_seed([99; 32]).public();
    let pp = FakePp::start(FakePpOptions {
        upgrade_key_override: Some(stranger),
        ..Default::default()
    })
    .await;

    let handle = adaptor.serve_pp(pp_config(&sid, &pp, false)).await.unwrap();

    let reason = wait_for_failure(&handle).await;
    assert!(
        reason.contains("UPGRADE announces host key") && reason.contains(&stranger.fingerprint()),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_attestation_phase_is_detected_and_the_pp_torn_down() {
    common::init_logs();
    let world = World::new().await;
    let adaptor = world.adaptor();
    let sid = Sid::parse("relayed").unwrap();
    adaptor.create_pp(&sid).await.unwrap();
    let relay = "192.0.2.1:40000".parse().unwrap();
    let pp = FakePp::start(FakePpOptions {
        info_peer_override: Some(relay),
        ..Default::default()
    })
    .await;

    let handle = adaptor.serve_pp(pp_config(&sid, &pp, false)).await.unwrap();

    let reason = wait_for_failure(&handle).await;
    assert!(
        reason.starts_with("attestation phase relayed") && reason.contains("192.0.2.1:40000"),
        "{reason}"
    );
    assert_eq!(
        world.trustee.resource_paths().await,
        ["default/sshclient/publicKey"],
        "the PP key must be gone from Trustee"
    );
    assert!(!world.workspace.path("keys/pp-relayed").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_adaptor_goes_straight_to_the_kubernetes_phase_and_still_checks_for_relays() {
    common::init_logs();
    let world = World::new().await;
    let sid = Sid::parse("restart").unwrap();
    let first = world.adaptor();
    let pp_key = first.create_pp(&sid).await.unwrap();
    let pp = FakePp::start(FakePpOptions::default()).await;
    let handle = first.serve_pp(pp_config(&sid, &pp, false)).await.unwrap();
    wait_for_kubernetes(&handle).await;
    assert!(first.stop_pp(&sid).await);
    assert_eq!(handle.status(), PpStatus::Stopped);

    let second = world.adaptor();
    let handle = second.serve_pp(pp_config(&sid, &pp, false)).await.unwrap();
    let statuses = record_statuses(&handle);

    assert_eq!(wait_for_kubernetes(&handle).await, pp_key.fingerprint());
    let statuses = statuses.lock().unwrap().clone();
    assert!(
        !statuses
            .iter()
            .any(|s| matches!(s, PpStatus::Attestation { .. })),
        "{statuses:?}"
    );
    assert!(
        !statuses
            .iter()
            .any(|s| matches!(s, PpStatus::Failed { .. })),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_upgrade_a_pp_showing_an_unknown_host_key_is_refused() {
    common::init_logs();
    let world = World::new().await;
    let sid = Sid::parse("impostor").unwrap();
    let adaptor = world.adaptor();
    adaptor.create_pp(&sid).await.unwrap();
    let genuine = FakePp::start(FakePpOptions::default()).await;
    let handle = adaptor
        .serve_pp(pp_config(&sid, &genuine, false))
        .await
        .unwrap();
    wait_for_kubernetes(&handle).await;
    adaptor.stop_pp(&sid).await;

    // A fresh PP in its attestation phase where the upgraded one was.
    let impostor = FakePp::start(FakePpOptions::default()).await;
    let handle = adaptor
        .serve_pp(pp_config(&sid, &impostor, false))
        .await
        .unwrap();

    let reached = handle
        .wait_for(Duration::from_secs(2), |status| {
            !matches!(status, PpStatus::Connecting)
        })
        .await;
    assert_eq!(reached, Err(PpStatus::Connecting));
    assert!(
        !impostor
            .log()
            .iter()
            .any(|line| line.contains("refused a second")),
        "no authentication was even tried"
    );
    assert!(!impostor.upgraded());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_pp_fails_at_the_attestation_deadline_without_stalling_another_pp() {
    common::init_logs();
    let mut world = World::new().await;
    world.config.timing.attestation_deadline = Duration::from_secs(3);
    world.config.timing.ssh.handshake_timeout = Duration::from_millis(500);
    let adaptor = world.adaptor();
    let silent_sid = Sid::parse("silent").unwrap();
    let good_sid = Sid::parse("good").unwrap();
    adaptor.create_pp(&silent_sid).await.unwrap();
    adaptor.create_pp(&good_sid).await.unwrap();
    // Accepts TCP and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_address = silent.local_addr().unwrap().to_string();
    let _keep_open = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let good = FakePp::start(FakePpOptions::default()).await;

    let silent_handle = adaptor
        .serve_pp(PpConfig::new(silent_sid, &silent_address, false))
        .await
        .unwrap();
    let good_handle = adaptor
        .serve_pp(pp_config(&good_sid, &good, false))
        .await
        .unwrap();

    wait_for_kubernetes(&good_handle).await;
    let reason = wait_for_failure(&silent_handle).await;
    assert!(reason.contains("attestation deadline (3 s)"), "{reason}");
}

#[tokio::test]
async fn serving_a_pp_without_a_key_pair_says_to_create_it_first() {
    common::init_logs();
    let world = World::new().await;
    let adaptor = world.adaptor();
    let pp = PpConfig::new(Sid::parse("nokey").unwrap(), "127.0.0.1:9", false);

    let error = adaptor.serve_pp(pp).await.unwrap_err().to_string();

    assert!(
        error.contains("pp-adaptor pp create --sid nokey"),
        "{error}"
    );
}
