//! The pp-mux frame: one validated representation ([`Frame`]) with one
//! [`parse`] from bytes and one [`emit`] to bytes (docs/protocol.md 2.1, 2.2).
//! [`parse`] knows the frames of every version; which of them a channel
//! accepts (`OPEN_FLOW` and `DATAGRAM` on v2 only) is the session's rule.
//!
//! Contract: [`parse`] never panics, whatever the input. It returns
//! `Ok(None)` when the bytes hold no complete frame yet, and otherwise either
//! a frame that satisfies every rule of the frame table (length limits,
//! stream 0 for control frames and non-zero for stream frames, tunnel-name
//! alphabet, UTF-8 texts, HELLO role/phase pairing) or a [`FrameError`]
//! saying which rule the bytes broke. Rules that need connection state
//! (HELLO first, id parity, windows) belong to `session`.
//! [`emit`] writes exactly the bytes [`parse`] accepts; constructing a frame
//! that breaks the table (e.g. a 70-character name) is the caller's bug and
//! the `check_*` helpers let callers validate before building one.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Bytes before the payload: type (1), stream id (4), length (2).
pub const HEADER_LEN: usize = 7;
/// Largest payload of any frame (`MAX_PAYLOAD`).
pub const MAX_PAYLOAD: usize = 16384;
/// Longest tunnel name in an `OPEN`.
pub const MAX_TUNNEL_NAME_LEN: usize = 64;
/// Longest `RESET` reason, in bytes.
pub const MAX_RESET_REASON_LEN: usize = 256;
/// Largest datagram a `DATAGRAM` frame carries (`MAX_DATAGRAM`): one
/// whole frame payload, so datagrams are never split.
pub const MAX_DATAGRAM: usize = MAX_PAYLOAD;

const TYPE_HELLO: u8 = 0x00;
const TYPE_OPEN: u8 = 0x01;
const TYPE_DATA: u8 = 0x02;
const TYPE_CREDIT: u8 = 0x03;
const TYPE_END: u8 = 0x04;
const TYPE_RESET: u8 = 0x05;
const TYPE_UPGRADE: u8 = 0x06;
const TYPE_INFO_REQUEST: u8 = 0x07;
const TYPE_INFO: u8 = 0x08;
pub(crate) const TYPE_OPEN_FLOW: u8 = 0x09;
pub(crate) const TYPE_DATAGRAM: u8 = 0x0A;

const HOST_KEY_PREFIX: &str = "ssh-ed25519 ";

/// A stream of the mux: never 0 (id 0 is the connection itself).
/// WN-opened streams are odd, PP-opened streams even.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(core::num::NonZeroU32);

impl StreamId {
    /// `None` for 0, which names the connection, not a stream.
    pub fn new(id: u32) -> Option<Self> {
        core::num::NonZeroU32::new(id).map(Self)
    }

    /// The id as sent on the wire.
    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// The side whose ids have this id's parity (odd: WN, even: PP).
    pub fn opener(self) -> Role {
        if self.get().is_multiple_of(2) {
            Role::Pp
        } else {
            Role::Wn
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// Which end of the SSH connection a mux endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The peer pod (the forwarder, SSH server); opens even stream ids.
    Pp,
    /// The worker node (the adaptor, SSH client); opens odd stream ids.
    Wn,
}

/// The PP's phase as stated in its HELLO: the one connection-phase type of
/// the project (`pp_tag::ConnectionPhase`), under the name the wire uses.
pub use pp_tag::ConnectionPhase as Phase;

/// Who an endpoint is, as stated in HELLO: the PP always names its phase,
/// the WN never does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The PP, in this phase.
    Pp(Phase),
    /// The WN.
    Wn,
}

impl Side {
    /// The role this side plays.
    pub fn role(self) -> Role {
        match self {
            Side::Pp(_) => Role::Pp,
            Side::Wn => Role::Wn,
        }
    }
}

/// One validated frame of docs/protocol.md section 2.2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `version` is carried as received; the session rejects anything but
    /// its channel's version.
    Hello {
        /// The protocol version the peer speaks.
        version: u8,
        /// Who the sender is.
        side: Side,
    },
    /// Open a stream to the tunnel `name`.
    Open {
        /// The stream.
        stream: StreamId,
        /// The tunnel name.
        name: String,
    },
    /// `bytes` holds 1..=`MAX_PAYLOAD` bytes.
    Data {
        /// The stream.
        stream: StreamId,
        /// The payload.
        bytes: Vec<u8>,
    },
    /// Grant `n` more bytes of window on `stream`.
    Credit {
        /// The stream.
        stream: StreamId,
        /// Bytes of window granted.
        n: u32,
    },
    /// No more data from the sender on `stream` (half-close).
    End {
        /// The stream.
        stream: StreamId,
    },
    /// Abort `stream`.
    Reset {
        /// The stream.
        stream: StreamId,
        /// Why, as text.
        reason: String,
    },
    /// The PP's Kubernetes-phase host key (PP to WN).
    Upgrade {
        /// The PP host key as an `authorized_keys` line.
        host_key_line: String,
    },
    /// Ask the PP for INFO (WN to PP).
    InfoRequest,
    /// The PP's answer to INFO_REQUEST.
    Info {
        /// The `key=value` lines.
        text: String,
    },
    /// Open a datagram flow to the tunnel `name` (v2).
    OpenFlow {
        /// The flow's id (from the same sequence as streams).
        stream: StreamId,
        /// The tunnel name.
        name: String,
    },
    /// One whole datagram on a flow, 0..=`MAX_DATAGRAM` bytes (v2).
    Datagram {
        /// The flow.
        stream: StreamId,
        /// The datagram.
        bytes: Vec<u8>,
    },
}

