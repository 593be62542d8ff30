//! Unix-socket listeners the way guest-components creates them: the parent
//! directory made if missing, a stale socket file from an earlier run
//! removed, then bound. Shared by the AA and CDH doubles.

use std::path::Path;
use tokio::net::UnixListener;

/// Binds a fresh listener at `path`; the error names the path.
pub fn bind_fresh(path: &Path) -> Result<UnixListener, String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove the old {}: {e}", path.display())),
    }
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
