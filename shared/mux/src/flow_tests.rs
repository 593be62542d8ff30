//! Datagram flows between two [`MuxSession`]s with no IO: the flow rules of
//! docs/protocol.md 2.3 (ids, caps, which frames a flow takes) and the
//! version rules of section 2 ("Versions").

use alloc::vec;
use alloc::vec::Vec;

use super::MuxVersion;
use super::frame::{self, Frame, FrameError, MAX_DATAGRAM, Phase, Role, Side, StreamId};
use super::session::{
    CommandError, DEFAULT_MAX_PEER_FLOWS, Event, FLOW_LIMIT_REASON, MAX_UNREAD_ANSWERS, MuxLimits,
    MuxSession, ProtocolError,
};
use super::session_tests::{deliver, drain, id, inject};

/// A PP and a WN session of `version` that have exchanged HELLO; the PP
/// enforces `limits`.
fn connected_as(version: MuxVersion, limits: MuxLimits) -> (MuxSession, MuxSession) {
    let mut pp = MuxSession::with_limits(Side::Pp(Phase::Kubernetes), version, limits);
    let mut wn = MuxSession::with_limits(Side::Wn, version, MuxLimits::default());
    assert_eq!(deliver(&mut pp, &mut wn).unwrap().len(), 1);
    assert_eq!(deliver(&mut wn, &mut pp).unwrap().len(), 1);
    (pp, wn)
}

fn connected_v2() -> (MuxSession, MuxSession) {
    connected_as(MuxVersion::V2, MuxLimits::default())
}

fn flow_limit(max_peer_flows: usize) -> MuxLimits {
    MuxLimits {
        max_peer_flows,
        ..MuxLimits::default()
    }
}

fn datagram(stream: StreamId, bytes: &[u8]) -> Event {
    Event::Datagram {
        stream,
        bytes: bytes.to_vec(),
    }
}

#[test]
fn a_flow_carries_whole_datagrams_both_ways_in_order() {
    let (mut pp, mut wn) = connected_v2();
    let flow = wn.open_flow("DNS").unwrap();
    let sizes = [0, 1, 512, MAX_DATAGRAM - 1, MAX_DATAGRAM];
    let sent: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![n as u8; n]).collect();
    for d in &sent {
        wn.send_datagram(flow, d).unwrap();
    }
    let mut expected = vec![Event::FlowOpened {
        stream: flow,
        name: "DNS".into(),
    }];
    expected.extend(sent.iter().map(|d| datagram(flow, d)));
    assert_eq!(deliver(&mut wn, &mut pp).unwrap(), expected);
    pp.send_datagram(flow, b"answer").unwrap();
    pp.send_datagram(flow, b"").unwrap();
    assert_eq!(
        deliver(&mut pp, &mut wn).unwrap(),
        [datagram(flow, b"answer"), datagram(flow, b"")]
    );
}

#[test]
fn streams_and_flows_share_one_id_sequence_per_side() {
    let (mut pp, mut wn) = connected_v2();
    assert_eq!(wn.open("A").unwrap(), id(1));
    assert_eq!(wn.open_flow("B").unwrap(), id(3));
    assert_eq!(wn.open("A").unwrap(), id(5));
    assert_eq!(pp.open_flow("C").unwrap(), id(2));
    assert_eq!(pp.open("D").unwrap(), id(4));
    let events = deliver(&mut wn, &mut pp).unwrap();
    assert_eq!(
        events,
        [
            Event::Opened {
                stream: id(1),
                name: "A".into()
            },
            Event::FlowOpened {
                stream: id(3),
                name: "B".into()
            },
            Event::Opened {
                stream: id(5),
                name: "A".into()
            },
        ]
    );
    assert_eq!(deliver(&mut pp, &mut wn).unwrap().len(), 2);
}

#[test]
fn an_open_flow_must_carry_the_next_id_of_the_peers_sequence() {
    let (mut pp, _wn) = connected_v2();
    let open = |n| Frame::OpenFlow {
        stream: id(n),
        name: "DNS".into(),
    };
    assert_eq!(
        inject(&mut pp, &open(3)).unwrap_err(),
        ProtocolError::BadOpenId {
            stream: id(3),
            expected: 1
        }
    );
    let (mut pp, _wn) = connected_v2();
    assert!(inject(&mut pp, &open(1)).is_ok());
    assert_eq!(
        inject(&mut pp, &open(1)).unwrap_err(),
        ProtocolError::BadOpenId {
            stream: id(1),
            expected: 3
        }
    );
    let (mut pp, _wn) = connected_v2();
    assert!(matches!(
        inject(&mut pp, &open(2)),
        Err(ProtocolError::BadOpenId { .. })
    ));
}