/// Why bytes are not a valid frame. Every variant is a protocol error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A frame type this version does not know.
    UnknownType(u8),
    /// A payload longer than the protocol allows.
    PayloadTooLong {
        /// The length found.
        len: usize,
    },
    /// A control frame on a stream id, or a stream frame on id 0.
    WrongStream {
        /// The frame type.
        frame: &'static str,
        /// The stream.
        stream: u32,
    },
    /// The payload length does not fit the frame type.
    BadLength {
        /// The frame type.
        frame: &'static str,
        /// The length found.
        len: usize,
    },
    /// The role byte is neither PP nor WN.
    BadHelloRole(u8),
    /// The phase byte does not match the role (PP: 1 or 2, WN: 0).
    BadHelloPhase {
        /// The role the HELLO names.
        role: Role,
        /// The phase byte found.
        phase: u8,
    },
    /// The tunnel name is not `[A-Za-z0-9_-]{1,64}`.
    BadTunnelName,
    /// A text payload that is not UTF-8.
    NotUtf8 {
        /// The frame type.
        frame: &'static str,
    },
    /// The UPGRADE payload is not an Ed25519 `authorized_keys` line.
    BadHostKeyLine,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::UnknownType(t) => write!(f, "unknown mux frame type 0x{t:02x}"),
            FrameError::PayloadTooLong { len } => {
                write!(f, "mux frame payload of {len} bytes exceeds {MAX_PAYLOAD}")
            }
            FrameError::WrongStream { frame, stream } => write!(
                f,
                "{frame} frame on stream id {stream}: control frames use id 0, stream frames a non-zero id"
            ),
            FrameError::BadLength { frame, len } => {
                write!(
                    f,
                    "{frame} frame has a payload of {len} bytes, which its type does not allow"
                )
            }
            FrameError::BadHelloRole(r) => {
                write!(f, "HELLO names role {r}; expected 1 (PP) or 2 (WN)")
            }
            FrameError::BadHelloPhase { role, phase } => write!(
                f,
                "HELLO from {role:?} names phase {phase}; a PP sends 1 or 2, a WN sends 0"
            ),
            FrameError::BadTunnelName => write!(
                f,
                "OPEN or OPEN_FLOW names a tunnel outside [A-Za-z0-9_-]{{1,{MAX_TUNNEL_NAME_LEN}}}"
            ),
            FrameError::NotUtf8 { frame } => write!(f, "{frame} frame text is not UTF-8"),
            FrameError::BadHostKeyLine => write!(
                f,
                "UPGRADE key is not an `ssh-ed25519 <base64>` line without comment"
            ),
        }
    }
}

impl core::error::Error for FrameError {}

/// Whether `name` may name a tunnel: ASCII `[A-Za-z0-9_-]{1,64}`.
pub fn check_tunnel_name(name: &str) -> Result<(), FrameError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if (1..=MAX_TUNNEL_NAME_LEN).contains(&name.len()) && name.bytes().all(allowed) {
        Ok(())
    } else {
        Err(FrameError::BadTunnelName)
    }
}

