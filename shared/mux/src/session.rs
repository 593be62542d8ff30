//! [`MuxSession`]: one side of a pp-mux channel (`pp-mux-v1` or
//! `pp-mux-v2`) as a state machine with no IO (docs/protocol.md section
//! 2.3). Byte streams live here; datagram flows (v2) in the `flows`
//! submodule.
//!
//! Contract: the driver hands received bytes to [`MuxSession::receive`] and
//! pulls [`Event`]s with [`MuxSession::next_event`]; local commands (open,
//! send, end, reset, consumed, control frames) queue frames that the driver
//! writes out after [`MuxSession::take_transmit`]. The session enforces every
//! rule of section 2.3 on what the peer sends; the first violation is a
//! [`ProtocolError`] that the session keeps returning, and the driver must
//! end the connection. Mistakes in local commands are [`CommandError`]s and
//! never put anything on the wire. Nothing here panics on peer input.

mod flows;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::frame::{self, Frame, FrameError, MAX_PAYLOAD, Role, Side, StreamId};
use super::version::MuxVersion;

pub use flows::{
    DEFAULT_MAX_PEER_FLOWS, FLOW_LIMIT_REASON, FLOW_QUEUE_BYTES, FLOW_QUEUE_DATAGRAMS,
    FLOWS_HELD_BYTES,
};

/// Bytes each direction of a new stream may carry before the first CREDIT.
pub const INITIAL_WINDOW: u32 = 65536;
/// The largest window a CREDIT may produce.
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// Streams the peer may have open at once unless [`MuxLimits`] says otherwise.
pub const DEFAULT_MAX_PEER_STREAMS: usize = 256;
/// Receive window a new stream gets unless [`MuxLimits`] says otherwise
/// (64 KiB stalls a fast sender on every round trip of CREDIT).
pub const DEFAULT_STREAM_WINDOW: u32 = 1 << 20;
/// Total receive window of the streams that got more than
/// [`INITIAL_WINDOW`], unless [`MuxLimits`] says otherwise.
pub const DEFAULT_WINDOW_BUDGET: u32 = 4 << 20;
/// Our frames not yet taken for the wire, above which a peer's frame that
/// asks for an answer (an `OPEN` to refuse, an `INFO_REQUEST`) is a protocol
/// error: the peer keeps asking without reading the answers.
pub const MAX_UNREAD_ANSWERS: usize = 1 << 20;
/// The `RESET` reason of an `OPEN` over the limit starts with this.
pub const STREAM_LIMIT_REASON: &str = "stream limit:";

/// Bounds a session enforces on what the peer may make it hold
/// (docs/protocol.md 2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MuxLimits {
    /// Flows opened by the peer that may be live at once (counted apart
    /// from streams); an `OPEN_FLOW` over it is refused with `RESET` and
    /// never becomes an [`Event::FlowOpened`].
    pub max_peer_flows: usize,
    /// Streams opened by the peer that may be live at once; an `OPEN` over
    /// it is refused with `RESET` and never becomes an [`Event::Opened`].
    pub max_peer_streams: usize,
    /// Receive window this side gives each new stream, whoever opened it:
    /// [`INITIAL_WINDOW`] plus a CREDIT for the rest sent right after the
    /// `OPEN` (capped at [`MAX_WINDOW`]; at most `INITIAL_WINDOW` sends none).
    pub stream_window: u32,
    /// Bytes of receive window, summed over the live streams that got more
    /// than [`INITIAL_WINDOW`], above which a new stream gets only
    /// `INITIAL_WINDOW`: what the peer can make this side buffer stays
    /// within this plus `INITIAL_WINDOW` per other stream.
    pub window_budget: u32,
}

impl Default for MuxLimits {
    fn default() -> Self {
        MuxLimits {
            max_peer_flows: DEFAULT_MAX_PEER_FLOWS,
            max_peer_streams: DEFAULT_MAX_PEER_STREAMS,
            stream_window: DEFAULT_STREAM_WINDOW,
            window_budget: DEFAULT_WINDOW_BUDGET,
        }
    }
}

