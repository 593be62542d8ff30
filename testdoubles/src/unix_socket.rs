//! Unix-socket listeners the way guest-components and the kata-agent
//! create them: the parent directory made if missing, a stale socket from
//! an earlier run removed (anything else at the path is left alone and is
//! an error), then bound. Shared by the AA, CDH and kata-agent doubles.

use std::io;
use std::path::Path;
use tokio::net::UnixListener;

/// Makes `path` usable for a new socket: creates its parent directory and
/// removes a stale socket there. Anything else at `path` is an error.
fn prepare_socket_path(path: &Path) -> io::Result<()> {
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

/// Binds a fresh listener at `path`; the error names the path.
pub fn bind_fresh(path: &Path) -> Result<UnixListener, String> {
    prepare_socket_path(path).map_err(|e| format!("cannot prepare {}: {e}", path.display()))?;
    UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))
}

/// `unix:///a/b` → `/a/b` (guest-components' socket address form).
pub fn path_of_address(address: &str) -> Result<&Path, String> {
    address
        .strip_prefix("unix://")
        .filter(|path| path.starts_with('/'))
        .map(Path::new)
        .ok_or_else(|| format!("socket address {address:?} is not unix:///ABSOLUTE/PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_are_unix_urls_with_absolute_paths() {
        assert_eq!(
            path_of_address("unix:///run/confidential-containers/cdh.sock"),
            Ok(Path::new("/run/confidential-containers/cdh.sock"))
        );
        for bad in ["/run/x.sock", "unix://run/x.sock", "tcp://127.0.0.1:1", ""] {
            assert!(path_of_address(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn a_regular_file_at_the_socket_path_is_not_removed() {
        let dir = std::env::temp_dir().join(format!("unix-socket-test-{}", std::process::id()));
        let file = dir.join("agent.sock");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&file, b"keep me").unwrap();
        assert!(prepare_socket_path(&file).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_parent_directory_is_created() {
        let dir = std::env::temp_dir().join(format!("unix-socket-parent-{}", std::process::id()));
        let path = dir.join("sub").join("agent.sock");
        prepare_socket_path(&path).unwrap();
        assert!(path.parent().unwrap().is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_stale_socket_file_is_replaced() {
        let dir = std::env::temp_dir().join(format!("pp-unix-socket-{}", std::process::id()));
        let path = dir.join("sub/x.sock");
        drop(bind_fresh(&path).unwrap());
        assert!(path.exists(), "the socket file stays after the listener");
        let listener = bind_fresh(&path).unwrap();
        assert!(tokio::net::UnixStream::connect(&path).await.is_ok());
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
