//! Datagram tunnels in the PP: inbound UDP and unix datagram listeners
//! whose clients' datagrams travel to the WN as PP-opened mux flows, and
//! outbound flows the WN opens to a UDP or unix datagram target. The
//! relaying itself is `pp_tunnel::datagram`; this file binds, dials and
//! logs.
//!
//! Contract: a listener opens a flow for a new client only on a current WN
//! connection whose phase the tag allows (waiting up to `WAIT_FOR_WN`, as
//! a stream does) and that speaks pp-mux-v2; otherwise the datagrams are
//! dropped. Drops are counted per listener and summed up in the log at
//! most every `DROP_LOG_INTERVAL`; every outbound flow logs one line when
//! it ends, with what it carried and dropped.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};
use pp_tag::{Tag, Target};
use pp_tunnel::MuxFlow;
use pp_tunnel::datagram::{DatagramCounters, DatagramCounts, DatagramSocket, RelaySettings};

use crate::controller::{ConnId, Controller};
use crate::inbound::WAIT_FOR_WN;
use crate::netns;
use crate::targets;

/// How often a listener's new drops are summed up in the log.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

fn bind(target: &Target) -> std::io::Result<DatagramSocket> {
    let ip_port = |ip, port| std::net::SocketAddr::new(ip, port);
    match target {
        Target::Udp { ip, port } => {
            let socket = std::net::UdpSocket::bind(ip_port(*ip, *port))?;
            DatagramSocket::from_std_udp(socket)
        }
        Target::NetnsUdp { netns_path, port } => {
            DatagramSocket::from_std_udp(netns::udp_bind_loopback(netns_path, *port)?)
        }
        Target::UnixDatagram { path } => DatagramSocket::bind_unix(path),
        Target::Tcp { .. } | Target::NetnsTcp { .. } | Target::Unix { .. } => {
            Err(targets::wrong_kind("a stream tunnel (see inbound.rs)"))
        }
    }
}

/// Binds the datagram listener of `tag` and serves it; an address that
/// cannot be bound is a start error naming the tag.
pub fn start_listener(tag: Tag, ctrl: &Rc<Controller>) -> Result<(), String> {
    let described = tag.target().to_string();
    let socket = bind(tag.target()).map_err(|e| {
        format!(
            "inbound tunnel {}: cannot listen on {described}: {e}",
            tag.emit()
        )
    })?;
    info!("inbound tunnel {} listening on {described}", tag.name());
    let settings = RelaySettings {
        idle: ctrl.udp_idle(),
        ..RelaySettings::default()
    };
    let counters = Arc::new(DatagramCounters::default());
    let opener = {
        let (tag, ctrl) = (tag.clone(), ctrl.clone());
        move || open_flow(tag.clone(), ctrl.clone())
    };
    tokio::task::spawn_local(pp_tunnel::datagram::serve_listener(
        socket,
        opener,
        settings,
        counters.clone(),
    ));
    tokio::task::spawn_local(log_drops(tag.name().to_owned(), counters));
    Ok(())
}

/// A flow for a new client of inbound tunnel `tag`, or `None` (logged).
async fn open_flow(tag: Tag, ctrl: Rc<Controller>) -> Option<MuxFlow> {
    let name = tag.name();
    let Some((conn, mux)) = ctrl.wait_for_mux(tag.phase(), WAIT_FOR_WN).await else {
        warn!(
            "inbound tunnel {name}: no WN connection allows it within {WAIT_FOR_WN:?}; datagrams dropped"
        );
        return None;
    };
    match mux.open_flow(name).await {
        Ok(flow) => {
            info!("conn {conn}: inbound flow {} for {name} opened", flow.id());
            Some(flow)
        }
        Err(e) => {
            warn!("inbound tunnel {name}: cannot open a flow on conn {conn}: {e}");
            None
        }
    }
}

/// Logs a listener's drops, summed up, when there are new ones.
async fn log_drops(name: String, counters: Arc<DatagramCounters>) {
    let mut logged = 0;
    let mut ticks = tokio::time::interval(DROP_LOG_INTERVAL);
    loop {
        ticks.tick().await;
        let counts = counters.counts();
        if counts.dropped() > logged {
            logged = counts.dropped();
            warn!("inbound tunnel {name}: {}", summary(&counts));
        }
    }
}

/// What a listener or flow carried and dropped, for a log line.
fn summary(counts: &DatagramCounts) -> String {
    format!(
        "{} datagrams to the WN, {} from the WN; dropped: {} too large, {} without a WN connection, \
         {} over the flow limit, {} on a full queue, {} without a reply address",
        counts.to_peer,
        counts.from_peer,
        counts.dropped_too_large,
        counts.dropped_no_tunnel,
        counts.dropped_flow_limit,
        counts.dropped_queue_full,
        counts.dropped_no_reply_address
    )
}

/// Carries one flow the WN opened to a datagram target until it ends.
pub async fn carry_flow(conn: ConnId, name: String, flow: MuxFlow, target: Target, idle: Duration) {
    let described = target.to_string();
    let socket = match targets::connect_datagram(&target).await {
        Ok(socket) => socket,
        Err(e) => {
            warn!("conn {conn}: flow to {name}: cannot reach {described}: {e}");
            flow.reset(&format!("cannot reach {name}: {e}"));
            return;
        }
    };
    info!(
        "conn {conn}: flow {} to {name} ({described}) opened",
        flow.id()
    );
    let counters = DatagramCounters::default();
    let reason = pp_tunnel::datagram::serve_target(flow, socket, idle, &counters).await;
    info!(
        "conn {conn}: flow to {name} ended ({reason}): {}",
        summary(&counters.counts())
    );
}