/// What the peer did, in the order it did it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer's HELLO (the channel's version, opposite role).
    Hello {
        /// Who the sender is.
        side: Side,
    },
    /// The peer opened `stream` towards the local target `name`. Answer
    /// with [`MuxSession::reset`] to refuse it.
    Opened {
        /// The stream.
        stream: StreamId,
        /// The tunnel name.
        name: String,
    },
    /// Stream data; report it with [`MuxSession::consumed`] once delivered.
    Data {
        /// The stream.
        stream: StreamId,
        /// The payload.
        bytes: Vec<u8>,
    },
    /// The peer granted `n` more bytes on `stream`: sending may resume.
    Credited {
        /// The stream.
        stream: StreamId,
        /// Bytes of window granted.
        n: u32,
    },
    /// The peer will send no more data on `stream` (half-close).
    PeerEnded {
        /// The stream.
        stream: StreamId,
    },
    /// The peer aborted `stream` (a byte stream or a flow); it is finished.
    PeerReset {
        /// The stream.
        stream: StreamId,
        /// Why, as text.
        reason: String,
    },
    /// The PP's Kubernetes-phase host key (received by the WN only).
    Upgrade {
        /// The PP host key as an `authorized_keys` line.
        host_key_line: String,
    },
    /// The WN asks for INFO (received by the PP only).
    InfoRequest,
    /// The PP's `key=value` lines (received by the WN only).
    Info {
        /// The `key=value` lines.
        text: String,
    },
    /// The peer opened the datagram flow `stream` towards the local target
    /// `name` (v2). Answer with [`MuxSession::reset`] to refuse it.
    FlowOpened {
        /// The flow.
        stream: StreamId,
        /// The tunnel name.
        name: String,
    },
    /// One whole datagram on a flow (v2).
    Datagram {
        /// The flow.
        stream: StreamId,
        /// The datagram (0..=`MAX_DATAGRAM` bytes).
        bytes: Vec<u8>,
    },
}

