//! pp-init: the peer pod's PID 1 (installed as `/init` in the initramfs).
//!
//! As PID 1 it mounts the kernel file systems, loads kernel modules, sets
//! the host name, brings loopback up, creates the runtime directories, then
//! starts the services of `/etc/pp-init.d/*.toml` in order and keeps them
//! running (see `supervisor.rs`). Whatever goes wrong — a broken
//! configuration, a set-up step, a `once` service failing, a daemon that
//! keeps dying — powers the pod off: a peer pod that is not whole must not
//! serve. It never exits.
//!
//! Run as any other PID it does no system set-up and never powers off: it
//! supervises the services of `--config-dir` and exits with status 1 where
//! PID 1 would power off (for tests, and to try a configuration).

#![forbid(unsafe_code)]

mod config;
mod console;
mod run;
mod supervisor;
mod system;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use config::Config;
use console::Console;

const USAGE: &str = "\
pp-init: the peer pod's init (PID 1)

As PID 1 (the image's /init) it takes no options: it mounts /proc, /sys,
/dev, /run and /tmp, loads kernel modules (the configured ones and those the
present devices ask for), sets the host name from /etc/hostname, brings lo
up, creates the configured directories, then starts the services of
/etc/pp-init.d/*.toml in file order (a service with after_ready waits until
its endpoint accepts a connection) and restarts daemons that end. A
failed step or service powers the pod off. Services log to the kernel
console; their PIDs are in /run/pp-init/NAME.pid. A variable named in [env]
can be overridden with NAME=value on the kernel command line.

Run as another PID, it only supervises (no mounts, modules or power-off) and
exits with status 1 where PID 1 would power off:

Usage: pp-init [--config-dir DIR] [--state-dir DIR]
  --config-dir DIR  the *.toml files to run (default /etc/pp-init.d)
  --state-dir DIR   where NAME.pid files go (default /run/pp-init)
  -h, --help        this text
";

const CONFIG_DIR: &str = "/etc/pp-init.d";
const STATE_DIR: &str = "/run/pp-init";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn main() -> ExitCode {
    if nix::unistd::getpid().as_raw() == 1 {
        let console = Console::kernel();
        let reason = boot(&console);
        console.line(&format!("powering off: {reason}"));
        let failure = system::power_off();
        console.line(&format!("{failure}; stopping every process"));
        // PID 1 must not exit (the kernel would panic and maybe reboot into
        // a fresh attestation phase): end everything else and stay idle.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(-1),
            nix::sys::signal::Signal::SIGKILL,
        );
        loop {
            std::thread::park();
        }
    }
    match parse_args(std::env::args().skip(1)) {
        Ok(Some((config_dir, state_dir))) => supervise_only(&config_dir, &state_dir),
        Ok(None) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("pp-init: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// PID 1's whole life; returns why the pod must power off.
fn boot(early: &Console) -> String {
    early.line(concat!("pp-init ", env!("CARGO_PKG_VERSION"), " starting"));
    let mut warn = |message: &str| early.line(message);
    if let Err(e) = system::mount_kernel_filesystems(&mut warn) {
        return e.to_string();
    }
    // Now /dev is devtmpfs: reopen the console there.
    let console = Console::kernel();
    let mut warn = |message: &str| console.line(message);
    let config = match Config::load_dir(Path::new(CONFIG_DIR), &kernel_environment()) {
        Ok(config) => config,
        Err(e) => return format!("bad configuration: {e}"),
    };
    if let Err(e) = system::set_hostname_from(Path::new("/etc/hostname")) {
        warn(&e.to_string());
    }
    if let Err(e) = system::enable_module_requests() {
        return e.to_string();
    }
    let aliases = system::device_modaliases(Path::new("/sys"));
    match system::load_modules(&config.modules, &aliases) {
        Ok(()) => console.line(&format!(
            "modules loaded ({} configured, {} device aliases)",
            config.modules.len(),
            aliases.len()
        )),
        Err(e) => warn(&e.to_string()),
    }
    if let Err(e) = system::mount_configfs(&mut warn) {
        return e.to_string();
    }
    for step in [system::loopback_up(), system::create_directories(&config)] {
        if let Err(e) = step {
            return e.to_string();
        }
    }
    if let Err(e) = std::fs::create_dir_all(STATE_DIR) {
        return format!("cannot create {STATE_DIR}: {e}");
    }
    console.line(&format!(
        "system ready; starting {} services",
        config.services.len()
    ));
    run::supervise(
        config.services,
        &service_environment(&config.env),
        Path::new(STATE_DIR),
        &console,
    )
}

fn supervise_only(config_dir: &Path, state_dir: &Path) -> ExitCode {
    let console = Console::stderr();
    let config = match Config::load_dir(config_dir, &kernel_environment()) {
        Ok(config) => config,
        Err(e) => {
            console.line(&format!("bad configuration: {e}"));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(state_dir) {
        console.line(&format!("cannot create {}: {e}", state_dir.display()));
        return ExitCode::from(2);
    }
    let reason = run::supervise(
        config.services,
        &service_environment(&config.env),
        state_dir,
        &console,
    );
    console.line(&format!("would power off: {reason}"));
    ExitCode::from(1)
}

/// The environment pp-init started with: for PID 1, HOME, TERM and the
/// kernel command line's NAME=value words the kernel did not use.
fn kernel_environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Every service's whole environment: a fixed PATH and HOME, then `[env]`.
fn service_environment(env: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut all = vec![
        ("PATH".to_string(), PATH.to_string()),
        ("HOME".to_string(), "/".to_string()),
    ];
    all.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

/// `Some((config_dir, state_dir))`, or None for --help.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<(PathBuf, PathBuf)>, String> {
    let mut config_dir = PathBuf::from(CONFIG_DIR);
    let mut state_dir = PathBuf::from(STATE_DIR);
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .map(PathBuf::from)
                .ok_or(format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--config-dir" => config_dir = value("--config-dir")?,
            "--state-dir" => state_dir = value("--state-dir")?,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some((config_dir, state_dir)))
}