/// Whether `line` has the form UPGRADE carries: `ssh-ed25519 ` followed by
/// one non-empty base64 word and nothing else. The key itself is checked by
/// whoever acts on the upgrade.
pub fn check_host_key_line(line: &str) -> Result<(), FrameError> {
    let is_base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
    match line.strip_prefix(HOST_KEY_PREFIX) {
        Some(key) if !key.is_empty() && key.bytes().all(is_base64) => Ok(()),
        _ => Err(FrameError::BadHostKeyLine),
    }
}

/// Shortens `reason` to at most `MAX_RESET_REASON_LEN` bytes on a character
/// boundary, so any text can become a RESET reason.
pub fn truncate_reset_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_RESET_REASON_LEN);
    while !reason.is_char_boundary(end) {
        // Offset 0 is always a boundary, so this stops there at the latest.
        end = end.saturating_sub(1);
    }
    reason.get(..end).unwrap_or_default()
}

/// Parses the first frame in `input`: `Ok(Some((frame, bytes consumed)))`,
/// `Ok(None)` when more bytes are needed, or why the bytes are invalid.
pub fn parse(input: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some((header, rest)) = input.split_first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let [frame_type, s0, s1, s2, s3, l0, l1] = *header;
    let stream = u32::from_be_bytes([s0, s1, s2, s3]);
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    if len > MAX_PAYLOAD {
        return Err(FrameError::PayloadTooLong { len });
    }
    if frame_type > TYPE_DATAGRAM {
        return Err(FrameError::UnknownType(frame_type));
    }
    let Some(payload) = rest.get(..len) else {
        return Ok(None);
    };
    let frame = decode(frame_type, stream, payload)?;
    Ok(Some((frame, HEADER_LEN + len)))
}

fn decode(frame_type: u8, stream: u32, payload: &[u8]) -> Result<Frame, FrameError> {
    let name = frame_name(frame_type);
    let bad_length = || FrameError::BadLength {
        frame: name,
        len: payload.len(),
    };
    if is_control(frame_type) {
        if stream != 0 {
            return Err(FrameError::WrongStream {
                frame: name,
                stream,
            });
        }
        return decode_control(frame_type, payload);
    }
    let stream = StreamId::new(stream).ok_or(FrameError::WrongStream {
        frame: name,
        stream,
    })?;
    match frame_type {
        TYPE_OPEN | TYPE_OPEN_FLOW => {
            let name = utf8(payload, name)?;
            check_tunnel_name(&name)?;
            Ok(if frame_type == TYPE_OPEN {
                Frame::Open { stream, name }
            } else {
                Frame::OpenFlow { stream, name }
            })
        }
        TYPE_DATAGRAM => Ok(Frame::Datagram {
            stream,
            bytes: payload.to_vec(),
        }),
        TYPE_DATA if payload.is_empty() => Err(bad_length()),
        TYPE_DATA => Ok(Frame::Data {
            stream,
            bytes: payload.to_vec(),
        }),
        TYPE_CREDIT => {
            let n = <[u8; 4]>::try_from(payload).map_err(|_| bad_length())?;
            Ok(Frame::Credit {
                stream,
                n: u32::from_be_bytes(n),
            })
        }
        TYPE_END if payload.is_empty() => Ok(Frame::End { stream }),
        TYPE_END => Err(bad_length()),
        TYPE_RESET if payload.len() > MAX_RESET_REASON_LEN => Err(bad_length()),
        _ => Ok(Frame::Reset {
            stream,
            reason: utf8(payload, name)?,
        }),
    }
}

/// HELLO, UPGRADE, INFO_REQUEST and INFO use stream id 0; every other
/// type names a stream or flow.
fn is_control(frame_type: u8) -> bool {
    matches!(
        frame_type,
        TYPE_HELLO | TYPE_UPGRADE | TYPE_INFO_REQUEST | TYPE_INFO
    )
}

fn decode_control(frame_type: u8, payload: &[u8]) -> Result<Frame, FrameError> {
    let name = frame_name(frame_type);
    match frame_type {
        TYPE_HELLO => {
            let [version, role, phase] =
                <[u8; 3]>::try_from(payload).map_err(|_| FrameError::BadLength {
                    frame: name,
                    len: payload.len(),
                })?;
            Ok(Frame::Hello {
                version,
                side: decode_side(role, phase)?,
            })
        }
        TYPE_UPGRADE => {
            let host_key_line = utf8(payload, name)?;
            check_host_key_line(&host_key_line)?;
            Ok(Frame::Upgrade { host_key_line })
        }
        TYPE_INFO_REQUEST if payload.is_empty() => Ok(Frame::InfoRequest),
        TYPE_INFO_REQUEST => Err(FrameError::BadLength {
            frame: name,
            len: payload.len(),
        }),
        _ => Ok(Frame::Info {
            text: utf8(payload, name)?,
        }),
    }
}

