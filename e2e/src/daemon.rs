//! `pp-adaptor serve` as a process with its control socket, driven through
//! the control API the way the CAA drives it: create, attach (KATAAGENT on
//! a free local port), wait for a phase, delete; plus `kill -9` and
//! restart, and a KATAAGENT echo through a pod's local listener.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper::Method;
use pp_adaptor::control::client::ControlClient;
use pp_ssh_key::PublicKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bin;
use crate::pp::Pp;
use crate::process::Process;
use crate::world::World;

/// One adaptor daemon and its directory.
pub struct Daemon {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub client: ControlClient,
    pub process: Process,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Daemon {
    /// Starts `serve` in `<world dir>/<name>`, with the world's KBS double
    /// as Trustee and `extra_args` after `serve`.
    pub fn start(world: &World, name: &str, extra_args: &[String]) -> Daemon {
        Self::start_with_env(world, name, extra_args, &[])
    }

    /// Like `start`, with `env` added to the daemon's environment.
    pub fn start_with_env(
        world: &World,
        name: &str,
        extra_args: &[String],
        env: &[(&str, &str)],
    ) -> Daemon {
        let dir = world.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let config = dir.join("adaptor.toml");
        std::fs::write(
            &config,
            format!(
                "trustee_url = \"http://127.0.0.1:{}\"\nadmin_key = \"{}\"\nkey_dir = \"keys\"\n\
                 state_dir = \"state\"\ncontrol_socket = \"control.sock\"\n\n\
                 [timing]\nbackoff_initial_ms = 100\nbackoff_max_secs = 1\n",
                world.kbs_port,
                world.admin_key_path().display()
            ),
        )
        .expect("write adaptor.toml");
        let mut args = vec![
            "--config".into(),
            config.display().to_string(),
            "serve".into(),
        ];
        args.extend(extra_args.iter().cloned());
        let socket = dir.join("control.sock");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let process = Self::spawn(&args, &env);
        Daemon {
            client: ControlClient::new(&socket),
            dir,
            socket,
            process,
            args,
            env,
        }
    }

    fn spawn(args: &[String], env: &[(String, String)]) -> Process {
        let mut command = std::process::Command::new(bin("pp-adaptor"));
        command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        let process = Process::from_command(command);
        process.wait_for("control API on", Duration::from_secs(30));
        process
    }

    /// `kill -9`, then the same command again.
    pub fn kill9_and_restart(&mut self) {
        self.process.kill9();
        self.process = Self::spawn(&self.args, &self.env);
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        self.client
            .json(method.clone(), path, body.as_ref(), Duration::from_secs(60))
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    /// Creates the pod; returns the WN public key for its init-data.
    pub async fn create(&self, sid: &str) -> PublicKey {
        let reply = self
            .call(
                Method::POST,
                "/v1/pods",
                Some(serde_json::json!({ "sid": sid })),
            )
            .await;
        PublicKey::parse(reply["wn_public_key"].as_str().unwrap_or_default())
            .expect("create returns the WN public key line")
    }

    /// Attaches the pod to `pp`'s forwarder with a KATAAGENT listener on a
    /// free local port; returns that address.
    pub async fn attach(&self, sid: &str, pp: &Pp) -> String {
        let mut addresses = self.attach_tunnels(sid, pp, &["KATAAGENT"]).await;
        addresses.remove(0)
    }

    /// Attaches the pod to `pp`'s forwarder with a Kubernetes-phase TCP
    /// listener on a free local port for each named tunnel; returns their
    /// addresses in the order of `names`.
    pub async fn attach_tunnels(&self, sid: &str, pp: &Pp, names: &[&str]) -> Vec<String> {
        let tags: Vec<String> = names
            .iter()
            .map(|name| format!("KUBERNETES_PHASE:{name}:127.0.0.1:0"))
            .collect();
        let reply = self
            .call(
                Method::POST,
                &format!("/v1/pods/{sid}/attach"),
                Some(serde_json::json!({
                    "forwarder": pp.ssh_addr(),
                    "tunnels": tags,
                    "init_data_has_wn_key": pp.options.wn_key.is_some(),
                })),
            )
            .await;
        names
            .iter()
            .map(|name| {
                reply["tunnels"][*name]
                    .as_str()
                    .unwrap_or_else(|| panic!("attach names the {name} address: {reply}"))
                    .to_owned()
            })
            .collect()
    }

    pub async fn status(&self, sid: &str) -> serde_json::Value {
        self.call(Method::GET, &format!("/v1/pods/{sid}"), None)
            .await
    }

    /// Long-polls until the pod is in `phase`; panics when it failed or
    /// `timeout` passed.
    pub async fn wait_phase(&self, sid: &str, phase: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        let mut pod = self.status(sid).await;
        loop {
            let now = pod["phase"].as_str().unwrap_or_default().to_owned();
            if now == phase {
                return pod;
            }
            assert!(
                now != "failed" && Instant::now() < deadline,
                "pod {sid} did not reach {phase}: {pod}"
            );
            let waited = self
                .call(
                    Method::GET,
                    &format!("/v1/pods/{sid}/wait?from={now}&timeout_secs=30"),
                    None,
                )
                .await;
            pod = waited["pod"].clone();
        }
    }

    pub async fn delete(&self, sid: &str) {
        self.call(Method::DELETE, &format!("/v1/pods/{sid}"), None)
            .await;
    }

    /// The Prometheus text of `GET /v1/metrics`.
    pub async fn metrics(&self) -> String {
        let (status, body) = self
            .client
            .call(Method::GET, "/v1/metrics", None, Duration::ZERO)
            .await
            .expect("metrics answer");
        assert!(status.is_success(), "{status}");
        String::from_utf8_lossy(&body).into_owned()
    }
}

/// Sends `payload` through the local listener at `address` (`IP:PORT`),
/// half-closes, returns what came back (the agent double echoes).
pub async fn echo(address: &str, payload: &[u8]) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the local tunnel listens");
    stream.write_all(payload).await.expect("write");
    stream.shutdown().await.expect("half-close");
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.expect("read");
    back
}

/// The value of the metric line `name{labels}` in `text`, if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `GET path` on a loopback TCP port, with `Connection: close`; the
/// status line and the body.
pub async fn http_get(port: u16, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the server listens");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).await.expect("read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The KBS double's resource paths (its test listing).
pub async fn kbs_resources(kbs_port: u16) -> Vec<String> {
    let (_, body) = http_get(kbs_port, "/kbs-double/resources").await;
    let listing: serde_json::Value = serde_json::from_str(&body).expect("JSON listing");
    listing["resources"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| entry["path"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `path` is a directory holding the pod's spec (test helper).
pub fn has_spec(dir: &Path, sid: &str) -> bool {
    dir.join("state").join(format!("pod-{sid}.json")).exists()
}
