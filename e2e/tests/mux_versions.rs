//! Old and new peers together (issue 16): the forwarder still serves a
//! WN that asks for `pp-mux-v1` (an adaptor from before datagram flows).
//!
//! A PP is taken to the Kubernetes phase by the adaptor, which then lets
//! go; a russh client with the WN key asks for an unknown `pp-mux-v9`
//! (refused, the channel stays usable), then for `pp-mux-v1` on the same
//! channel, runs a version 1 mux there and gets a KATAAGENT stream echoed;
//! a flow cannot be opened on it. (The other way round, a v2 adaptor
//! falling back to v1 against an old PP, is adaptor/tests/two_phase.rs:
//! its fake PP only knows `pp-mux-v1`.) About 5 s in a debug build.

use std::time::Duration;

use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::world::World;
use pp_tunnel::{MuxError, MuxEvent, MuxLimits, MuxVersion, Phase, Side};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarder_still_serves_a_pp_mux_v1_client() {
    let world = World::start();
    let pp = Pp::start(PpOptions {
        wn_key: Some(world.adaptor.wn_public_key()),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let handle = world
        .serve_until_kubernetes("e2e-mux-v1", &pp, &["KATAAGENT"])
        .await;
    world.adaptor.stop_pp(handle.sid()).await;
    let key = world.wn_private_key();

    let attempt = pp_e2e::ssh::attempt(&pp.ssh_addr(), Some(&key), Duration::from_secs(30)).await;
    assert!(attempt.authenticated, "the WN key is accepted");
    let ssh = attempt.handle.expect("the connection");
    let mut channel = ssh.channel_open_session().await.expect("channel");
    assert!(
        !pp_e2e::ssh::request_subsystem(&mut channel, "pp-mux-v9").await,
        "an unknown version is refused"
    );
    assert!(
        pp_e2e::ssh::request_subsystem(&mut channel, "pp-mux-v1").await,
        "v1 is served"
    );

    let (mux, mut events, driver) = pp_tunnel::start_with(
        channel.into_stream(),
        Side::Wn,
        MuxVersion::V1,
        MuxLimits::default(),
    );
    let driver = tokio::spawn(driver.run());
    match events.recv().await {
        Some(MuxEvent::Hello(side)) => assert_eq!(side, Side::Pp(Phase::Kubernetes)),
        other => panic!("expected the PP's HELLO, got {other:?}"),
    }
    let mut stream = mux.open("KATAAGENT").await.expect("open a stream");
    stream.write_all(b"still v1").await.expect("write");
    let mut echoed = [0u8; 8];
    stream.read_exact(&mut echoed).await.expect("the echo");
    assert_eq!(&echoed, b"still v1");
    assert!(matches!(
        mux.open_flow("KATAAGENT").await,
        Err(MuxError::NeedsVersion2)
    ));
    pp.forwarder()
        .wait_for("mux channel opened (pp-mux-v1)", Duration::from_secs(10));
    driver.abort();
}
