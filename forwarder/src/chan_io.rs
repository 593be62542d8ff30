//! [`ChanIo`]: a sunset channel as a tokio `AsyncRead + AsyncWrite`, so the
//! mux driver and the raw-tunnel copy read from and write to the SSH channel
//! directly (no in-memory pipe, no copy task, no extra wake-ups between
//! them).
//!
//! sunset-async offers channels through embedded-io-async, whose `read` and
//! `write` are async functions. Both are single-poll wrappers around
//! sunset's own poll functions, which either move bytes or register the
//! waker and keep nothing else between polls. So each `poll_read` /
//! `poll_write` here builds that future, polls it once and drops it: no
//! state is lost, and the stored waker wakes this task.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use sunset_async::embedded_io_async::{Read, Write};
use sunset_async::{ChanIn, ChanInOut, ChanOut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Both directions of one accepted sunset channel.
pub struct ChanIo<'g> {
    input: ChanIn<'g>,
    output: ChanOut<'g>,
}

impl<'g> ChanIo<'g> {
    pub fn new(chan: &ChanInOut<'g>) -> Self {
        let (input, output) = chan.split();
        ChanIo { input, output }
    }
}

fn io_error(e: sunset::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl AsyncRead for ChanIo<'_> {
    /// Reads what the WN sent; EOF once it sent EOF (or closed).
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = pin!(this.input.read(buf.initialize_unfilled())).poll(cx);
        match read {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(sunset::Error::ChannelEOF)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(io_error(e))),
        }
    }
}

impl AsyncWrite for ChanIo<'_> {
    /// Sends at most one SSH packet's worth (the WN's window and packet
    /// size allowing); waits for a window adjustment when it is exhausted.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match pin!(this.output.write(buf)).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) if !buf.is_empty() => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the SSH channel is closed",
            ))),
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(io_error(e))),
        }
    }

    /// sunset sends what it was given without being asked.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// A server cannot end a sunset channel (docs/protocol.md 1.2); the
    /// connection ends instead, which the callers arrange.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
