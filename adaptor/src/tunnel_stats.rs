//! Live counters of one local tunnel (bytes each way, open streams), read
//! by the metrics endpoint, and [`Counted`], the socket wrapper that keeps
//! them.
//!
//! Contract: bytes are counted as they pass (a long-lived stream shows its
//! traffic before it ends); `open_streams` goes up when a stream to the PP
//! is open and down when the [`OpenStream`] guard is dropped, whatever way
//! the stream ended.

use pp_tunnel::datagram::{DatagramCounters, DatagramCounts};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The counters of one tunnel of one PP.
#[derive(Debug, Default)]
pub struct TunnelStats {
    to_pp: AtomicU64,
    from_pp: AtomicU64,
    open_streams: AtomicU64,
    /// A datagram tunnel's counters (zero for a stream tunnel).
    pub datagrams: Arc<DatagramCounters>,
}

/// A point-in-time copy of [`TunnelStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelCounts {
    pub bytes_to_pp: u64,
    pub bytes_from_pp: u64,
    pub open_streams: u64,
    pub datagrams: DatagramCounts,
}

impl TunnelStats {
    pub fn counts(&self) -> TunnelCounts {
        TunnelCounts {
            bytes_to_pp: self.to_pp.load(Ordering::Relaxed),
            bytes_from_pp: self.from_pp.load(Ordering::Relaxed),
            open_streams: self.open_streams.load(Ordering::Relaxed),
            datagrams: self.datagrams.counts(),
        }
    }

    /// Counts one open stream until the guard is dropped.
    pub fn open_stream(self: &Arc<Self>) -> OpenStream {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        OpenStream(self.clone())
    }
}

/// The counters of a PP's WN-side targets, by tunnel name; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct TargetStats(Arc<Vec<(String, Arc<TunnelStats>)>>);

impl TargetStats {
    /// Zeroed counters for every tag of `targets`.
    pub fn new(targets: &pp_tag::TunnelSet) -> Self {
        Self(Arc::new(
            targets
                .iter()
                .map(|tag| (tag.name().to_owned(), Arc::default()))
                .collect(),
        ))
    }

    /// The counters of target `name` (fresh ones for an unknown name).
    pub fn of(&self, name: &str) -> Arc<TunnelStats> {
        self.0
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, stats)| stats.clone())
            .unwrap_or_default()
    }

    /// Every target's name and counters.
    pub fn iter(&self) -> impl Iterator<Item = &(String, Arc<TunnelStats>)> {
        self.0.iter()
    }
}

/// Holds one stream in `open_streams`.
pub struct OpenStream(Arc<TunnelStats>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A local socket whose reads (bytes going to the PP) and writes (bytes
/// coming from the PP) are counted in `stats`.
pub struct Counted<S> {
    pub socket: S,
    pub stats: Arc<TunnelStats>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.socket).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.stats.to_pp.fetch_add(read as u64, Ordering::Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.socket).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &polled {
            self.stats
                .from_pp
                .fetch_add(*written as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn bytes_each_way_and_open_streams_are_counted() {
        let stats = Arc::new(TunnelStats::default());
        let (near, mut far) = tokio::io::duplex(64);
        let guard = stats.open_stream();
        let mut counted = Counted {
            socket: near,
            stats: stats.clone(),
        };
        far.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        counted.read_exact(&mut buf).await.unwrap();
        counted.write_all(b"abc").await.unwrap();
        assert_eq!(
            stats.counts(),
            TunnelCounts {
                bytes_to_pp: 5,
                bytes_from_pp: 3,
                open_streams: 1,
                ..TunnelCounts::default()
            }
        );
        drop(guard);
        assert_eq!(stats.counts().open_streams, 0);
    }
}