#[test]
fn an_open_flow_over_the_flow_limit_is_refused_by_the_session_and_uses_up_its_id() {
    let (mut pp, mut wn) = connected_as(MuxVersion::V2, flow_limit(2));
    let first = wn.open_flow("DNS").unwrap();
    let second = wn.open_flow("DNS").unwrap();
    let over = wn.open_flow("DNS").unwrap();
    wn.send_datagram(over, b"dropped with its flow").unwrap();
    let events = deliver(&mut wn, &mut pp).unwrap();
    let opened: Vec<StreamId> = events
        .iter()
        .filter_map(|e| match e {
            Event::FlowOpened { stream, .. } => Some(*stream),
            _ => None,
        })
        .collect();
    assert_eq!(opened, [first, second]);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(pp.peer_flows(), 2);
    assert!(!pp.is_live(over));
    let answer = deliver(&mut pp, &mut wn).unwrap();
    let [Event::PeerReset { stream, reason }] = answer.as_slice() else {
        panic!("expected one RESET, got {answer:?}");
    };
    assert_eq!(*stream, over);
    assert!(reason.starts_with(FLOW_LIMIT_REASON), "{reason}");
    assert!(reason.contains("2 flows"), "{reason}");
    // The stream limit is separate: streams still open while flows are full.
    let s = wn.open("WEB").unwrap();
    assert_eq!(s, id(7), "the refused flow used up id 5");
    assert!(matches!(
        deliver(&mut wn, &mut pp).unwrap().as_slice(),
        [Event::Opened { .. }]
    ));
    // A reset flow frees its place.
    wn.reset(first, "idle for 60 s").unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    assert_eq!(pp.peer_flows(), 1);
    let next = wn.open_flow("DNS").unwrap();
    assert!(matches!(
        deliver(&mut wn, &mut pp).unwrap().as_slice(),
        [Event::FlowOpened { stream, .. }] if *stream == next
    ));
}

#[test]
fn an_open_flow_over_the_cap_while_our_answers_wait_unread_ends_the_connection() {
    let (mut pp, _wn) = connected_as(MuxVersion::V2, flow_limit(1));
    let own = pp.open_flow("OWN").unwrap();
    while pp.transmit_backlog() <= MAX_UNREAD_ANSWERS {
        pp.send_datagram(own, &[0; MAX_DATAGRAM]).unwrap();
    }
    let open = |n| Frame::OpenFlow {
        stream: id(n),
        name: "DNS".into(),
    };
    // Within the cap an OPEN_FLOW needs no answer, so the backlog is fine.
    assert_eq!(inject(&mut pp, &open(1)).unwrap().len(), 1);
    let backlog = pp.transmit_backlog();
    assert_eq!(
        inject(&mut pp, &open(3)).unwrap_err(),
        ProtocolError::AnswersUnread {
            frame: "OPEN_FLOW",
            backlog
        }
    );
}

#[test]
fn the_default_flow_limit_is_256_and_flows_of_this_side_do_not_count() {
    assert_eq!(MuxLimits::default().max_peer_flows, DEFAULT_MAX_PEER_FLOWS);
    assert_eq!(DEFAULT_MAX_PEER_FLOWS, 256);
    let (mut pp, mut wn) = connected_as(MuxVersion::V2, flow_limit(1));
    for _ in 0..3 {
        pp.open_flow("OWN").unwrap();
    }
    wn.open_flow("PEER").unwrap();
    deliver(&mut pp, &mut wn).unwrap();
    assert_eq!(deliver(&mut wn, &mut pp).unwrap().len(), 1);
    assert_eq!(pp.peer_flows(), 1);
}

#[test]
fn byte_stream_frames_on_a_flow_are_protocol_errors() {
    let frames = |flow| {
        [
            Frame::Data {
                stream: flow,
                bytes: vec![1],
            },
            Frame::Credit { stream: flow, n: 1 },
            Frame::End { stream: flow },
        ]
    };
    for (index, expected) in ["DATA", "CREDIT", "END"].into_iter().enumerate() {
        let (mut pp, mut wn) = connected_v2();
        let flow = wn.open_flow("DNS").unwrap();
        deliver(&mut wn, &mut pp).unwrap();
        let bad = &frames(flow)[index];
        assert_eq!(
            inject(&mut pp, bad).unwrap_err(),
            ProtocolError::NotAStream {
                frame: expected,
                stream: flow
            }
        );
        // The error sticks: the connection must end.
        assert!(matches!(
            pp.send_datagram(flow, b"x"),
            Err(CommandError::Failed(_))
        ));
    }
}

