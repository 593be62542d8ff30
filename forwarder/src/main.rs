//! `pp-forwarder`: the peer-pod side of secure comms. This file wires the
//! pieces together; see ARCHITECTURE.md for the map.
//!
//! Everything runs on one thread (a tokio current-thread runtime with a
//! `LocalSet`): sunset's server borrows its buffers, and one thread keeps
//! the controller free of locks.
#![forbid(unsafe_code)]

mod cdh;
mod chan_io;
mod channels;
mod controller;
mod datagram;
mod end_reason;
mod fail_closed;
mod gate;
mod inbound;
mod initdata;
mod listener;
mod logger;
mod netns;
mod preauth;
mod refusal;
mod session;
mod settings;
mod store;
mod targets;

use std::process::ExitCode;

use log::{error, info};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use controller::Controller;
use settings::{Command, HELP, Settings};
use store::Store;

fn main() -> ExitCode {
    let settings = match settings::parse_args(std::env::args_os()) {
        Ok(Command::Run(settings)) => *settings,
        Ok(Command::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("pp-forwarder {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pp-forwarder: {e}");
            return ExitCode::from(2);
        }
    };
    logger::init(settings.log_level);
    if let Some(path) = &settings.nft_rules {
        return match write_nft_rules(&settings, path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `--nft-rules`: the firewall's share of `wn-source-networks-only`.
fn write_nft_rules(settings: &Settings, path: &std::path::Path) -> Result<(), String> {
    let config = initdata::load(&settings.initdata, settings.initdata_optional)?;
    let rules = preauth::firewall::nft_rules(&config, settings.listen.port());
    std::fs::write(path, rules)
        .map_err(|e| format!("cannot write the nftables rules to {}: {e}", path.display()))
}

/// Milliseconds since boot, suspend included (CLOCK_BOOTTIME): the
/// attestation deadline counts from the first start of this boot.
fn boot_time_ms() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let millis = u64::try_from(now.tv_nsec / 1_000_000).unwrap_or(0);
    secs.saturating_mul(1000).saturating_add(millis)
}

async fn run(settings: Settings) -> Result<(), String> {
    let config = initdata::load(&settings.initdata, settings.initdata_optional)?;
    let store = Store::open(&settings.state_dir)?;
    let loaded = store.load();
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {} for SSH: {e}", settings.listen))?;
    let admission = preauth::Admission::new(
        settings.preauth_limits()?,
        config.wn_source_networks.clone(),
        config.wn_source_networks_only,
    );
    let graces = session::Graces {
        handshake: settings.handshake_grace,
        login: settings.login_grace,
    };
    let ctrl = Controller::start(settings.clone(), config, store, loaded, boot_time_ms())?;
    inbound::start(ctrl.inbound_tags(), &ctrl)?;
    info!(
        "listening for SSH on {} in the {} phase",
        settings.listen,
        ctrl.phase_name()
    );
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    tokio::select! {
        () = listener::accept_loop(listener, ctrl, admission, graces) => Ok(()),
        _ = terminate.recv() => { info!("SIGTERM: stopping; the phase record stays"); Ok(()) }
        _ = interrupt.recv() => { info!("SIGINT: stopping; the phase record stays"); Ok(()) }
    }
}
