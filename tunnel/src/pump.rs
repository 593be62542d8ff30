//! [`pump`]: joins a mux stream to a local socket (TCP or unix) until both
//! directions have ended.
//!
//! Contract: bytes flow both ways; EOF on one side becomes a half-close on
//! the other (END towards the peer, `shutdown(Write)` towards the socket).
//! If either side fails, the mux stream is reset with the error as reason.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::MuxStream;

/// Copies between `stream` and `target` in both directions; returns the
/// bytes moved (stream → target, target → stream).
pub async fn pump<T>(mut stream: MuxStream, mut target: T) -> io::Result<(u64, u64)>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional(&mut stream, &mut target).await {
        Ok(moved) => Ok(moved),
        Err(e) => {
            stream.reset(&format!("tunnel target failed: {e}"));
            Err(e)
        }
    }
}
