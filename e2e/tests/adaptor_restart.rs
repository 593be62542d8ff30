//! `kill -9` of `pp-adaptor serve` with 20 pods in the Kubernetes phase,
//! attached through the control API: started again, it serves all 20
//! again from its state directory, with their KATAAGENT listeners on the
//! same local addresses, and no forwarder sees a second attestation-phase
//! connection (each admits a second Kubernetes-phase one instead).

use std::time::Duration;

use pp_e2e::daemon::{Daemon, echo};
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::world::World;

const PODS: usize = 20;
const WAIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_every_pod_is_back_in_the_kubernetes_phase_on_the_same_addresses() {
    let world = World::start();
    let mut daemon = Daemon::start(&world, "daemon", &[]);
    let sids: Vec<String> = (0..PODS).map(|i| format!("restart-{i}")).collect();
    let mut pps = Vec::new();
    let mut addresses = Vec::new();
    for sid in &sids {
        let wn = daemon.create(sid).await;
        let pp = Pp::start(PpOptions {
            wn_key: Some(wn),
            ..PpOptions::default()
        });
        pp.wait_listening();
        addresses.push(daemon.attach(sid, &pp).await);
        pps.push(pp);
    }
    for sid in &sids {
        daemon.wait_phase(sid, "kubernetes", WAIT).await;
    }

    daemon.kill9_and_restart();

    for ((sid, pp), address) in sids.iter().zip(&pps).zip(&addresses) {
        let pod = daemon.wait_phase(sid, "kubernetes", WAIT).await;
        assert_eq!(
            pod["tunnels"]["KATAAGENT"].as_str(),
            Some(address.as_str()),
            "{pod}"
        );
        assert_eq!(echo(address, sid.as_bytes()).await, sid.as_bytes());
        pp.forwarder()
            .wait_for_count("admitted in the kubernetes phase", 2, WAIT);
        let log = pp.forwarder().output();
        assert_eq!(
            log.matches("admitted in the attestation phase").count(),
            1,
            "{sid}: only the first adaptor's attestation connection: {log}"
        );
    }
}
