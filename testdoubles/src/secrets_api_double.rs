//! The Kubernetes Secrets API TEST DOUBLE: the part of kube-apiserver the
//! adaptor's Kubernetes key store uses (`/api/v1/namespaces/NS/secrets`),
//! in memory, over HTTP/1.1 on loopback. Not a production component.
//!
//! Contract, as kube-apiserver behaves for core/v1 Secrets:
//! - every object gets `uid`, `creationTimestamp`, `namespace` and a
//!   `resourceVersion` (one counter for all objects, a decimal string)
//!   that changes on every write;
//! - `data` values are base64 (anything else is 400 BadRequest);
//!   `stringData` is merged into `data` on write and never stored;
//! - `POST` of an existing name is 409 `AlreadyExists`; a missing name is
//!   422 `Invalid`; a body namespace other than the URL's is 400;
//!   a `resourceVersion` on create is refused;
//! - `PUT` with a `resourceVersion` other than the stored one is 409
//!   `Conflict`; without one it is an unconditional update (Secrets allow
//!   it); a name other than the URL's is 400; a missing object is 404;
//! - `GET`/`PUT`/`DELETE` of a missing name is 404 `NotFound`;
//!   `DELETE` answers a `Status` with `status: Success`;
//! - every error is a `Status` object (`kind`, `apiVersion`, `status:
//!   Failure`, `message`, `reason`, `details`, `code`) with that HTTP code;
//! - with a bearer token set, a request without it is 401 `Unauthorized`;
//!   a namespace other than the one the service account may use is 403
//!   `Forbidden` with the apiserver's RBAC message (a Role in one
//!   namespace).
//!
//! For tests it also counts requests per method and can make one object
//! change under a client between its read and its write
//! ([`SecretsApiDouble::change_after_next_get`]), as a second writer would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::http1::{Connection, HttpError, Request, Response, header, keeps_alive};

/// The service account the double pretends the client is (in RBAC messages).
const SERVICE_ACCOUNT: &str = "pp-adaptor";

/// The Secrets API double.
pub struct SecretsApiDouble {
    namespace: String,
    token: Option<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (namespace, name) → the stored object.
    objects: BTreeMap<(String, String), Value>,
    last_version: u64,
    requests: BTreeMap<String, usize>,
    change_after_get: Option<String>,
}

impl SecretsApiDouble {
    /// A double whose service account may use Secrets in `namespace` only;
    /// with `token`, requests must carry `Authorization: Bearer <token>`.
    pub fn new(namespace: &str, token: Option<&str>) -> Arc<Self> {
        Arc::new(Self {
            namespace: namespace.to_owned(),
            token: token.map(str::to_owned),
            state: Mutex::new(State::default()),
        })
    }

