//! [`MuxDriver`]: runs a [`MuxSession`] over one byte pipe.
//!
//! Contract: [`MuxDriver::run`] reads the pipe, writes the session's frames
//! and carries out commands from handles and streams, all in one future
//! that never spawns and never needs `Send`. Reading never waits for
//! writing (memory stays bounded by the per-stream windows), so neither
//! side can deadlock the other by filling the pipe. It resolves `Ok(())`
//! when the pipe reaches EOF, or with the protocol or IO error that ended
//! the connection; every stream and flow still open then fails with that
//! reason. Datagram flows (v2) are kept in a `FlowTable` (see `flow`).
//! What waits for the pipe is bounded whatever CREDIT the peer grants: the
//! streams' written bytes (at most `UNSENT_LIMIT` each, see `stream`) move
//! into the session only while its backlog is below
//! [`TRANSMIT_LOW_WATER`](crate::TRANSMIT_LOW_WATER).

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use pp_mux::{CommandError, Event, MuxLimits, MuxSession, MuxVersion, Side, StreamId};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use crate::MuxError;
use crate::flow::{FlowClosed, FlowTable, MuxFlow, pipe_has_room};
use crate::handle::{IncomingFlow, IncomingStream, MuxEvent, MuxEvents, MuxHandle};
use crate::stream::{Closed, MuxStream, Shared, SharedRef, lock};

/// Bytes read from the pipe at a time.
const READ_CHUNK: usize = 32 * 1024;
/// Rounds of work before the driver yields to other tasks.
const ROUNDS_BEFORE_YIELD: usize = 64;

/// Requests from handles and streams to the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Open {
        name: String,
        reply: oneshot::Sender<Result<MuxStream, MuxError>>,
    },
    /// The stream's writer left bytes in its shared buffer.
    Data {
        stream: StreamId,
    },
    Consumed {
        stream: StreamId,
        n: u32,
    },
    End {
        stream: StreamId,
    },
    Reset {
        stream: StreamId,
        reason: String,
    },
    Control {
        control: Control,
        reply: oneshot::Sender<Result<(), MuxError>>,
    },
    OpenFlow {
        name: String,
        reply: oneshot::Sender<Result<MuxFlow, MuxError>>,
    },
    /// The flow has datagrams queued and is not in the send turn yet.
    FlowReady {
        stream: StreamId,
    },
}

#[derive(Debug)]
pub(crate) enum Control {
    Upgrade(String),
    InfoRequest,
    Info(String),
}

/// Starts a `pp-mux-v2` mux over `io` as `side` with the default
/// [`MuxLimits`]: our HELLO is the first thing written once
/// [`MuxDriver::run`] is polled.
pub fn start<IO>(io: IO, side: Side) -> (MuxHandle, MuxEvents, MuxDriver<IO>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    start_with(io, side, MuxVersion::V2, MuxLimits::default())
}

/// [`start`] on a channel of `version` (the one its subsystem name asked
/// for) with `limits` on what the peer may make this side hold. An `OPEN`
/// or `OPEN_FLOW` over a limit is refused by the session itself: it never
/// becomes a [`MuxEvent`], so no target is ever dialled for it.
pub fn start_with<IO>(
    io: IO,
    side: Side,
    version: MuxVersion,
    limits: MuxLimits,
) -> (MuxHandle, MuxEvents, MuxDriver<IO>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::unbounded_channel();
    let driver = MuxDriver {
        io,
        session: MuxSession::with_limits(side, version, limits),
        commands,
        commands_tx: commands_tx.clone(),
        events: events_tx,
        streams: HashMap::new(),
        data_ready: VecDeque::new(),
        flows: FlowTable::default(),
        read_buf: vec![0; READ_CHUNK],
        outgoing: Vec::new(),
        outgoing_written: 0,
        needs_flush: false,
    };
    (
        MuxHandle {
            commands: commands_tx,
            version,
        },
        MuxEvents { events },
        driver,
    )
}

