//! The supervisor's driver: starts processes, reaps every child (services
//! and orphans alike, as PID 1 must), keeps a PID file per running service,
//! and sleeps until a child ends (SIGCHLD through a signalfd) or a restart
//! is due. While the start order waits for an endpoint to be ready, it
//! probes it (one connection attempt, closed at once) every
//! [`PROBE_INTERVAL`]. Returns when the pod must power off, after killing
//! and reaping the services still running.

use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::console::{Console, since_boot};
use crate::supervisor::{Ending, Endpoint, PowerOff, Service, Supervisor};

/// How often an awaited endpoint is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// How long one TCP probe may take (loopback answers at once).
const TCP_PROBE_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the power-off waits for the killed services to be gone.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Runs `services` until one of them makes the pod power off; returns why.
/// `env` is every service's whole environment.
pub fn supervise(
    services: Vec<Service>,
    env: &[(String, String)],
    state_dir: &Path,
    console: &Console,
) -> String {
    let mut sigchld = SigSet::empty();
    sigchld.add(Signal::SIGCHLD);
    // Blocked so that it queues on the signalfd; std resets the mask in
    // the children it starts.
    if let Err(e) = sigchld.thread_block() {
        return format!("cannot block SIGCHLD: {}", e.desc());
    }
    let wakeups =
        match SignalFd::with_flags(&sigchld, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => fd,
            Err(e) => return format!("cannot create a signalfd: {}", e.desc()),
        };
    let mut driver = Driver {
        supervisor: Supervisor::new(services),
        env,
        state_dir,
        console,
    };
    loop {
        if let Some(reason) = driver.step() {
            kill_and_reap(driver.supervisor.running().collect());
            return reason;
        }
        let probe_at = driver
            .supervisor
            .awaiting()
            .map(|_| since_boot() + PROBE_INTERVAL);
        let wakeup = match (driver.supervisor.next_wakeup(), probe_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = match wakeup {
            None => PollTimeout::NONE,
            Some(at) => {
                let ms = at
                    .saturating_sub(since_boot())
                    .as_millis()
                    .saturating_add(1);
                PollTimeout::try_from(ms.min(60_000) as u32).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(wakeups.as_fd(), PollFlags::POLLIN)];
        // EINTR and timeouts alike lead to the next step.
        let _ = poll(&mut fds, timeout);
        while let Ok(Some(_)) = wakeups.read_signal() {}
    }
}

struct Driver<'a> {
    supervisor: Supervisor,
    env: &'a [(String, String)],
    state_dir: &'a Path,
    console: &'a Console,
}

impl Driver<'_> {
    /// Carries out what is due and reaps what ended, until nothing changes.
    fn step(&mut self) -> Option<String> {
        loop {
            let mut changed = false;
            if let Some(endpoint) = self.supervisor.awaiting()
                && accepts_connections(endpoint)
            {
                self.console.line(&format!("{endpoint} is ready"));
                self.supervisor.endpoint_ready();
            }
            let due = match self.supervisor.poll(since_boot()) {
                Ok(due) => due,
                Err(PowerOff(reason)) => return Some(reason),
            };
            for index in due {
                changed = true;
                if let Some(PowerOff(reason)) = self.start(index) {
                    return Some(reason);
                }
            }
            while let Some((pid, ending)) = reap() {
                changed = true;
                let (index, power_off) = self.supervisor.exited(pid, ending.clone(), since_boot());
                if let Some(index) = index {
                    let name = &self.supervisor.service(index).name;
                    self.console.line(&format!("{name} (pid {pid}) {ending}"));
                    let _ = std::fs::remove_file(pid_file(self.state_dir, name));
                }
                if let Some(PowerOff(reason)) = power_off {
                    return Some(reason);
                }
            }
            if !changed {
                return None;
            }
        }
    }

    fn start(&mut self, index: usize) -> Option<PowerOff> {
        let service = self.supervisor.service(index);
        let (program, args) = service.command.split_first()?;
        let spawned = Command::new(program)
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(self.console.stdio())
            .stderr(self.console.stdio())
            .spawn();
        let name = service.name.clone();
        match spawned {
            Ok(child) => {
                // Reaped by waitpid(-1) in `reap`, not through `child`.
                let pid = child.id() as i32;
                self.console.line(&format!("started {name} (pid {pid})"));
                if let Err(e) = std::fs::write(pid_file(self.state_dir, &name), format!("{pid}\n"))
                {
                    self.console
                        .line(&format!("cannot write the PID file of {name}: {e}"));
                }
                self.supervisor.started(index, pid);
                None
            }
            Err(e) => {
                self.console.line(&format!("cannot start {name}: {e}"));
                self.supervisor
                    .start_failed(index, e.to_string(), since_boot())
            }
        }
    }
}

/// Kills `pids` and reaps them, waiting at most [`KILL_WAIT`] (a process
/// stuck in the kernel must not hold up the power-off), so that no service
/// runs on once `supervise` has returned.
fn kill_and_reap(mut pids: Vec<i32>) {
    for &pid in &pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let give_up = std::time::Instant::now() + KILL_WAIT;
    while !pids.is_empty() && std::time::Instant::now() < give_up {
        pids.retain(|&pid| {
            matches!(
                waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::StillAlive)
            )
        });
        if !pids.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Whether `endpoint` accepts a connection now (the connection is closed
/// at once).
fn accepts_connections(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Unix(path) => UnixStream::connect(path).is_ok(),
        Endpoint::Tcp(addr) => TcpStream::connect_timeout(addr, TCP_PROBE_TIMEOUT).is_ok(),
    }
}

/// One ended child, if any, without blocking.
fn reap() -> Option<(i32, Ending)> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => return Some((pid.as_raw(), Ending::Status(code))),
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                return Some((pid.as_raw(), Ending::Signal(signal.as_str().into())));
            }
            // Stops and continues are not ends.
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Where pp-init records each running service's PID (`NAME.pid`).
fn pid_file(state_dir: &Path, service: &str) -> PathBuf {
    state_dir.join(format!("{service}.pid"))
}