    /// Binds `127.0.0.1:0` and serves in a background task; returns the
    /// base URL (`http://127.0.0.1:PORT`).
    pub async fn start(self: &Arc<Self>) -> std::io::Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let double = Arc::clone(self);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let double = Arc::clone(&double);
                tokio::spawn(async move {
                    if let Err(error) = double.serve_connection(stream).await {
                        println!("secrets-api-double: connection ended: {error}");
                    }
                });
            }
        });
        Ok(url)
    }

    /// The stored object `name` in the double's namespace, if any.
    pub fn secret(&self, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(self.namespace.clone(), name.to_owned()))
            .cloned()
    }

    /// The names of the stored Secrets in the double's namespace.
    pub fn names(&self) -> Vec<String> {
        self.lock()
            .objects
            .keys()
            .filter(|(namespace, _)| *namespace == self.namespace)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// Stores `object` as if another client had created it.
    pub fn insert(&self, object: Value) -> Result<(), String> {
        let response = self.handle_create(&self.namespace.clone(), object);
        if response.status == 201 {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&response.body).into_owned())
        }
    }

    /// How many requests with `method` the double answered.
    pub fn requests(&self, method: &str) -> usize {
        self.lock().requests.get(method).copied().unwrap_or(0)
    }

    /// After the next successful GET of `name`, its resourceVersion moves
    /// on (as after another client's update), so a write based on that
    /// read is a 409 Conflict.
    pub fn change_after_next_get(&self, name: &str) {
        self.lock().change_after_get = Some(name.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> Result<(), HttpError> {
        let mut connection = Connection::new(stream);
        while let Some(request) = connection.read_request().await? {
            let response = self.handle(&request);
            println!(
                "secrets-api-double: {} {} -> {}",
                request.head.method, request.head.target, response.status
            );
            let keep_alive = keeps_alive(&request.head.headers);
            connection.write_response(&response, keep_alive).await?;
            if !keep_alive {
                break;
            }
        }
        Ok(())
    }

    /// Answers one request (pure apart from the in-memory store).
    pub fn handle(&self, request: &Request) -> Response {
        let method = request.head.method.as_str();
        *self.lock().requests.entry(method.to_owned()).or_default() += 1;
        if let Some(token) = &self.token {
            let expected = format!("Bearer {token}");
            if header(&request.head.headers, "authorization") != Some(expected.as_str()) {
                return status(401, "Unauthorized", "Unauthorized", None);
            }
        }
        let path = request.head.target.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (namespace, name) = match segments.as_slice() {
            ["api", "v1", "namespaces", namespace, "secrets"] => (*namespace, None),
            ["api", "v1", "namespaces", namespace, "secrets", name] => (*namespace, Some(*name)),
            _ => {
                return status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                    None,
                );
            }
        };
        let verb = match (method, name) {
            ("GET", Some(_)) => "get",
            ("GET", None) => "list",
            ("POST", None) => "create",
            ("PUT", Some(_)) => "update",
            ("DELETE", Some(_)) => "delete",
            _ => {
                return status(
                    405,
                    "MethodNotAllowed",
                    &format!(
                        "the server does not allow this method on the requested resource ({method})"
                    ),
                    None,
                );
            }
        };
        if namespace != self.namespace {
            let object = name.map_or(String::from("secrets"), |name| {
                format!("secrets \"{name}\"")
            });
            return status(
                403,
                "Forbidden",
                &format!(
                    "{object} is forbidden: User \"system:serviceaccount:{}:{SERVICE_ACCOUNT}\" cannot {verb} resource \"secrets\" in API group \"\" in the namespace \"{namespace}\"",
                    self.namespace
                ),
                name,
            );
        }
        let body = || serde_json::from_slice::<Value>(&request.body);
        match (verb, name) {
            ("get", Some(name)) => self.handle_get(namespace, name),
            ("list", _) => self.handle_list(namespace),
            ("create", _) => match body() {
                Ok(object) => self.handle_create(namespace, object),
                Err(error) => bad_request(&format!("the body is not a JSON object: {error}")),
            },
            ("update", Some(name)) => match body() {
                Ok(object) => self.handle_update(namespace, name, object),
                Err(error) => bad_request(&format!("the body is not a JSON object: {error}")),
            },
            ("delete", Some(name)) => self.handle_delete(namespace, name),
            _ => status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                None,
            ),
        }
    }

    fn handle_get(&self, namespace: &str, name: &str) -> Response {
        let mut state = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        let Some(object) = state.objects.get(&key).cloned() else {
            return not_found(name);
        };
        if state.change_after_get.as_deref() == Some(name) {
            state.change_after_get = None;
            state.last_version += 1;
            let version = state.last_version.to_string();
            if let Some(stored) = state.objects.get_mut(&key) {
                stored["metadata"]["resourceVersion"] = json!(version);
            }
        }
        json_response(200, &object)
    }

    fn handle_list(&self, namespace: &str) -> Response {
        let state = self.lock();
        let items: Vec<&Value> = state
            .objects
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, object)| object)
            .collect();
        json_response(
            200,
            &json!({
                "kind": "SecretList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": state.last_version.to_string()},
                "items": items,
            }),
        )
    }

    fn handle_create(&self, namespace: &str, mut object: Value) -> Response {
        if let Err(response) = check_shape(&mut object, namespace) {
            return response;
        }
        let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
            return status(
                422,
                "Invalid",
                "Secret \"\" is invalid: metadata.name: Required value: name or generateName is required",
                None,
            );
        };
        if !is_dns_subdomain(&name) {
            return status(
                422,
                "Invalid",
                &format!(
                    "Secret \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
                Some(&name),
            );
        }
        if object["metadata"].get("resourceVersion").is_some() {
            return status(
                500,
                "InternalError",
                "resourceVersion should not be set on objects to be created",
                None,
            );
        }
        let mut state = self.lock();
        let key = (namespace.to_owned(), name.clone());
        if state.objects.contains_key(&key) {
            return status(
                409,
                "AlreadyExists",
                &format!("secrets \"{name}\" already exists"),
                Some(&name),
            );
        }
        state.last_version += 1;
        let version = state.last_version;
        let metadata = &mut object["metadata"];
        metadata["namespace"] = json!(namespace);
        metadata["uid"] = json!(format!("00000000-0000-4000-8000-{version:012}"));
        metadata["resourceVersion"] = json!(version.to_string());
        metadata["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        state.objects.insert(key, object.clone());
        json_response(201, &object)
    }

    fn handle_update(&self, namespace: &str, name: &str, mut object: Value) -> Response {
        if let Err(response) = check_shape(&mut object, namespace) {
            return response;
        }
        if object["metadata"]["name"].as_str() != Some(name) {
            return bad_request(&format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object["metadata"]["name"].as_str().unwrap_or_default()
            ));
        }
        let mut state = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        let Some(stored) = state.objects.get(&key) else {
            return not_found(name);
        };
        let stored_metadata = stored["metadata"].clone();
        if let Some(version) = object["metadata"].get("resourceVersion")
            && *version != stored_metadata["resourceVersion"]
        {
            return status(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on secrets \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
                Some(name),
            );
        }
        state.last_version += 1;
        let metadata = &mut object["metadata"];
        metadata["namespace"] = json!(namespace);
        metadata["uid"] = stored_metadata["uid"].clone();
        metadata["creationTimestamp"] = stored_metadata["creationTimestamp"].clone();
        metadata["resourceVersion"] = json!(state.last_version.to_string());
        state.objects.insert(key, object.clone());
        json_response(200, &object)
    }

    fn handle_delete(&self, namespace: &str, name: &str) -> Response {
        let removed = self
            .lock()
            .objects
            .remove(&(namespace.to_owned(), name.to_owned()));
        match removed {
            None => not_found(name),
            Some(object) => json_response(
                200,
                &json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {"name": name, "kind": "secrets", "uid": object["metadata"]["uid"]},
                }),
            ),
        }
    }
}