/// The IO half of a mux; see the module documentation.
pub struct MuxDriver<IO> {
    io: IO,
    session: MuxSession,
    commands: UnboundedReceiver<Command>,
    /// Given to the streams this driver creates.
    commands_tx: UnboundedSender<Command>,
    events: UnboundedSender<MuxEvent>,
    streams: HashMap<StreamId, SharedRef>,
    /// Streams whose written bytes wait to move into the session, in the
    /// order they were written.
    data_ready: VecDeque<StreamId>,
    flows: FlowTable,
    read_buf: Vec<u8>,
    outgoing: Vec<u8>,
    outgoing_written: usize,
    needs_flush: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> MuxDriver<IO> {
    /// Runs the mux until the pipe ends (`Ok`) or fails (`Err`).
    pub async fn run(mut self) -> Result<(), MuxError> {
        let result = poll_fn(|cx| self.poll_run(cx)).await;
        let why = match &result {
            Ok(()) => "the peer closed the mux channel".to_owned(),
            Err(e) => e.to_string(),
        };
        self.close_all_streams(&why);
        result
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MuxError>> {
        for _ in 0..ROUNDS_BEFORE_YIELD {
            let mut progressed = false;
            while let Poll::Ready(Some(command)) = self.commands.poll_recv(cx) {
                self.apply(command)?;
                progressed = true;
            }
            // Written bytes go into the session before the pipe is read, as
            // a command used to take them: with the read first, the 64-byte
            // echo of scripts/bench.sh took 10-30 % longer at p99.
            let unwritten = self.outgoing.len().saturating_sub(self.outgoing_written);
            progressed |= self.send_stream_data(unwritten)?;
            match self.poll_read_pipe(cx)? {
                Poll::Ready(ReadOutcome::Eof) => return Poll::Ready(Ok(())),
                Poll::Ready(ReadOutcome::Data) => progressed = true,
                Poll::Pending => {}
            }
            progressed |= self.flows.send_queued(&mut self.session, unwritten)?;
            progressed |= self.poll_write_pipe(cx)?;
            if !progressed {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn poll_read_pipe(&mut self, cx: &mut Context<'_>) -> Poll<Result<ReadOutcome, MuxError>> {
        let mut buf = ReadBuf::new(&mut self.read_buf);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(MuxError::Io(e))),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(ReadOutcome::Eof)),
            Poll::Ready(Ok(())) => {
                self.session.receive(buf.filled());
                while let Some(event) = self.session.next_event().map_err(MuxError::Protocol)? {
                    self.handle_event(event);
                }
                Poll::Ready(Ok(ReadOutcome::Data))
            }
        }
    }

    /// Writes queued frames; returns whether any bytes moved.
    fn poll_write_pipe(&mut self, cx: &mut Context<'_>) -> Result<bool, MuxError> {
        let mut progressed = false;
        loop {
            if self.outgoing_written == self.outgoing.len() {
                if !self.session.wants_transmit() {
                    break;
                }
                self.session.take_transmit_into(&mut self.outgoing);
                self.outgoing_written = 0;
            }
            let pending = self
                .outgoing
                .get(self.outgoing_written..)
                .unwrap_or_default();
            match Pin::new(&mut self.io).poll_write(cx, pending) {
                Poll::Pending => return Ok(progressed),
                Poll::Ready(Ok(0)) => {
                    let e = std::io::Error::new(std::io::ErrorKind::WriteZero, "mux pipe closed");
                    return Err(MuxError::Io(e));
                }
                Poll::Ready(Ok(n)) => {
                    self.outgoing_written += n;
                    self.needs_flush = true;
                    progressed = true;
                }
                Poll::Ready(Err(e)) => return Err(MuxError::Io(e)),
            }
        }
        if self.needs_flush {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(MuxError::Io(e)),
                Poll::Pending => {}
            }
        }
        Ok(progressed)
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Hello { side } => self.emit(MuxEvent::Hello(side)),
            Event::Upgrade { host_key_line } => self.emit(MuxEvent::Upgrade(host_key_line)),
            Event::InfoRequest => self.emit(MuxEvent::InfoRequest),
            Event::Info { text } => self.emit(MuxEvent::Info(text)),
            Event::Opened { stream, name } => {
                let incoming = IncomingStream {
                    name,
                    stream: self.new_stream(stream),
                };
                if let Err(unsent) = self.events.send(MuxEvent::Incoming(incoming))
                    && let MuxEvent::Incoming(incoming) = unsent.0
                {
                    incoming.stream.reset("this side is not accepting streams");
                }
            }
            Event::Data { stream, bytes } => self.with_stream(stream, |s| s.push_data(&bytes)),
            Event::Credited { stream, n } => self.with_stream(stream, |s| s.add_credit(n)),
            Event::PeerEnded { stream } => self.with_stream(stream, Shared::mark_peer_ended),
            Event::PeerReset { stream, reason } if self.flows.holds(stream) => {
                self.flows.close(stream, FlowClosed::PeerReset(reason));
            }
            Event::PeerReset { stream, reason } => {
                self.with_stream(stream, |s| s.close(Closed::PeerReset(reason)));
            }
            Event::FlowOpened { stream, name } => {
                let flow = self.flows.add(stream, self.commands_tx.clone());
                let incoming = IncomingFlow { name, flow };
                if let Err(unsent) = self.events.send(MuxEvent::IncomingFlow(incoming))
                    && let MuxEvent::IncomingFlow(incoming) = unsent.0
                {
                    incoming.flow.reset("this side is not accepting flows");
                }
            }
            Event::Datagram { stream, bytes } => self.flows.deliver(stream, bytes),
        }
    }

    fn emit(&self, event: MuxEvent) {
        // Nobody listening means nobody cares about control events.
        let _ = self.events.send(event);
    }