fn decode_side(role: u8, phase: u8) -> Result<Side, FrameError> {
    match (role, phase) {
        (1, 1) => Ok(Side::Pp(Phase::Attestation)),
        (1, 2) => Ok(Side::Pp(Phase::Kubernetes)),
        (1, _) => Err(FrameError::BadHelloPhase {
            role: Role::Pp,
            phase,
        }),
        (2, 0) => Ok(Side::Wn),
        (2, _) => Err(FrameError::BadHelloPhase {
            role: Role::Wn,
            phase,
        }),
        _ => Err(FrameError::BadHelloRole(role)),
    }
}

fn utf8(payload: &[u8], frame: &'static str) -> Result<String, FrameError> {
    core::str::from_utf8(payload)
        .map(String::from)
        .map_err(|_| FrameError::NotUtf8 { frame })
}

fn frame_name(frame_type: u8) -> &'static str {
    match frame_type {
        TYPE_HELLO => "HELLO",
        TYPE_OPEN => "OPEN",
        TYPE_DATA => "DATA",
        TYPE_CREDIT => "CREDIT",
        TYPE_END => "END",
        TYPE_RESET => "RESET",
        TYPE_UPGRADE => "UPGRADE",
        TYPE_INFO_REQUEST => "INFO_REQUEST",
        TYPE_INFO => "INFO",
        TYPE_OPEN_FLOW => "OPEN_FLOW",
        _ => "DATAGRAM",
    }
}

/// Appends the wire form of `frame` to `out`.
///
/// The frame must satisfy the table (see the module contract); a payload
/// longer than `MAX_PAYLOAD` is cut to `MAX_PAYLOAD` bytes rather than
/// producing a frame no peer accepts.
pub fn emit(frame: &Frame, out: &mut Vec<u8>) {
    let (frame_type, stream, payload): (u8, u32, &[u8]) = match frame {
        Frame::Hello { version, side } => {
            let (role, phase) = match side {
                Side::Pp(Phase::Attestation) => (1, 1),
                Side::Pp(Phase::Kubernetes) => (1, 2),
                Side::Wn => (2, 0),
            };
            return push(out, TYPE_HELLO, 0, &[*version, role, phase]);
        }
        Frame::Open { stream, name } => (TYPE_OPEN, stream.get(), name.as_bytes()),
        Frame::Data { stream, bytes } => (TYPE_DATA, stream.get(), bytes),
        Frame::Credit { stream, n } => {
            return push(out, TYPE_CREDIT, stream.get(), &n.to_be_bytes());
        }
        Frame::End { stream } => (TYPE_END, stream.get(), &[]),
        Frame::Reset { stream, reason } => (TYPE_RESET, stream.get(), reason.as_bytes()),
        Frame::Upgrade { host_key_line } => (TYPE_UPGRADE, 0, host_key_line.as_bytes()),
        Frame::InfoRequest => (TYPE_INFO_REQUEST, 0, &[]),
        Frame::Info { text } => (TYPE_INFO, 0, text.as_bytes()),
        Frame::OpenFlow { stream, name } => (TYPE_OPEN_FLOW, stream.get(), name.as_bytes()),
        Frame::Datagram { stream, bytes } => (TYPE_DATAGRAM, stream.get(), bytes),
    };
    push(out, frame_type, stream, payload);
}

/// Appends one DATA frame for `bytes` (at most `MAX_PAYLOAD` are taken)
/// without first copying them into a [`Frame`].
pub fn emit_data(stream: StreamId, bytes: &[u8], out: &mut Vec<u8>) {
    push(out, TYPE_DATA, stream.get(), bytes);
}

/// Appends one DATAGRAM frame for `datagram` (at most `MAX_DATAGRAM`
/// bytes are taken) without first copying it into a [`Frame`].
pub fn emit_datagram(flow: StreamId, datagram: &[u8], out: &mut Vec<u8>) {
    push(out, TYPE_DATAGRAM, flow.get(), datagram);
}

