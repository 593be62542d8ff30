//! pp-init run as an ordinary process (supervise-only mode) with real
//! services (/bin/sh scripts): start order, `once` failures, restarts and
//! the restart limit, PID files, the environment and signal mask services
//! get. The decisions themselves are unit-tested in supervisor.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("pp-init-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf")).unwrap();
        Scratch(dir)
    }

    fn config(&self, file: &str, text: &str) {
        std::fs::write(
            self.0.join("conf").join(file),
            text.replace("@DIR@", self.0.to_str().unwrap()),
        )
        .unwrap();
    }

    /// Runs pp-init on conf/; returns its exit status and standard error.
    fn run(&self, env: &[(&str, &str)]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_pp-init"))
            .arg("--config-dir")
            .arg(self.0.join("conf"))
            .arg("--state-dir")
            .arg(self.0.join("state"))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.0.join(file)).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn service(name: &str, start: &str, script: &str) -> String {
    let delay = if start == "daemon" {
        "restart_delay_ms = 20\n"
    } else {
        ""
    };
    format!(
        "[[service]]\nname = \"{name}\"\nstart = \"{start}\"\n{delay}command = [\"/bin/sh\", \"-c\", '''{script}''']\n"
    )
}

#[test]
fn services_run_in_order_daemons_restart_and_one_ending_too_often_stops_everything() {
    let s = Scratch::new("order");
    s.config(
        "10-first.toml",
        &format!(
            "[env]\nGREETING = \"default\"\n{}",
            service("first", "once", "echo first:$GREETING >> @DIR@/log; grep -q '^SigBlk:[[:space:]]*0*$' /proc/self/status")
        ),
    );
    s.config(
        "20-sleeper.toml",
        &service("sleeper", "daemon", "exec sleep 600"),
    );
    s.config(
        "30-check.toml",
        &format!(
            "{}{}",
            service(
                "check",
                "once",
                "kill -0 $(cat @DIR@/state/sleeper.pid) && echo sleeper-pid-ok >> @DIR@/log"
            ),
            service("flaky", "daemon", "echo flaky >> @DIR@/log; exit 3"),
        ),
    );
    let (status, stderr) = s.run(&[("GREETING", "from-the-kernel")]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr
            .contains("would power off: flaky exited with status 3; it ended 5 times within 30 s"),
        "{stderr}"
    );
    let log = s.read("log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines[..2],
        ["first:from-the-kernel", "sleeper-pid-ok"],
        "{log}"
    );
    assert_eq!(lines[2..], ["flaky"; 5], "{log}");
    let sleeper: i32 = s
        .read("state/sleeper.pid")
        .trim()
        .parse()
        .expect("sleeper's PID file");
    let alive = Path::new(&format!("/proc/{sleeper}")).exists()
        && !std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "the daemon still running was killed");
}

#[test]
fn a_failing_once_service_stops_the_start_order() {
    let s = Scratch::new("once");
    s.config(
        "10.toml",
        &format!(
            "{}{}",
            service("provision", "once", "exit 7"),
            service(
                "forwarder",
                "daemon",
                "echo started >> @DIR@/log; exec sleep 600"
            )
        ),
    );
    let (status, stderr) = s.run(&[]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("would power off: provision exited with status 7"),
        "{stderr}"
    );
    assert_eq!(
        s.read("log"),
        "",
        "nothing after the failed once service ran"
    );
}

#[test]
fn a_missing_program_and_a_bad_configuration_are_reported() {
    let s = Scratch::new("missing");
    s.config(
        "10.toml",
        "[[service]]\nname = \"x\"\nstart = \"once\"\ncommand = [\"/nonexistent/x\"]\n",
    );
    let (status, stderr) = s.run(&[]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("would power off: x could not start"),
        "{stderr}"
    );

    s.config(
        "20.toml",
        "[[service]]\nname = \"y\"\nstart = \"sometimes\"\ncommand = [\"/bin/true\"]\n",
    );
    let (status, stderr) = s.run(&[]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains("bad configuration:") && stderr.contains("20.toml"),
        "{stderr}"
    );
}

#[test]
fn a_service_waits_for_a_late_socket_and_one_that_never_comes_powers_off() {
    let s = Scratch::new("ready");
    let socket = s.0.join("late.sock");
    s.config(
        "10.toml",
        &format!(
            "{}after_ready = {{ unix = \"@DIR@/late.sock\", within_ms = 30000 }}\n{}",
            service("waiter", "once", "echo waiter >> @DIR@/log"),
            service("end", "once", "exit 9"),
        ),
    );
    // The socket appears 300 ms after pp-init starts (the test binds it).
    let binder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::os::unix::net::UnixListener::bind(&socket).unwrap()
    });
    let (status, stderr) = s.run(&[]);
    drop(binder.join().unwrap());
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("late.sock is ready"), "{stderr}");
    assert!(
        stderr.contains("would power off: end exited with status 9"),
        "{stderr}"
    );
    assert_eq!(s.read("log"), "waiter\n");

    let s = Scratch::new("never");
    s.config(
        "10.toml",
        &format!(
            "{}after_ready = {{ unix = \"@DIR@/never.sock\", within_ms = 300 }}\n",
            service("waiter", "once", "echo waiter >> @DIR@/log"),
        ),
    );
    let (status, stderr) = s.run(&[]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("would power off: waiter was not started: unix socket")
            && stderr.contains("never.sock did not accept a connection within 300 ms"),
        "{stderr}"
    );
    assert_eq!(s.read("log"), "", "the waiting service never started");
}
