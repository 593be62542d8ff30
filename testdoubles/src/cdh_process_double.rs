//! The CDH TEST DOUBLE as its own process (guest-components'
//! `confidential-data-hub`, ttrpc build), as the production image starts
//! it: `-c cdh.toml` must be readable TOML with `[kbc] url` (the real one
//! exits 1 otherwise), AA's socket must accept a connection (the real one
//! exits 1 when AA is not up), then it listens on `socket` (default: CDH's
//! real path). Each resource request checks AA again and runs a full KBS
//! round trip ([`CdhConfig`]) through the configured KBS URL, without
//! init-data, as v0.21.0's KBS client does. It speaks HTTP/1.1 on its unix
//! socket instead of ttrpc: only the api-server-rest double talks to it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio::net::UnixStream;

use crate::cdh_double::{CdhConfig, ResourceSource};
use crate::kbs_url::KbsUrl;
use crate::resource_path::ResourcePath;
use crate::unix_socket::path_of_address;

/// CDH's ttrpc socket in guest-components v0.21.0 (its default).
pub const CDH_SOCKET_ADDRESS: &str = "unix:///run/confidential-containers/cdh.sock";

/// What the double reads from `cdh.toml`.
#[derive(Debug, PartialEq)]
pub struct CdhFile {
    pub kbs: KbsUrl,
    pub socket: PathBuf,
}

#[derive(Deserialize)]
struct File {
    socket: Option<String>,
    kbc: Kbc,
}

#[derive(Deserialize)]
struct Kbc {
    url: String,
}

impl CdhFile {
    /// Parses `cdh.toml`; other keys are ignored, as the real CDH ignores
    /// what it does not use here.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let kbs = KbsUrl::parse(&file.kbc.url).map_err(|e| format!("[kbc] url: {e}"))?;
        let address = file.socket.as_deref().unwrap_or(CDH_SOCKET_ADDRESS);
        let socket = path_of_address(address)?.to_path_buf();
        Ok(Self { kbs, socket })
    }
}

/// CDH in front of the KBS, with AA checked per request.
pub struct CdhWithAa {
    pub cdh: CdhConfig,
    pub aa_socket: PathBuf,
}

/// Whether AA's socket accepts a connection; the error says where and why.
pub async fn reach_aa(aa_socket: &Path) -> Result<(), String> {
    UnixStream::connect(aa_socket).await.map(drop).map_err(|e| {
        format!(
            "attestation agent at {} is unreachable: {e}",
            aa_socket.display()
        )
    })
}

impl ResourceSource for CdhWithAa {
    async fn get(&self, resource: &ResourcePath) -> Result<Vec<u8>, String> {
        reach_aa(&self.aa_socket)
            .await
            .map_err(|e| format!("get resource {resource}: {e}"))?;
        self.cdh.get(resource).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kbs_url_and_socket_come_from_cdh_toml() {
        let file = CdhFile::parse(
            "credentials = []\n[kbc]\nname = \"cc_kbc\"\nurl = \"http://127.0.0.1:8080\"\n[image]\nx = 1\n",
        )
        .unwrap();
        assert_eq!(file.kbs, KbsUrl::parse("http://127.0.0.1:8080").unwrap());
        assert_eq!(
            file.socket,
            Path::new("/run/confidential-containers/cdh.sock")
        );
        let file = CdhFile::parse(
            "socket = \"unix:///tmp/c.sock\"\n[kbc]\nname = \"cc_kbc\"\nurl = \"http://127.0.0.1:1\"\n",
        )
        .unwrap();
        assert_eq!(file.socket, Path::new("/tmp/c.sock"));
    }

    #[test]
    fn a_cdh_toml_the_real_cdh_cannot_use_is_refused() {
        for bad in [
            "[kbc",
            "socket = \"unix:///x\"",
            "[kbc]\nname = \"cc_kbc\"",
            "[kbc]\nurl = \"http://kbs.example\"",
            "socket = \"/relative\"\n[kbc]\nurl = \"http://127.0.0.1:1\"",
        ] {
            assert!(CdhFile::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[tokio::test]
    async fn a_request_fails_when_aa_is_gone() {
        let cdh = CdhWithAa {
            cdh: CdhConfig {
                kbs: KbsUrl::parse("http://127.0.0.1:1").unwrap(),
                initdata_toml: None,
            },
            aa_socket: PathBuf::from("/nonexistent/aa.sock"),
        };
        let why = cdh
            .get(&ResourcePath::parse("a/b/c").unwrap())
            .await
            .unwrap_err();
        assert!(
            why.contains("attestation agent at /nonexistent/aa.sock is unreachable"),
            "{why}"
        );
    }
}
