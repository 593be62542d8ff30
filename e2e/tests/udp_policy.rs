//! The tunnel policy applies to datagram flows unchanged (issue 16): on a
//! Kubernetes-phase `pp-mux-v2` connection the forwarder refuses a flow to
//! an `ATTESTATION_PHASE` UDP tunnel and to a name it does not know, a
//! flow to a byte-stream tunnel and a stream to a UDP tunnel, each with a
//! RESET that says why, while a flow to the allowed UDP tunnel is carried
//! and the connection goes on. About 5 s in a debug build.

use std::time::Duration;

use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::udp::{STUCK, start_echo};
use pp_e2e::world::World;
use pp_tunnel::{FlowClosed, MuxEvent, MuxFlow, MuxLimits, MuxVersion, Phase, Side};
use tokio::io::AsyncReadExt;

/// The reason the PP gave when it reset `flow`.
async fn refusal(flow: &MuxFlow) -> String {
    match tokio::time::timeout(STUCK, flow.recv()).await {
        Ok(Err(FlowClosed::PeerReset(reason))) => reason,
        other => panic!("expected a RESET from the PP, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_follow_the_phase_and_kind_of_their_tunnel() {
    let (_echo, echo_addr) = start_echo().await;
    let world = World::start();
    let pp = Pp::start(PpOptions {
        wn_key: Some(world.adaptor.wn_public_key()),
        extra_outbounds: vec![
            format!("KUBERNETES_PHASE:UECHO:udp:{}", echo_addr.port()),
            format!("ATTESTATION_PHASE:UATT:udp:{}", echo_addr.port()),
        ],
        ..PpOptions::default()
    });
    pp.wait_listening();
    let handle = world
        .serve_until_kubernetes("e2e-udp-policy", &pp, &["KATAAGENT"])
        .await;
    world.adaptor.stop_pp(handle.sid()).await;

    let key = world.wn_private_key();
    let attempt = pp_e2e::ssh::attempt(&pp.ssh_addr(), Some(&key), Duration::from_secs(30)).await;
    let ssh = attempt.handle.expect("the WN key is accepted");
    let mut channel = ssh.channel_open_session().await.expect("channel");
    assert!(
        pp_e2e::ssh::request_subsystem(&mut channel, MuxVersion::V2.subsystem()).await,
        "pp-mux-v2 is served"
    );
    let (mux, mut events, driver) = pp_tunnel::start_with(
        channel.into_stream(),
        Side::Wn,
        MuxVersion::V2,
        MuxLimits::default(),
    );
    let driver = tokio::spawn(driver.run());
    match events.recv().await {
        Some(MuxEvent::Hello(side)) => assert_eq!(side, Side::Pp(Phase::Kubernetes)),
        other => panic!("expected the PP's HELLO, got {other:?}"),
    }

    let wrong_phase = mux.open_flow("UATT").await.expect("open a flow");
    let reason = refusal(&wrong_phase).await;
    assert!(
        reason.contains("ATTESTATION_PHASE only"),
        "wrong phase: {reason}"
    );
    let unknown = mux.open_flow("NOSUCH").await.expect("open a flow");
    let reason = refusal(&unknown).await;
    assert!(reason.contains("no tunnel named"), "unknown: {reason}");
    let flow_to_stream = mux.open_flow("KATAAGENT").await.expect("open a flow");
    let reason = refusal(&flow_to_stream).await;
    assert!(reason.contains("stream tunnel"), "wrong kind: {reason}");
    let mut stream_to_udp = mux.open("UECHO").await.expect("open a stream");
    let error = stream_to_udp
        .read(&mut [0u8; 16])
        .await
        .expect_err("the PP resets a stream to a UDP tunnel");
    assert!(
        error.to_string().contains("datagram tunnel"),
        "wrong kind: {error}"
    );

    // The allowed one is carried on the same connection.
    let flow = mux.open_flow("UECHO").await.expect("open a flow");
    flow.send(b"policy holds").expect("queued");
    let echoed = tokio::time::timeout(STUCK, flow.recv())
        .await
        .expect("the echo in time")
        .expect("the flow is live");
    assert_eq!(echoed, b"policy holds");
    pp.forwarder()
        .wait_for("flow to \"UATT\" refused", Duration::from_secs(10));
    driver.abort();
}
