//! The guest side of the KBS protocol, as guest-components' CDH runs it
//! for one resource: `auth`, `attest` with sample evidence bound to a fresh
//! P-256 TEE key, then `GET resource` and JWE decryption with that key. One
//! HTTP/1.1 connection is kept across the three requests (reopened when the
//! server closes it); every failure is an error that names the step.

use std::fmt;
use std::time::Duration;
use tokio::net::TcpStream;

use crate::http1::{Connection, HttpError, Response, keeps_alive};
use crate::jwe::{decrypt, parse_jwe};
use crate::kbs_error::parse_error_detail;
use crate::kbs_protocol::{
    SESSION_COOKIE, attestation_request, auth_request, parse_attestation_response, parse_challenge,
    session_from_set_cookie,
};
use crate::kbs_url::KbsUrl;
use crate::resource_path::ResourcePath;
use crate::tee_key::{generate_secret_key, jwk_from_public_key};

/// How long connecting to the KBS may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed resource fetch: the protocol step and what went wrong.
#[derive(Debug)]
pub struct FetchError {
    pub step: &'static str,
    pub why: String,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.step, self.why)
    }
}

impl std::error::Error for FetchError {}

fn failed(step: &'static str) -> impl Fn(String) -> FetchError {
    move |why| FetchError { step, why }
}

/// An HTTP/1.1 client for one KBS, reusing its connection while allowed.
struct KbsConnection {
    url: KbsUrl,
    connection: Option<Connection<TcpStream>>,
}

impl KbsConnection {
    async fn connect(&self) -> Result<Connection<TcpStream>, String> {
        let addr = self.url.addr;
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => Ok(Connection::new(stream)),
            Ok(Err(e)) => Err(format!("cannot connect to KBS at {addr}: {e}")),
            Err(_) => Err(format!("connecting to KBS at {addr} timed out")),
        }
    }

    async fn exchange(
        connection: &mut Connection<TcpStream>,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        connection
            .write_request(method, target, headers, body)
            .await?;
        connection.read_response().await
    }

    async fn request(
        &mut self,
        method: &str,
        target: &str,
        cookie: Option<&str>,
        body: &[u8],
    ) -> Result<Response, String> {
        let host = self.url.host_header();
        let cookie = cookie.map(|id| format!("{SESSION_COOKIE}={id}"));
        let mut headers = vec![
            ("Host", host.as_str()),
            ("Content-Type", "application/json"),
        ];
        if let Some(cookie) = &cookie {
            headers.push(("Cookie", cookie.as_str()));
        }
        let (mut connection, reused) = match self.connection.take() {
            Some(connection) => (connection, true),
            None => (self.connect().await?, false),
        };
        let mut result = Self::exchange(&mut connection, method, target, &headers, body).await;
        if reused && matches!(result, Err(HttpError::UnexpectedEof | HttpError::Io(_))) {
            // The server closed the idle connection: retry once on a new one.
            connection = self.connect().await?;
            result = Self::exchange(&mut connection, method, target, &headers, body).await;
        }
        let response = result.map_err(|e| e.to_string())?;
        if keeps_alive(&response.headers) {
            self.connection = Some(connection);
        }
        Ok(response)
    }
}

fn expect_ok(response: &Response) -> Result<(), String> {
    if response.status == 200 {
        Ok(())
    } else {
        Err(format!(
            "KBS answered HTTP {}: {}",
            response.status,
            parse_error_detail(&response.body)
        ))
    }
}

/// Runs auth, attest and resource retrieval; returns the plaintext.
pub async fn fetch_resource(
    url: KbsUrl,
    initdata_toml: Option<&str>,
    resource: &ResourcePath,
) -> Result<Vec<u8>, FetchError> {
    let mut kbs = KbsConnection {
        url,
        connection: None,
    };

    let auth_body = auth_request().to_string();
    let challenge = kbs
        .request("POST", "/kbs/v0/auth", None, auth_body.as_bytes())
        .await
        .map_err(failed("KBS auth"))?;
    expect_ok(&challenge).map_err(failed("KBS auth"))?;
    let session = session_from_set_cookie(&challenge.headers)
        .ok_or_else(|| failed("KBS auth")(format!("no {SESSION_COOKIE} cookie in the answer")))?;
    let nonce = parse_challenge(&challenge.body).map_err(|e| failed("KBS auth")(e.to_string()))?;

    let tee_key = generate_secret_key().map_err(|e| failed("TEE key generation")(e.to_string()))?;
    let tee_pubkey = jwk_from_public_key(&tee_key.public_key(), true);
    let attestation = attestation_request(&nonce, &tee_pubkey, initdata_toml)
        .map_err(|e| failed("evidence")(e.to_string()))?
        .to_string();
    let answer = kbs
        .request(
            "POST",
            "/kbs/v0/attest",
            Some(&session),
            attestation.as_bytes(),
        )
        .await
        .map_err(failed("KBS attestation"))?;
    expect_ok(&answer).map_err(failed("KBS attestation"))?;
    parse_attestation_response(&answer.body)
        .map_err(|e| failed("KBS attestation")(e.to_string()))?;

    let target = format!("/kbs/v0/resource/{resource}");
    let sealed = kbs
        .request("GET", &target, Some(&session), b"")
        .await
        .map_err(failed("KBS resource retrieval"))?;
    expect_ok(&sealed)
        .map_err(|why| failed("KBS resource retrieval")(format!("{resource}: {why}")))?;
    parse_jwe(&sealed.body)
        .and_then(|jwe| decrypt(&tee_key, &jwe))
        .map_err(|e| failed("resource decryption")(e.to_string()))
}
