//! Two [`MuxSession`]s driven against each other with no IO: the rules of
//! docs/protocol.md section 2.3 as seen from both ends.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::MuxVersion;
use super::frame::{self, Frame, FrameError, Phase, Role, Side, StreamId};
use super::session::{
    CommandError, DEFAULT_MAX_PEER_STREAMS, DEFAULT_STREAM_WINDOW, Event, INITIAL_WINDOW,
    MAX_UNREAD_ANSWERS, MuxLimits, MuxSession, ProtocolError, STREAM_LIMIT_REASON,
};

pub(crate) fn id(n: u32) -> StreamId {
    StreamId::new(n).unwrap()
}

/// Moves everything `from` queued into `to` and returns `to`'s events.
pub(crate) fn deliver(
    from: &mut MuxSession,
    to: &mut MuxSession,
) -> Result<Vec<Event>, ProtocolError> {
    to.receive(&from.take_transmit());
    drain(to)
}

pub(crate) fn drain(to: &mut MuxSession) -> Result<Vec<Event>, ProtocolError> {
    let mut events = Vec::new();
    while let Some(event) = to.next_event()? {
        events.push(event);
    }
    Ok(events)
}

/// Limits under which every stream keeps [`INITIAL_WINDOW`] (no CREDIT
/// after OPEN), so a test sees only the frames it causes.
pub(crate) fn base_window_limits() -> MuxLimits {
    MuxLimits {
        stream_window: INITIAL_WINDOW,
        ..MuxLimits::default()
    }
}

/// A PP and a WN session with base windows that have exchanged HELLO.
fn connected() -> (MuxSession, MuxSession) {
    connected_with(base_window_limits())
}

/// A PP and a WN session, both with `limits`, that have exchanged HELLO.
fn connected_with(limits: MuxLimits) -> (MuxSession, MuxSession) {
    let mut pp = MuxSession::with_limits(Side::Pp(Phase::Attestation), MuxVersion::V2, limits);
    let mut wn = MuxSession::with_limits(Side::Wn, MuxVersion::V2, limits);
    assert_eq!(
        deliver(&mut pp, &mut wn).unwrap(),
        [Event::Hello {
            side: Side::Pp(Phase::Attestation)
        }]
    );
    assert_eq!(
        deliver(&mut wn, &mut pp).unwrap(),
        [Event::Hello { side: Side::Wn }]
    );
    (pp, wn)
}

/// Feeds a hand-built frame to `to` as if its peer had sent it.
pub(crate) fn inject(to: &mut MuxSession, frame: &Frame) -> Result<Vec<Event>, ProtocolError> {
    let mut wire = Vec::new();
    frame::emit(frame, &mut wire);
    to.receive(&wire);
    drain(to)
}

#[test]
fn a_stream_carries_data_both_ways_and_finishes_after_both_ends() {
    let (mut pp, mut wn) = connected();
    let s = wn.open("KATAAGENT").unwrap();
    assert_eq!(s, id(1));
    assert_eq!(wn.send(s, b"ping").unwrap(), 4);
    wn.end(s).unwrap();
    assert_eq!(
        deliver(&mut wn, &mut pp).unwrap(),
        [
            Event::Opened {
                stream: s,
                name: "KATAAGENT".into()
            },
            Event::Data {
                stream: s,
                bytes: b"ping".to_vec()
            },
            Event::PeerEnded { stream: s },
        ]
    );
    assert_eq!(pp.send(s, b"pong").unwrap(), 4);
    pp.end(s).unwrap();
    assert!(!pp.is_live(s));
    assert_eq!(
        deliver(&mut pp, &mut wn).unwrap(),
        [
            Event::Data {
                stream: s,
                bytes: b"pong".to_vec()
            },
            Event::PeerEnded { stream: s },
        ]
    );
    assert!(!wn.is_live(s));
    assert_eq!(wn.send(s, b"late"), Err(CommandError::StreamClosed(s)));
}

#[test]
fn each_side_opens_ids_of_its_own_parity_in_sequence() {
    let (mut pp, mut wn) = connected();
    assert_eq!(pp.open("KBS").unwrap(), id(2));
    assert_eq!(pp.open("KBS").unwrap(), id(4));
    assert_eq!(wn.open("A").unwrap(), id(1));
    assert_eq!(wn.open("B").unwrap(), id(3));
    assert_eq!(deliver(&mut pp, &mut wn).unwrap().len(), 2);
    assert_eq!(deliver(&mut wn, &mut pp).unwrap().len(), 2);
}