/// Checks kind, namespace and `data`, and folds `stringData` into `data`.
fn check_shape(object: &mut Value, namespace: &str) -> Result<(), Response> {
    if !object.is_object() {
        return Err(bad_request(
            "the object provided is unrecognized (must be a JSON object)",
        ));
    }
    if let Some(kind) = object.get("kind")
        && kind != "Secret"
    {
        return Err(bad_request(&format!(
            "the kind of the object ({kind}) is not Secret"
        )));
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if let Some(body_namespace) = object["metadata"].get("namespace")
        && body_namespace != namespace
    {
        return Err(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let mut data = match object.get("data") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(data)) => data.clone(),
        Some(_) => return Err(bad_request("Secret.data must be an object")),
    };
    for (key, value) in &data {
        let valid = value
            .as_str()
            .is_some_and(|text| STANDARD.decode(text).is_ok());
        if !valid {
            return Err(bad_request(&format!(
                "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{key:?}]"
            )));
        }
    }
    if let Some(Value::Object(strings)) = object.get("stringData") {
        for (key, value) in strings {
            data.insert(
                key.clone(),
                json!(STANDARD.encode(value.as_str().unwrap_or_default())),
            );
        }
    }
    if let Some(map) = object.as_object_mut() {
        map.remove("stringData");
        map.insert("data".into(), Value::Object(data));
        map.insert("kind".into(), json!("Secret"));
        map.insert("apiVersion".into(), json!("v1"));
    }
    Ok(())
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn json_response(code: u16, value: &Value) -> Response {
    Response::new(code, "application/json", value.to_string())
}

fn not_found(name: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("secrets \"{name}\" not found"),
        Some(name),
    )
}

fn bad_request(message: &str) -> Response {
    status(400, "BadRequest", message, None)
}

/// A `Status` failure object, as kube-apiserver sends it.
fn status(code: u16, reason: &str, message: &str, name: Option<&str>) -> Response {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(name) = name {
        body["details"] = json!({"name": name, "kind": "secrets"});
    }
    json_response(code, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::RequestHead;

    fn request(method: &str, target: &str, body: Value) -> Request {
        Request {
            head: RequestHead {
                method: method.into(),
                target: target.into(),
                headers: vec![("authorization".into(), "Bearer t".into())],
            },
            body: if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            },
        }
    }

    fn body(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    const SECRETS: &str = "/api/v1/namespaces/pp/secrets";

    #[test]
    fn create_get_update_delete_follow_the_apiservers_versions_and_codes() {
        let double = SecretsApiDouble::new("pp", Some("t"));
        let secret = json!({"metadata": {"name": "a"}, "stringData": {"k": "v"}});
        let created = double.handle(&request("POST", SECRETS, secret.clone()));
        assert_eq!(created.status, 201);
        let created = body(&created);
        assert_eq!(created["data"]["k"], "dg==");
        assert!(created.get("stringData").is_none());
        let version = created["metadata"]["resourceVersion"].clone();

        let again = double.handle(&request("POST", SECRETS, secret));
        assert_eq!(
            (again.status, body(&again)["reason"].clone()),
            (409, json!("AlreadyExists"))
        );

        let path = format!("{SECRETS}/a");
        let mut update = created.clone();
        update["data"]["k"] = json!("dw==");
        let updated = double.handle(&request("PUT", &path, update.clone()));
        assert_eq!(updated.status, 200);
        assert_ne!(body(&updated)["metadata"]["resourceVersion"], version);
        assert_eq!(
            body(&updated)["metadata"]["uid"],
            created["metadata"]["uid"]
        );

        let stale = double.handle(&request("PUT", &path, update));
        assert_eq!(
            (stale.status, body(&stale)["reason"].clone()),
            (409, json!("Conflict"))
        );

        let deleted = double.handle(&request("DELETE", &path, Value::Null));
        assert_eq!(
            (deleted.status, body(&deleted)["status"].clone()),
            (200, json!("Success"))
        );
        for method in ["GET", "DELETE"] {
            let gone = double.handle(&request(method, &path, Value::Null));
            let status = body(&gone);
            assert_eq!(
                (gone.status, status["kind"].clone()),
                (404, json!("Status"))
            );
            assert_eq!(status["message"], "secrets \"a\" not found");
            assert_eq!(status["details"]["name"], "a");
        }
    }

    #[test]
    fn bad_base64_a_bad_name_another_namespace_and_a_missing_token_are_refused() {
        let double = SecretsApiDouble::new("pp", Some("t"));
        let bad_data = json!({"metadata": {"name": "a"}, "data": {"k": "%%%"}});
        assert_eq!(
            double.handle(&request("POST", SECRETS, bad_data)).status,
            400
        );
        let bad_name = json!({"metadata": {"name": "Pp_A"}});
        assert_eq!(
            double.handle(&request("POST", SECRETS, bad_name)).status,
            422
        );
        let other = double.handle(&request(
            "GET",
            "/api/v1/namespaces/kube-system/secrets/x",
            Value::Null,
        ));
        assert_eq!(other.status, 403);
        assert!(
            body(&other)["message"]
                .as_str()
                .unwrap()
                .contains("cannot get resource \"secrets\"")
        );
        let mut anonymous = request("GET", &format!("{SECRETS}/a"), Value::Null);
        anonymous.head.headers.clear();
        assert_eq!(double.handle(&anonymous).status, 401);
        let garbage = Request {
            head: request("POST", SECRETS, Value::Null).head,
            body: b"\xff{".to_vec(),
        };
        assert_eq!(double.handle(&garbage).status, 400);
    }
}
