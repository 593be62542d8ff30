//! The adaptor's metrics in the Prometheus text exposition format (0.0.4):
//! what a node's scraper reads from `GET /v1/metrics` on the control socket
//! or from the optional loopback listener (`serve --metrics-listen`).
//!
//! Contract: [`render`] is a pure function of a [`MetricsSnapshot`]; every
//! metric family is always present (zero when nothing happened), label
//! values are escaped, families and series come out in a stable order.
//! [`Histogram`] keeps cumulative-ready bucket counts for one latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::tunnel_stats::TunnelCounts;

/// Upper bounds (seconds) of the attach → Kubernetes-phase latency buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Observations of one latency.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Per bucket of [`LATENCY_BUCKETS`] (not cumulative); longer ones only
    /// count in `count`.
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub sum_secs: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, latency: Duration) {
        let secs = latency.as_secs_f64();
        if let Some(slot) = LATENCY_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .and_then(|index| self.buckets.get_mut(index))
        {
            *slot += 1;
        }
        self.sum_secs += secs;
        self.count += 1;
    }
}

/// One pod's series.
#[derive(Clone, Debug, Default)]
pub struct PodMetrics {
    pub sid: String,
    /// Established connections lost (each followed by a reconnect).
    pub reconnects: u64,
    /// Tunnel name → counters.
    pub tunnels: Vec<(String, TunnelCounts)>,
}

/// Everything [`render`] shows.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// Phase name → number of pods in it (all phases listed).
    pub pods_by_phase: BTreeMap<&'static str, u64>,
    pub pods: Vec<PodMetrics>,
    pub attach_latency: Histogram,
    pub trustee_errors: u64,
}

/// Name, type, help and value of one per-tunnel metric family.
type TunnelSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TunnelCounts) -> u64,
);

