//! The KBS double seen from outside: the RCAR handshake and resource
//! retrieval driven step by step on one keep-alive connection, the JWE
//! bound to the attested key, and the admin API's checks.

mod common;

use common::{
    AdminKey, RunningDouble, connect, error_detail, post_resource, send, send_once, start_kbs,
    unix_now,
};
use ed25519_dalek::SigningKey;
use pp_testdoubles::http1::{Connection, Response};
use pp_testdoubles::jwe::{decrypt, parse_jwe};
use pp_testdoubles::kbs_protocol::{
    attestation_request, auth_request, parse_attestation_response, parse_challenge,
    session_from_set_cookie,
};
use pp_testdoubles::tee_key::{generate_secret_key, jwk_from_public_key};
use serde_json::{Value, json};

/// A keep-alive HTTP/1.1 connection to the KBS double.
type KbsConnection = Connection<tokio::net::TcpStream>;

/// POSTs an RCAR auth request (`auth_request()`) on `connection`; the
/// answer is the challenge.
async fn request_challenge(connection: &mut KbsConnection) -> Response {
    send(
        connection,
        "POST",
        "/kbs/v0/auth",
        &[],
        auth_request().to_string().as_bytes(),
    )
    .await
}

/// The `Cookie` header value naming the session the KBS set in `challenge`.
fn session_cookie(challenge: &Response) -> String {
    let session = session_from_set_cookie(&challenge.headers).expect("session cookie");
    format!("kbs-session-id={session}")
}

/// POSTs `attestation` to /kbs/v0/attest on `connection`, with `cookie` as
/// the Cookie header if there is one.
async fn attest(
    connection: &mut KbsConnection,
    cookie: Option<&str>,
    attestation: &Value,
) -> Response {
    let headers: &[(&str, &str)] = match cookie {
        Some(cookie) => &[("Cookie", cookie)],
        None => &[],
    };
    send(
        connection,
        "POST",
        "/kbs/v0/attest",
        headers,
        attestation.to_string().as_bytes(),
    )
    .await
}

/// GETs the resource `resource` (`repository/type/tag`) on `connection`
/// within the session `cookie` names.
async fn get_resource(connection: &mut KbsConnection, cookie: &str, resource: &str) -> Response {
    send(
        connection,
        "GET",
        &format!("/kbs/v0/resource/{resource}"),
        &[("Cookie", cookie)],
        b"",
    )
    .await
}

#[tokio::test]
async fn the_released_jwe_decrypts_with_the_attested_key_only() {
    let admin = AdminKey::new("jwe");
    let kbs = start_kbs(&admin, &[]);
    post_resource(
        &kbs.address,
        &admin.valid_bearer(),
        "default/k/v",
        b"the payload",
    )
    .await;

    // auth, attest and resource on ONE connection (keep-alive).
    let mut connection = connect(&kbs.address).await;
    let challenge = request_challenge(&mut connection).await;
    assert_eq!(challenge.status, 200);
    let cookie = session_cookie(&challenge);
    let nonce = parse_challenge(&challenge.body).unwrap();
    let challenge_body: Value = serde_json::from_slice(&challenge.body).unwrap();
    assert_eq!(challenge_body["extra-params"], "");

    let tee_key = generate_secret_key().unwrap();
    let attestation = attestation_request(
        &nonce,
        &jwk_from_public_key(&tee_key.public_key(), true),
        None,
    )
    .unwrap();
    let answer = attest(&mut connection, Some(&cookie), &attestation).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let token = parse_attestation_response(&answer.body).unwrap();

    let sealed = get_resource(&mut connection, &cookie, "default/k/v").await;
    assert_eq!(sealed.status, 200);
    let jwe = parse_jwe(&sealed.body).unwrap();
    assert_eq!(decrypt(&tee_key, &jwe).unwrap(), b"the payload");
    assert!(decrypt(&generate_secret_key().unwrap(), &jwe).is_err());

    // The attestation token works instead of the cookie.
    let token_header = format!("Bearer {token}");
    let by_token = send_once(
        &kbs.address,
        "GET",
        "/kbs/v0/resource/default/k/v",
        &[("Authorization", &token_header)],
        b"",
    )
    .await;
    assert_eq!(
        decrypt(&tee_key, &parse_jwe(&by_token.body).unwrap()).unwrap(),
        b"the payload"
    );
}

#[tokio::test]
async fn a_wrong_protocol_version_is_refused_with_a_trustee_error() {
    let admin = AdminKey::new("version");
    let kbs = start_kbs(&admin, &[]);
    let body = json!({"version": "0.3.0", "tee": "sample", "extra-params": ""}).to_string();
    let answer = send_once(&kbs.address, "POST", "/kbs/v0/auth", &[], body.as_bytes()).await;
    assert_eq!(answer.status, 401);
    let (kind, detail) = error_detail(&answer);
    assert_eq!(
        kind,
        "https://github.com/confidential-containers/kbs/errors/AttestationError"
    );
    assert!(detail.contains("Version Mismatch"), "{detail}");
}

