//! The kata-agent TEST DOUBLE: accepts connections on a unix socket or a
//! TCP address and echoes every byte back. After the peer's end of stream
//! it flushes what is left and shuts down its writing side (half-close).
//! Each connection runs in its own task.

use std::io;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

/// Echoes `stream` until the peer's EOF, then shuts down writing. Returns
/// the number of bytes echoed.
pub async fn echo<S: AsyncRead + AsyncWrite>(stream: S) -> io::Result<u64> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let echoed = tokio::io::copy(&mut reader, &mut writer).await?;
    writer.shutdown().await?;
    Ok(echoed)
}

fn spawn_echo<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S, peer: String) {
    tokio::spawn(async move {
        match echo(stream).await {
            Ok(bytes) => println!("agent-echo: {peer} closed after {bytes} bytes echoed"),
            Err(e) => println!("agent-echo: {peer} failed: {e}"),
        }
    });
}

/// Echoes on every connection to the unix listener, forever.
pub async fn serve_unix(listener: UnixListener) -> io::Result<()> {
    let mut count = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        count += 1;
        spawn_echo(stream, format!("unix connection {count}"));
    }
}

/// Echoes on every connection to the TCP listener, forever.
pub async fn serve_tcp(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        spawn_echo(stream, peer.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn bytes_come_back_and_eof_is_passed_on() {
        let (mut client, server) = tokio::io::duplex(64);
        let echo_task = tokio::spawn(echo(server));
        client.write_all(b"hello agent").await.unwrap();
        client.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"hello agent");
        assert_eq!(echo_task.await.unwrap().unwrap(), 11);
    }
}
