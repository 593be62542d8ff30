//! The kata-agent TEST DOUBLE: accepts connections on a unix socket or a
//! TCP address and echoes every byte back. After the peer's end of stream
//! it flushes what is left and shuts down its writing side (half-close).
//! Each connection runs in its own task.

use std::io;
use std::path::Path;
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

/// Makes `path` usable for a new socket: creates its parent directory and
/// removes a stale socket there. Anything else at `path` is an error.
pub fn prepare_socket_path(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            std::fs::remove_file(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; not removing it",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
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

    #[test]
    fn a_regular_file_at_the_socket_path_is_not_removed() {
        let dir = std::env::temp_dir().join(format!("agent-echo-test-{}", std::process::id()));
        let file = dir.join("agent.sock");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&file, b"keep me").unwrap();
        assert!(prepare_socket_path(&file).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_parent_directory_is_created() {
        let dir = std::env::temp_dir().join(format!("agent-echo-parent-{}", std::process::id()));
        let path = dir.join("sub").join("agent.sock");
        prepare_socket_path(&path).unwrap();
        assert!(path.parent().unwrap().is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
