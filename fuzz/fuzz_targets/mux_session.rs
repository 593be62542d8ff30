//! Fuzzes the pp-mux-v1 session (byte streams; `mux_flows` fuzzes v2) with arbitrary peer bytes, split at
//! arbitrary points: it must never panic, whatever the peer sends, and it
//! answers the peer's streams (consume, echo, refuse) as a driver would,
//! with a stream limit of 0 to 3 so OPENs over the limit are exercised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_mux::{Event, MuxLimits, MuxSession, MuxVersion, Phase, Side};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, peer_bytes)) = data.split_first() else {
        return;
    };
    let side = if selector & 1 == 0 {
        Side::Wn
    } else {
        Side::Pp(Phase::Kubernetes)
    };
    let refuse_streams = selector & 2 != 0;
    let chunk_len = usize::from((selector >> 2) & 0x0f).max(1);
    // 0 to 3 peer streams at once, so refusals over the limit come early.
    let limits = MuxLimits {
        max_peer_streams: usize::from(selector >> 6),
        ..MuxLimits::default()
    };
    let mut session = MuxSession::with_limits(side, MuxVersion::V1, limits);
    for chunk in peer_bytes.chunks(chunk_len) {
        session.receive(chunk);
        loop {
            match session.next_event() {
                Ok(Some(Event::Opened { stream, .. })) if refuse_streams => {
                    let _ = session.reset(stream, "refused by the fuzzer");
                }
                Ok(Some(Event::Data { stream, bytes })) => {
                    let n = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                    let _ = session.consumed(stream, n);
                    let _ = session.send(stream, &bytes);
                }
                Ok(Some(Event::PeerEnded { stream })) => {
                    let _ = session.end(stream);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        let _ = session.take_transmit();
    }
});
