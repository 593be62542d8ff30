//! The one-shot rule of the attestation phase, seen from outside: of many
//! clients holding the right WN key, concurrent or one after another,
//! exactly one is ever admitted; every other is refused with a log line.

use std::time::Duration;

use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::ssh;
use pp_e2e::world::random_key;

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_200_concurrent_and_200_consecutive_attempts_is_admitted() {
    let wn = random_key();
    let pp = Pp::start(PpOptions {
        wn_key: Some(wn.public()),
        max_startups: 250,
        // 200 handshakes at once on one core take a while under test builds;
        // all come from 127.0.0.1, one source for the pre-auth limits.
        extra_args: [
            "--login-grace",
            "120s",
            "--handshake-grace",
            "120s",
            "--max-startups-per-source",
            "250",
        ]
        .map(String::from)
        .into(),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let addr = pp.ssh_addr();

    let concurrent: Vec<_> = (0..200)
        .map(|_| {
            let addr = addr.clone();
            let wn = wn.clone();
            tokio::spawn(async move { ssh::attempt(&addr, Some(&wn), ATTEMPT_TIMEOUT).await })
        })
        .collect();
    let mut admitted = Vec::new();
    let mut handshakes = 0;
    for attempt in concurrent {
        let attempt = attempt.await.expect("attempt task");
        handshakes += usize::from(attempt.host_key.is_some());
        if attempt.authenticated {
            admitted.push(attempt);
        }
    }
    assert_eq!(
        admitted.len(),
        1,
        "exactly one concurrent attempt is admitted; forwarder said:\n{}",
        pp.forwarder().output()
    );
    assert!(
        handshakes > 100,
        "most attempts reached the SSH handshake ({handshakes}): the race was real"
    );

    // The winner's connection may even be gone: the phase stays claimed.
    drop(admitted);
    for i in 0..200 {
        let attempt = ssh::attempt(&addr, Some(&wn), ATTEMPT_TIMEOUT).await;
        assert!(
            !attempt.authenticated,
            "consecutive attempt {i} was admitted"
        );
    }
    // Every refusal is logged with its reason.
    pp.forwarder().wait_for_count(
        "attestation phase already used by connection",
        200,
        Duration::from_secs(30),
    );
    let forwarder = pp.forwarder().output();
    assert_eq!(
        forwarder
            .matches("admitted in the attestation phase")
            .count(),
        1,
        "{forwarder}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_another_key_is_refused_and_cannot_claim_the_phase() {
    let wn = random_key();
    let pp = Pp::start(PpOptions {
        wn_key: Some(wn.public()),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let stranger = ssh::attempt(&pp.ssh_addr(), Some(&random_key()), ATTEMPT_TIMEOUT).await;
    assert!(!stranger.authenticated);
    let nobody = ssh::attempt(&pp.ssh_addr(), None, ATTEMPT_TIMEOUT).await;
    assert!(
        !nobody.authenticated,
        "init-data names a WN key, so `none` is refused"
    );
    pp.forwarder()
        .wait_for("is not the init-data WN key", Duration::from_secs(5));
    let owner = ssh::attempt(&pp.ssh_addr(), Some(&wn), ATTEMPT_TIMEOUT).await;
    assert!(
        owner.authenticated,
        "the WN key still wins after strangers tried"
    );
}
