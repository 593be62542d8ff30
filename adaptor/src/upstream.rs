//! The HTTP client side towards Trustee, shared by the admin client and the
//! KBS reverse proxy: the configured base URL and one pooled hyper client,
//! over TLS when the URL is https.
//!
//! Contract: [`TrusteeUrl::parse`] accepts only `http://HOST[:PORT]` or
//! `https://HOST[:PORT]`, with no path, query or credentials;
//! [`Upstream::new`] builds the client (for https it loads the trust
//! anchors: the CA file named in the configuration, else the host's CA
//! store, and fails with the reason when there is none); [`Upstream::send`]
//! sends a request whose URI is built by [`Upstream::uri_for`] and returns
//! Trustee's response with the body still streaming. An https upstream
//! never falls back to plain HTTP.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::Uri;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The request body type both users of the upstream client send.
pub type UpstreamBody = BoxBody<Bytes, hyper::Error>;

/// Trustee's base URL, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrusteeUrl {
    https: bool,
    authority: hyper::http::uri::Authority,
}

/// Why a Trustee URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrusteeUrlError {
    #[error("the Trustee URL {url:?} is not a URL: {reason}")]
    NotAUrl { url: String, reason: String },
    #[error("the Trustee URL {url:?} must start with http:// or https://")]
    NotHttp { url: String },
    #[error(
        "the Trustee URL {url:?} must be only http(s)://HOST[:PORT], without path, query or user"
    )]
    ExtraParts { url: String },
}

impl TrusteeUrl {
    pub fn parse(url: &str) -> Result<Self, TrusteeUrlError> {
        let uri: Uri = url.parse().map_err(|error: hyper::http::uri::InvalidUri| {
            TrusteeUrlError::NotAUrl {
                url: url.to_owned(),
                reason: error.to_string(),
            }
        })?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(TrusteeUrlError::NotHttp {
                    url: url.to_owned(),
                });
            }
        };
        let path_is_empty = matches!(uri.path(), "" | "/");
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| TrusteeUrlError::ExtraParts {
                url: url.to_owned(),
            })?;
        if !path_is_empty || uri.query().is_some() || authority.as_str().contains('@') {
            return Err(TrusteeUrlError::ExtraParts {
                url: url.to_owned(),
            });
        }
        Ok(Self { https, authority })
    }

    /// `HOST[:PORT]` as it goes into the `Host` header.
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// Whether the host is this machine (`localhost` or a loopback address),
    /// where plain http crosses no network.
    pub fn is_loopback(&self) -> bool {
        let host = self.authority.host();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_loopback())
    }

    fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

impl fmt::Display for TrusteeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.authority)
    }
}

impl<'de> serde::Deserialize<'de> for TrusteeUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Why the client for an https Trustee could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read the Trustee CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("the Trustee CA file {path} holds no certificate (expected PEM CERTIFICATE blocks)")]
    NoCertificate { path: PathBuf },
    #[error(
        "no CA certificate in the host's store ({reason}); set trustee_ca to the CA that signed Trustee's certificate"
    )]
    NoHostCertificates { reason: String },
    #[error("cannot set up TLS to Trustee: {0}")]
    Tls(#[from] rustls::Error),
}

/// One pooled HTTP/1.1 client to Trustee.
#[derive(Clone)]
pub struct Upstream {
    url: TrusteeUrl,
    client: Client<HttpsConnector<HttpConnector>, UpstreamBody>,
}