#[tokio::test]
async fn evidence_for_another_nonce_or_without_a_session_is_refused() {
    let admin = AdminKey::new("nonce");
    let kbs = start_kbs(&admin, &[]);
    let mut connection = connect(&kbs.address).await;
    let challenge = request_challenge(&mut connection).await;
    let cookie = session_cookie(&challenge);
    let nonce = parse_challenge(&challenge.body).unwrap();
    let key = jwk_from_public_key(&generate_secret_key().unwrap().public_key(), true);

    let wrong_nonce = attestation_request("bm90IHRoZSBub25jZQ==", &key, None).unwrap();
    let answer = attest(&mut connection, Some(&cookie), &wrong_nonce).await;
    assert_eq!(answer.status, 401);

    let mut tampered = attestation_request(&nonce, &key, None).unwrap();
    tampered["tee-evidence"]["primary_evidence"]["report_data"] = json!("AAAA");
    let answer = attest(&mut connection, Some(&cookie), &tampered).await;
    assert_eq!(answer.status, 401);
    assert!(error_detail(&answer).1.contains("report_data"));

    let good = attestation_request(&nonce, &key, None).unwrap();
    let no_cookie = attest(&mut connection, None, &good).await;
    assert_eq!(no_cookie.status, 401);
    let unattested = get_resource(&mut connection, &cookie, "a/b/c").await;
    assert_eq!(
        error_detail(&unattested).0,
        "https://github.com/confidential-containers/kbs/errors/TokenNotFound"
    );
}

#[tokio::test]
async fn expired_roleless_or_foreign_admin_tokens_are_refused() {
    let admin = AdminKey::new("admin-refusals");
    let kbs = start_kbs(&admin, &[]);
    let foreign = SigningKey::from_bytes(&[7; 32]);
    let cases = [
        (
            admin.bearer(&json!({"role": "admin", "exp": unix_now() - 1})),
            "expired",
        ),
        (admin.bearer(&json!({"exp": unix_now() + 60})), "no `role`"),
        (admin.bearer(&json!({"role": "admin"})), "no numeric `exp`"),
        (
            AdminKey::bearer_signed_by(&foreign, &json!({"role": "admin", "exp": unix_now() + 60})),
            "signature",
        ),
    ];
    for (bearer, reason) in cases {
        let answer = post_resource(&kbs.address, &bearer, "a/b/c", b"x").await;
        assert_eq!(answer.status, 401);
        let (kind, detail) = error_detail(&answer);
        assert_eq!(
            kind,
            "https://github.com/confidential-containers/kbs/errors/AdminAuthAccess"
        );
        // Like Trustee: the client gets one message, the log the reason.
        assert_eq!(
            detail,
            "admin access denied for endpoint resource: Cannot verify token with any of the issuers"
        );
        kbs.wait_for_log(reason);
    }
    let listing = send_once(&kbs.address, "GET", "/kbs-double/resources", &[], b"").await;
    let listing: Value = serde_json::from_slice(&listing.body).unwrap();
    assert_eq!(listing["resources"], json!([]));
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let admin = AdminKey::new("iss-aud");
    let kbs = start_kbs(
        &admin,
        &["--admin-issuer", "wn-adaptor", "--admin-audience", "kbs"],
    );
    let exp = unix_now() + 60;
    let good =
        admin.bearer(&json!({"role": "admin", "exp": exp, "iss": "wn-adaptor", "aud": "kbs"}));
    let wrong_iss =
        admin.bearer(&json!({"role": "admin", "exp": exp, "iss": "other", "aud": "kbs"}));
    let no_aud = admin.bearer(&json!({"role": "admin", "exp": exp, "iss": "wn-adaptor"}));
    let post = async |bearer: &str| {
        post_resource(&kbs.address, bearer, "a/b/c", b"x")
            .await
            .status
    };
    assert_eq!(post(&good).await, 200);
    assert_eq!(post(&wrong_iss).await, 401);
    assert_eq!(post(&no_aud).await, 401);
    // The adaptor's default token (role and exp only), as Trustee answers it.
    let plain = admin.valid_bearer();
    let refused = post_resource(&kbs.address, &plain, "a/b/c", b"x").await;
    assert_eq!(refused.status, 401);
    assert!(
        error_detail(&refused)
            .1
            .ends_with("Cannot verify token with any of the issuers"),
        "{:?}",
        error_detail(&refused)
    );
    kbs.wait_for_log("token issuer mismatch: expected wn-adaptor, got .");
}

#[tokio::test]
async fn an_admin_token_cannot_read_a_resource() {
    let admin = AdminKey::new("admin-get");
    let kbs = start_kbs(&admin, &[]);
    let bearer = admin.valid_bearer();
    assert_eq!(
        post_resource(&kbs.address, &bearer, "a/b/c", b"x")
            .await
            .status,
        200
    );
    let auth = [("Authorization", bearer.as_str())];
    let read = send_once(&kbs.address, "GET", "/kbs/v0/resource/a/b/c", &auth, b"").await;
    assert_eq!(read.status, 401);
    assert_eq!(
        error_detail(&read).0,
        "https://github.com/confidential-containers/kbs/errors/TokenVerifierError"
    );
}