#[test]
fn sending_stops_at_the_window_and_credit_reopens_it() {
    let (mut pp, mut wn) = connected();
    let s = wn.open("KATAAGENT").unwrap();
    let payload = vec![1u8; 100_000];
    assert_eq!(wn.send(s, &payload).unwrap(), 65536);
    assert_eq!(wn.send(s, &payload).unwrap(), 0);
    let events = deliver(&mut wn, &mut pp).unwrap();
    assert_eq!(events.len(), 1 + 4, "OPEN then four full DATA frames");

    pp.consumed(s, 32767).unwrap();
    assert!(
        !pp.wants_transmit(),
        "no CREDIT before half a window is consumed"
    );
    pp.consumed(s, 1).unwrap();
    assert_eq!(
        deliver(&mut pp, &mut wn).unwrap(),
        [Event::Credited {
            stream: s,
            n: 32768
        }]
    );
    assert_eq!(wn.send_window(s), Some(32768));
    assert_eq!(wn.send(s, &payload).unwrap(), 32768);
}

#[test]
fn consuming_more_than_was_delivered_is_refused() {
    let (mut pp, mut wn) = connected();
    let s = wn.open("X").unwrap();
    wn.send(s, b"abc").unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    assert_eq!(pp.consumed(s, 4), Err(CommandError::OverConsumed(s)));
}