/// The exposition text.
pub fn render(snapshot: &MetricsSnapshot) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "pp_adaptor_pods",
        "gauge",
        "Pods known to the adaptor, by phase.",
    );
    for (phase, count) in &snapshot.pods_by_phase {
        let _ = writeln!(
            out,
            "pp_adaptor_pods{{phase=\"{}\"}} {count}",
            escape(phase)
        );
    }
    family(
        &mut out,
        "pp_adaptor_reconnects_total",
        "counter",
        "Established connections to a pod's forwarder that were lost and reconnected.",
    );
    for pod in &snapshot.pods {
        let _ = writeln!(
            out,
            "pp_adaptor_reconnects_total{{sid=\"{}\"}} {}",
            escape(&pod.sid),
            pod.reconnects
        );
    }
    let tunnel_series: [TunnelSeries; 11] = [
        (
            "pp_adaptor_tunnel_bytes_to_pp_total",
            "counter",
            "Bytes carried from local tunnel clients to the pod.",
            |counts| counts.bytes_to_pp,
        ),
        (
            "pp_adaptor_tunnel_bytes_from_pp_total",
            "counter",
            "Bytes carried from the pod to local tunnel clients.",
            |counts| counts.bytes_from_pp,
        ),
        (
            "pp_adaptor_tunnel_open_streams",
            "gauge",
            "Streams open right now through a local tunnel listener.",
            |counts| counts.open_streams,
        ),
        (
            "pp_adaptor_tunnel_datagrams_to_pp_total",
            "counter",
            "Datagrams carried from local UDP tunnel clients to the pod.",
            |counts| counts.datagrams.to_peer,
        ),
        (
            "pp_adaptor_tunnel_datagrams_from_pp_total",
            "counter",
            "Datagrams carried from the pod to local UDP tunnel clients.",
            |counts| counts.datagrams.from_peer,
        ),
        (
            "pp_adaptor_tunnel_datagrams_dropped_too_large_total",
            "counter",
            "Datagrams from local clients dropped for being larger than 16384 bytes.",
            |counts| counts.datagrams.dropped_too_large,
        ),
        (
            "pp_adaptor_tunnel_datagrams_dropped_no_connection_total",
            "counter",
            "Datagrams dropped because no connection in an allowed phase (speaking pp-mux-v2) was there.",
            |counts| counts.datagrams.dropped_no_tunnel,
        ),
        (
            "pp_adaptor_tunnel_datagrams_dropped_flow_limit_total",
            "counter",
            "Datagrams from new clients dropped because the tunnel had its most flows.",
            |counts| counts.datagrams.dropped_flow_limit,
        ),
        (
            "pp_adaptor_tunnel_datagrams_dropped_queue_full_total",
            "counter",
            "Datagrams dropped because a flow's queue was full (a peer or pipe slower than the sender).",
            |counts| counts.datagrams.dropped_queue_full,
        ),
        (
            "pp_adaptor_tunnel_flows_open",
            "gauge",
            "Datagram flows open right now through a local UDP tunnel listener.",
            |counts| counts.datagrams.flows_open,
        ),
        (
            "pp_adaptor_tunnel_flows_expired_total",
            "counter",
            "Datagram flows reset for being idle.",
            |counts| counts.datagrams.flows_expired,
        ),
    ];
    for (name, kind, help, value) in tunnel_series {
        family(&mut out, name, kind, help);
        for pod in &snapshot.pods {
            for (tunnel, counts) in &pod.tunnels {
                let _ = writeln!(
                    out,
                    "{name}{{sid=\"{}\",tunnel=\"{}\"}} {}",
                    escape(&pod.sid),
                    escape(tunnel),
                    value(counts)
                );
            }
        }
    }
    let latency = "pp_adaptor_attach_to_kubernetes_seconds";
    family(
        &mut out,
        latency,
        "histogram",
        "Time from attach (or re-attach at start) to the first Kubernetes-phase connection.",
    );
    let mut cumulative = 0;
    for (bound, count) in LATENCY_BUCKETS.iter().zip(snapshot.attach_latency.buckets) {
        cumulative += count;
        let _ = writeln!(out, "{latency}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let histogram = &snapshot.attach_latency;
    let _ = writeln!(out, "{latency}_bucket{{le=\"+Inf\"}} {}", histogram.count);
    let _ = writeln!(out, "{latency}_sum {}", histogram.sum_secs);
    let _ = writeln!(out, "{latency}_count {}", histogram.count);
    family(
        &mut out,
        "pp_adaptor_trustee_errors_total",
        "counter",
        "Trustee admin API calls that failed (unreachable, timed out or refused).",
    );
    let _ = writeln!(
        out,
        "pp_adaptor_trustee_errors_total {}",
        snapshot.trustee_errors
    );
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_rendered_with_cumulative_buckets_and_escaped_labels() {
        let mut latency = Histogram::default();
        latency.observe(Duration::from_millis(300));
        latency.observe(Duration::from_secs(3));
        latency.observe(Duration::from_secs(3600));
        let snapshot = MetricsSnapshot {
            pods_by_phase: [("kubernetes", 2), ("failed", 0)].into_iter().collect(),
            pods: vec![PodMetrics {
                sid: "a\"b".into(),
                reconnects: 4,
                tunnels: vec![
                    (
                        "KATAAGENT".into(),
                        TunnelCounts {
                            bytes_to_pp: 10,
                            bytes_from_pp: 20,
                            open_streams: 1,
                            ..TunnelCounts::default()
                        },
                    ),
                    (
                        "DNS".into(),
                        TunnelCounts {
                            datagrams: pp_tunnel::datagram::DatagramCounts {
                                to_peer: 5,
                                from_peer: 4,
                                dropped_too_large: 1,
                                flows_open: 2,
                                ..Default::default()
                            },
                            ..TunnelCounts::default()
                        },
                    ),
                ],
            }],
            attach_latency: latency,
            trustee_errors: 3,
        };
        let text = render(&snapshot);
        for line in [
            "pp_adaptor_pods{phase=\"kubernetes\"} 2",
            "pp_adaptor_pods{phase=\"failed\"} 0",
            "pp_adaptor_reconnects_total{sid=\"a\\\"b\"} 4",
            "pp_adaptor_tunnel_bytes_to_pp_total{sid=\"a\\\"b\",tunnel=\"KATAAGENT\"} 10",
            "pp_adaptor_tunnel_bytes_from_pp_total{sid=\"a\\\"b\",tunnel=\"KATAAGENT\"} 20",
            "pp_adaptor_tunnel_open_streams{sid=\"a\\\"b\",tunnel=\"KATAAGENT\"} 1",
            "pp_adaptor_tunnel_datagrams_to_pp_total{sid=\"a\\\"b\",tunnel=\"DNS\"} 5",
            "pp_adaptor_tunnel_datagrams_from_pp_total{sid=\"a\\\"b\",tunnel=\"DNS\"} 4",
            "pp_adaptor_tunnel_datagrams_dropped_too_large_total{sid=\"a\\\"b\",tunnel=\"DNS\"} 1",
            "pp_adaptor_tunnel_flows_open{sid=\"a\\\"b\",tunnel=\"DNS\"} 2",
            "pp_adaptor_tunnel_datagrams_dropped_queue_full_total{sid=\"a\\\"b\",tunnel=\"KATAAGENT\"} 0",
            "pp_adaptor_attach_to_kubernetes_seconds_bucket{le=\"0.25\"} 0",
            "pp_adaptor_attach_to_kubernetes_seconds_bucket{le=\"0.5\"} 1",
            "pp_adaptor_attach_to_kubernetes_seconds_bucket{le=\"5\"} 2",
            "pp_adaptor_attach_to_kubernetes_seconds_bucket{le=\"600\"} 2",
            "pp_adaptor_attach_to_kubernetes_seconds_bucket{le=\"+Inf\"} 3",
            "pp_adaptor_attach_to_kubernetes_seconds_count 3",
            "pp_adaptor_trustee_errors_total 3",
            "# TYPE pp_adaptor_attach_to_kubernetes_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
