//! A write gate in front of the SSH socket.
//!
//! sunset sends `SSH_MSG_USERAUTH_SUCCESS` as soon as the application allows
//! an authentication attempt, and tells the application that the attempt was
//! a real one (not a public-key query) only afterwards, with the
//! `Authenticated` event. The one-shot rule needs the winner fixed *before*
//! the client can learn that it succeeded, so the session holds this gate
//! closed around every `allow()`: bytes queued meanwhile stay in sunset's
//! output buffer until the session either releases the gate (the connection
//! was admitted, or it was only a query) or drops the connection, in which
//! case they never reach the wire.
//!
//! Contract: while held, `poll_write` makes no progress and writes nothing;
//! flush and shutdown are not gated (they carry no new bytes).

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;

/// The shared switch. Single-threaded: the forwarder runs each connection
/// on one `LocalSet`.
#[derive(Default)]
pub struct Gate {
    held: Cell<bool>,
    waiting_writer: RefCell<Option<Waker>>,
}

impl Gate {
    pub fn hold(&self) {
        self.held.set(true);
    }

    pub fn release(&self) {
        self.held.set(false);
        if let Some(waker) = self.waiting_writer.borrow_mut().take() {
            waker.wake();
        }
    }

    pub fn is_held(&self) -> bool {
        self.held.get()
    }
}

/// A writer that writes nothing while its gate is held.
pub struct GatedWriter<W> {
    inner: W,
    gate: Rc<Gate>,
}

impl<W> GatedWriter<W> {
    pub fn new(inner: W, gate: Rc<Gate>) -> Self {
        Self { inner, gate }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for GatedWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.gate.is_held() {
            *self.gate.waiting_writer.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn held_gate_lets_nothing_through_until_released() {
        let (mut reader, writer) = tokio::io::duplex(64);
        let gate = Rc::new(Gate::default());
        let mut gated = GatedWriter::new(writer, gate.clone());
        gate.hold();
        let mut write = Box::pin(gated.write_all(b"secret"));
        // One poll: the write must not complete while the gate is held.
        let polled = futures_poll_once(write.as_mut()).await;
        assert!(polled.is_none(), "write went through a held gate");
        let mut peek = [0u8; 6];
        let nothing = tokio::time::timeout(std::time::Duration::ZERO, reader.read(&mut peek)).await;
        assert!(nothing.is_err(), "reader saw bytes through a held gate");
        gate.release();
        write.await.unwrap();
        reader.read_exact(&mut peek).await.unwrap();
        assert_eq!(&peek, b"secret");
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut f).poll(cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            })
        })
        .await
    }
}
