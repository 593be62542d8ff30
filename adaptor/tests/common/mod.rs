//! Shared helpers of the adaptor's integration tests: an in-process KBS
//! test double (pp-testdoubles) with a fresh admin key, and an adaptor
//! configuration in a temporary directory pointing at it.
#![allow(dead_code)] // each test binary uses a different subset

pub mod fake_pp;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use pp_adaptor::admin_jwt::{AdminClaims, AdminTokenSigner};
use pp_adaptor::config::{AdaptorConfig, Timing};
use pp_adaptor::egress_policy::EgressPolicy;
use pp_adaptor::kbs_proxy::KbsProxy;
use pp_adaptor::keystore::KeyStoreConfig;
use pp_adaptor::relay_check::RelayCheck;
use pp_adaptor::sid::Sid;
use pp_adaptor::trustee_admin::TrusteeAdmin;
use pp_adaptor::upstream::{TrusteeUrl, Upstream};
use pp_testdoubles::admin_auth::AdminVerifier;
use pp_testdoubles::kbs_double::KbsDouble;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Sends the adaptor's log lines to the test output (shown on failure).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
}

/// A KBS double serving on loopback until the test ends.
pub struct Trustee {
    pub address: SocketAddr,
    pub admin_key: SigningKey,
    double: Arc<KbsDouble>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Trustee {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|task| task.abort());
    }
}

impl Trustee {
    /// Starts a double that trusts `admin_key` for its admin API.
    pub async fn start(admin_key: SigningKey) -> Self {
        Self::start_with_identity_provider(admin_key, None, None).await
    }

    /// Starts a double whose admin identity provider also names an issuer
    /// and/or an audience, as Trustee deployments normally do.
    pub async fn start_with_identity_provider(
        admin_key: SigningKey,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Self {
        let verifier = AdminVerifier {
            key: admin_key.verifying_key(),
            issuer: issuer.map(str::to_owned),
            audience: audience.map(str::to_owned),
        };
        let double = Arc::new(KbsDouble::new(verifier).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let served = Arc::clone(&double);
        let task = tokio::spawn(async move {
            let _ = pp_testdoubles::kbs_double::server::serve(listener, served).await;
        });
        Self {
            address,
            admin_key,
            double,
            tasks: vec![task],
        }
    }

    /// Starts a double that also serves https with `tls` (a certificate for
    /// `localhost` from the test's own CA) on the returned address; the
    /// plain listener stays for the test's own look at the double.
    pub async fn start_tls(
        admin_key: SigningKey,
        tls: tokio_rustls::TlsAcceptor,
    ) -> (Self, SocketAddr) {
        let mut trustee = Self::start(admin_key).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_address = listener.local_addr().unwrap();
        let double = Arc::clone(&trustee.double);
        trustee.tasks.push(tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (tls, double) = (tls.clone(), Arc::clone(&double));
                tokio::spawn(async move {
                    if let Ok(stream) = tls.accept(socket).await {
                        let _ =
                            pp_testdoubles::kbs_double::server::serve_connection(stream, &double)
                                .await;
                    }
                });
            }
        }));
        (trustee, tls_address)
    }

    /// An admin API client for this double, through `upstream`.
    pub fn admin(&self, upstream: Upstream) -> TrusteeAdmin {
        TrusteeAdmin::new(
            upstream,
            AdminTokenSigner::new(self.admin_key.clone(), AdminClaims::default()),
        )
    }

    pub fn url(&self) -> TrusteeUrl {
        TrusteeUrl::parse(&format!("http://{}", self.address)).unwrap()
    }

    /// The double's test listing: resource path → size in bytes.
    pub async fn resources(&self) -> Vec<(String, u64)> {
        let text = raw_get(self.address, "/kbs-double/resources").await;
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let listing: serde_json::Value = serde_json::from_str(body).unwrap();
        listing["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    entry["path"].as_str().unwrap().to_owned(),
                    entry["bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// The paths of the resources the double holds, sorted.
    pub async fn resource_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .resources()
            .await
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        paths.sort();
        paths
    }
}

/// Serves the KBS proxy for `sid` on a loopback TCP listener (each accepted
/// connection standing in for one KBS tunnel stream).
pub async fn proxy_on_tcp(upstream: Upstream, sid: &str) -> SocketAddr {
    let proxy = KbsProxy::new(upstream, Sid::parse(sid).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let proxy = proxy.clone();
            tokio::spawn(async move { proxy.serve_stream(socket).await });
        }
    });
    address
}

/// What a KBS client asking for `default/pp-sid/privateKey` through the
/// proxy at `proxy` gets, after the whole KBS conversation.
pub async fn fetch_pp_sid_key(proxy: SocketAddr) -> Vec<u8> {
    let url = pp_testdoubles::kbs_url::KbsUrl::parse(&format!("http://{proxy}")).unwrap();
    let resource =
        pp_testdoubles::resource_path::ResourcePath::parse("default/pp-sid/privateKey").unwrap();
    pp_testdoubles::kbs_client::fetch_resource(url, None, &resource)
        .await
        .unwrap()
}

/// One `GET` with `Connection: close`, answered as text.
async fn raw_get(address: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    answer
}

/// A temporary directory with an admin key file and key/state directories.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `key` as PKCS#8 PEM (as `openssl genpkey -algorithm ed25519` does).
    pub fn write_admin_key(&self, key: &SigningKey) -> PathBuf {
        let path = self.path("admin.pem");
        std::fs::write(
            &path,
            key.to_pkcs8_pem(Default::default()).unwrap().as_bytes(),
        )
        .unwrap();
        // The adaptor refuses private keys that others can read.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        path
    }

    /// A configuration with default timing and no PPs.
    pub fn config(&self, trustee: TrusteeUrl, admin_key_path: PathBuf) -> AdaptorConfig {
        AdaptorConfig {
            trustee_url: trustee,
            trustee_ca: None,
            admin_key_path,
            admin_claims: AdminClaims::default(),
            key_store: KeyStoreConfig::Directory(self.path("keys")),
            state_dir: self.path("state"),
            control_socket: self.path("control.sock"),
            timing: Timing::default(),
            egress: EgressPolicy::default(),
            relay_check: RelayCheck::default(),
            pps: Vec::new(),
        }
    }
}

/// Publishes `text` as `dir/NAME` the way kubelet updates a Secret volume:
/// `NAME` is a symlink through `..data` into a timestamped directory, and
/// an update swaps `..data` atomically (rename of a new symlink over it).
pub fn kubelet_publish(dir: &std::path::Path, name: &str, generation: u32, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    let versioned = dir.join(format!("..2026_12_06_{generation:02}"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join(name), text).unwrap();
    std::fs::set_permissions(versioned.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    let staged = dir.join("..data_tmp");
    std::os::unix::fs::symlink(versioned.file_name().unwrap(), &staged).unwrap();
    std::fs::rename(&staged, dir.join("..data")).unwrap();
    if std::fs::symlink_metadata(dir.join(name)).is_err() {
        std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
    }
}
