//! `pp-adaptor`: the worker-node side of peer-pod secure comms, on the
//! command line. Every subcommand reads the same TOML configuration (see
//! `pp_adaptor::config`); logs go to stderr (`RUST_LOG` filters, default
//! `info`), results a script needs go to stdout (`serve`: one line per PP
//! status change).
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use hyper::Method;
use pp_adaptor::adaptor::Adaptor;
use pp_adaptor::config::{AdaptorConfig, DEFAULT_CONTROL_SOCKET};
use pp_adaptor::control::client::{ClientError, ControlClient};
use pp_adaptor::control::request::MAX_WAIT;
use pp_adaptor::control::server::{
    bind_control_socket, bind_metrics, serve_control, serve_metrics,
};
use pp_adaptor::keystore::{KeyStore, public_line};
use pp_adaptor::pods::Pods;
use pp_adaptor::sid::Sid;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Shown under `--help`: a whole configuration and the usual order of steps.
const CONFIG_EXAMPLE: &str = "\
Configuration (TOML; relative paths are relative to the file):

  trustee_url = \"http://127.0.0.1:8080\"   # Trustee (KBS): http:// or https://HOST[:PORT]
  trustee_ca = \"trustee-ca.pem\"          # optional, https only: PEM CA(s) of Trustee's
                                          # certificate (default: the host's CA store)
  admin_key = \"admin.pem\"                 # Ed25519: PKCS#8 PEM or OpenSSH
  key_dir = \"keys\"                        # wn, wn.pub, pp-<SID>, pp-<SID>.pub (0600)
  state_dir = \"state\"                     # pp-<SID>.json: phase record per PP; pod-<SID>.json: control API
  control_socket = \"/run/pp-adaptor/control.sock\"   # the control API (the default; --socket overrides)
  relay_check = \"host-key-and-peer\"       # default; \"host-key-only\" behind a NAT (also per [[pp]])

  # [kubernetes_secrets]                  # instead of key_dir: Secrets pp-adaptor-wn and
  # namespace = \"peerpod\"                 # pp-adaptor-pp-<SID>; in-cluster service account,
  # kubeconfig = \"/etc/pp-adaptor/kubeconfig\"   # or this kubeconfig

  [admin_token]                           # claims of the admin JWT (optional table)
  issuer = \"pp-adaptor\"                   # iss: the `issuer` of Trustee's identity provider
  audience = \"trustee\"                    # aud: its `audience` (role \"admin\", lifetime_secs 300)
  [timing]                      # optional: attestation_deadline_secs (600), connect_timeout_secs (10),
                                # handshake_timeout_secs (20), keepalive_interval_secs (15), keepalive_max (3),
                                # backoff_initial_ms (500), backoff_max_secs (30), tunnel_wait_secs (60),
                                # upgrade_grace_secs (2), info_timeout_secs (10), udp_idle_secs (60)
  [egress]                      # optional: where the PPs' EGRESS tunnel (image pulls) may CONNECT
  allow = [\"registry-1.docker.io:443\", \"*.quay.io:443\"]  # none: egress off
  deny_networks = [\"10.96.0.0/12\"]      # refused besides loopback/private/link-local (cluster ranges)
  permit_networks = []                    # private networks reached all the same (a mirror)

  [[pp]]
  sid = \"0123abcd\"                        # the PP's sandbox id
  forwarder = \"192.0.2.7:2222\"            # the PP's forwarder (port 2222 when omitted)
  init_data_has_wn_key = true             # attestation auth: WN key (true) or none (false)
  tunnels = [\"KUBERNETES_PHASE:KATAAGENT:127.0.0.1:15150\"]   # local listeners on the WN
  targets = [\"KUBERNETES_PHASE:DNS:udp:10.96.0.10:53\"]     # WN ends of the PP's inbound tunnels

Trustee's admin API must trust the admin key's public half under that issuer/audience;
without matching iss/aud it answers 401 `Cannot verify token with any of the issuers`:

  [admin.authentication.bearer_jwt]
  identity_providers = [{ issuer = \"pp-adaptor\", audience = \"trustee\", public_key_uri = \"/etc/kbs/admin.pub.pem\" }]

Steps with a running daemon (`pp-adaptor serve`; the CLI talks to it through the control
socket, see docs/control-api.md): `pp create --sid SID` (put the printed line into the PP's
init-data), start the PP, `pp attach --sid SID --forwarder IP --tunnel TAG`, `pp status`,
`pp delete --sid SID` when the PP is gone (running it again is harmless).
Without a daemon, `pp create` and `pp delete` work on their own, and `serve` serves the
[[pp]] tables. A restarted `serve` serves again every pod it had attached.
Logs go to stderr; RUST_LOG filters them (default info). TOKIO_WORKER_THREADS sets the
number of worker threads (default: one per CPU).";

/// Worker-node side of peer-pod secure comms: keys, Trustee registration,
/// the two-phase SSH connection to each peer pod's forwarder, the KBS
/// reverse proxy and local tunnel listeners.
#[derive(Parser)]
#[command(version, about, long_about = None, after_help = CONFIG_EXAMPLE)]
struct Cli {
    /// The adaptor's TOML configuration (Trustee URL, admin key, key and
    /// state directories, deadlines, peer pods).
    #[arg(
        long,
        short,
        global = true,
        env = "PP_ADAPTOR_CONFIG",
        default_value = "/etc/pp-adaptor/adaptor.toml"
    )]
    config: PathBuf,
    /// The control API's unix socket (default: the configuration's
    /// `control_socket`, else /run/pp-adaptor/control.sock).
    #[arg(long, global = true, env = "PP_ADAPTOR_SOCKET")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The WN key pair shared by all peer pods.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Per-peer-pod keys and their registration at Trustee.
    #[command(subcommand)]
    Pp(PpCommand),
    /// Serve the peer pods of the configuration, those attached through
    /// the control API (also before a restart), and the control API, until
    /// SIGINT/SIGTERM.
    Serve {
        /// Also serve Prometheus metrics on this loopback TCP address
        /// (GET /metrics), e.g. 127.0.0.1:9464.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        /// Allow --metrics-listen on a non-loopback address (metrics name
        /// every pod; protect the port by other means).
        #[arg(long)]
        metrics_allow_non_loopback: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make the WN key pair (or load the existing one) and print its public
    /// key line, the one to put into init-data.
    Init,
    /// Store the WN public key at Trustee as default/sshclient/publicKey.
    Register,
}

#[derive(Subcommand)]
enum PpCommand {
    /// Make the peer pod's key pair (or reuse it), register its private key
    /// (default/pp-SID/privateKey) and the WN public key at Trustee, and
    /// print the WN public key line for the peer pod's init-data.
    /// Through a running daemon when there is one, else on its own.
    Create {
        /// The peer pod's sandbox id.
        #[arg(long)]
        sid: Sid,
    },
    /// Have the running daemon connect to the peer pod's forwarder and
    /// listen locally for its tunnels; prints the pod's status as JSON
    /// (tunnel name → local address).
    Attach {
        /// The peer pod's sandbox id.
        #[arg(long)]
        sid: Sid,
        /// The forwarder's address: IP or IP:PORT (port 2222 by default).
        #[arg(long)]
        forwarder: String,
        /// A local tunnel, e.g. KUBERNETES_PHASE:KATAAGENT:127.0.0.1:0
        /// (port 0: any free port, kept across daemon restarts); repeat it.
        #[arg(long = "tunnel")]
        tunnels: Vec<String>,
        /// Where one of the pod's own inbound tunnels leads on the WN, e.g.
        /// KUBERNETES_PHASE:DNS:udp:10.96.0.10:53; repeat it.
        #[arg(long = "target")]
        targets: Vec<String>,
        /// The peer pod's init-data has no WN public key (attestation-phase
        /// auth `none`).
        #[arg(long)]
        no_wn_key_in_init_data: bool,
    },
    /// Print the status of one pod (or of all) from the running daemon, as
    /// JSON.
    Status {
        /// The peer pod's sandbox id (all pods when omitted).
        #[arg(long)]
        sid: Option<Sid>,
        /// Wait until the pod's phase is no longer this one (created,
        /// connecting, attestation, upgrading, kubernetes, failed).
        #[arg(long, requires = "sid")]
        wait_from: Option<String>,
        /// How long --wait-from waits at most, in seconds (up to 300).
        #[arg(long, default_value_t = 30, requires = "wait_from")]
        timeout_secs: u64,
    },
    /// Delete the peer pod's private key at Trustee and its local key pair
    /// and state (through a running daemon when there is one, which also
    /// closes its connection and tunnels).
    Delete {
        /// The peer pod's sandbox id.
        #[arg(long)]
        sid: Sid,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pp-adaptor: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pp-adaptor: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = AdaptorConfig::load(&cli.config).map_err(|error| error.to_string());
    let socket = cli.socket.clone().unwrap_or_else(|| {
        config.as_ref().map_or_else(
            |_| PathBuf::from(DEFAULT_CONTROL_SOCKET),
            |config| config.control_socket.clone(),
        )
    });
    match cli.command {
        Command::Pp(command) => pp_command(command, &ControlClient::new(&socket), config).await,
        Command::Keys(KeysCommand::Init) => {
            let config = config?;
            let keys = KeyStore::open(&config.key_store)
                .await
                .map_err(|error| error.to_string())?;
            let wn_key = keys
                .load_or_create_wn()
                .await
                .map_err(|error| error.to_string())?;
            eprintln!(
                "WN key pair in {} ({})",
                keys.location(),
                wn_key.public().fingerprint()
            );
            print!("{}", public_line(&wn_key));
            Ok(())
        }
        Command::Keys(KeysCommand::Register) => {
            let adaptor = Adaptor::open(&config?)
                .await
                .map_err(|error| error.to_string())?;
            adaptor
                .register_wn_key()
                .await
                .map_err(|error| error.to_string())
        }
        Command::Serve {
            metrics_listen,
            metrics_allow_non_loopback,
        } => {
            let metrics = match metrics_listen {
                Some(address) => Some(bind_metrics(address, metrics_allow_non_loopback).await?),
                None => None,
            };
            serve(&config?, &socket, metrics).await
        }
    }
}

/// `pp ...`: through the daemon on `client`'s socket; `create` and
/// `delete` on their own when no daemon runs.
async fn pp_command(
    command: PpCommand,
    client: &ControlClient,
    config: Result<AdaptorConfig, String>,
) -> Result<(), String> {
    let no_wait = Duration::ZERO;
    match command {
        PpCommand::Create { sid } => {
            let body = serde_json::json!({ "sid": sid.as_str() });
            match client
                .json(Method::POST, "/v1/pods", Some(&body), no_wait)
                .await
            {
                Ok(reply) => {
                    eprintln!("pp {sid}: created by the running daemon");
                    eprintln!("put this WN public key into the peer pod's init-data:");
                    println!("{}", reply["wn_public_key"].as_str().unwrap_or_default());
                    Ok(())
                }
                Err(ClientError::NoDaemon { .. }) => create_alone(&config?, &sid).await,
                Err(error) => Err(error.to_string()),
            }
        }
        PpCommand::Delete { sid } => {
            let path = format!("/v1/pods/{sid}");
            match client.json(Method::DELETE, &path, None, no_wait).await {
                Ok(_) => {
                    eprintln!("pp {sid}: deleted by the running daemon");
                    Ok(())
                }
                Err(ClientError::NoDaemon { .. }) => Adaptor::open(&config?)
                    .await
                    .map_err(|error| error.to_string())?
                    .teardown(&sid)
                    .await
                    .map_err(|error| error.to_string()),
                Err(error) => Err(error.to_string()),
            }
        }
        PpCommand::Attach {
            sid,
            forwarder,
            tunnels,
            targets,
            no_wn_key_in_init_data,
        } => {
            let body = serde_json::json!({
                "forwarder": forwarder,
                "tunnels": tunnels,
                "targets": targets,
                "init_data_has_wn_key": !no_wn_key_in_init_data,
            });
            let path = format!("/v1/pods/{sid}/attach");
            print_json(client.json(Method::POST, &path, Some(&body), no_wait).await)
        }
        PpCommand::Status {
            sid,
            wait_from,
            timeout_secs,
        } => {
            let wait = Duration::from_secs(timeout_secs).min(MAX_WAIT);
            let path = match (&sid, &wait_from) {
                (Some(sid), Some(from)) => {
                    format!("/v1/pods/{sid}/wait?from={from}&timeout_secs={timeout_secs}")
                }
                (Some(sid), None) => format!("/v1/pods/{sid}"),
                (None, _) => "/v1/pods".to_owned(),
            };
            print_json(client.json(Method::GET, &path, None, wait).await)
        }
    }
}

fn print_json(reply: Result<serde_json::Value, ClientError>) -> Result<(), String> {
    let reply = reply.map_err(|error| error.to_string())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&reply).unwrap_or_default()
    );
    Ok(())
}

/// `pp create` without a daemon: keys made and registered by this process.
async fn create_alone(config: &AdaptorConfig, sid: &Sid) -> Result<(), String> {
    let adaptor = Adaptor::open(config)
        .await
        .map_err(|error| error.to_string())?;
    let pp_key = adaptor
        .create_pp(sid)
        .await
        .map_err(|error| error.to_string())?;
    eprintln!(
        "pp {sid}: key pair ready and registered at Trustee; its Kubernetes-phase host key is {}",
        pp_key.fingerprint()
    );
    eprintln!("put this WN public key into the peer pod's init-data:");
    println!("{}", adaptor.wn_public_key_line());
    Ok(())
}

async fn serve(
    config: &AdaptorConfig,
    socket: &std::path::Path,
    metrics: Option<tokio::net::TcpListener>,
) -> Result<(), String> {
    let adaptor = Adaptor::open(config)
        .await
        .map_err(|error| error.to_string())?;
    let control = bind_control_socket(socket).await?;
    let pods = Pods::new(adaptor, &config.state_dir, true);
    // Every pod of the configuration and of the state directory is bound
    // before any connects; one that cannot be served stays `failed`.
    pods.restore(&config.pps).await;
    tracing::info!("control API on {}", socket.display());
    tokio::spawn(serve_control(control, pods.clone()));
    if let Some(listener) = metrics {
        if let Ok(address) = listener.local_addr() {
            tracing::info!("metrics on http://{address}/metrics");
        }
        tokio::spawn(serve_metrics(listener, pods.clone()));
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| format!("cannot watch SIGTERM: {error}"))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    let _ = std::fs::remove_file(socket);
    Ok(())
}