impl Upstream {
    /// A client for `url`. For an https URL, Trustee's certificate must
    /// chain to a CA in `ca_file` (PEM) or, when that is None, in the host's
    /// CA store, and must name the URL's host.
    pub fn new(url: TrusteeUrl, ca_file: Option<&Path>) -> Result<Self, TrustError> {
        let builder = HttpsConnectorBuilder::new();
        let connector = if url.https {
            builder
                .with_tls_config(client_tls(trust_anchors(ca_file)?)?)
                .https_only()
        } else {
            builder
                .with_tls_config(client_tls(rustls::RootCertStore::empty())?)
                .https_or_http()
        }
        .enable_http1()
        .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { url, client })
    }

    pub fn url(&self) -> &TrusteeUrl {
        &self.url
    }

    /// The absolute URI of `path_and_query` (which starts with `/`) at Trustee.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, hyper::http::Error> {
        Uri::builder()
            .scheme(self.url.scheme())
            .authority(self.url.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }

    /// Sends `request` to Trustee.
    pub async fn send(
        &self,
        request: hyper::Request<UpstreamBody>,
    ) -> Result<hyper::Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(request).await
    }
}

/// The CAs an https Trustee's certificate may chain to.
fn trust_anchors(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TrustError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca_error = |reason: String| TrustError::CaFile {
                path: path.to_owned(),
                reason,
            };
            let certificates =
                CertificateDer::pem_file_iter(path).map_err(|error| ca_error(error.to_string()))?;
            for certificate in certificates {
                let certificate = certificate.map_err(|error| ca_error(error.to_string()))?;
                roots
                    .add(certificate)
                    .map_err(|error| ca_error(error.to_string()))?;
            }
            if roots.is_empty() {
                return Err(TrustError::NoCertificate {
                    path: path.to_owned(),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let reason = match found.errors.first() {
                    Some(error) => error.to_string(),
                    None => "the store is empty".to_owned(),
                };
                return Err(TrustError::NoHostCertificates { reason });
            }
        }
    }
    Ok(roots)
}

fn client_tls(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_or_https_host_and_port_is_accepted() {
        let url = TrusteeUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(url.authority(), "127.0.0.1:8080");
        assert_eq!(url.to_string(), "http://127.0.0.1:8080");
        assert!(!url.is_https());
        assert!(TrusteeUrl::parse("http://kbs.example/").is_ok());
        let url = TrusteeUrl::parse("https://kbs.example:8443").unwrap();
        assert!(url.is_https());
        assert_eq!(url.to_string(), "https://kbs.example:8443");
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:8080",
        ] {
            assert!(TrusteeUrl::parse(url).unwrap().is_loopback(), "{url}");
        }
        for url in [
            "http://10.0.0.1:8080",
            "http://kbs.example",
            "http://[2001:db8::1]",
        ] {
            assert!(!TrusteeUrl::parse(url).unwrap().is_loopback(), "{url}");
        }
    }

    #[test]
    fn other_schemes_paths_and_credentials_are_refused() {
        assert!(matches!(
            TrusteeUrl::parse("ftp://kbs:8080"),
            Err(TrusteeUrlError::NotHttp { .. })
        ));
        assert!(matches!(
            TrusteeUrl::parse("https://kbs:8080/kbs"),
            Err(TrusteeUrlError::ExtraParts { .. })
        ));
        assert!(matches!(
            TrusteeUrl::parse("http://u:p@kbs:8080"),
            Err(TrusteeUrlError::ExtraParts { .. })
        ));
        assert!(matches!(
            TrusteeUrl::parse("kbs:8080"),
            Err(TrusteeUrlError::NotHttp { .. })
        ));
    }

    #[test]
    fn requests_use_the_urls_scheme() {
        let upstream = Upstream::new(TrusteeUrl::parse("http://kbs:8080").unwrap(), None).unwrap();
        assert_eq!(
            upstream.uri_for("/kbs/v0/auth").unwrap().to_string(),
            "http://kbs:8080/kbs/v0/auth"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let url = TrusteeUrl::parse("https://kbs:8443").unwrap();
        let error = Upstream::new(url.clone(), Some(&path)).err().unwrap();
        assert!(matches!(error, TrustError::NoCertificate { .. }), "{error}");
        let error = Upstream::new(url, Some(&dir.path().join("missing.pem")))
            .err()
            .unwrap();
        assert!(matches!(error, TrustError::CaFile { .. }), "{error}");
        assert!(error.to_string().contains("missing.pem"), "{error}");
    }
}
