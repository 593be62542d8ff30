//! [`pump`]: joins a mux stream to a local socket (TCP or unix) until both
//! directions have ended.
//!
//! Contract: bytes flow both ways; EOF on one side becomes a half-close on
//! the other (END towards the peer, `shutdown(Write)` towards the socket).
//! If either side fails, the mux stream is reset with the error as reason.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::MuxStream;

/// Copy buffer each way: two mux frames (tokio's default is 8 KiB, which
/// splits every frame and doubles the wake-ups).
const COPY_BYTES: usize = 32 * 1024;

/// Copies between `stream` and `target` in both directions; returns the
/// bytes moved (stream → target, target → stream).
pub async fn pump<T>(mut stream: MuxStream, mut target: T) -> io::Result<(u64, u64)>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional_with_sizes(&mut stream, &mut target, COPY_BYTES, COPY_BYTES)
        .await
    {
        Ok(moved) => Ok(moved),
        Err(e) => {
            stream.reset(&format!("tunnel target failed: {e}"));
            Err(e)
        }
    }
}
