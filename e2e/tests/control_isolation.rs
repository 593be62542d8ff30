//! One `pp-adaptor serve`, pods added and removed through the control API
//! while another pod carries a long-lived KATAAGENT stream: adding,
//! deleting and failing other pods never drops that pod's connection or
//! its stream (zero reconnects, one Kubernetes-phase admission in its
//! forwarder's log). The metrics on the socket and on the loopback port
//! show the phases, the tunnel's bytes and open stream.

use std::time::Duration;

use pp_e2e::daemon::{Daemon, echo, http_get, metric};
use pp_e2e::free_port;
use pp_e2e::pp::{Pp, PpOptions};
use pp_e2e::world::World;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_deleting_and_failing_pods_leaves_the_others_alone() {
    let world = World::start();
    let metrics_port = free_port();
    let daemon = Daemon::start(
        &world,
        "daemon",
        &[
            "--metrics-listen".into(),
            format!("127.0.0.1:{metrics_port}"),
        ],
    );
    let wn = daemon.create("steady").await;
    let start = |wn| {
        let pp = Pp::start(PpOptions {
            wn_key: Some(wn),
            ..PpOptions::default()
        });
        pp.wait_listening();
        pp
    };
    let steady = start(wn);
    let steady_agent = daemon.attach("steady", &steady).await;
    daemon.wait_phase("steady", "kubernetes", WAIT).await;
    let mut stream = tokio::net::TcpStream::connect(&steady_agent)
        .await
        .expect("connect");
    let mut round_trip = async |payload: &[u8]| {
        stream.write_all(payload).await.expect("write");
        let mut back = vec![0u8; payload.len()];
        stream.read_exact(&mut back).await.expect("read");
        back
    };
    assert_eq!(round_trip(b"before").await, b"before");

    // Add one, use it, delete it.
    daemon.create("passing").await;
    let mut passing = start(wn);
    let passing_agent = daemon.attach("passing", &passing).await;
    daemon.wait_phase("passing", "kubernetes", WAIT).await;
    assert_eq!(echo(&passing_agent, b"passing").await, b"passing");
    daemon.delete("passing").await;
    world.kbs.wait_for(
        "deleted resource default/pp-passing/privateKey",
        Duration::from_secs(10),
    );
    // Fail one: its forwarder dies in the Kubernetes phase.
    daemon.create("failing").await;
    let mut failing = start(wn);
    daemon.attach("failing", &failing).await;
    daemon.wait_phase("failing", "kubernetes", WAIT).await;
    failing.forwarder_mut().kill9();
    daemon.wait_phase("failing", "connecting", WAIT).await;
    // One whose forwarder never answers.
    daemon.create("unreachable").await;
    let nobody = Pp {
        ssh_port: free_port(),
        ..start(wn)
    };
    daemon.attach("unreachable", &nobody).await;
    passing.forwarder_mut().kill9();

    assert_eq!(round_trip(b"after").await, b"after");
    let steady_status = daemon.status("steady").await;
    assert_eq!(steady_status["phase"], "kubernetes");
    assert_eq!(steady_status["reconnects"], 0, "{steady_status}");
    assert_eq!(
        steady.forwarder().count("admitted in the kubernetes phase"),
        1,
        "{}",
        steady.forwarder().output()
    );

    let scraped = [daemon.metrics().await, http_get_metrics(metrics_port).await];
    for text in scraped {
        assert_eq!(
            metric(&text, "pp_adaptor_pods{phase=\"kubernetes\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            metric(&text, "pp_adaptor_pods{phase=\"connecting\"}"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            metric(&text, "pp_adaptor_reconnects_total{sid=\"steady\"}"),
            Some(0.0)
        );
        assert_eq!(
            metric(&text, "pp_adaptor_reconnects_total{sid=\"failing\"}"),
            Some(1.0),
            "{text}"
        );
        let series = "{sid=\"steady\",tunnel=\"KATAAGENT\"}";
        assert_eq!(
            metric(&text, &format!("pp_adaptor_tunnel_open_streams{series}")),
            Some(1.0)
        );
        assert_eq!(
            metric(
                &text,
                &format!("pp_adaptor_tunnel_bytes_to_pp_total{series}")
            ),
            Some(11.0),
            "before + after"
        );
        assert_eq!(
            metric(
                &text,
                &format!("pp_adaptor_tunnel_bytes_from_pp_total{series}")
            ),
            Some(11.0)
        );
        assert_eq!(
            metric(&text, "pp_adaptor_attach_to_kubernetes_seconds_count"),
            Some(3.0),
            "{text}"
        );
        assert!(metric(&text, "pp_adaptor_trustee_errors_total").is_some());
    }
    drop(stream);
}

/// `GET /metrics` on the loopback metrics listener; the body.
async fn http_get_metrics(port: u16) -> String {
    let (status, body) = http_get(port, "/metrics").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    body
}