/// The peer broke the protocol; the connection must end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// The bytes are not a valid frame.
    Frame(FrameError),
    /// The first frame was not HELLO.
    HelloMissing,
    /// A HELLO after the first frame.
    HelloRepeated,
    /// A HELLO whose version is not the channel's.
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The channel's version.
        channel: MuxVersion,
    },
    /// The peer claims our own role.
    SameRole(Role),
    /// A control frame the receiver's role never receives.
    UnexpectedControl {
        /// The frame type.
        frame: &'static str,
        /// The role that received it.
        receiver: Role,
    },
    /// OPEN or OPEN_FLOW with an id of our parity, reused, or not the next
    /// in sequence.
    BadOpenId {
        /// The stream.
        stream: StreamId,
        /// The id expected next.
        expected: u32,
    },
    /// A stream frame for an id the peer never opened.
    UnknownStream {
        /// The frame type.
        frame: &'static str,
        /// The stream.
        stream: StreamId,
    },
    /// DATA beyond the window granted to the peer.
    WindowOverrun {
        /// The stream.
        stream: StreamId,
        /// The length found.
        len: usize,
        /// The window left.
        window: u32,
    },
    /// CREDIT taking the window above 2^31 - 1.
    WindowTooLarge {
        /// The stream.
        stream: StreamId,
    },
    /// DATA or END after the peer's END on the same stream.
    AfterEnd {
        /// The frame type.
        frame: &'static str,
        /// The stream.
        stream: StreamId,
    },
    /// DATA, CREDIT or END on a datagram flow.
    NotAStream {
        /// The frame type.
        frame: &'static str,
        /// The flow.
        stream: StreamId,
    },
    /// DATAGRAM on a byte stream.
    NotAFlow {
        /// The stream.
        stream: StreamId,
    },
    /// A frame asking for an answer while more than [`MAX_UNREAD_ANSWERS`]
    /// bytes of ours wait for the peer to read them.
    AnswersUnread {
        /// The frame type.
        frame: &'static str,
        /// Bytes of ours the peer has not read.
        backlog: usize,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Frame(e) => write!(f, "malformed frame: {e}"),
            ProtocolError::HelloMissing => write!(f, "peer sent another frame before HELLO"),
            ProtocolError::HelloRepeated => write!(f, "peer sent HELLO twice"),
            ProtocolError::UnsupportedVersion { found, channel } => write!(
                f,
                "peer's HELLO names pp-mux version {found} on a {channel} channel, \
                 which needs version {}",
                channel.number()
            ),
            ProtocolError::SameRole(r) => {
                write!(
                    f,
                    "peer's HELLO claims role {r:?}, which is this side's role"
                )
            }
            ProtocolError::UnexpectedControl { frame, receiver } => {
                write!(f, "peer sent {frame}, which a {receiver:?} never receives")
            }
            ProtocolError::BadOpenId { stream, expected } => write!(
                f,
                "peer opened stream {stream}; the next id it may open is {expected}"
            ),
            ProtocolError::UnknownStream { frame, stream } => {
                write!(
                    f,
                    "peer sent {frame} for stream {stream}, which was never opened"
                )
            }
            ProtocolError::WindowOverrun {
                stream,
                len,
                window,
            } => write!(
                f,
                "peer sent {len} bytes on stream {stream} with only {window} bytes of window left"
            ),
            ProtocolError::WindowTooLarge { stream } => {
                write!(
                    f,
                    "peer's CREDIT on stream {stream} raises the window above 2^31-1"
                )
            }
            ProtocolError::AfterEnd { frame, stream } => {
                write!(f, "peer sent {frame} on stream {stream} after its END")
            }
            ProtocolError::NotAStream { frame, stream } => write!(
                f,
                "peer sent {frame} on {stream}, which is a datagram flow, not a byte stream"
            ),
            ProtocolError::NotAFlow { stream } => write!(
                f,
                "peer sent DATAGRAM on {stream}, which is a byte stream, not a datagram flow"
            ),
            ProtocolError::AnswersUnread { frame, backlog } => write!(
                f,
                "peer sent {frame} while {backlog} bytes of answers wait for it to read \
                 (limit {MAX_UNREAD_ANSWERS})"
            ),
        }
    }
}

impl core::error::Error for ProtocolError {}

impl From<FrameError> for ProtocolError {
    fn from(e: FrameError) -> Self {
        ProtocolError::Frame(e)
    }
}

/// A local command that cannot be carried out; nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// The stream is finished, was never opened, or this side already ended it.
    StreamClosed(StreamId),
    /// More bytes reported consumed than were delivered.
    OverConsumed(StreamId),
    /// Frame content outside the table (bad tunnel name, bad key line).
    Invalid(FrameError),
    /// The frame is sent only by the other role.
    WrongRole {
        /// The frame type.
        frame: &'static str,
    },
    /// All 2^31 ids of this side's parity were used.
    IdsExhausted,
    /// The session already failed with a protocol error.
    Failed(ProtocolError),
    /// A datagram longer than `MAX_DATAGRAM`; nothing was sent.
    DatagramTooLarge {
        /// The datagram's length.
        len: usize,
    },
    /// Flows exist only on a `pp-mux-v2` channel.
    NeedsVersion2,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::StreamClosed(s) => write!(f, "stream {s} is not open for this operation"),
            CommandError::OverConsumed(s) => {
                write!(f, "more bytes consumed on stream {s} than were delivered")
            }
            CommandError::Invalid(e) => write!(f, "invalid frame content: {e}"),
            CommandError::WrongRole { frame } => write!(f, "this side's role never sends {frame}"),
            CommandError::IdsExhausted => write!(f, "no stream ids left on this channel"),
            CommandError::Failed(e) => write!(f, "mux session failed earlier: {e}"),
            CommandError::DatagramTooLarge { len } => write!(
                f,
                "datagram of {len} bytes exceeds the {} a flow carries",
                frame::MAX_DATAGRAM
            ),
            CommandError::NeedsVersion2 => write!(
                f,
                "datagram flows need a pp-mux-v2 channel; the peer speaks only pp-mux-v1"
            ),
        }
    }
}

