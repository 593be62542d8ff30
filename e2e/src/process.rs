//! Child processes for tests: output captured into a buffer the test can
//! wait on, and killed (SIGKILL) and reaped when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub struct Process {
    name: String,
    child: Child,
    output: Arc<(Mutex<String>, Condvar)>,
}

impl Process {
    pub fn spawn(program: &Path, args: &[String]) -> Process {
        let mut command = Command::new(program);
        command.args(args);
        Self::from_command(command)
    }

    /// Starts a prepared command; its stdio is taken over.
    pub fn from_command(mut command: Command) -> Process {
        let program = Path::new(command.get_program()).to_owned();
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let output = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let streams: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for stream in streams {
            let output = output.clone();
            let name = name.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("PP_E2E_VERBOSE").is_some() {
                        eprintln!("[{name}] {line}");
                    }
                    let (text, changed) = &*output;
                    let mut text = text.lock().unwrap_or_else(|p| p.into_inner());
                    text.push_str(&line);
                    text.push('\n');
                    changed.notify_all();
                }
            });
        }
        Process {
            name,
            child,
            output,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until the output contains `needle`; returns the line holding it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (text, changed) = &*self.output;
        let mut guard = text.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(line) = guard.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} did not print {needle:?} within {timeout:?}; it printed:\n{}",
                self.name,
                *guard
            );
            guard = changed
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until at least `n` lines contain `needle` (output is read by
    /// other threads, so a line the process just wrote may not be here yet).
    pub fn wait_for_count(&self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (text, changed) = &*self.output;
        let mut guard = text.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let seen = guard.lines().filter(|l| l.contains(needle)).count();
            if seen >= n {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} printed {needle:?} {seen} times, not {n}, within {timeout:?}; it printed:\n{}",
                self.name,
                *guard
            );
            guard = changed
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// How many lines contain `needle` so far.
    pub fn count(&self, needle: &str) -> usize {
        self.output().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, like a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}
