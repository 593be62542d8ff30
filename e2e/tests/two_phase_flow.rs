//! The whole story on loopback: the adaptor (in-process) registers keys at
//! the KBS test double, attests a forwarder through the KBS tunnel (the CDH
//! test double fetches the keys, the proxy rewrites `pp-sid`), follows the
//! upgrade, verifies the PP host key in the Kubernetes phase, and carries
//! kata-agent traffic; a second attestation-phase client is refused.

use std::time::Duration;

use pp_adaptor::local_tunnels::LocalAddress;
use pp_adaptor::pp_status::PpStatus;
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::ssh;
use pp_e2e::world::World;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PHASE_TIMEOUT: Duration = Duration::from_secs(90);

async fn echo_round_trip(addr: std::net::SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("the local tunnel listener accepts");
    stream
        .write_all(payload)
        .await
        .expect("write through the tunnel");
    stream.shutdown().await.expect("half-close");
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.expect("read the echo");
    back
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptor_attests_upgrades_and_reaches_the_kata_agent() {
    let world = World::start();
    let pp = Pp::start(PpOptions {
        wn_key: Some(world.adaptor.wn_public_key()),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let handle = world.serve(&world.adaptor, "e2e-flow", &pp).await;

    let reached = handle
        .wait_for(PHASE_TIMEOUT, |s| matches!(s, PpStatus::Kubernetes { .. }))
        .await
        .unwrap_or_else(|last| {
            panic!(
                "no Kubernetes phase; last status {last}\nforwarder:\n{}\nkbs:\n{}\ncdh:\n{}",
                pp.forwarder().output(),
                world.kbs.output(),
                pp.cdh.as_ref().map(|c| c.output()).unwrap_or_default()
            )
        });
    // The keys went through the SID rewrite: the double only holds pp-e2e-flow.
    world.kbs.wait_for(
        "released resource default/pp-e2e-flow/privateKey",
        Duration::from_secs(1),
    );
    assert_eq!(
        world.kbs.count("default/pp-sid/privateKey"),
        0,
        "the proxy must rewrite pp-sid"
    );
    pp.forwarder()
        .wait_for("admitted in the kubernetes phase", Duration::from_secs(10));
    if let PpStatus::Kubernetes { fingerprint } = reached {
        pp.forwarder().wait_for(
            &format!("Kubernetes-phase keys: host key {fingerprint}"),
            Duration::from_secs(1),
        );
    }

    let Some(LocalAddress::Tcp(agent)) = handle.tunnel_address("KATAAGENT").cloned() else {
        panic!("the KATAAGENT listener is a TCP address");
    };
    let payload = pattern(1, 300_000);
    assert_eq!(
        echo_round_trip(agent, &payload).await,
        payload,
        "the kata-agent echo came back intact"
    );

    // 16 concurrent streams through the one SSH connection.
    let streams: Vec<_> = (0..16u8)
        .map(|i| {
            tokio::spawn(async move {
                let payload = pattern(i, 100_000 + usize::from(i) * 997);
                (echo_round_trip(agent, &payload).await == payload, i)
            })
        })
        .collect();
    for stream in streams {
        let (intact, i) = stream.await.expect("stream task");
        assert!(intact, "stream {i} came back damaged");
    }

    // A PP-side stream: a local client in the PP speaks HTTP to Trustee
    // through the KBS tunnel and gets Trustee's (here: the double's) answer.
    let mut kbs = TcpStream::connect(("127.0.0.1", pp.kbs_tunnel_port))
        .await
        .expect("KBS tunnel listens");
    let body = r#"{"version":"0.0.1","tee":"sample","extra-params":{}}"#;
    let request = format!(
        "POST /kbs/v0/auth HTTP/1.1\r\nHost: kbs\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    kbs.write_all(request.as_bytes())
        .await
        .expect("write through the KBS tunnel");
    let mut answer = String::new();
    kbs.read_to_string(&mut answer)
        .await
        .expect("read the KBS answer");
    assert!(
        answer.starts_with("HTTP/1.1 401"),
        "the KBS double refuses version 0.0.1: {answer}"
    );

    // Another client trying the attestation phase again is refused.
    let second = ssh::attempt(&pp.ssh_addr(), None, Duration::from_secs(10)).await;
    assert!(
        !second.authenticated,
        "the attestation phase must not reopen"
    );
    // The refusal is logged.
    pp.forwarder().wait_for("refused", Duration::from_secs(10));
}
