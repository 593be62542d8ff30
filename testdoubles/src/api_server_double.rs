//! The api-server-rest TEST DOUBLE as its own process: the REST front of
//! CDH on 127.0.0.1:8006 (loopback peers only, `GET /cdh/resource/...`,
//! routing and answers in `cdh_double`), asking the CDH double behind
//! CDH's unix socket for each resource. While CDH is not there it answers
//! 500 with a short text (`ttrpc request error: ...`), like the real one.

use std::path::PathBuf;

use tokio::net::UnixStream;

use crate::cdh_double::{FETCH_TIMEOUT, RESOURCE_PREFIX, ResourceSource};
use crate::http1::Connection;
use crate::resource_path::ResourcePath;

/// CDH behind its unix socket.
pub struct CdhSocket {
    pub path: PathBuf,
}

impl CdhSocket {
    async fn ask(&self, resource: &ResourcePath) -> Result<Vec<u8>, String> {
        let path = self.path.display();
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|e| format!("ttrpc request error: cannot reach CDH at {path}: {e}"))?;
        let mut connection = Connection::new(stream);
        let target = format!("{RESOURCE_PREFIX}{resource}");
        connection
            .write_request("GET", &target, &[("Host", "cdh")], b"")
            .await
            .map_err(|e| format!("ttrpc request error: {e}"))?;
        let response = connection
            .read_response()
            .await
            .map_err(|e| format!("ttrpc request error: {e}"))?;
        if response.status == 200 {
            Ok(response.body)
        } else {
            Err(String::from_utf8_lossy(&response.body).into_owned())
        }
    }
}

impl ResourceSource for CdhSocket {
    async fn get(&self, resource: &ResourcePath) -> Result<Vec<u8>, String> {
        // CDH bounds its KBS round trip by FETCH_TIMEOUT; a little more here.
        let limit = FETCH_TIMEOUT + std::time::Duration::from_secs(5);
        tokio::time::timeout(limit, self.ask(resource))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "ttrpc request error: CDH did not answer {resource}"
                ))
            })
    }
}
