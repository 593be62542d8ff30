//! `pp-adaptor`: the worker-node side of peer-pod secure comms, on the
//! command line. Every subcommand reads the same TOML configuration (see
//! `pp_adaptor::config`); logs go to stderr (`RUST_LOG` filters, default
//! `info`), results a script needs go to stdout (`serve`: one line per PP
//! status change).
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use pp_adaptor::adaptor::{Adaptor, PpHandle};
use pp_adaptor::config::AdaptorConfig;
use pp_adaptor::keystore::{KeyStore, public_line};
use pp_adaptor::sid::Sid;
use std::path::PathBuf;
use std::process::ExitCode;

/// Shown under `--help`: a whole configuration and the usual order of steps.
const CONFIG_EXAMPLE: &str = "\
Configuration (TOML; relative paths are relative to the file):

  trustee_url = \"http://127.0.0.1:8080\"   # Trustee (KBS): http:// or https://HOST[:PORT]
  trustee_ca = \"trustee-ca.pem\"          # optional, https only: PEM CA(s) of Trustee's
                                          # certificate (default: the host's CA store)
  admin_key = \"admin.pem\"                 # Ed25519: PKCS#8 PEM or OpenSSH
  key_dir = \"keys\"                        # wn, wn.pub, pp-<SID>, pp-<SID>.pub (0600)
  state_dir = \"state\"                     # pp-<SID>.json: phase record per PP
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
                                # upgrade_grace_secs (2), info_timeout_secs (10)

  [[pp]]
  sid = \"0123abcd\"                        # the PP's sandbox id
  forwarder = \"192.0.2.7:2222\"            # the PP's forwarder (port 2222 when omitted)
  init_data_has_wn_key = true             # attestation auth: WN key (true) or none (false)
  tunnels = [\"KUBERNETES_PHASE:KATAAGENT:127.0.0.1:15150\"]   # local listeners on the WN

Trustee's admin API must trust the admin key's public half under that issuer/audience;
without matching iss/aud it answers 401 `Cannot verify token with any of the issuers`:

  [admin.authentication.bearer_jwt]
  identity_providers = [{ issuer = \"pp-adaptor\", audience = \"trustee\", public_key_uri = \"/etc/kbs/admin.pub.pem\" }]

Steps: `pp-adaptor pp create --sid SID` (put the printed line into the PP's init-data),
start the PP, `pp-adaptor serve`; `pp-adaptor pp delete --sid SID` when the PP is gone
(running it again is harmless).
Logs go to stderr; RUST_LOG filters them (default info).";

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
    /// Serve every peer pod of the configuration until SIGINT/SIGTERM.
    Serve,
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
    Create {
        /// The peer pod's sandbox id.
        #[arg(long)]
        sid: Sid,
    },
    /// Delete the peer pod's private key at Trustee and its local key pair
    /// and state.
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
    let config = AdaptorConfig::load(&cli.config).map_err(|error| error.to_string())?;
    match cli.command {
        Command::Keys(KeysCommand::Init) => {
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
        }
        Command::Keys(KeysCommand::Register) => {
            let adaptor = Adaptor::open(&config)
                .await
                .map_err(|error| error.to_string())?;
            adaptor
                .register_wn_key()
                .await
                .map_err(|error| error.to_string())?;
        }
        Command::Pp(PpCommand::Create { sid }) => {
            let adaptor = Adaptor::open(&config)
                .await
                .map_err(|error| error.to_string())?;
            let pp_key = adaptor
                .create_pp(&sid)
                .await
                .map_err(|error| error.to_string())?;
            eprintln!(
                "pp {sid}: key pair ready and registered at Trustee; its Kubernetes-phase host key is {}",
                pp_key.fingerprint()
            );
            eprintln!("put this WN public key into the peer pod's init-data:");
            println!("{}", adaptor.wn_public_key_line());
        }
        Command::Pp(PpCommand::Delete { sid }) => {
            let adaptor = Adaptor::open(&config)
                .await
                .map_err(|error| error.to_string())?;
            adaptor
                .teardown(&sid)
                .await
                .map_err(|error| error.to_string())?;
        }
        Command::Serve => serve(&config).await?,
    }
    Ok(())
}

/// One stdout line per status change (`pp SID: <status>`), for scripts and
/// demos; the detailed log stays on stderr.
async fn print_status_changes(handle: PpHandle) {
    let mut status = handle.watch();
    loop {
        let current = status.borrow_and_update().clone();
        println!("pp {}: {current}", handle.sid());
        if current.is_final() || status.changed().await.is_err() {
            return;
        }
    }
}

async fn serve(config: &AdaptorConfig) -> Result<(), String> {
    let adaptor = Adaptor::open(config)
        .await
        .map_err(|error| error.to_string())?;
    if config.pps.is_empty() {
        tracing::warn!("the configuration lists no peer pods ([[pp]] tables); nothing to serve");
    }
    // Every listener is bound before any PP connects, so no PP's outgoing
    // connection can take another PP's configured port. One PP that cannot
    // start (missing key, busy port) must not stop the others.
    let mut bound = Vec::with_capacity(config.pps.len());
    for pp in &config.pps {
        match adaptor.bind_pp(pp.clone()).await {
            Ok(pp) => bound.push(pp),
            Err(error) => tracing::error!("pp {}: not served: {error}", pp.sid),
        }
    }
    for pp in bound {
        match adaptor.start_pp(pp) {
            Ok(handle) => {
                tokio::spawn(print_status_changes(handle));
            }
            Err(error) => tracing::error!("not served: {error}"),
        }
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| format!("cannot watch SIGTERM: {error}"))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    Ok(())
}