#[tokio::test]
async fn an_openssh_admin_public_key_is_accepted() {
    use base64::Engine;
    let admin = AdminKey::new("openssh");
    let mut blob = Vec::new();
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    blob.extend_from_slice(admin.signing.verifying_key().as_bytes());
    let line = format!(
        "ssh-ed25519 {} admin@wn\n",
        base64::engine::general_purpose::STANDARD.encode(blob)
    );
    let file = std::env::temp_dir().join(format!("kbs-double-openssh-{}.pub", std::process::id()));
    std::fs::write(&file, line).unwrap();
    let kbs = RunningDouble::start(
        env!("CARGO_BIN_EXE_kbs-double"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-public-key",
            file.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(&file).unwrap();
    let answer = post_resource(&kbs.address, &admin.valid_bearer(), "a/b/c", b"x").await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn admin_uploads_are_validated_stored_and_read_back() {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let admin = AdminKey::new("uploads");
    let kbs = start_kbs(&admin, &[]);
    let bearer = admin.valid_bearer();
    let auth = [("Authorization", bearer.as_str())];
    let rego = URL_SAFE_NO_PAD.encode("package policy\ndefault allow = true\n");
    let values = STANDARD.encode(json!({"snp_launch_measurement": ["00ff"]}).to_string());
    let uploads = [
        ("/kbs/v0/resource-policy", json!({"policy": rego}), 200),
        (
            "/kbs/v0/resource-policy",
            json!({"policy": rego, "x": 1}),
            400,
        ),
        (
            "/kbs/v0/attestation-policy",
            json!({"type": "rego", "policy_id": "default_cpu", "policy": rego}),
            200,
        ),
        (
            "/kbs/v0/attestation-policy",
            json!({"type": "rego", "policy": rego}),
            400,
        ),
        (
            "/kbs/v0/reference-value",
            json!({"version": "0.1.0", "type": "sample", "payload": values}),
            200,
        ),
        (
            "/kbs/v0/reference-value",
            json!({"version": "0.1.0", "type": "sample", "payload": "!"}),
            400,
        ),
    ];
    for (path, body, status) in uploads {
        let answer = send_once(
            &kbs.address,
            "POST",
            path,
            &auth,
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(
            answer.status,
            status,
            "{path} {body}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    let value = send_once(
        &kbs.address,
        "GET",
        "/kbs/v0/reference-value/snp_launch_measurement",
        &auth,
        b"",
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&value.body).unwrap(),
        json!(["00ff"])
    );
    let unauthenticated = send_once(
        &kbs.address,
        "GET",
        "/kbs/v0/reference-value/snp_launch_measurement",
        &[],
        b"",
    )
    .await;
    assert_eq!(unauthenticated.status, 401);
    let listing = send_once(&kbs.address, "GET", "/kbs-double/resources", &[], b"").await;
    let listing: Value = serde_json::from_slice(&listing.body).unwrap();
    assert!(
        listing["attestation_policies"]["default_cpu"]
            .as_str()
            .unwrap()
            .starts_with("package policy")
    );
    kbs.wait_for_log("stored reference values snp_launch_measurement");
}

#[tokio::test]
async fn deleting_a_resource_makes_it_unknown_and_a_second_delete_is_a_401() {
    let admin = AdminKey::new("delete");
    let kbs = start_kbs(&admin, &[]);
    let bearer = admin.valid_bearer();
    let auth = [("Authorization", bearer.as_str())];
    assert_eq!(
        send_once(&kbs.address, "POST", "/kbs/v0/resource/a/b/c", &auth, b"x")
            .await
            .status,
        200
    );
    assert_eq!(
        send_once(&kbs.address, "DELETE", "/kbs/v0/resource/a/b/c", &auth, b"")
            .await
            .status,
        200
    );
    // Trustee answers a DELETE of a missing resource with 401, not 404.
    let again = send_once(&kbs.address, "DELETE", "/kbs/v0/resource/a/b/c", &auth, b"").await;
    assert_eq!(again.status, 401);
    let (kind, detail) = error_detail(&again);
    assert_eq!(
        kind,
        "https://github.com/confidential-containers/kbs/errors/PluginInternalError"
    );
    assert!(detail.contains("resource not found"), "{detail}");
    let bad_path = send_once(&kbs.address, "POST", "/kbs/v0/resource/a/../c", &auth, b"x").await;
    assert_eq!(bad_path.status, 404);
}

#[tokio::test]
async fn garbage_on_the_wire_gets_a_400_and_the_double_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let admin = AdminKey::new("garbage");
    let kbs = start_kbs(&admin, &[]);
    let mut raw = tokio::net::TcpStream::connect(&kbs.address).await.unwrap();
    raw.write_all(b"\x00\x01 not http\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 400"));
    let still_up = request_challenge(&mut connect(&kbs.address).await).await;
    assert_eq!(still_up.status, 200);
}
