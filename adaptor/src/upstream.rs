//! The HTTP client side towards Trustee, shared by the admin client and the
//! KBS reverse proxy: the configured base URL and one pooled hyper client.
//!
//! Contract: [`TrusteeUrl::parse`] accepts only `http://HOST[:PORT]` with no
//! path, query or credentials (https is not implemented: see
//! docs/decisions/adaptor.md); [`Upstream::send`] sends a request whose URI
//! is built by [`Upstream::uri_for`] and returns Trustee's response with the
//! body still streaming.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::Uri;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::fmt;

/// The request body type both users of the upstream client send.
pub type UpstreamBody = BoxBody<Bytes, hyper::Error>;

/// Trustee's base URL, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrusteeUrl {
    authority: hyper::http::uri::Authority,
}

/// Why a Trustee URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrusteeUrlError {
    #[error("the Trustee URL {url:?} is not a URL: {reason}")]
    NotAUrl { url: String, reason: String },
    #[error("the Trustee URL {url:?} must start with http:// (https is not supported yet)")]
    NotHttp { url: String },
    #[error("the Trustee URL {url:?} must be only http://HOST[:PORT], without path, query or user")]
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
        if uri.scheme_str() != Some("http") {
            return Err(TrusteeUrlError::NotHttp {
                url: url.to_owned(),
            });
        }
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
        Ok(Self { authority })
    }

    /// `HOST[:PORT]` as it goes into the `Host` header.
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }
}

impl fmt::Display for TrusteeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

impl<'de> serde::Deserialize<'de> for TrusteeUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// One pooled HTTP/1.1 client to Trustee.
#[derive(Clone)]
pub struct Upstream {
    url: TrusteeUrl,
    client: Client<HttpConnector, UpstreamBody>,
}

impl Upstream {
    pub fn new(url: TrusteeUrl) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { url, client }
    }

    pub fn url(&self) -> &TrusteeUrl {
        &self.url
    }

    /// The absolute URI of `path_and_query` (which starts with `/`) at Trustee.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, hyper::http::Error> {
        Uri::builder()
            .scheme("http")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_host_and_port_is_accepted() {
        let url = TrusteeUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(url.authority(), "127.0.0.1:8080");
        assert_eq!(url.to_string(), "http://127.0.0.1:8080");
        assert!(TrusteeUrl::parse("http://kbs.example/").is_ok());
    }

    #[test]
    fn https_paths_and_credentials_are_refused() {
        assert!(matches!(
            TrusteeUrl::parse("https://kbs:8080"),
            Err(TrusteeUrlError::NotHttp { .. })
        ));
        assert!(matches!(
            TrusteeUrl::parse("http://kbs:8080/kbs"),
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
}