#[test]
fn a_datagram_on_a_byte_stream_or_an_unopened_id_is_a_protocol_error() {
    let (mut pp, mut wn) = connected_v2();
    let stream = wn.open("WEB").unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    let on = |stream| Frame::Datagram {
        stream,
        bytes: b"x".to_vec(),
    };
    assert_eq!(
        inject(&mut pp, &on(stream)).unwrap_err(),
        ProtocolError::NotAFlow { stream }
    );
    let (mut pp, _wn) = connected_v2();
    assert_eq!(
        inject(&mut pp, &on(id(9))).unwrap_err(),
        ProtocolError::UnknownStream {
            frame: "DATAGRAM",
            stream: id(9)
        }
    );
}

#[test]
fn frames_for_a_finished_flow_are_ignored() {
    let (mut pp, mut wn) = connected_v2();
    let flow = wn.open_flow("DNS").unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    pp.reset(flow, "target unreachable").unwrap();
    assert!(!pp.is_live(flow));
    // Sent before the RESET reached the WN.
    wn.send_datagram(flow, b"late").unwrap();
    assert_eq!(deliver(&mut wn, &mut pp).unwrap(), []);
    assert_eq!(
        deliver(&mut pp, &mut wn).unwrap(),
        [Event::PeerReset {
            stream: flow,
            reason: "target unreachable".into()
        }]
    );
    assert_eq!(
        wn.send_datagram(flow, b"after"),
        Err(CommandError::StreamClosed(flow))
    );
    let late = [
        Frame::Datagram {
            stream: flow,
            bytes: vec![],
        },
        Frame::Reset {
            stream: flow,
            reason: "twice".into(),
        },
        Frame::Data {
            stream: flow,
            bytes: vec![1],
        },
    ];
    for frame in &late {
        assert_eq!(inject(&mut pp, frame).unwrap(), [], "{frame:?}");
    }
    assert_eq!(
        pp.reset(flow, "again"),
        Err(CommandError::StreamClosed(flow))
    );
}

#[test]
fn local_commands_refuse_what_a_flow_cannot_carry() {
    let (mut pp, mut wn) = connected_v2();
    let flow = wn.open_flow("DNS").unwrap();
    let stream = wn.open("WEB").unwrap();
    let before = wn.transmit_backlog();
    assert_eq!(
        wn.send_datagram(flow, &vec![0; MAX_DATAGRAM + 1]),
        Err(CommandError::DatagramTooLarge {
            len: MAX_DATAGRAM + 1
        })
    );
    assert_eq!(
        wn.send_datagram(stream, b"x"),
        Err(CommandError::StreamClosed(stream))
    );
    assert_eq!(wn.send(flow, b"x"), Err(CommandError::StreamClosed(flow)));
    assert_eq!(wn.end(flow), Err(CommandError::StreamClosed(flow)));
    assert_eq!(wn.send_window(flow), None);
    assert_eq!(wn.transmit_backlog(), before, "nothing was queued");
    assert!(matches!(
        wn.open_flow("bad name"),
        Err(CommandError::Invalid(FrameError::BadTunnelName))
    ));
    assert_eq!(deliver(&mut wn, &mut pp).unwrap().len(), 2);
}

#[test]
fn transmit_backlog_counts_queued_bytes_until_they_are_taken() {
    let (_pp, mut wn) = connected_v2();
    assert_eq!(wn.transmit_backlog(), 0);
    let flow = wn.open_flow("DNS").unwrap();
    let after_open = wn.transmit_backlog();
    assert_eq!(after_open, frame::HEADER_LEN + 3);
    wn.send_datagram(flow, &[0; 100]).unwrap();
    assert_eq!(wn.transmit_backlog(), after_open + frame::HEADER_LEN + 100);
    let taken = wn.take_transmit();
    assert_eq!(taken.len(), after_open + frame::HEADER_LEN + 100);
    assert_eq!(wn.transmit_backlog(), 0);
}

