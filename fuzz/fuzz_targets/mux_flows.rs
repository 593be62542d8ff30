//! Fuzzes a pp-mux-v2 session with datagram flows: arbitrary peer bytes,
//! split at arbitrary points, interleaved with local flow commands (open a
//! flow or stream, send a datagram, reset, take the transmit queue). It
//! answers the peer as a driver would (echoes datagrams, refuses some
//! flows) and must never panic; the peer never has more flows open than
//! the cap (0 to 3, so OPEN_FLOWs over the cap come early).
//!
//! Input: a selector byte (bit 0: side, bit 1: refuse the peer's flows,
//! bits 6-7: flow cap), then steps. A step byte below 0xF0 feeds that many
//! plus one of the following bytes to the session as peer bytes; 0xF0 to
//! 0xF4 are local commands (see `local_command`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_mux::{Event, MuxLimits, MuxSession, MuxVersion, Phase, Side, StreamId};

/// Above this many queued bytes the target plays a driver that writes.
const TAKE_TRANSMIT_ABOVE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let side = if selector & 1 == 0 {
        Side::Wn
    } else {
        Side::Pp(Phase::Kubernetes)
    };
    let refuse_flows = selector & 2 != 0;
    let limits = MuxLimits {
        max_peer_streams: 2,
        max_peer_flows: usize::from(selector >> 6),
    };
    let mut session = MuxSession::with_limits(side, MuxVersion::V2, limits);
    let mut flows: Vec<StreamId> = Vec::new();
    while let Some((&step, tail)) = rest.split_first() {
        rest = tail;
        if step < 0xf0 {
            let len = usize::from(step).saturating_add(1).min(rest.len());
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            session.receive(chunk);
            if !answer_peer(&mut session, &mut flows, refuse_flows) {
                return;
            }
            assert!(session.peer_flows() <= limits.max_peer_flows);
        } else {
            let (&arg, tail) = rest.split_first().unwrap_or((&0, rest));
            rest = tail;
            local_command(&mut session, &mut flows, step, arg);
        }
        if session.transmit_backlog() > TAKE_TRANSMIT_ABOVE {
            let _ = session.take_transmit();
        }
    }
});

/// Handles every complete event; `false` once the session failed.
fn answer_peer(session: &mut MuxSession, flows: &mut Vec<StreamId>, refuse_flows: bool) -> bool {
    loop {
        match session.next_event() {
            Ok(Some(Event::FlowOpened { stream, .. })) if refuse_flows => {
                let _ = session.reset(stream, "refused by the fuzzer");
            }
            Ok(Some(Event::FlowOpened { stream, .. })) => flows.push(stream),
            Ok(Some(Event::Datagram { stream, bytes })) => {
                let _ = session.send_datagram(stream, &bytes);
            }
            Ok(Some(Event::Data { stream, bytes })) => {
                let n = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                let _ = session.consumed(stream, n);
            }
            Ok(Some(Event::PeerEnded { stream })) => {
                let _ = session.end(stream);
            }
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// 0xF0 opens a flow, 0xF1 sends a datagram of `arg * 67` bytes (so some
/// exceed MAX_DATAGRAM) on a known flow, 0xF2 resets one, 0xF3 opens a
/// byte stream, 0xF4 takes the transmit queue. Errors are expected.
fn local_command(session: &mut MuxSession, flows: &mut Vec<StreamId>, step: u8, arg: u8) {
    let pick = |flows: &[StreamId]| {
        let index = usize::from(arg).checked_rem(flows.len())?;
        flows.get(index).copied()
    };
    match step {
        0xf0 => {
            if let Ok(flow) = session.open_flow("FUZZ") {
                flows.push(flow);
            }
        }
        0xf1 => {
            if let Some(flow) = pick(flows) {
                let datagram = vec![arg; usize::from(arg) * 67];
                let _ = session.send_datagram(flow, &datagram);
            }
        }
        0xf2 => {
            if let Some(flow) = pick(flows) {
                let _ = session.reset(flow, "reset by the fuzzer");
            }
        }
        0xf3 => {
            let _ = session.open("FUZZ");
        }
        0xf4 => {
            let _ = session.take_transmit();
        }
        _ => {}
    }
}
