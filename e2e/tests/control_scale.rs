//! One `pp-adaptor serve` at the scale of a busy worker node: 256 pods
//! attached through the control API in waves of 32, while a churn loop
//! creates, attaches and deletes 50 others. Every one of the 256 reaches
//! the Kubernetes phase and echoes through its KATAAGENT listener; none of
//! them lost its connection (zero reconnects, one Kubernetes-phase
//! admission each); every churned pod's key is gone at the KBS double and
//! the daemon no longer lists it.
//!
//! About 900 processes (forwarder, CDH double and agent double per pod):
//! the test raises its open-file limit, which the children inherit.

use std::sync::Arc;
use std::time::Duration;

use pp_e2e::daemon::{Daemon, echo, kbs_resources};
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::raise_fd_limit;
use pp_e2e::world::World;

const PODS: usize = 256;
const WAVE: usize = 32;
const CHURN: usize = 50;
const WAIT: Duration = Duration::from_secs(300);

fn start_pp(wn: pp_ssh_key::PublicKey) -> Pp {
    let pp = Pp::start(PpOptions {
        wn_key: Some(wn),
        ..PpOptions::default()
    });
    pp.wait_listening();
    pp
}

/// Creates, attaches, uses and deletes the churn pods one after another
/// (blocking: it starts processes; the daemon calls run on `runtime`).
fn churn(daemon: &Daemon, runtime: &tokio::runtime::Handle) -> Vec<String> {
    let mut sids = Vec::new();
    for i in 0..CHURN {
        let sid = format!("churn-{i}");
        let wn = runtime.block_on(daemon.create(&sid));
        let pp = start_pp(wn);
        runtime.block_on(async {
            let agent = daemon.attach(&sid, &pp).await;
            // Every other one is deleted before it gets anywhere.
            if i % 2 == 0 {
                daemon.wait_phase(&sid, "kubernetes", WAIT).await;
                assert_eq!(echo(&agent, sid.as_bytes()).await, sid.as_bytes());
            }
            daemon.delete(&sid).await;
        });
        sids.push(sid);
    }
    sids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_fifty_six_pods_in_waves_while_fifty_churn() {
    let limit = raise_fd_limit(8_192);
    assert!(
        limit >= 4_096,
        "this test needs 4096 open files; the hard limit is {limit}"
    );
    let world = World::start();
    let daemon = Arc::new(Daemon::start(&world, "daemon", &[]));

    let churner = {
        let daemon = daemon.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || churn(&daemon, &runtime))
    };

    let sids: Vec<String> = (0..PODS).map(|i| format!("wave-{i}")).collect();
    let mut pps = Vec::with_capacity(PODS);
    let mut agents = Vec::with_capacity(PODS);
    for wave in sids.chunks(WAVE) {
        let mut wns = Vec::new();
        for sid in wave {
            wns.push(daemon.create(sid).await);
        }
        let started =
            tokio::task::spawn_blocking(move || wns.into_iter().map(start_pp).collect::<Vec<Pp>>())
                .await
                .expect("the wave's pods start");
        for (sid, pp) in wave.iter().zip(&started) {
            agents.push(daemon.attach(sid, pp).await);
        }
        for sid in wave {
            daemon.wait_phase(sid, "kubernetes", WAIT).await;
        }
        pps.extend(started);
    }
    let churned = churner.await.expect("the churn loop ends");

    for ((sid, agent), pp) in sids.iter().zip(&agents).zip(&pps) {
        assert_eq!(echo(agent, sid.as_bytes()).await, sid.as_bytes(), "{sid}");
        let pod = daemon.status(sid).await;
        assert_eq!(pod["phase"], "kubernetes", "{pod}");
        assert_eq!(pod["reconnects"], 0, "{pod}");
        assert_eq!(
            pp.forwarder().count("admitted in the kubernetes phase"),
            1,
            "{sid}: {}",
            pp.forwarder().output()
        );
    }
    let resources = kbs_resources(world.kbs_port).await;
    let listed = daemon
        .call(hyper::Method::GET, "/v1/pods", None)
        .await
        .to_string();
    for sid in &churned {
        let key = format!("default/pp-{sid}/privateKey");
        assert!(
            !resources.contains(&key),
            "{key} is still at the KBS double"
        );
        assert!(
            !listed.contains(&format!("\"{sid}\"")),
            "{sid} is still listed"
        );
        assert!(!pp_e2e::daemon::has_spec(&daemon.dir, sid));
    }
    assert_eq!(
        resources
            .iter()
            .filter(|path| path.starts_with("default/pp-wave-"))
            .count(),
        PODS
    );
}
