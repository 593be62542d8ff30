//! [`MuxStream`]: one mux stream as a tokio `AsyncRead + AsyncWrite`, and
//! the state it shares with the driver.
//!
//! Contract: reads return the peer's DATA in order, then EOF after the
//! peer's END, or an error once the stream was reset or the connection
//! ended (the error text carries the peer's RESET reason). Writes accept at
//! most the peer's remaining window and wait for CREDIT otherwise, and at
//! most [`UNSENT_LIMIT`] bytes the driver has not yet taken: a peer that
//! grants a huge window and does not read makes writers wait, not buffer.
//! `poll_shutdown` sends END; dropping a stream that is not finished sends
//! RESET. Every byte read is reported to the driver, which returns CREDIT.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use pp_mux::{INITIAL_WINDOW, StreamId};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc::UnboundedSender;

use crate::driver::Command;

/// Why a stream can carry no more data.
#[derive(Clone, Debug)]
pub(crate) enum Closed {
    PeerReset(String),
    LocalReset,
    ConnectionEnded(String),
}

/// Written bytes a stream holds before the driver takes them; a writer
/// waits beyond this.
pub(crate) const UNSENT_LIMIT: usize = 128 * 1024;

/// What the driver and the stream handle both see. The two byte buffers are
/// reused, not allocated per frame or per write (the static build's
/// allocator maps and unmaps pages for every fresh buffer of that size).
#[derive(Debug)]
pub(crate) struct Shared {
    /// The peer's DATA not yet read, in order.
    received: VecDeque<u8>,
    /// Written and not yet taken by the driver, which holds one
    /// `Command::Data` for them.
    unsent: Vec<u8>,
    peer_ended: bool,
    local_ended: bool,
    /// Bytes the peer still accepts (mirrors the session, minus bytes
    /// already handed to the driver).
    send_window: u32,
    closed: Option<Closed>,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

pub(crate) type SharedRef = Arc<Mutex<Shared>>;

pub(crate) fn lock(shared: &SharedRef) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new_ref() -> SharedRef {
        Arc::new(Mutex::new(Shared {
            received: VecDeque::new(),
            unsent: Vec::new(),
            peer_ended: false,
            local_ended: false,
            send_window: INITIAL_WINDOW,
            closed: None,
            reader: None,
            writer: None,
        }))
    }

    pub(crate) fn push_data(&mut self, bytes: &[u8]) {
        self.received.extend(bytes);
        wake(&mut self.reader);
    }

    /// Hands the written bytes to `send` (the driver's), then empties the
    /// buffer and wakes a writer that waited for room.
    pub(crate) fn take_unsent<T>(&mut self, send: impl FnOnce(&[u8]) -> T) -> T {
        let sent = send(&self.unsent);
        self.unsent.clear();
        wake(&mut self.writer);
        sent
    }

    pub(crate) fn add_credit(&mut self, n: u32) {
        self.send_window = self.send_window.saturating_add(n);
        wake(&mut self.writer);
    }

    pub(crate) fn mark_peer_ended(&mut self) {
        self.peer_ended = true;
        wake(&mut self.reader);
    }

    /// Ends the stream for both directions (a first reason wins).
    pub(crate) fn close(&mut self, why: Closed) {
        self.closed.get_or_insert(why);
        wake(&mut self.reader);
        wake(&mut self.writer);
    }

    fn closed_error(&self) -> Option<io::Error> {
        let error = match self.closed.as_ref()? {
            Closed::PeerReset(reason) => io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("mux stream reset by the peer: {reason}"),
            ),
            Closed::LocalReset => io::Error::new(
                io::ErrorKind::NotConnected,
                "mux stream was reset by this side",
            ),
            Closed::ConnectionEnded(why) => io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("mux connection ended: {why}"),
            ),
        };
        Some(error)
    }

    /// Copies buffered bytes into `buf`; returns how many.
    fn read_into(&mut self, buf: &mut ReadBuf<'_>) -> usize {
        let n = self.received.len().min(buf.remaining());
        let (front, back) = self.received.as_slices();
        let from_front = n.min(front.len());
        buf.put_slice(front.get(..from_front).unwrap_or_default());
        buf.put_slice(back.get(..n - from_front).unwrap_or_default());
        self.received.drain(..n);
        n
    }
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(w) = waker.take() {
        w.wake();
    }
}

/// One stream of the mux. See the module documentation.
#[derive(Debug)]
pub struct MuxStream {
    id: StreamId,
    shared: SharedRef,
    commands: UnboundedSender<Command>,
}

impl MuxStream {
    pub(crate) fn new(id: StreamId, shared: SharedRef, commands: UnboundedSender<Command>) -> Self {
        MuxStream {
            id,
            shared,
            commands,
        }
    }

    /// The stream's id on the wire (odd: opened by the WN, even: by the PP).
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Aborts the stream and tells the peer why (cut to 256 bytes). This is
    /// how the receiver of an incoming stream refuses it.
    pub fn reset(self, reason: &str) {
        self.send_reset(reason);
    }

    fn send_reset(&self, reason: &str) {
        let mut shared = lock(&self.shared);
        if shared.closed.is_some() || (shared.local_ended && shared.peer_ended) {
            return;
        }
        shared.close(Closed::LocalReset);
        let reason = reason.to_owned();
        // If the driver is gone the stream is gone with it: nothing to tell.
        let _ = self.commands.send(Command::Reset {
            stream: self.id,
            reason,
        });
    }

    fn driver_gone() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "mux connection ended")
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        self.send_reset("stream closed by its user before the end");
    }
}

impl AsyncRead for MuxStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut shared = lock(&this.shared);
        if let Some(e) = shared.closed_error().filter(|_| shared.received.is_empty()) {
            return Poll::Ready(Err(e));
        }
        let copied = shared.read_into(buf);
        if copied > 0 {
            let n = u32::try_from(copied).unwrap_or(u32::MAX);
            // Without a driver there is nobody to credit: the bytes count anyway.
            let _ = this.commands.send(Command::Consumed { stream: this.id, n });
            return Poll::Ready(Ok(()));
        }
        if shared.peer_ended || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        shared.reader = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for MuxStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut shared = lock(&this.shared);
        if let Some(e) = shared.closed_error() {
            return Poll::Ready(Err(e));
        }
        if shared.local_ended {
            let e = io::Error::new(io::ErrorKind::BrokenPipe, "mux stream already shut down");
            return Poll::Ready(Err(e));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let room = UNSENT_LIMIT.saturating_sub(shared.unsent.len());
        if shared.send_window == 0 || room == 0 {
            shared.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let window = usize::try_from(shared.send_window).unwrap_or(usize::MAX);
        let accepted = buf.get(..window.min(room)).unwrap_or(buf);
        // One command for all bytes that wait: the driver takes them at once.
        if shared.unsent.is_empty()
            && this
                .commands
                .send(Command::Data { stream: this.id })
                .is_err()
        {
            return Poll::Ready(Err(MuxStream::driver_gone()));
        }
        shared.unsent.extend_from_slice(accepted);
        shared.send_window -= u32::try_from(accepted.len()).unwrap_or(u32::MAX);
        Poll::Ready(Ok(accepted.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are already with the driver, which writes them out
        // as fast as the pipe allows.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut shared = lock(&this.shared);
        if shared.local_ended {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = shared.closed_error() {
            return Poll::Ready(Err(e));
        }
        shared.local_ended = true;
        match this.commands.send(Command::End { stream: this.id }) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(_) => Poll::Ready(Err(MuxStream::driver_gone())),
        }
    }
}