impl core::error::Error for CommandError {}

/// Accounting for one live stream.
#[derive(Debug)]
struct Stream {
    /// Bytes this side may still send.
    send_window: u32,
    /// Bytes the peer may still send.
    receive_window: u32,
    /// Delivered as events and not yet reported consumed.
    unconsumed: u32,
    /// Consumed but not yet returned to the peer as CREDIT.
    uncredited: u32,
    /// The receive window this side granted in all (counts against
    /// [`MuxLimits::window_budget`] when above [`INITIAL_WINDOW`]).
    granted_window: u32,
    local_ended: bool,
    peer_ended: bool,
}

impl Stream {
    fn new() -> Self {
        Stream {
            send_window: INITIAL_WINDOW,
            receive_window: INITIAL_WINDOW,
            granted_window: INITIAL_WINDOW,
            unconsumed: 0,
            uncredited: 0,
            local_ended: false,
            peer_ended: false,
        }
    }
}

/// One side of a mux channel. See the module documentation.
#[derive(Debug)]
pub struct MuxSession {
    side: Side,
    version: MuxVersion,
    peer_hello_seen: bool,
    received: Vec<u8>,
    received_start: usize,
    transmit: Vec<u8>,
    streams: BTreeMap<StreamId, Stream>,
    /// Live streams in `streams` that the peer opened.
    peer_streams: usize,
    /// Live datagram flows (v2); ids never in `streams`.
    flows: BTreeSet<StreamId>,
    /// Live flows in `flows` that the peer opened.
    peer_flows: usize,
    limits: MuxLimits,
    /// Sum of `granted_window` over live streams granted more than
    /// [`INITIAL_WINDOW`].
    window_budget_used: u32,
    /// The id this side opens next (0 once exhausted).
    next_local_id: u32,
    /// The id the peer must open next (0 once exhausted).
    next_peer_id: u32,
    failed: Option<ProtocolError>,
}

impl MuxSession {
    /// A `pp-mux-v2` session for `side` with the default [`MuxLimits`];
    /// our HELLO is already queued for transmission.
    pub fn new(side: Side) -> Self {
        Self::with_limits(side, MuxVersion::V2, MuxLimits::default())
    }

    /// A session for `side` on a channel of `version` that enforces
    /// `limits` on the peer.
    pub fn with_limits(side: Side, version: MuxVersion, limits: MuxLimits) -> Self {
        let (next_local_id, next_peer_id) = match side.role() {
            Role::Pp => (2, 1),
            Role::Wn => (1, 2),
        };
        let mut session = MuxSession {
            side,
            version,
            peer_hello_seen: false,
            received: Vec::new(),
            received_start: 0,
            transmit: Vec::new(),
            streams: BTreeMap::new(),
            peer_streams: 0,
            flows: BTreeSet::new(),
            peer_flows: 0,
            limits,
            window_budget_used: 0,
            next_local_id,
            next_peer_id,
            failed: None,
        };
        session.queue(&Frame::Hello {
            version: version.number(),
            side,
        });
        session
    }

    /// This side, as its HELLO says.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The channel's protocol version.
    pub fn version(&self) -> MuxVersion {
        self.version
    }

