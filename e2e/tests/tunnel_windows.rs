//! The forwarder's large SSH channel window (2 MiB, 32 KiB packets; see
//! docs/decisions/tunnel-speed.md) moves bulk data intact, and a client
//! that announces a tiny window of its own still gets every byte.
//!
//! * 64 MiB each way at once through the adaptor's KATAAGENT tunnel (mux
//!   channel) to the echo agent: what comes back is what went out, byte
//!   for byte (a pattern that differs at every offset, so a lost, doubled
//!   or reordered chunk shows).
//! * A russh client announcing a 2-byte window with 1-byte packets, then
//!   1000/1000 (sunset's old default), runs `exec tunnel KATAAGENT` and gets
//!   its bytes echoed back: the forwarder must split its output to what the
//!   window and packet size allow and wait for every window adjustment.
//!   (Not a 1-byte window: russh adjusts a window once it falls below half
//!   its size, and 0 is not below 1/2 in integers, so russh itself would
//!   never reopen a 1-byte window.)
//!
//! Untimed; in a debug build both together take about 5 s on two busy
//! cores (the e2e harness builds dependencies at opt-level 2).

use std::sync::Arc;
use std::time::Duration;

use pp_adaptor::adaptor::PpHandle;
use pp_adaptor::local_tunnels::LocalAddress;
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::world::World;
use pp_ssh_key::PrivateKey;
use russh::ChannelMsg;
use russh::client::{self, AuthResult};
use russh::keys::PrivateKeyWithHashAlg;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BULK_BYTES: usize = 64 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// Byte `i` of the test stream: a 64-bit counter's bytes mixed so that
/// no two nearby chunks look alike.
fn pattern(offset: usize, out: &mut [u8]) {
    for (i, byte) in out.iter_mut().enumerate() {
        let n = (offset + i) as u64;
        let word = n / 8;
        let mixed = word.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (word >> 7);
        *byte = (mixed >> ((n % 8) * 8)) as u8;
    }
}

/// A PP with the WN key in init-data, taken to the Kubernetes phase by the
/// adaptor, which serves a local KATAAGENT tunnel to the echo agent.
async fn kubernetes_phase(sid: &str) -> (World, Pp, PpHandle) {
    let world = World::start();
    let pp = Pp::start(PpOptions {
        wn_key: Some(world.adaptor.wn_public_key()),
        ..PpOptions::default()
    });
    pp.wait_listening();
    let handle = world.serve_until_kubernetes(sid, &pp, &["KATAAGENT"]).await;
    (world, pp, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_each_way_at_once_arrive_byte_exact() {
    let (_world, pp, handle) = kubernetes_phase("e2e-bulk").await;
    let Some(LocalAddress::Tcp(addr)) = handle.tunnel_address("KATAAGENT") else {
        panic!("KATAAGENT listens on TCP");
    };
    let stream = TcpStream::connect(addr).await.expect("connect the tunnel");
    let (mut reader, mut writer) = stream.into_split();
    let send = tokio::spawn(async move {
        let mut chunk = vec![0u8; CHUNK];
        for offset in (0..BULK_BYTES).step_by(CHUNK) {
            pattern(offset, &mut chunk);
            writer
                .write_all(&chunk)
                .await
                .expect("send into the tunnel");
        }
        writer
    });
    let mut got = vec![0u8; CHUNK];
    let mut want = vec![0u8; CHUNK];
    let mut offset = 0;
    while offset < BULK_BYTES {
        let n = tokio::time::timeout(Duration::from_secs(60), reader.read(&mut got))
            .await
            .expect("bytes keep coming back")
            .expect("read from the tunnel");
        assert!(n > 0, "the tunnel closed after {offset} bytes");
        pattern(offset, &mut want[..n]);
        assert!(
            got[..n] == want[..n],
            "bytes {offset}..{} differ from what was sent\n{}",
            offset + n,
            pp.forwarder().output()
        );
        offset += n;
    }
    let _writer = send.await.expect("the sender finished");
    assert_eq!(offset, BULK_BYTES);
}

/// Trusts the test's own forwarder.
struct AcceptAnyHostKey;

impl client::Handler for AcceptAnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Authenticates with the WN key announcing `window` bytes of receive window
/// and packets of at most `max_packet` bytes, runs `exec tunnel KATAAGENT`, sends
/// `len` bytes and returns what came back.
async fn echo_with_window(
    addr: &str,
    key: &PrivateKey,
    (window, max_packet): (u32, u32),
    len: usize,
) -> Vec<u8> {
    let config = Arc::new(client::Config {
        window_size: window,
        maximum_packet_size: max_packet,
        ..Default::default()
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut ssh = client::connect_stream(config, stream, AcceptAnyHostKey)
        .await
        .expect("handshake");
    let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(key.seed());
    let key = PrivateKeyWithHashAlg::new(Arc::new(russh::keys::PrivateKey::from(pair)), None);
    let auth = ssh
        .authenticate_publickey("peerpod", key)
        .await
        .expect("auth");
    assert!(
        matches!(auth, AuthResult::Success),
        "the WN key is accepted"
    );
    let mut channel = ssh.channel_open_session().await.expect("channel");
    channel
        .exec(true, "tunnel KATAAGENT")
        .await
        .expect("exec request");
    let mut sent = vec![0u8; len];
    pattern(0, &mut sent);
    let mut got = Vec::new();
    let mut written = false;
    while got.len() < len {
        let message = tokio::time::timeout(Duration::from_secs(30), channel.wait())
            .await
            .unwrap_or_else(|_| panic!("stalled after {} bytes (window {window})", got.len()))
            .expect("the channel stays open");
        match message {
            ChannelMsg::Success if !written => {
                // Sent from another task while this one reads: the echo
                // comes back through the client's own small window, which
                // only reopens as it is read.
                let mut writer = channel.make_writer();
                let bytes = sent.clone();
                tokio::spawn(async move { writer.write_all(&bytes).await });
                written = true;
            }
            ChannelMsg::Data { data } => got.extend_from_slice(&data),
            ChannelMsg::Failure => panic!("exec tunnel KATAAGENT refused"),
            _ => {}
        }
    }
    assert!(
        got == sent,
        "window {window}: the echo differs from what was sent"
    );
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_tiny_window_still_gets_every_byte() {
    let (world, pp, handle) = kubernetes_phase("e2e-tiny-window").await;
    // A newer WN connection supersedes the adaptor's; let it go first.
    world.adaptor.stop_pp(handle.sid()).await;
    let key = world.wn_private_key();
    for (window, len) in [((2, 1), 3000), ((1000, 1000), 100_000)] {
        let got = echo_with_window(&pp.ssh_addr(), &key, window, len).await;
        assert_eq!(got.len(), len);
    }
}