    /// Runs `f` on a stream's shared state, then forgets the stream once the
    /// session has finished it.
    fn with_stream(&mut self, stream: StreamId, f: impl FnOnce(&mut Shared)) {
        if let Some(shared) = self.streams.get(&stream) {
            f(&mut lock(shared));
        }
        self.forget_if_finished(stream);
    }

    fn forget_if_finished(&mut self, stream: StreamId) {
        if !self.session.is_live(stream) {
            self.streams.remove(&stream);
        }
    }

    fn new_stream(&mut self, stream: StreamId) -> MuxStream {
        let shared = Shared::new_ref();
        self.streams.insert(stream, shared.clone());
        MuxStream::new(stream, shared, self.commands_tx.clone())
    }

    /// Moves streams' written bytes into the session, one stream at a time
    /// in the order they wrote, while the pipe has room (`pipe_has_room`).
    /// Returns whether any moved.
    fn send_stream_data(&mut self, unwritten: usize) -> Result<bool, MuxError> {
        let mut moved = false;
        while pipe_has_room(&self.session, unwritten) {
            let Some(stream) = self.data_ready.pop_front() else {
                break;
            };
            moved |= self.send_unsent(stream)?;
        }
        Ok(moved)
    }

    /// Moves one stream's written bytes into the session; returns whether
    /// there were any.
    fn send_unsent(&mut self, stream: StreamId) -> Result<bool, MuxError> {
        // A stream already forgotten was finished: its bytes are moot.
        let Some(shared) = self.streams.get(&stream) else {
            return Ok(false);
        };
        let session = &mut self.session;
        let sent = lock(shared).take_unsent(|bytes| {
            if bytes.is_empty() {
                return Ok(None);
            }
            session.send(stream, bytes).map(|n| Some(n == bytes.len()))
        });
        match sent {
            Ok(None) => Ok(false),
            Ok(Some(true)) => Ok(true),
            Ok(Some(false)) => Err(MuxError::WindowAccounting { stream }),
            // Reset by the peer meanwhile: the writer learns it from the stream.
            Err(CommandError::StreamClosed(_)) => Ok(false),
            Err(e) => Err(MuxError::Command(e)),
        }
    }

    fn apply(&mut self, command: Command) -> Result<(), MuxError> {
        match command {
            Command::Open { name, reply } => {
                let opened = self.session.open(&name).map_err(MuxError::Command);
                let _ = reply.send(opened.map(|stream| self.new_stream(stream)));
            }
            Command::Data { stream } => self.data_ready.push_back(stream),
            Command::Consumed { stream, n } => ignore_closed(self.session.consumed(stream, n))?,
            Command::End { stream } => {
                // The last bytes go before the END, whatever the backlog
                // (at most one stream's `UNSENT_LIMIT`).
                self.send_unsent(stream)?;
                ignore_closed(self.session.end(stream))?;
                self.forget_if_finished(stream);
            }
            Command::Reset { stream, reason } => {
                // What was written before the reset still goes first.
                self.send_unsent(stream)?;
                ignore_closed(self.session.reset(stream, &reason))?;
                self.streams.remove(&stream);
                self.flows.close(stream, FlowClosed::LocalReset(reason));
            }
            Command::OpenFlow { name, reply } => {
                let opened = self
                    .session
                    .open_flow(&name)
                    .map_err(MuxError::from_command);
                let flows = &mut self.flows;
                let commands = &self.commands_tx;
                let _ = reply.send(opened.map(|stream| flows.add(stream, commands.clone())));
            }
            Command::FlowReady { stream } => self.flows.mark_ready(stream),
            Command::Control { control, reply } => {
                let sent = match control {
                    Control::Upgrade(line) => self.session.send_upgrade(&line),
                    Control::InfoRequest => self.session.send_info_request(),
                    Control::Info(text) => self.session.send_info(&text),
                };
                let _ = reply.send(sent.map_err(MuxError::Command));
            }
        }
        Ok(())
    }
}

impl<IO> MuxDriver<IO> {
    fn close_all_streams(&mut self, why: &str) {
        for (_, shared) in self.streams.drain() {
            lock(&shared).close(Closed::ConnectionEnded(why.to_owned()));
        }
        self.flows.close_all(why);
    }
}

impl<IO> Drop for MuxDriver<IO> {
    /// A driver dropped before `run` finished (e.g. a cancelled task) takes
    /// its streams down with it.
    fn drop(&mut self) {
        self.close_all_streams("the mux driver stopped");
    }
}

enum ReadOutcome {
    Data,
    Eof,
}

/// A stream that finished while a command for it was in flight is fine;
/// any other refusal means the session failed.
fn ignore_closed(result: Result<(), CommandError>) -> Result<(), MuxError> {
    match result {
        Ok(()) | Err(CommandError::StreamClosed(_)) => Ok(()),
        Err(e) => Err(MuxError::Command(e)),
    }
}