    /// Appends bytes read from the channel; collect the results with
    /// [`MuxSession::next_event`].
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.received_start > 0 {
            self.received.drain(..self.received_start);
            self.received_start = 0;
        }
        self.received.extend_from_slice(bytes);
    }

    /// The next thing the peer did, `Ok(None)` once the received bytes
    /// hold no complete frame, or the protocol error that ends the connection.
    pub fn next_event(&mut self) -> Result<Option<Event>, ProtocolError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            let pending = self.received.get(self.received_start..).unwrap_or_default();
            let parsed = frame::parse(pending).map_err(ProtocolError::from);
            let (frame, used) = match parsed {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(e)),
            };
            self.received_start = self.received_start.saturating_add(used);
            if self.received_start == self.received.len() {
                self.received.clear();
                self.received_start = 0;
            }
            match self.handle(frame) {
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) => continue,
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    fn fail(&mut self, e: ProtocolError) -> ProtocolError {
        self.failed = Some(e.clone());
        e
    }

    fn handle(&mut self, frame: Frame) -> Result<Option<Event>, ProtocolError> {
        if !self.peer_hello_seen {
            let Frame::Hello { version, side } = frame else {
                return Err(ProtocolError::HelloMissing);
            };
            if version != self.version.number() {
                return Err(ProtocolError::UnsupportedVersion {
                    found: version,
                    channel: self.version,
                });
            }
            if side.role() == self.side.role() {
                return Err(ProtocolError::SameRole(side.role()));
            }
            self.peer_hello_seen = true;
            return Ok(Some(Event::Hello { side }));
        }
        let role = self.side.role();
        let unexpected = |frame| {
            Err(ProtocolError::UnexpectedControl {
                frame,
                receiver: role,
            })
        };
        match frame {
            Frame::Hello { .. } => Err(ProtocolError::HelloRepeated),
            Frame::Upgrade { .. } if role == Role::Pp => unexpected("UPGRADE"),
            Frame::Upgrade { host_key_line } => Ok(Some(Event::Upgrade { host_key_line })),
            Frame::InfoRequest if role == Role::Wn => unexpected("INFO_REQUEST"),
            Frame::InfoRequest => {
                self.check_answers_read("INFO_REQUEST")?;
                Ok(Some(Event::InfoRequest))
            }
            Frame::Info { .. } if role == Role::Pp => unexpected("INFO"),
            Frame::Info { text } => Ok(Some(Event::Info { text })),
            Frame::Open { stream, name } => self.handle_open(stream, name),
            Frame::Data { stream, bytes } => self.handle_data(stream, bytes),
            Frame::Credit { stream, n } => self.handle_credit(stream, n),
            Frame::End { stream } => self.handle_end(stream),
            Frame::OpenFlow { stream, name } => self.handle_open_flow(stream, name),
            Frame::Datagram { stream, bytes } => self.handle_datagram(stream, bytes),
            Frame::Reset { stream, reason } => {
                if self.finish_flow(stream) {
                    return Ok(Some(Event::PeerReset { stream, reason }));
                }
                if self.live_stream(stream, "RESET")?.is_none() {
                    return Ok(None);
                }
                self.finish(stream);
                Ok(Some(Event::PeerReset { stream, reason }))
            }
        }
    }

    fn handle_open(
        &mut self,
        stream: StreamId,
        name: String,
    ) -> Result<Option<Event>, ProtocolError> {
        self.take_peer_id(stream)?;
        if self.peer_streams >= self.limits.max_peer_streams {
            let limit = self.limits.max_peer_streams;
            self.refuse_over_cap(stream, "OPEN", STREAM_LIMIT_REASON, limit, "streams")?;
            return Ok(None);
        }
        self.streams.insert(stream, Stream::new());
        self.peer_streams = self.peer_streams.saturating_add(1);
        // The extra CREDIT is an answer too: a peer that does not read gets
        // only the base window instead.
        if self.transmit.len() <= MAX_UNREAD_ANSWERS {
            self.grant_stream_window(stream);
        }
        Ok(Some(Event::Opened { stream, name }))
    }

    /// Answers an `OPEN` or `OPEN_FLOW` over its cap with
    /// `RESET(stream, "PREFIX LIMIT WHAT already open on this connection")`
    /// (docs/protocol.md 2.5); the refusal is an answer, so a peer that
    /// leaves answers unread gets a protocol error instead.
    fn refuse_over_cap(
        &mut self,
        stream: StreamId,
        frame_name: &'static str,
        prefix: &str,
        limit: usize,
        what: &str,
    ) -> Result<(), ProtocolError> {
        self.check_answers_read(frame_name)?;
        let reason = alloc::format!("{prefix} {limit} {what} already open on this connection");
        self.queue(&Frame::Reset {
            stream,
            reason: frame::truncate_reset_reason(&reason).into(),
        });
        Ok(())
    }

    /// Raises a new stream's receive window to [`MuxLimits::stream_window`]
    /// with one CREDIT while [`MuxLimits::window_budget`] allows.
    fn grant_stream_window(&mut self, stream: StreamId) {
        let window = self.limits.stream_window.min(MAX_WINDOW);
        let Some(extra) = window.checked_sub(INITIAL_WINDOW).filter(|n| *n > 0) else {
            return;
        };
        let Some(used) = self
            .window_budget_used
            .checked_add(window)
            .filter(|used| *used <= self.limits.window_budget)
        else {
            return;
        };
        let Some(state) = self.streams.get_mut(&stream) else {
            return;
        };
        state.receive_window = window;
        state.granted_window = window;
        self.window_budget_used = used;
        self.queue(&Frame::Credit { stream, n: extra });
    }

    /// A frame that makes us answer is refused while the peer leaves more
    /// than [`MAX_UNREAD_ANSWERS`] of our bytes unread.
    fn check_answers_read(&self, frame: &'static str) -> Result<(), ProtocolError> {
        let backlog = self.transmit.len();
        if backlog > MAX_UNREAD_ANSWERS {
            return Err(ProtocolError::AnswersUnread { frame, backlog });
        }
        Ok(())
    }

    /// Forgets a finished stream; `None` if it was not live.
    fn finish(&mut self, stream: StreamId) -> Option<Stream> {
        let state = self.streams.remove(&stream)?;
        if stream.opener() != self.side.role() {
            self.peer_streams = self.peer_streams.saturating_sub(1);
        }
        if state.granted_window > INITIAL_WINDOW {
            self.window_budget_used = self.window_budget_used.saturating_sub(state.granted_window);
        }
        Some(state)
    }

    /// Live streams opened by the peer (never above the limit).
    pub fn peer_streams(&self) -> usize {
        self.peer_streams
    }

    fn handle_data(
        &mut self,
        stream: StreamId,
        bytes: Vec<u8>,
    ) -> Result<Option<Event>, ProtocolError> {
        let Some(state) = self.live_stream(stream, "DATA")? else {
            return Ok(None);
        };
        if state.peer_ended {
            return Err(ProtocolError::AfterEnd {
                frame: "DATA",
                stream,
            });
        }
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let window = state.receive_window;
        if len > window {
            return Err(ProtocolError::WindowOverrun {
                stream,
                len: bytes.len(),
                window,
            });
        }
        // len <= window: checked just above.
        state.receive_window = window.saturating_sub(len);
        state.unconsumed = state.unconsumed.saturating_add(len);
        Ok(Some(Event::Data { stream, bytes }))
    }

    fn handle_credit(&mut self, stream: StreamId, n: u32) -> Result<Option<Event>, ProtocolError> {
        let Some(state) = self.live_stream(stream, "CREDIT")? else {
            return Ok(None);
        };
        state.send_window = state
            .send_window
            .checked_add(n)
            .filter(|w| *w <= MAX_WINDOW)
            .ok_or(ProtocolError::WindowTooLarge { stream })?;
        Ok(Some(Event::Credited { stream, n }))
    }

    fn handle_end(&mut self, stream: StreamId) -> Result<Option<Event>, ProtocolError> {
        let Some(state) = self.live_stream(stream, "END")? else {
            return Ok(None);
        };
        if state.peer_ended {
            return Err(ProtocolError::AfterEnd {
                frame: "END",
                stream,
            });
        }
        state.peer_ended = true;
        if state.local_ended {
            self.finish(stream);
        }
        Ok(Some(Event::PeerEnded { stream }))
    }

    /// The state of a live stream; `None` for a finished one (its frames are
    /// ignored); an error for an id that was never opened.
    fn live_stream(
        &mut self,
        stream: StreamId,
        frame: &'static str,
    ) -> Result<Option<&mut Stream>, ProtocolError> {
        if self.flows.contains(&stream) {
            return Err(ProtocolError::NotAStream { frame, stream });
        }
        let was_opened = self.was_opened(stream);
        match self.streams.get_mut(&stream) {
            Some(state) => Ok(Some(state)),
            None if was_opened => Ok(None),
            None => Err(ProtocolError::UnknownStream { frame, stream }),
        }
    }

    /// Whether `stream` was opened at some point (ids are handed out in
    /// sequence, so every id below the next one was).
    fn was_opened(&self, stream: StreamId) -> bool {
        let next = if stream.opener() == self.side.role() {
            self.next_local_id
        } else {
            self.next_peer_id
        };
        next == 0 || stream.get() < next
    }

    /// Opens a stream to the peer's target `name`. Data may follow at once.
    pub fn open(&mut self, name: &str) -> Result<StreamId, CommandError> {
        self.check_alive()?;
        frame::check_tunnel_name(name).map_err(CommandError::Invalid)?;
        let stream = self.take_local_id()?;
        self.streams.insert(stream, Stream::new());
        self.queue(&Frame::Open {
            stream,
            name: name.into(),
        });
        self.grant_stream_window(stream);
        Ok(stream)
    }

    /// The next id of this side's sequence (shared by streams and flows).
    fn take_local_id(&mut self) -> Result<StreamId, CommandError> {
        let stream = StreamId::new(self.next_local_id).ok_or(CommandError::IdsExhausted)?;
        self.next_local_id = self.next_local_id.checked_add(2).unwrap_or(0);
        Ok(stream)
    }

    /// Checks that the peer opens `stream` as the next id of its sequence
    /// (shared by streams and flows) and uses that id up.
    fn take_peer_id(&mut self, stream: StreamId) -> Result<(), ProtocolError> {
        if stream.get() != self.next_peer_id {
            return Err(ProtocolError::BadOpenId {
                stream,
                expected: self.next_peer_id,
            });
        }
        self.next_peer_id = self.next_peer_id.checked_add(2).unwrap_or(0);
        Ok(())
    }

    /// Queues as much of `bytes` as the peer's window allows and returns how
    /// many bytes that was (0 when the window is closed: wait for
    /// [`Event::Credited`]).
    pub fn send(&mut self, stream: StreamId, bytes: &[u8]) -> Result<usize, CommandError> {
        self.check_alive()?;
        let state = self.streams.get_mut(&stream).filter(|s| !s.local_ended);
        let state = state.ok_or(CommandError::StreamClosed(stream))?;
        let window = usize::try_from(state.send_window).unwrap_or(usize::MAX);
        let accepted = bytes.get(..window).unwrap_or(bytes);
        let sent = u32::try_from(accepted.len()).unwrap_or(u32::MAX);
        state.send_window = state.send_window.saturating_sub(sent);
        for chunk in accepted.chunks(MAX_PAYLOAD) {
            frame::emit_data(stream, chunk, &mut self.transmit);
        }
        Ok(accepted.len())
    }

    /// Bytes that [`MuxSession::send`] would accept on `stream` right now.
    pub fn send_window(&self, stream: StreamId) -> Option<u32> {
        let state = self.streams.get(&stream).filter(|s| !s.local_ended)?;
        Some(state.send_window)
    }

    /// Whether `stream` (a byte stream or a flow) is neither finished nor
    /// unknown.
    pub fn is_live(&self, stream: StreamId) -> bool {
        self.streams.contains_key(&stream) || self.flows.contains(&stream)
    }

    /// Half-closes `stream`: this side sends no more data.
    pub fn end(&mut self, stream: StreamId) -> Result<(), CommandError> {
        self.check_alive()?;
        let state = self.streams.get_mut(&stream).filter(|s| !s.local_ended);
        let state = state.ok_or(CommandError::StreamClosed(stream))?;
        state.local_ended = true;
        if state.peer_ended {
            self.finish(stream);
        }
        self.queue(&Frame::End { stream });
        Ok(())
    }

    /// Aborts `stream`, a byte stream or a flow (also how an incoming
    /// OPEN or OPEN_FLOW is refused). `reason` is cut to 256 bytes.
    pub fn reset(&mut self, stream: StreamId, reason: &str) -> Result<(), CommandError> {
        self.check_alive()?;
        if !self.finish_flow(stream) {
            self.finish(stream)
                .ok_or(CommandError::StreamClosed(stream))?;
        }
        let reason = frame::truncate_reset_reason(reason).into();
        self.queue(&Frame::Reset { stream, reason });
        Ok(())
    }

    /// Reports that `n` received bytes of `stream` reached their consumer;
    /// queues CREDIT once at least half the stream's window was consumed.
    pub fn consumed(&mut self, stream: StreamId, n: u32) -> Result<(), CommandError> {
        self.check_alive()?;
        let was_opened = self.was_opened(stream);
        let Some(state) = self.streams.get_mut(&stream) else {
            // A finished stream needs no more credit.
            return if was_opened {
                Ok(())
            } else {
                Err(CommandError::StreamClosed(stream))
            };
        };
        state.unconsumed = state
            .unconsumed
            .checked_sub(n)
            .ok_or(CommandError::OverConsumed(stream))?;
        state.uncredited = state.uncredited.saturating_add(n);
        // Half the stream's window: a raised window is credited in as few
        // frames (each an SSH packet of its own) as a base window.
        if state.uncredited >= state.granted_window / 2 && !state.peer_ended {
            let n = core::mem::take(&mut state.uncredited);
            state.receive_window = state.receive_window.saturating_add(n);
            self.queue(&Frame::Credit { stream, n });
        }
        Ok(())
    }

    /// PP only: announces the Kubernetes-phase host key.
    pub fn send_upgrade(&mut self, host_key_line: &str) -> Result<(), CommandError> {
        self.check_control(Role::Pp, "UPGRADE")?;
        frame::check_host_key_line(host_key_line).map_err(CommandError::Invalid)?;
        self.queue(&Frame::Upgrade {
            host_key_line: host_key_line.into(),
        });
        Ok(())
    }

    /// WN only: asks the PP for INFO.
    pub fn send_info_request(&mut self) -> Result<(), CommandError> {
        self.check_control(Role::Wn, "INFO_REQUEST")?;
        self.queue(&Frame::InfoRequest);
        Ok(())
    }

    /// PP only: answers an INFO_REQUEST. `text` must fit one frame.
    pub fn send_info(&mut self, text: &str) -> Result<(), CommandError> {
        self.check_control(Role::Pp, "INFO")?;
        if text.len() > MAX_PAYLOAD {
            let len = text.len();
            return Err(CommandError::Invalid(FrameError::PayloadTooLong { len }));
        }
        self.queue(&Frame::Info { text: text.into() });
        Ok(())
    }

    /// The bytes queued for the peer since the last call.
    pub fn take_transmit(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.transmit)
    }

    /// Like [`MuxSession::take_transmit`], into `buf` (cleared first): the
    /// session keeps `buf`'s old allocation for the next frames, so a busy
    /// driver does not allocate and grow a new buffer every round.
    pub fn take_transmit_into(&mut self, buf: &mut Vec<u8>) {
        buf.clear();
        core::mem::swap(buf, &mut self.transmit);
    }

    /// Bytes queued for the peer and not yet taken: a driver moves queued
    /// datagrams in only while this is low.
    pub fn transmit_backlog(&self) -> usize {
        self.transmit.len()
    }

    /// Whether [`MuxSession::take_transmit`] would return anything.
    pub fn wants_transmit(&self) -> bool {
        !self.transmit.is_empty()
    }

    fn check_control(&self, sender: Role, frame: &'static str) -> Result<(), CommandError> {
        self.check_alive()?;
        if self.side.role() == sender {
            Ok(())
        } else {
            Err(CommandError::WrongRole { frame })
        }
    }

    fn check_alive(&self) -> Result<(), CommandError> {
        match &self.failed {
            Some(e) => Err(CommandError::Failed(e.clone())),
            None => Ok(()),
        }
    }

    fn queue(&mut self, frame: &Frame) {
        frame::emit(frame, &mut self.transmit);
    }
}