#[test]
fn each_side_sends_its_channels_version_in_hello() {
    for version in MuxVersion::NEWEST_FIRST {
        let mut wn = MuxSession::with_limits(Side::Wn, version, MuxLimits::default());
        assert_eq!(wn.version(), version);
        assert_eq!(
            wn.take_transmit(),
            [0, 0, 0, 0, 0, 0, 3, version.number(), 2, 0]
        );
    }
    assert_eq!(MuxSession::new(Side::Wn).version(), MuxVersion::V2);
}

#[test]
fn a_v1_session_has_no_flows_and_treats_flow_frames_as_unknown_types() {
    let (mut pp, mut wn) = connected_as(MuxVersion::V1, MuxLimits::default());
    assert_eq!(wn.open_flow("DNS"), Err(CommandError::NeedsVersion2));
    let stream = wn.open("WEB").unwrap();
    assert_eq!(
        wn.send_datagram(stream, b"x"),
        Err(CommandError::NeedsVersion2)
    );
    // Byte streams work as before.
    assert_eq!(wn.send(stream, b"hi").unwrap(), 2);
    assert_eq!(deliver(&mut wn, &mut pp).unwrap().len(), 2);
    let open_flow = Frame::OpenFlow {
        stream: id(3),
        name: "DNS".into(),
    };
    assert_eq!(
        inject(&mut pp, &open_flow).unwrap_err(),
        ProtocolError::Frame(FrameError::UnknownType(0x09))
    );
    let (mut pp, mut wn) = connected_as(MuxVersion::V1, MuxLimits::default());
    let stream = wn.open("WEB").unwrap();
    deliver(&mut wn, &mut pp).unwrap();
    let on_stream = Frame::Datagram {
        stream,
        bytes: vec![],
    };
    assert_eq!(
        inject(&mut pp, &on_stream).unwrap_err(),
        ProtocolError::Frame(FrameError::UnknownType(0x0a))
    );
}

#[test]
fn a_v2_session_refuses_a_v1_hello_and_the_reverse() {
    for (ours, theirs) in [
        (MuxVersion::V2, MuxVersion::V1),
        (MuxVersion::V1, MuxVersion::V2),
    ] {
        let mut pp =
            MuxSession::with_limits(Side::Pp(Phase::Kubernetes), ours, MuxLimits::default());
        let mut wn = MuxSession::with_limits(Side::Wn, theirs, MuxLimits::default());
        let error = deliver(&mut wn, &mut pp).unwrap_err();
        assert_eq!(
            error,
            ProtocolError::UnsupportedVersion {
                found: theirs.number(),
                channel: ours
            }
        );
        let text = alloc::string::ToString::to_string(&error);
        assert!(text.contains(ours.subsystem()), "{text}");
    }
}

#[test]
fn a_flow_is_reset_by_either_side_and_the_peer_learns_the_reason() {
    let (mut pp, mut wn) = connected_v2();
    let from_pp = pp.open_flow("LOG").unwrap();
    assert_eq!(from_pp.opener(), Role::Pp);
    deliver(&mut pp, &mut wn).unwrap();
    assert_eq!(wn.peer_flows(), 1);
    wn.reset(from_pp, "idle for 60 s").unwrap();
    assert_eq!(wn.peer_flows(), 0);
    assert_eq!(
        deliver(&mut wn, &mut pp).unwrap(),
        [Event::PeerReset {
            stream: from_pp,
            reason: "idle for 60 s".into()
        }]
    );
    assert!(!pp.is_live(from_pp) && !wn.is_live(from_pp));
}

#[test]
fn arbitrary_peer_bytes_on_a_v2_session_never_panic() {
    let (_pp, mut wn) = connected_v2();
    let flow = wn.open_flow("DNS").unwrap();
    wn.send_datagram(flow, b"query").unwrap();
    wn.reset(flow, "done").unwrap();
    let mut seed = wn.take_transmit();
    let mut hello = Vec::new();
    frame::emit(
        &Frame::Hello {
            version: 2,
            side: Side::Wn,
        },
        &mut hello,
    );
    hello.extend_from_slice(&seed);
    seed = hello;
    pp_test_support::feed_mutations(&[&seed], 3000, |input| {
        let mut pp =
            MuxSession::with_limits(Side::Pp(Phase::Kubernetes), MuxVersion::V2, flow_limit(1));
        pp.receive(input);
        while let Ok(Some(event)) = pp.next_event() {
            if let Event::Datagram { stream, bytes } = event {
                let _ = pp.send_datagram(stream, &bytes);
            }
        }
        let _ = drain(&mut pp);
    });
}
