//! Request routing and the protocol steps of the KBS double. Every answer
//! is built here, including Trustee-shaped errors; nothing here does I/O.

use serde_json::{Value, json};
use std::sync::Mutex;

use super::store::{SESSION_LIFETIME_SECS, Session, Store};
use crate::admin_auth::AdminVerifier;
use crate::admin_messages::{
    parse_attestation_policy, parse_reference_value_message, parse_resource_policy,
};
use crate::evidence::{runtime_data_digest, verify_sample_evidence};
use crate::http1::{Request, Response, header};
use crate::jwe;
use crate::kbs_error::KbsError;
use crate::kbs_protocol::{PROTOCOL_VERSION, SESSION_COOKIE, session_from_cookie};
use crate::kbs_token::TokenIssuer;
use crate::random::{random_bytes, random_hex};
use crate::resource_path::{ResourcePath, is_valid_segment};
use crate::tee_key::public_key_from_jwk;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The answer to one request and the line to log about it.
#[derive(Debug)]
pub struct Outcome {
    pub response: Response,
    /// What happened, e.g. `released resource default/pp-abc/privateKey`.
    pub summary: String,
}

impl Outcome {
    fn ok(response: Response, summary: impl Into<String>) -> Self {
        Self {
            response,
            summary: summary.into(),
        }
    }

    fn error(error: KbsError, summary: impl Into<String>) -> Self {
        Self {
            response: error.to_response(),
            summary: summary.into(),
        }
    }

    fn refused(error: KbsError) -> Self {
        let summary = error.detail.clone();
        Self::error(error, summary)
    }

    /// The log line: `kbs-double: METHOD PATH -> STATUS SUMMARY`.
    pub fn log_line(&self, request: &Request) -> String {
        format!(
            "kbs-double: {} {} -> {} {}",
            request.head.method,
            request.head.target.escape_debug(),
            self.response.status,
            self.summary.escape_debug()
        )
    }
}

/// The KBS double: its token key, its admin checks and its store.
pub struct KbsDouble {
    tokens: TokenIssuer,
    admin: AdminVerifier,
    store: Mutex<Store>,
}

fn attestation_error(detail: impl Into<String>) -> KbsError {
    KbsError::new(401, "AttestationError", detail)
}

fn json_response(value: &Value) -> Response {
    Response::new(200, "application/json", value.to_string())
}