fn push(out: &mut Vec<u8>, frame_type: u8, stream: u32, payload: &[u8]) {
    let payload = payload.get(..MAX_PAYLOAD).unwrap_or(payload);
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    out.push(frame_type);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn id(n: u32) -> StreamId {
        StreamId::new(n).unwrap()
    }

    fn round_trip(frame: Frame) {
        let mut wire = Vec::new();
        emit(&frame, &mut wire);
        assert_eq!(parse(&wire), Ok(Some((frame, wire.len()))));
    }

    #[test]
    fn every_frame_type_survives_emit_then_parse() {
        round_trip(Frame::Hello {
            version: 1,
            side: Side::Pp(Phase::Attestation),
        });
        round_trip(Frame::Hello {
            version: 1,
            side: Side::Pp(Phase::Kubernetes),
        });
        round_trip(Frame::Hello {
            version: 1,
            side: Side::Wn,
        });
        round_trip(Frame::Open {
            stream: id(3),
            name: "KATA_AGENT-2".into(),
        });
        round_trip(Frame::Data {
            stream: id(2),
            bytes: vec![7; MAX_PAYLOAD],
        });
        round_trip(Frame::Credit {
            stream: id(5),
            n: 32768,
        });
        round_trip(Frame::End { stream: id(4) });
        round_trip(Frame::Reset {
            stream: id(1),
            reason: "connection refused: ü".into(),
        });
        round_trip(Frame::Upgrade {
            host_key_line: "ssh-ed25519 AAAAC3Nz+/=".into(),
        });
        round_trip(Frame::InfoRequest);
        round_trip(Frame::Info {
            text: "phase=kubernetes\nattestation-peer=10.0.0.1:5".into(),
        });
        round_trip(Frame::OpenFlow {
            stream: id(7),
            name: "DNS".into(),
        });
        for len in [0, 1, MAX_DATAGRAM] {
            round_trip(Frame::Datagram {
                stream: id(8),
                bytes: vec![0xa5; len],
            });
        }
    }

    #[test]
    fn flow_frames_have_the_documented_wire_bytes() {
        let mut wire = Vec::new();
        emit(
            &Frame::OpenFlow {
                stream: id(3),
                name: "DNS".into(),
            },
            &mut wire,
        );
        emit_datagram(id(3), &[], &mut wire);
        emit_datagram(id(3), b"q", &mut wire);
        assert_eq!(
            wire,
            [
                0x09, 0, 0, 0, 3, 0, 3, b'D', b'N', b'S', //
                0x0a, 0, 0, 0, 3, 0, 0, //
                0x0a, 0, 0, 0, 3, 0, 1, b'q'
            ]
        );
    }

    #[test]
    fn flow_frames_need_a_flow_id_and_open_flow_a_tunnel_name() {
        assert!(matches!(
            parse(&[TYPE_DATAGRAM, 0, 0, 0, 0, 0, 0]),
            Err(FrameError::WrongStream { stream: 0, .. })
        ));
        assert!(matches!(
            parse(&[TYPE_OPEN_FLOW, 0, 0, 0, 0, 0, 1, b'a']),
            Err(FrameError::WrongStream { stream: 0, .. })
        ));
        assert_eq!(
            parse(&[TYPE_OPEN_FLOW, 0, 0, 0, 1, 0, 0]),
            Err(FrameError::BadTunnelName)
        );
        assert_eq!(
            parse(&[TYPE_OPEN_FLOW, 0, 0, 0, 1, 0, 2, b'a', b'.']),
            Err(FrameError::BadTunnelName)
        );
    }

    #[test]
    fn hello_has_the_documented_wire_bytes() {
        let mut wire = Vec::new();
        emit(
            &Frame::Hello {
                version: 1,
                side: Side::Pp(Phase::Kubernetes),
            },
            &mut wire,
        );
        assert_eq!(wire, [0, 0, 0, 0, 0, 0, 3, 1, 1, 2]);
    }

    #[test]
    fn incomplete_frames_ask_for_more_bytes() {
        let mut wire = Vec::new();
        emit(
            &Frame::Open {
                stream: id(1),
                name: "KBS".into(),
            },
            &mut wire,
        );
        for cut in 0..wire.len() {
            assert_eq!(parse(&wire[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn parse_consumes_only_the_first_of_two_frames() {
        let mut wire = Vec::new();
        emit(&Frame::End { stream: id(1) }, &mut wire);
        emit(&Frame::InfoRequest, &mut wire);
        assert_eq!(
            parse(&wire),
            Ok(Some((Frame::End { stream: id(1) }, HEADER_LEN)))
        );
    }

    #[test]
    fn oversized_length_is_rejected_before_the_payload_arrives() {
        assert_eq!(
            parse(&[TYPE_DATA, 0, 0, 0, 1, 0x40, 0x01]),
            Err(FrameError::PayloadTooLong { len: 16385 })
        );
    }

    #[test]
    fn unknown_types_are_rejected() {
        for frame_type in [0x0b, 0x7f, 0xff] {
            assert_eq!(
                parse(&[frame_type, 0, 0, 0, 0, 0, 0]),
                Err(FrameError::UnknownType(frame_type))
            );
        }
    }

    #[test]
    fn control_frames_must_use_stream_zero_and_stream_frames_must_not() {
        assert!(matches!(
            parse(&[TYPE_INFO_REQUEST, 0, 0, 0, 1, 0, 0]),
            Err(FrameError::WrongStream { stream: 1, .. })
        ));
        assert!(matches!(
            parse(&[TYPE_END, 0, 0, 0, 0, 0, 0]),
            Err(FrameError::WrongStream { stream: 0, .. })
        ));
    }

    #[test]
    fn payload_lengths_that_do_not_fit_the_type_are_rejected() {
        let bad = [
            vec![TYPE_DATA, 0, 0, 0, 1, 0, 0],
            vec![TYPE_CREDIT, 0, 0, 0, 1, 0, 3, 0, 0, 1],
            vec![TYPE_END, 0, 0, 0, 1, 0, 1, 0],
            vec![TYPE_HELLO, 0, 0, 0, 0, 0, 2, 1, 2],
            vec![TYPE_INFO_REQUEST, 0, 0, 0, 0, 0, 1, 0],
        ];
        for wire in bad {
            assert!(
                matches!(parse(&wire), Err(FrameError::BadLength { .. })),
                "{wire:?}"
            );
        }
        let mut long_reset = vec![TYPE_RESET, 0, 0, 0, 1, 1, 1];
        long_reset.extend_from_slice(&[b'x'; 257]);
        assert!(matches!(
            parse(&long_reset),
            Err(FrameError::BadLength { len: 257, .. })
        ));
    }

    #[test]
    fn hello_role_and_phase_must_pair_up() {
        let hello = |role, phase| parse(&[TYPE_HELLO, 0, 0, 0, 0, 0, 3, 1, role, phase]);
        assert_eq!(hello(3, 0), Err(FrameError::BadHelloRole(3)));
        assert_eq!(
            hello(1, 0),
            Err(FrameError::BadHelloPhase {
                role: Role::Pp,
                phase: 0
            })
        );
        assert_eq!(
            hello(2, 1),
            Err(FrameError::BadHelloPhase {
                role: Role::Wn,
                phase: 1
            })
        );
    }

    #[test]
    fn tunnel_names_outside_the_alphabet_are_rejected() {
        for name in ["", "a b", "KBS/1", "é", &"x".repeat(65)] {
            let mut wire = vec![TYPE_OPEN, 0, 0, 0, 1, 0, name.len() as u8];
            wire.extend_from_slice(name.as_bytes());
            assert_eq!(parse(&wire), Err(FrameError::BadTunnelName), "{name:?}");
        }
        assert_eq!(check_tunnel_name(&"x".repeat(64)), Ok(()));
    }

    #[test]
    fn texts_must_be_utf8() {
        assert_eq!(
            parse(&[TYPE_INFO, 0, 0, 0, 0, 0, 1, 0xff]),
            Err(FrameError::NotUtf8 { frame: "INFO" })
        );
        assert_eq!(
            parse(&[TYPE_RESET, 0, 0, 0, 2, 0, 1, 0xc3]),
            Err(FrameError::NotUtf8 { frame: "RESET" })
        );
    }

    #[test]
    fn upgrade_requires_a_bare_ed25519_key_line() {
        for line in [
            "ssh-rsa AAAA",
            "ssh-ed25519 ",
            "ssh-ed25519 AAAA comment",
            "ssh-ed25519 AA\n",
        ] {
            assert_eq!(
                check_host_key_line(line),
                Err(FrameError::BadHostKeyLine),
                "{line:?}"
            );
        }
    }

    #[test]
    fn reset_reasons_are_cut_on_a_character_boundary() {
        let reason = "é".repeat(200);
        let cut = truncate_reset_reason(&reason);
        assert_eq!(cut.len(), 256);
        assert_eq!(truncate_reset_reason("short"), "short");
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let bytes = seed.to_le_bytes();
            let len = usize::from(bytes[0] % 12);
            let mut input = vec![bytes[1] % 12, 0, 0, 0, bytes[2] % 3, 0, bytes[3] % 5];
            input.extend_from_slice(&bytes[..len.min(8)]);
            let _ = parse(&input);
        }
    }
}
