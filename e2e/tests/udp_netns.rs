//! UDP tunnels to and from another network namespace on the PP side
//! (`udp:/run/netns/NAME:PORT` tags): the forwarder makes the socket inside
//! the namespace through its `netns` module.
//!
//! * Outbound: the adaptor's local `udp:` listener → flow → the forwarder
//!   connects to a UDP echo server on 127.0.0.1 *inside* the namespace.
//! * Inbound: a client inside the namespace sends to the forwarder's
//!   listener on the namespace's 127.0.0.1 → flow → a UDP echo server that
//!   is the adaptor's WN-side target.
//!
//! Needs root and iproute2 (skips, saying why, otherwise); about 3 s.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use pp_adaptor::local_tunnels::LocalAddress;
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::udp::{self, datagram};
use pp_e2e::world::World;

/// The inbound listener's port inside the (fresh) namespace.
const INBOUND_PORT: u16 = 5353;

struct Namespace(String);

impl Namespace {
    fn create() -> Option<Namespace> {
        let name = format!("ppudp-{}", std::process::id());
        let ok = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|status| status.success())
        };
        if !ok(&["netns", "add", &name]) {
            eprintln!(
                "SKIP udp_netns: cannot create a network namespace; run as root with iproute2"
            );
            return None;
        }
        let namespace = Namespace(name);
        assert!(ok(&["-n", &namespace.0, "link", "set", "lo", "up"]));
        Some(namespace)
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }

    /// Runs `work` on a thread of its own inside the namespace.
    fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> mpsc::Receiver<T> {
        let path = self.path();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let namespace = std::fs::File::open(&path).expect("open the namespace");
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&namespace),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("enter the namespace");
            let _ = sender.send(work());
        });
        receiver
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_tunnels_reach_into_and_out_of_a_network_namespace() {
    let Some(namespace) = Namespace::create() else {
        return;
    };
    // A UDP echo server inside the namespace (its thread ends with the test).
    let inside_echo = namespace
        .run(|| {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind inside");
            let port = socket.local_addr().expect("its port").port();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                }
            });
            port
        })
        .recv()
        .expect("the echo's port");
    let (_wn_echo, wn_echo) = udp::start_echo().await;
    let world = World::start();
    let netns = namespace.path();
    let pp = Pp::start(PpOptions {
        wn_key: Some(world.adaptor.wn_public_key()),
        extra_outbounds: vec![format!("KUBERNETES_PHASE:NSECHO:udp:{netns}:{inside_echo}")],
        extra_inbounds: vec![format!("KUBERNETES_PHASE:NSIN:udp:{netns}:{INBOUND_PORT}")],
        ..PpOptions::default()
    });
    pp.wait_listening();
    let handle = world
        .serve_tags_until_kubernetes(
            "e2e-udp-netns",
            &pp,
            &["KUBERNETES_PHASE:NSECHO:udp:127.0.0.1:0"],
            &[format!("KUBERNETES_PHASE:NSIN:udp:{wn_echo}")],
        )
        .await;

    // Outbound: WN → the echo inside the namespace.
    let Some(LocalAddress::Udp(entrance)) = handle.tunnel_address("NSECHO").cloned() else {
        panic!("NSECHO listens on UDP");
    };
    let run = udp::windowed_echo("WN → netns", entrance, 100, 4, |seq| {
        1 + seq as usize * 100
    })
    .await;
    assert_eq!(run.round_trips.len(), 100);

    // Inbound: a client inside the namespace → the WN's echo.
    let echoed = namespace
        .run(|| {
            let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a client");
            client
                .set_read_timeout(Some(Duration::from_secs(1)))
                .expect("a read timeout");
            let to = SocketAddr::from((Ipv4Addr::LOCALHOST, INBOUND_PORT));
            let want = datagram(7, 300);
            let mut buf = vec![0u8; 65_536];
            // Sent again after each second without an answer (the flow is
            // opened on the first datagram); a bound, not a speed goal.
            for _ in 0..30 {
                client.send_to(&want, to).expect("send inside");
                if let Ok(n) = client.recv(&mut buf) {
                    return buf[..n] == want[..];
                }
            }
            false
        })
        .recv()
        .expect("the client's verdict");
    assert!(
        echoed,
        "the namespace's client got its echo from the WN\n{}",
        pp.forwarder().output()
    );
}