fn parse_json_object(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

impl KbsDouble {
    /// A double with a fresh token key and an empty store.
    pub fn new(admin: AdminVerifier) -> Result<Self, crate::random::RandomError> {
        Ok(Self {
            tokens: TokenIssuer::generate()?,
            admin,
            store: Mutex::new(Store::default()),
        })
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers one request at time `now` (Unix seconds).
    pub fn handle(&self, request: &Request, now: u64) -> Outcome {
        let path = request.head.target.split('?').next().unwrap_or_default();
        let method = request.head.method.as_str();
        if path == "/kbs-double/resources" && method == "GET" {
            return Outcome::ok(json_response(&self.store().listing()), "listed state");
        }
        let Some(route) = path.strip_prefix("/kbs/v0/") else {
            return Outcome::refused(KbsError::new(
                404,
                "InvalidRequestPath",
                format!("Request path {path} is invalid"),
            ));
        };
        match (method, route) {
            ("POST", "auth") => self.auth(request, now),
            ("POST", "attest") => self.attest(request, now),
            ("POST", "resource-policy") => self.admin_upload(request, now, "resource-policy"),
            ("POST", "attestation-policy") => self.admin_upload(request, now, "attestation-policy"),
            ("POST", "reference-value") => self.admin_upload(request, now, "reference-value"),
            ("GET", _) if route.starts_with("reference-value/") => {
                self.get_reference_value(request, now, route.trim_start_matches("reference-value/"))
            }
            (_, _) if route.starts_with("resource/") => {
                let resource = route.trim_start_matches("resource/");
                match ResourcePath::parse(resource) {
                    Err(e) => {
                        Outcome::refused(KbsError::new(404, "InvalidRequestPath", e.to_string()))
                    }
                    Ok(resource) => match method {
                        "GET" => self.release_resource(request, now, &resource),
                        "POST" | "DELETE" => self.admin_resource(request, now, &resource),
                        _ => Outcome::refused(KbsError::new(
                            404,
                            "InvalidRequestPath",
                            format!("{method} is not served on {path}"),
                        )),
                    },
                }
            }
            _ => Outcome::refused(KbsError::new(
                404,
                "InvalidRequestPath",
                format!("Request path {path} is invalid"),
            )),
        }
    }

    fn auth(&self, request: &Request, now: u64) -> Outcome {
        let Some(body) = parse_json_object(&request.body) else {
            return Outcome::refused(attestation_error(
                "RCAR handshake Auth failed: deserialize Request: not a JSON object",
            ));
        };
        let version = body.get("version").and_then(Value::as_str);
        if version != Some(PROTOCOL_VERSION) {
            return Outcome::refused(attestation_error(format!(
                "RCAR handshake Auth failed: KBS Client Protocol Version Mismatch: expect ={PROTOCOL_VERSION} while the request is {}",
                version.unwrap_or("missing")
            )));
        }
        let tee = body.get("tee").and_then(Value::as_str);
        if tee != Some("sample") {
            return Outcome::refused(attestation_error(format!(
                "RCAR handshake Auth failed: this test double verifies only tee \"sample\", got {tee:?}"
            )));
        }
        if !body.contains_key("extra-params") {
            return Outcome::refused(attestation_error(
                "RCAR handshake Auth failed: deserialize Request: missing field `extra-params`",
            ));
        }
        let (Ok(id), Ok(nonce)) = (random_hex::<16>(), random_bytes::<32>()) else {
            return Outcome::refused(attestation_error("the double's random source failed"));
        };
        let nonce = STANDARD.encode(nonce);
        self.store().insert_session(
            id.clone(),
            Session {
                nonce: nonce.clone(),
                created: now,
                attested_key: None,
            },
            now,
        );
        let response = json_response(&json!({"nonce": nonce, "extra-params": ""})).with_header(
            "set-cookie",
            format!("{SESSION_COOKIE}={id}; Max-Age={SESSION_LIFETIME_SECS}; Path=/"),
        );
        Outcome::ok(response, format!("challenge issued, session {id}"))
    }

    fn attest(&self, request: &Request, now: u64) -> Outcome {
        let fail = |why: String| {
            Outcome::refused(attestation_error(format!(
                "RCAR handshake Attest failed: {why}"
            )))
        };
        let Some(id) = session_from_cookie(&request.head.headers) else {
            return fail("cookie not found".into());
        };
        let Some(nonce) = self.store().session_mut(id, now).map(|s| s.nonce.clone()) else {
            return fail("session not found (unknown or expired kbs-session-id)".into());
        };
        let Some(body) = parse_json_object(&request.body) else {
            return fail("deserialize Attestation: not a JSON object".into());
        };
        let init_data = match body.get("init-data") {
            None | Some(Value::Null) => "no init-data".to_string(),
            Some(init) => match (
                init.get("format").and_then(Value::as_str),
                init.get("body").and_then(Value::as_str),
            ) {
                (Some("toml"), Some(text)) => format!("init-data toml {} bytes", text.len()),
                _ => {
                    return fail(
                        "`init-data` must be {\"format\":\"toml\",\"body\":\"<TOML>\"}".into(),
                    );
                }
            },
        };
        let runtime = body.get("runtime-data");
        let claimed_nonce = runtime.and_then(|r| r.get("nonce")).and_then(Value::as_str);
        let Some(tee_pubkey) = runtime.and_then(|r| r.get("tee-pubkey")) else {
            return fail("`runtime-data.tee-pubkey` missing".into());
        };
        if claimed_nonce != Some(nonce.as_str()) {
            return fail("the nonce in the handshake session is different from the client side in KBS protocol's Attestation message".into());
        }
        if let Err(e) = public_key_from_jwk(tee_pubkey) {
            return fail(format!("`runtime-data.tee-pubkey`: {e}"));
        }
        let evidence = body.get("tee-evidence");
        let primary = evidence.and_then(|e| e.get("primary_evidence"));
        let additional = evidence
            .and_then(|e| e.get("additional_evidence"))
            .and_then(Value::as_str);
        let (Some(primary), Some(additional)) = (primary, additional) else {
            return fail(
                "`tee-evidence` must hold `primary_evidence` and a string `additional_evidence`"
                    .into(),
            );
        };
        let verified = runtime_data_digest(&nonce, tee_pubkey, additional)
            .and_then(|digest| verify_sample_evidence(primary, &digest));
        if let Err(e) = verified {
            return fail(e.to_string());
        }
        if let Some(session) = self.store().session_mut(id, now) {
            session.attested_key = Some(tee_pubkey.clone());
        }
        let token = self.tokens.issue(tee_pubkey, now);
        Outcome::ok(
            json_response(&json!({"token": token})),
            format!("attested session {id} (sample evidence, {init_data})"),
        )
    }

    fn attested_key(&self, request: &Request, now: u64) -> Result<Value, KbsError> {
        if let Some(token) =
            header(&request.head.headers, "authorization").and_then(|v| v.strip_prefix("Bearer "))
        {
            return self
                .tokens
                .check(token.trim(), now)
                .map_err(|why| KbsError::new(401, "TokenVerifierError", why));
        }
        let not_found = || KbsError::new(401, "TokenNotFound", "Attestation Token not found");
        let id = session_from_cookie(&request.head.headers).ok_or_else(not_found)?;
        self.store()
            .session_mut(id, now)
            .and_then(|s| s.attested_key.clone())
            .ok_or_else(not_found)
    }

    fn release_resource(&self, request: &Request, now: u64, resource: &ResourcePath) -> Outcome {
        let tee_pubkey = match self.attested_key(request, now) {
            Ok(key) => key,
            Err(e) => return Outcome::refused(e),
        };
        let Some(bytes) = self.store().resources.get(resource).cloned() else {
            return Outcome::error(
                KbsError::new(
                    404,
                    "PluginInternalError",
                    format!("resource {resource} not found"),
                ),
                format!("{resource} not found"),
            );
        };
        let sealed = public_key_from_jwk(&tee_pubkey)
            .map_err(|e| e.to_string())
            .and_then(|key| jwe::encrypt(&key, &bytes).map_err(|e| e.to_string()));
        match sealed.and_then(|jwe| serde_json::to_string(&jwe).map_err(|e| e.to_string())) {
            Ok(body) => Outcome::ok(
                Response::new(200, "application/json", body),
                format!("released resource {resource}"),
            ),
            Err(why) => {
                Outcome::refused(KbsError::new(401, "JweError", format!("JWE failed: {why}")))
            }
        }
    }

    fn check_admin(&self, request: &Request, now: u64, endpoint: &str) -> Result<String, Outcome> {
        self.admin
            .check(header(&request.head.headers, "authorization"), now)
            .map_err(|why| {
                Outcome::error(
                    KbsError::new(
                        401,
                        "AdminAuthAccess",
                        format!(
                            "admin access denied for endpoint {endpoint}: {}",
                            why.detail
                        ),
                    ),
                    format!(
                        "admin access denied for endpoint {endpoint}: {}",
                        why.reason
                    ),
                )
            })
    }

    fn admin_resource(&self, request: &Request, now: u64, resource: &ResourcePath) -> Outcome {
        let role = match self.check_admin(request, now, "resource") {
            Ok(role) => role,
            Err(outcome) => return outcome,
        };
        let mut store = self.store();
        if request.head.method == "POST" {
            store
                .resources
                .insert(resource.clone(), request.body.clone());
            let summary = format!(
                "stored resource {resource} ({} bytes, role {role})",
                request.body.len()
            );
            return Outcome::ok(Response::new(200, "text/plain", ""), summary);
        }
        match store.resources.remove(resource) {
            Some(_) => Outcome::ok(
                Response::new(200, "text/plain", ""),
                format!("deleted resource {resource} (role {role})"),
            ),
            // Trustee answers a missing resource on DELETE with 401, not 404.
            None => Outcome::error(
                KbsError::new(
                    401,
                    "PluginInternalError",
                    format!("Plugin internal error: delete {resource}: resource not found"),
                ),
                format!("{resource} not found (delete)"),
            ),
        }
    }

    fn admin_upload(&self, request: &Request, now: u64, endpoint: &str) -> Outcome {
        let role = match self.check_admin(request, now, endpoint) {
            Ok(role) => role,
            Err(outcome) => return outcome,
        };
        let bad_shape = |why: String| {
            Outcome::refused(KbsError::new(
                400,
                "BadRequest",
                format!("{endpoint}: {why}"),
            ))
        };
        let mut store = self.store();
        let summary = match endpoint {
            "resource-policy" => match parse_resource_policy(&request.body) {
                Ok(rego) => {
                    store.resource_policy = Some(rego);
                    "stored resource policy".to_string()
                }
                Err(e) => return bad_shape(e.to_string()),
            },
            "attestation-policy" => match parse_attestation_policy(&request.body) {
                Ok(policy) => {
                    let summary = format!("stored attestation policy {}", policy.policy_id);
                    store
                        .attestation_policies
                        .insert(policy.policy_id, policy.rego);
                    summary
                }
                Err(e) => return bad_shape(e.to_string()),
            },
            _ => match parse_reference_value_message(&request.body) {
                Ok(values) => {
                    let names: Vec<String> = values.keys().cloned().collect();
                    store.reference_values.extend(values);
                    format!("stored reference values {}", names.join(","))
                }
                Err(e) => return bad_shape(e.to_string()),
            },
        };
        Outcome::ok(
            Response::new(200, "application/json", ""),
            format!("{summary} (role {role})"),
        )
    }

    fn get_reference_value(&self, request: &Request, now: u64, name: &str) -> Outcome {
        if let Err(outcome) = self.check_admin(request, now, "reference-value") {
            return outcome;
        }
        if !is_valid_segment(name) {
            return Outcome::refused(KbsError::new(
                404,
                "InvalidRequestPath",
                format!("invalid reference value name {name:?}"),
            ));
        }
        match self.store().reference_values.get(name) {
            Some(value) => {
                Outcome::ok(json_response(value), format!("read reference value {name}"))
            }
            None => Outcome::error(
                KbsError::new(
                    404,
                    "RvpsError",
                    format!("reference value {name} not found"),
                ),
                format!("reference value {name} not found"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::RequestHead;
    use crate::jwe::{decrypt, parse_jwe};
    use crate::kbs_protocol::{
        attestation_request, auth_request, parse_attestation_response, parse_challenge,
        session_from_set_cookie,
    };
    use crate::kbs_token::TOKEN_LIFETIME_SECS;
    use crate::tee_key::{generate_secret_key, jwk_from_public_key};
    use ed25519_dalek::SigningKey;

    const NOW: u64 = 1_800_000_000;

    fn double() -> KbsDouble {
        let admin = AdminVerifier {
            key: SigningKey::from_bytes(&[5; 32]).verifying_key(),
            issuer: None,
            audience: None,
        };
        KbsDouble::new(admin).unwrap()
    }

    fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        Request {
            head: RequestHead {
                method: method.into(),
                target: target.into(),
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                    .collect(),
            },
            body: body.to_vec(),
        }
    }

    /// Runs auth and attest at `now`; returns the cookie header, the token
    /// and the TEE secret key.
    fn attest(double: &KbsDouble, now: u64) -> (String, String, p256::SecretKey) {
        let auth = double.handle(
            &request(
                "POST",
                "/kbs/v0/auth",
                &[],
                auth_request().to_string().as_bytes(),
            ),
            now,
        );
        let cookie = format!(
            "{SESSION_COOKIE}={}",
            session_from_set_cookie(&auth.response.headers).unwrap()
        );
        let nonce = parse_challenge(&auth.response.body).unwrap();
        let key = generate_secret_key().unwrap();
        let body = attestation_request(&nonce, &jwk_from_public_key(&key.public_key(), true), None)
            .unwrap();
        let attested = double.handle(
            &request(
                "POST",
                "/kbs/v0/attest",
                &[("Cookie", &cookie)],
                body.to_string().as_bytes(),
            ),
            now,
        );
        assert_eq!(attested.response.status, 200, "{}", attested.summary);
        (
            cookie,
            parse_attestation_response(&attested.response.body).unwrap(),
            key,
        )
    }

    fn store_resource(double: &KbsDouble, path: &str, bytes: &[u8]) {
        double
            .store()
            .resources
            .insert(ResourcePath::parse(path).unwrap(), bytes.to_vec());
    }

    #[test]
    fn an_attested_session_gets_the_resource_sealed_to_its_key() {
        let double = double();
        store_resource(&double, "default/pp-abc/privateKey", b"host key");
        let (cookie, _, key) = attest(&double, NOW);
        let outcome = double.handle(
            &request(
                "GET",
                "/kbs/v0/resource/default/pp-abc/privateKey",
                &[("Cookie", &cookie)],
                b"",
            ),
            NOW,
        );
        assert_eq!(
            outcome.summary,
            "released resource default/pp-abc/privateKey"
        );
        assert_eq!(
            decrypt(&key, &parse_jwe(&outcome.response.body).unwrap()).unwrap(),
            b"host key"
        );
    }

    #[test]
    fn the_session_and_the_token_stop_working_when_they_expire() {
        let double = double();
        store_resource(&double, "a/b/c", b"x");
        let (cookie, token, _) = attest(&double, NOW);
        let bearer = format!("Bearer {token}");
        let later = NOW + SESSION_LIFETIME_SECS.max(TOKEN_LIFETIME_SECS);
        let by_cookie = double.handle(
            &request("GET", "/kbs/v0/resource/a/b/c", &[("Cookie", &cookie)], b""),
            later,
        );
        let by_token = double.handle(
            &request(
                "GET",
                "/kbs/v0/resource/a/b/c",
                &[("Authorization", &bearer)],
                b"",
            ),
            later,
        );
        assert_eq!(
            (by_cookie.response.status, by_token.response.status),
            (401, 401)
        );
    }

    #[test]
    fn the_log_line_names_method_path_status_and_outcome() {
        let double = double();
        let (cookie, _, _) = attest(&double, NOW);
        let get = request(
            "GET",
            "/kbs/v0/resource/default/pp-sid/privateKey",
            &[("Cookie", &cookie)],
            b"",
        );
        let outcome = double.handle(&get, NOW);
        assert_eq!(
            outcome.log_line(&get),
            "kbs-double: GET /kbs/v0/resource/default/pp-sid/privateKey -> 404 default/pp-sid/privateKey not found"
        );
    }

    #[test]
    fn unknown_routes_and_garbage_bodies_get_trustee_shaped_errors() {
        let double = double();
        let cases = [
            request("GET", "/kbs/v1/auth", &[], b""),
            request("PUT", "/kbs/v0/auth", &[], b""),
            request("POST", "/kbs/v0/auth", &[], b"\xff\x00"),
            request(
                "POST",
                "/kbs/v0/attest",
                &[("Cookie", "kbs-session-id=nope")],
                b"{}",
            ),
            request("PATCH", "/kbs/v0/resource/a/b/c", &[], b""),
            request("GET", "/kbs/v0/resource/a/b", &[], b""),
        ];
        for case in cases {
            let outcome = double.handle(&case, NOW);
            let body: Value = serde_json::from_slice(&outcome.response.body).unwrap();
            assert!(
                matches!(outcome.response.status, 401 | 404),
                "{}",
                outcome.summary
            );
            assert!(
                body["type"]
                    .as_str()
                    .unwrap()
                    .starts_with(crate::kbs_error::ERROR_TYPE_PREFIX)
            );
        }
    }
}