#[test]
fn overrunning_the_window_is_a_protocol_error() {
    let (mut pp, mut wn) = connected();
    let s = wn.open("X").unwrap();
    assert_eq!(wn.send(s, &vec![0; 65536]).unwrap(), 65536);
    deliver(&mut wn, &mut pp).unwrap();
    let err = inject(
        &mut pp,
        &Frame::Data {
            stream: s,
            bytes: vec![0],
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::WindowOverrun {
            stream: s,
            len: 1,
            window: 0
        }
    );
}

#[test]
fn a_protocol_error_is_sticky() {
    let (mut pp, _wn) = connected();
    let err = inject(&mut pp, &Frame::End { stream: id(7) }).unwrap_err();
    assert!(matches!(
        err,
        ProtocolError::UnknownStream { frame: "END", .. }
    ));
    assert_eq!(pp.next_event(), Err(err.clone()));
    assert_eq!(pp.open("KBS"), Err(CommandError::Failed(err)));
}

#[test]
fn credit_beyond_two_to_the_31_is_a_protocol_error() {
    let (mut pp, mut wn) = connected();
    let s = pp.open("KBS").unwrap();
    deliver(&mut pp, &mut wn).unwrap();
    let headroom = (1 << 31) - 1 - INITIAL_WINDOW;
    assert_eq!(
        inject(
            &mut pp,
            &Frame::Credit {
                stream: s,
                n: headroom
            }
        )
        .unwrap()
        .len(),
        1
    );
    let err = inject(&mut pp, &Frame::Credit { stream: s, n: 1 }).unwrap_err();
    assert_eq!(err, ProtocolError::WindowTooLarge { stream: s });
}

#[test]
fn crossing_resets_are_ignored_by_both_sides() {
    let (mut pp, mut wn) = connected();
    let s = wn.open("KATAAGENT").unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    wn.send(s, b"in flight").unwrap();
    wn.reset(s, "client gone").unwrap();
    pp.send(s, b"also in flight").unwrap();
    pp.reset(s, "target refused").unwrap();
    assert_eq!(deliver(&mut wn, &mut pp).unwrap(), []);
    assert_eq!(deliver(&mut pp, &mut wn).unwrap(), []);
    assert!(!pp.is_live(s) && !wn.is_live(s));
}

#[test]
fn a_refusal_reaches_the_opener_and_frames_crossing_it_are_ignored() {
    let (mut pp, mut wn) = connected();
    let s = wn.open("NOPE").unwrap();
    wn.send(s, b"optimistic").unwrap();
    let events = deliver(&mut wn, &mut pp).unwrap();
    assert_eq!(
        events[0],
        Event::Opened {
            stream: s,
            name: "NOPE".into()
        }
    );
    pp.reset(s, "no tunnel NOPE in this phase").unwrap();
    pp.consumed(s, 10).unwrap();
    wn.send(s, b"crossing the reset").unwrap();
    wn.end(s).unwrap();
    assert_eq!(deliver(&mut wn, &mut pp).unwrap(), []);
    assert_eq!(
        deliver(&mut pp, &mut wn).unwrap(),
        [Event::PeerReset {
            stream: s,
            reason: "no tunnel NOPE in this phase".into()
        }]
    );
}

#[test]
fn reset_delivers_the_reason_to_the_peer() {
    let (mut pp, mut wn) = connected();
    let s = pp.open("KBS").unwrap();
    deliver(&mut pp, &mut wn).unwrap();
    wn.reset(s, "trustee unreachable").unwrap();
    assert_eq!(
        deliver(&mut wn, &mut pp).unwrap(),
        [Event::PeerReset {
            stream: s,
            reason: "trustee unreachable".into()
        }]
    );
    assert_eq!(pp.send(s, b"x"), Err(CommandError::StreamClosed(s)));
}

#[test]
fn open_with_the_receivers_parity_is_a_protocol_error() {
    let (mut pp, _wn) = connected();
    let err = inject(
        &mut pp,
        &Frame::Open {
            stream: id(2),
            name: "KBS".into(),
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::BadOpenId {
            stream: id(2),
            expected: 1
        }
    );
}

#[test]
fn reusing_or_skipping_an_id_is_a_protocol_error() {
    let (mut pp, _wn) = connected();
    let open = |n| Frame::Open {
        stream: id(n),
        name: "KBS".into(),
    };
    inject(&mut pp, &open(1)).unwrap();
    assert_eq!(
        inject(&mut pp, &open(1)).unwrap_err(),
        ProtocolError::BadOpenId {
            stream: id(1),
            expected: 3
        }
    );
    let (mut pp, _wn) = connected();
    assert_eq!(
        inject(&mut pp, &open(3)).unwrap_err(),
        ProtocolError::BadOpenId {
            stream: id(3),
            expected: 1
        }
    );
}

#[test]
fn data_for_a_stream_never_opened_is_a_protocol_error() {
    let (mut pp, _wn) = connected();
    let err = inject(
        &mut pp,
        &Frame::Data {
            stream: id(2),
            bytes: vec![1],
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnknownStream {
            frame: "DATA",
            stream: id(2)
        }
    );
}

#[test]
fn data_after_the_peers_end_is_a_protocol_error() {
    let (mut pp, mut wn) = connected();
    let s = wn.open("X").unwrap();
    wn.end(s).unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    let err = inject(
        &mut pp,
        &Frame::Data {
            stream: s,
            bytes: vec![1],
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::AfterEnd {
            frame: "DATA",
            stream: s
        }
    );
}

#[test]
fn the_first_frame_must_be_hello() {
    let mut pp = MuxSession::new(Side::Pp(Phase::Kubernetes));
    let err = inject(&mut pp, &Frame::InfoRequest).unwrap_err();
    assert_eq!(err, ProtocolError::HelloMissing);
}

#[test]
fn a_hello_with_another_version_or_the_same_role_is_rejected() {
    for (channel, found) in [
        (MuxVersion::V2, 1),
        (MuxVersion::V1, 2),
        (MuxVersion::V2, 3),
    ] {
        let mut pp =
            MuxSession::with_limits(Side::Pp(Phase::Kubernetes), channel, MuxLimits::default());
        let hello = Frame::Hello {
            version: found,
            side: Side::Wn,
        };
        let err = inject(&mut pp, &hello).unwrap_err();
        assert_eq!(err, ProtocolError::UnsupportedVersion { found, channel });
    }
    let mut pp = MuxSession::new(Side::Pp(Phase::Kubernetes));
    let hello = Frame::Hello {
        version: 2,
        side: Side::Pp(Phase::Attestation),
    };
    assert_eq!(
        inject(&mut pp, &hello).unwrap_err(),
        ProtocolError::SameRole(Role::Pp)
    );
}

#[test]
fn a_second_hello_is_rejected() {
    let (mut pp, _wn) = connected();
    let err = inject(
        &mut pp,
        &Frame::Hello {
            version: 1,
            side: Side::Wn,
        },
    )
    .unwrap_err();
    assert_eq!(err, ProtocolError::HelloRepeated);
}

#[test]
fn malformed_bytes_surface_as_a_frame_error() {
    let (mut pp, _wn) = connected();
    pp.receive(&[0x42, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        pp.next_event(),
        Err(ProtocolError::Frame(FrameError::UnknownType(0x42)))
    );
}

#[test]
fn upgrade_and_info_flow_only_from_pp_to_wn() {
    let (mut pp, mut wn) = connected();
    wn.send_info_request().unwrap();
    assert_eq!(deliver(&mut wn, &mut pp).unwrap(), [Event::InfoRequest]);
    pp.send_info("phase=attestation").unwrap();
    pp.send_upgrade("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5").unwrap();
    assert_eq!(
        deliver(&mut pp, &mut wn).unwrap(),
        [
            Event::Info {
                text: "phase=attestation".into()
            },
            Event::Upgrade {
                host_key_line: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5".into()
            },
        ]
    );
    assert_eq!(
        wn.send_upgrade("ssh-ed25519 AAAA"),
        Err(CommandError::WrongRole { frame: "UPGRADE" })
    );
    assert_eq!(
        pp.send_info_request(),
        Err(CommandError::WrongRole {
            frame: "INFO_REQUEST"
        })
    );
    let err = inject(
        &mut pp,
        &Frame::Info {
            text: String::new(),
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnexpectedControl {
            frame: "INFO",
            receiver: Role::Pp
        }
    );
}

#[test]
fn frames_split_into_single_bytes_parse_the_same() {
    let (mut pp, mut wn) = connected();
    let s = wn.open("KATAAGENT").unwrap();
    wn.send(s, &[9; 20_000]).unwrap();
    let mut events = Vec::new();
    for byte in wn.take_transmit() {
        pp.receive(&[byte]);
        events.extend(drain(&mut pp).unwrap());
    }
    let received: usize = events
        .iter()
        .map(|e| match e {
            Event::Data { bytes, .. } => bytes.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(received, 20_000);
}

#[test]
fn a_stalled_stream_does_not_hold_back_sixteen_others() {
    const STREAMS: u32 = 17;
    const PER_STREAM: usize = 300_000;
    let (mut pp, mut wn) = connected();
    let streams: Vec<StreamId> = (0..STREAMS)
        .map(|_| wn.open("KATAAGENT").unwrap())
        .collect();
    deliver(&mut wn, &mut pp).unwrap();
    let stalled = streams[5];
    let byte_at = |s: StreamId, i: usize| (s.get() as usize * 31 + i * 7) as u8;
    let mut sent: BTreeMap<StreamId, usize> = streams.iter().map(|s| (*s, 0)).collect();
    let mut delivered: BTreeMap<StreamId, Vec<u8>> = BTreeMap::new();
    let mut consumed: BTreeMap<StreamId, usize> = BTreeMap::new();
    let mut stall_released = false;

    for _round in 0..1000 {
        for (s, offset) in sent.iter_mut() {
            let chunk: Vec<u8> = (*offset..PER_STREAM)
                .take(20_000)
                .map(|i| byte_at(*s, i))
                .collect();
            *offset += wn.send(*s, &chunk).unwrap();
        }
        let unfinished: Vec<StreamId> = streams
            .iter()
            .filter(|s| **s != stalled && delivered.get(s).map_or(0, Vec::len) < PER_STREAM)
            .copied()
            .collect();
        let mut streams_with_data_this_round = Vec::new();
        for event in deliver(&mut wn, &mut pp).unwrap() {
            let Event::Data { stream, bytes } = event else {
                panic!("{event:?}")
            };
            streams_with_data_this_round.push(stream);
            delivered
                .entry(stream)
                .or_default()
                .extend_from_slice(&bytes);
        }
        streams_with_data_this_round.dedup();
        for s in streams.iter().filter(|s| **s != stalled || stall_released) {
            let total = delivered.get(s).map_or(0, Vec::len);
            let done = consumed.entry(*s).or_default();
            pp.consumed(*s, (total - *done) as u32).unwrap();
            *done = total;
        }
        deliver(&mut pp, &mut wn).unwrap();

        let complete = |s: &StreamId| delivered.get(s).map_or(0, Vec::len) == PER_STREAM;
        if !stall_released {
            for s in &unfinished {
                assert!(
                    streams_with_data_this_round.contains(s),
                    "stream {s} moved this round"
                );
            }
            if streams.iter().filter(|s| **s != stalled).all(complete) {
                assert_eq!(
                    delivered[&stalled].len(),
                    65536,
                    "stalled stream got exactly one window"
                );
                stall_released = true;
            }
        } else if streams.iter().all(complete) {
            for s in &streams {
                let expected: Vec<u8> = (0..PER_STREAM).map(|i| byte_at(*s, i)).collect();
                assert!(
                    delivered[s] == expected,
                    "stream {s} data arrived intact and in order"
                );
            }
            return;
        }
    }
    panic!("streams did not finish: sent {sent:?}");
}

/// A PP that allows the WN `max` streams at once, connected to a WN.
fn connected_with_limit(max: usize) -> (MuxSession, MuxSession) {
    let limits = MuxLimits {
        max_peer_streams: max,
        ..base_window_limits()
    };
    let mut pp = MuxSession::with_limits(Side::Pp(Phase::Attestation), MuxVersion::V2, limits);
    let mut wn = MuxSession::with_limits(Side::Wn, MuxVersion::V2, base_window_limits());
    deliver(&mut pp, &mut wn).unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    (pp, wn)
}

fn opened_ids(events: &[Event]) -> Vec<u32> {
    let ids = events.iter().filter_map(|e| match e {
        Event::Opened { stream, .. } => Some(stream.get()),
        _ => None,
    });
    ids.collect()
}

#[test]
fn an_open_over_the_stream_limit_is_refused_with_the_reason_and_the_connection_goes_on() {
    let (mut pp, mut wn) = connected_with_limit(2);
    let first = wn.open("A").unwrap();
    let second = wn.open("A").unwrap();
    let over = wn.open("A").unwrap();
    wn.send(over, b"optimistic bytes are dropped").unwrap();
    let events = deliver(&mut wn, &mut pp).unwrap();
    assert_eq!(opened_ids(&events), [first.get(), second.get()]);
    assert!(!pp.is_live(over));
    assert_eq!(pp.peer_streams(), 2);
    let answer = deliver(&mut pp, &mut wn).unwrap();
    let [Event::PeerReset { stream, reason }] = answer.as_slice() else {
        panic!("expected one RESET, got {answer:?}");
    };
    assert_eq!(*stream, over);
    assert!(reason.starts_with(STREAM_LIMIT_REASON), "{reason}");
    assert!(reason.contains("2 streams"), "{reason}");
    // A stream that finishes frees its place for the next OPEN.
    wn.end(first).unwrap();
    pp.end(first).unwrap();
    deliver(&mut pp, &mut wn).unwrap();
    let events = deliver(&mut wn, &mut pp).unwrap();
    assert_eq!(events, [Event::PeerEnded { stream: first }]);
    let next = wn.open("A").unwrap();
    assert_eq!(wn.send(next, b"hi").unwrap(), 2);
    assert_eq!(
        deliver(&mut wn, &mut pp).unwrap(),
        [
            Event::Opened {
                stream: next,
                name: "A".into()
            },
            Event::Data {
                stream: next,
                bytes: b"hi".to_vec()
            },
        ]
    );
}

#[test]
fn resets_from_either_side_free_places_and_local_opens_do_not_count() {
    let (mut pp, mut wn) = connected_with_limit(1);
    let own = pp.open("KBS").unwrap();
    let a = wn.open("A").unwrap();
    deliver(&mut pp, &mut wn).unwrap();
    assert_eq!(opened_ids(&deliver(&mut wn, &mut pp).unwrap()), [a.get()]);
    assert!(pp.is_live(own));
    pp.reset(a, "refused by the application").unwrap();
    let b = wn.open("A").unwrap();
    assert_eq!(opened_ids(&deliver(&mut wn, &mut pp).unwrap()), [b.get()]);
    wn.reset(b, "changed my mind").unwrap();
    let c = wn.open("A").unwrap();
    let events = deliver(&mut wn, &mut pp).unwrap();
    assert_eq!(opened_ids(&events), [c.get()]);
    assert_eq!(pp.peer_streams(), 1);
}

#[test]
fn the_default_limit_lets_256_streams_open_and_refuses_the_257th() {
    let (mut pp, mut wn) = connected();
    let ids: Vec<StreamId> = (0..=DEFAULT_MAX_PEER_STREAMS)
        .map(|_| wn.open("A").unwrap())
        .collect();
    let events = deliver(&mut wn, &mut pp).unwrap();
    assert_eq!(opened_ids(&events).len(), DEFAULT_MAX_PEER_STREAMS);
    let refused = ids[DEFAULT_MAX_PEER_STREAMS];
    assert!(!pp.is_live(refused));
    let answer = deliver(&mut pp, &mut wn).unwrap();
    assert!(
        matches!(answer.as_slice(), [Event::PeerReset { stream, .. }] if *stream == refused),
        "{answer:?}"
    );
}

#[test]
fn opens_over_the_limit_from_a_peer_that_never_reads_end_the_connection() {
    let (mut pp, _wn) = connected_with_limit(0);
    let mut next = 1;
    let err = loop {
        let open = Frame::Open {
            stream: id(next),
            name: "A".into(),
        };
        match inject(&mut pp, &open) {
            Ok(events) => assert_eq!(events, []),
            Err(e) => break e,
        }
        next += 2;
    };
    let ProtocolError::AnswersUnread { frame, backlog } = err else {
        panic!("expected AnswersUnread, got {err:?}");
    };
    assert_eq!(frame, "OPEN");
    assert!(backlog > MAX_UNREAD_ANSWERS);
    assert!(pp.take_transmit().len() < MAX_UNREAD_ANSWERS + 1024);
}

#[test]
fn info_requests_from_a_peer_that_never_reads_end_the_connection() {
    let (mut pp, _wn) = connected();
    let text = "x".repeat(frame::MAX_PAYLOAD);
    let err = loop {
        match inject(&mut pp, &Frame::InfoRequest) {
            Ok(events) => assert_eq!(events, [Event::InfoRequest]),
            Err(e) => break e,
        }
        pp.send_info(&text).unwrap();
    };
    assert!(
        matches!(
            err,
            ProtocolError::AnswersUnread {
                frame: "INFO_REQUEST",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn take_transmit_into_hands_over_the_frames_and_keeps_nothing_stale() {
    let (mut pp, mut wn) = connected();
    let stream = wn.open("KATAAGENT").unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    // A buffer with old bytes in it, then reused: each round hands over
    // exactly the new frame.
    let mut buf = vec![0xee; 64];
    for payload in [&b"first"[..], b"second"] {
        wn.send(stream, payload).unwrap();
        wn.take_transmit_into(&mut buf);
        assert!(!wn.wants_transmit());
        pp.receive(&buf);
        assert_eq!(
            drain(&mut pp).unwrap(),
            [Event::Data {
                stream,
                bytes: payload.to_vec()
            }]
        );
    }
}

/// Sends `n` bytes on `stream` from `from` as far as its window allows and
/// delivers them; returns how many went out.
fn send_all(from: &mut MuxSession, to: &mut MuxSession, stream: StreamId, n: usize) -> usize {
    let sent = from.send(stream, &vec![7u8; n]).unwrap();
    deliver(from, to).unwrap();
    sent
}

/// The WN opens a stream and both sides take what that queued (the OPEN,
/// the CREDITs that raise the windows).
fn open_settled(wn: &mut MuxSession, pp: &mut MuxSession) -> StreamId {
    let s = wn.open("A").unwrap();
    deliver(wn, pp).unwrap();
    deliver(pp, wn).unwrap();
    s
}

#[test]
fn both_ends_raise_a_new_streams_window_with_credit_right_after_open() {
    let window = 300_000;
    let limits = MuxLimits {
        stream_window: window,
        ..MuxLimits::default()
    };
    let (mut pp, mut wn) = connected_with(limits);
    let s = wn.open("A").unwrap();
    let extra = window - INITIAL_WINDOW;
    let at_pp = deliver(&mut wn, &mut pp).unwrap();
    assert_eq!(
        at_pp,
        [
            Event::Opened {
                stream: s,
                name: "A".into()
            },
            Event::Credited {
                stream: s,
                n: extra
            }
        ]
    );
    let at_wn = deliver(&mut pp, &mut wn).unwrap();
    assert_eq!(
        at_wn,
        [Event::Credited {
            stream: s,
            n: extra
        }]
    );
    assert_eq!(wn.send_window(s), Some(window));
    assert_eq!(pp.send_window(s), Some(window));
    // The whole window arrives; a byte more is an overrun at the receiver.
    let whole = usize::try_from(window).unwrap();
    assert_eq!(send_all(&mut wn, &mut pp, s, whole + 1), whole);
    assert_eq!(send_all(&mut pp, &mut wn, s, whole + 1), whole);
    // CREDIT comes back after half the raised window, not half the base one.
    let half = window / 2;
    wn.consumed(s, half - 1).unwrap();
    assert_eq!(deliver(&mut wn, &mut pp).unwrap(), []);
    wn.consumed(s, 1).unwrap();
    assert_eq!(
        deliver(&mut wn, &mut pp).unwrap(),
        [Event::Credited { stream: s, n: half }]
    );
    let overrun = inject(
        &mut pp,
        &Frame::Data {
            stream: s,
            bytes: vec![1],
        },
    );
    assert!(
        matches!(overrun, Err(ProtocolError::WindowOverrun { window: 0, .. })),
        "{overrun:?}"
    );
}

#[test]
fn streams_beyond_the_window_budget_get_the_base_window_until_one_finishes() {
    let window = 200_000;
    let limits = MuxLimits {
        stream_window: window,
        window_budget: 2 * window + 1,
        ..MuxLimits::default()
    };
    let (mut pp, mut wn) = connected_with(limits);
    let streams: Vec<StreamId> = (0..4).map(|_| wn.open("A").unwrap()).collect();
    deliver(&mut wn, &mut pp).unwrap();
    deliver(&mut pp, &mut wn).unwrap();
    let windows = |side: &MuxSession| -> Vec<Option<u32>> {
        streams.iter().map(|s| side.send_window(*s)).collect()
    };
    let expected = [
        Some(window),
        Some(window),
        Some(INITIAL_WINDOW),
        Some(INITIAL_WINDOW),
    ];
    assert_eq!(windows(&wn), expected);
    assert_eq!(windows(&pp), expected);
    // A stream with the larger window finishes: its budget is free again.
    wn.reset(streams[0], "done").unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    let next = open_settled(&mut wn, &mut pp);
    assert_eq!(wn.send_window(next), Some(window));
    assert_eq!(pp.send_window(next), Some(window));
}

#[test]
fn a_peer_that_opens_without_reading_gets_no_more_credit_than_the_answer_limit() {
    let limits = MuxLimits {
        window_budget: u32::MAX,
        ..MuxLimits::default()
    };
    let (mut pp, mut wn) = connected_with(limits);
    // Each OPEN would earn an 11-byte CREDIT; the RESET after it frees the
    // place, so only the unread-answer limit stops the CREDITs piling up.
    for _ in 0..MAX_UNREAD_ANSWERS / 11 + 100 {
        let s = wn.open("A").unwrap();
        wn.reset(s, "x").unwrap();
        deliver(&mut wn, &mut pp).unwrap();
    }
    assert!(pp.take_transmit().len() <= MAX_UNREAD_ANSWERS + 11);
}

#[test]
fn a_peer_that_never_raises_windows_works_with_one_that_does() {
    let limits = MuxLimits::default();
    let mut pp = MuxSession::with_limits(Side::Pp(Phase::Kubernetes), MuxVersion::V2, limits);
    let mut wn = MuxSession::with_limits(Side::Wn, MuxVersion::V2, base_window_limits());
    deliver(&mut pp, &mut wn).unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    let s = open_settled(&mut wn, &mut pp);
    // The PP raised what it receives; the WN's direction keeps the base.
    assert_eq!(wn.send_window(s), Some(DEFAULT_STREAM_WINDOW));
    assert_eq!(pp.send_window(s), Some(INITIAL_WINDOW));
    let raised = usize::try_from(DEFAULT_STREAM_WINDOW).unwrap();
    let base = usize::try_from(INITIAL_WINDOW).unwrap();
    assert_eq!(send_all(&mut wn, &mut pp, s, raised + 1), raised);
    assert_eq!(send_all(&mut pp, &mut wn, s, base + 1), base);
    wn.end(s).unwrap();
    pp.end(s).unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    deliver(&mut pp, &mut wn).unwrap();
    assert!(!pp.is_live(s) && !wn.is_live(s));
}
