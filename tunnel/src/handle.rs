//! The application's side of a running mux: [`MuxHandle`] to act (open
//! streams and flows, send control frames) and [`MuxEvents`] to learn what
//! the peer did (incoming streams and flows, HELLO, UPGRADE, INFO_REQUEST,
//! INFO).
//!
//! Contract: every [`MuxHandle`] method fails with [`MuxError::Stopped`] once
//! the driver has ended; [`MuxEvents::recv`] returns `None` then. An
//! incoming stream or flow that the application drops without using is
//! reset.

use pp_mux::{MuxVersion, Side};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use crate::MuxError;
use crate::driver::{Command, Control};
use crate::flow::MuxFlow;
use crate::stream::MuxStream;

/// A stream the peer opened towards one of this side's targets.
#[derive(Debug)]
pub struct IncomingStream {
    /// The target the peer asked for; refuse with `stream.reset(reason)`
    /// when there is no such target or the phase forbids it.
    pub name: String,
    pub stream: MuxStream,
}

/// A datagram flow the peer opened towards one of this side's targets.
#[derive(Debug)]
pub struct IncomingFlow {
    /// The target the peer asked for; refuse with `flow.reset(reason)`
    /// when there is no such target or the phase forbids it.
    pub name: String,
    pub flow: MuxFlow,
}

/// What the peer did.
#[derive(Debug)]
pub enum MuxEvent {
    /// The peer's HELLO: its role and (for a PP) its phase.
    Hello(Side),
    Incoming(IncomingStream),
    /// A datagram flow (pp-mux-v2 only).
    IncomingFlow(IncomingFlow),
    /// The PP's Kubernetes-phase host key line (`ssh-ed25519 AAAA…`).
    Upgrade(String),
    InfoRequest,
    /// The PP's `key=value` lines.
    Info(String),
}

/// Receives [`MuxEvent`]s in the order the peer caused them. Keep receiving:
/// incoming streams wait here unanswered (and hold their buffers) until
/// taken; dropping `MuxEvents` makes the driver refuse later streams.
#[derive(Debug)]
pub struct MuxEvents {
    pub(crate) events: UnboundedReceiver<MuxEvent>,
}

impl MuxEvents {
    /// The next event, or `None` once the driver has ended.
    pub async fn recv(&mut self) -> Option<MuxEvent> {
        self.events.recv().await
    }
}

/// Acts on a running mux. Cheap to clone; `Send`.
#[derive(Clone, Debug)]
pub struct MuxHandle {
    pub(crate) commands: UnboundedSender<Command>,
    pub(crate) version: MuxVersion,
}

impl MuxHandle {
    /// Opens a stream to the peer's target `name` (`[A-Za-z0-9_-]{1,64}`).
    /// Opening is optimistic: a refusal shows up as an error on the
    /// stream's first read or write, carrying the peer's reason.
    pub async fn open(&self, name: &str) -> Result<MuxStream, MuxError> {
        let (reply, answer) = oneshot::channel();
        self.request(Command::Open {
            name: name.to_owned(),
            reply,
        })?;
        answer.await.map_err(|_| MuxError::Stopped)?
    }

    /// The channel's protocol version.
    pub fn version(&self) -> MuxVersion {
        self.version
    }

    /// Opens a datagram flow to the peer's target `name`; datagrams may be
    /// sent at once. Fails with [`MuxError::NeedsVersion2`] on a v1 channel.
    /// A refusal shows up as [`crate::FlowClosed::PeerReset`] on the flow.
    pub async fn open_flow(&self, name: &str) -> Result<MuxFlow, MuxError> {
        if !self.version.has_flows() {
            return Err(MuxError::NeedsVersion2);
        }
        let (reply, answer) = oneshot::channel();
        self.request(Command::OpenFlow {
            name: name.to_owned(),
            reply,
        })?;
        answer.await.map_err(|_| MuxError::Stopped)?
    }

    /// PP only: sends UPGRADE with the Kubernetes-phase host key line.
    pub async fn send_upgrade(&self, host_key_line: &str) -> Result<(), MuxError> {
        self.control(Control::Upgrade(host_key_line.to_owned()))
            .await
    }

    /// WN only: sends INFO_REQUEST.
    pub async fn send_info_request(&self) -> Result<(), MuxError> {
        self.control(Control::InfoRequest).await
    }

    /// PP only: sends INFO (`key=value` lines, at most 16384 bytes).
    pub async fn send_info(&self, text: &str) -> Result<(), MuxError> {
        self.control(Control::Info(text.to_owned())).await
    }

    async fn control(&self, control: Control) -> Result<(), MuxError> {
        let (reply, answer) = oneshot::channel();
        self.request(Command::Control { control, reply })?;
        answer.await.map_err(|_| MuxError::Stopped)?
    }

    fn request(&self, command: Command) -> Result<(), MuxError> {
        self.commands.send(command).map_err(|_| MuxError::Stopped)
    }
}
