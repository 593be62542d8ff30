//! The boot description: every `*.toml` file of the configuration directory
//! (`/etc/pp-init.d`), read in name order and merged into one [`Config`].
//!
//! ```toml
//! modules = ["virtio_net"]            # loaded before the first service
//! [env]                               # every service's environment
//! PP_ATTESTATION_DEADLINE = "10m"     # NAME=value on the kernel command line overrides it
//! [directories]
//! "/run/pp-forwarder" = 0o700         # created (mode set) before the first service
//! [[service]]
//! name = "pp-forwarder"
//! start = "daemon"                    # or "once": must exit 0 before the next starts
//! command = ["/usr/local/bin/pp-forwarder", "--attestation-deadline", "${PP_ATTESTATION_DEADLINE}"]
//! restart_delay_ms = 100              # daemons only (default 1000)
//! # start only once this endpoint accepts a connection; power off if it
//! # does not within within_ms (counted from when the service is next)
//! after_ready = { tcp = "127.0.0.1:8006", within_ms = 60000 }
//! # or: after_ready = { unix = "/run/x/agent.sock", within_ms = 60000 }
//! ```
//!
//! Services start in the order the files list them; a service with
//! `after_ready` holds the order (it and the services after it) until its
//! endpoint accepts a connection, which is how a service waits for an
//! earlier daemon to be up rather than racing it. It gates the first start
//! only; restarts after a crash follow `restart_delay_ms` and the restart
//! limit. `${NAME}` in a command
//! is replaced by the variable from `[env]`; an unknown name is an error.
//! Merging: `[env]` values of a later file win, `modules`,
//! `[directories]` and services add up; a service name may appear once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::supervisor::{Endpoint, Readiness, Service, Start};

/// Everything pp-init does, in order: system set-up, then the services.
#[derive(Debug, Default, PartialEq)]
pub struct Config {
    pub modules: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub directories: BTreeMap<PathBuf, u32>,
    pub services: Vec<Service>,
}

/// Why the configuration cannot be used; names the file.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

const DEFAULT_RESTART_DELAY: Duration = Duration::from_millis(1000);

/// Upper bound on a file's size: the configuration is a handful of lines.
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    modules: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    directories: BTreeMap<PathBuf, u32>,
    #[serde(default)]
    service: Vec<ServiceEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    name: String,
    start: StartKind,
    command: Vec<String>,
    restart_delay_ms: Option<u64>,
    after_ready: Option<AfterReady>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AfterReady {
    unix: Option<PathBuf>,
    tcp: Option<String>,
    within_ms: u64,
}

impl AfterReady {
    fn readiness(self) -> Result<Readiness, String> {
        let endpoint = match (self.unix, self.tcp) {
            (Some(path), None) if path.is_absolute() => Endpoint::Unix(path),
            (Some(path), None) => {
                return Err(format!(
                    "after_ready.unix {path:?} must be an absolute path"
                ));
            }
            (None, Some(addr)) => Endpoint::Tcp(addr.parse().map_err(|_| {
                format!("after_ready.tcp {addr:?} must be IP:PORT (an IP literal)")
            })?),
            _ => return Err("after_ready needs exactly one of unix or tcp".into()),
        };
        if self.within_ms == 0 {
            return Err("after_ready.within_ms must be more than 0".into());
        }
        Ok(Readiness {
            endpoint,
            within: Duration::from_millis(self.within_ms),
        })
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum StartKind {
    Once,
    Daemon,
}

impl Config {
    /// Reads every `*.toml` file of `dir` in name order. `overrides` holds
    /// the environment pp-init was started with: a variable that `[env]`
    /// names takes its value from there when present.
    pub fn load_dir(
        dir: &Path,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let at_dir = |reason: String| ConfigError {
            file: dir.to_path_buf(),
            reason,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| at_dir(format!("cannot list: {e}")))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| at_dir(format!("cannot list: {e}")))?
                .path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(at_dir("no *.toml files".into()));
        }
        let mut texts = Vec::new();
        for path in files {
            let text = read_bounded(&path).map_err(|reason| ConfigError {
                file: path.clone(),
                reason,
            })?;
            texts.push((path, text));
        }
        Config::from_texts(&texts, overrides)
    }

    /// Merges already-read files (name, text), in the given order.
    pub fn from_texts(
        texts: &[(PathBuf, String)],
        overrides: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut entries = Vec::new();
        for (path, text) in texts {
            let file: File = toml::from_str(text).map_err(|e| ConfigError {
                file: path.clone(),
                reason: e.message().to_string(),
            })?;
            config.modules.extend(file.modules);
            config.env.extend(file.env);
            config.directories.extend(file.directories);
            entries.extend(file.service.into_iter().map(|s| (path, s)));
        }
        for (name, value) in config.env.iter_mut() {
            if let Some(given) = overrides.get(name) {
                value.clone_from(given);
            }
        }
        for (path, entry) in entries {
            let service = config.service(entry).map_err(|reason| ConfigError {
                file: path.clone(),
                reason,
            })?;
            config.services.push(service);
        }
        Ok(config)
    }

    fn service(&self, entry: ServiceEntry) -> Result<Service, String> {
        let name = entry.name;
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(format!(
                "service name {name:?}: use letters, digits, '-' and '_'"
            ));
        }
        if self.services.iter().any(|s| s.name == name) {
            return Err(format!("service {name:?} is defined twice"));
        }
        if !entry
            .command
            .first()
            .is_some_and(|program| program.starts_with('/'))
        {
            return Err(format!(
                "service {name:?}: command must start with an absolute path"
            ));
        }
        let command = entry
            .command
            .iter()
            .map(|arg| expand(arg, &self.env))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("service {name:?}: {e}"))?;
        let start = match (entry.start, entry.restart_delay_ms) {
            (StartKind::Once, Some(_)) => {
                return Err(format!("service {name:?}: restart_delay_ms is for daemons"));
            }
            (StartKind::Once, None) => Start::Once,
            (StartKind::Daemon, delay) => Start::Daemon {
                restart_delay: delay.map_or(DEFAULT_RESTART_DELAY, Duration::from_millis),
            },
        };
        let after_ready = entry
            .after_ready
            .map(AfterReady::readiness)
            .transpose()
            .map_err(|e| format!("service {name:?}: {e}"))?;
        Ok(Service {
            name,
            command,
            start,
            after_ready,
        })
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(text)
}

/// Replaces every `${NAME}` in `arg` by `env[NAME]`.
fn expand(arg: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed \"${{\" in {arg:?}"))?;
        let name = &after[..end];
        let value = env
            .get(name)
            .ok_or_else(|| format!("${{{name}}} is not defined in [env]"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[&str], overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let texts: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, text)| (PathBuf::from(format!("{i}.toml")), text.to_string()))
            .collect();
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_texts(&texts, &overrides)
    }

    fn reason(result: Result<Config, ConfigError>) -> String {
        result
            .expect_err("the configuration must be refused")
            .to_string()
    }

    #[test]
    fn files_merge_in_order_and_the_kernel_environment_overrides_env() {
        let config = load(
            &[
                "modules = [\"virtio_net\"]\n[env]\nDEADLINE = \"10m\"\n[directories]\n\"/run/x\" = 0o700\n\
                 [[service]]\nname = \"fw\"\nstart = \"once\"\ncommand = [\"/usr/sbin/nft\", \"-f\", \"/etc/nftables.conf\"]\n",
                "modules = [\"configfs\"]\n\
                 [[service]]\nname = \"fwd\"\nstart = \"daemon\"\nrestart_delay_ms = 100\ncommand = [\"/bin/fwd\", \"--deadline=${DEADLINE}s\"]\n",
            ],
            &[("DEADLINE", "30"), ("UNRELATED", "x")],
        )
        .unwrap();
        assert_eq!(config.modules, ["virtio_net", "configfs"]);
        assert_eq!(config.env.len(), 1);
        assert_eq!(config.directories[Path::new("/run/x")], 0o700);
        assert_eq!(config.services.len(), 2);
        assert_eq!(config.services[0].start, Start::Once);
        assert_eq!(config.services[1].command, ["/bin/fwd", "--deadline=30s"]);
        assert_eq!(
            config.services[1].start,
            Start::Daemon {
                restart_delay: Duration::from_millis(100)
            }
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_file_and_the_reason() {
        let svc = |body: &str| format!("[[service]]\n{body}\n");
        assert!(
            reason(load(
                &[&svc("name = \"a\"\nstart = \"once\"\ncommand = [\"rel\"]")],
                &[]
            ))
            .contains("absolute path")
        );
        assert!(
            reason(load(
                &[&svc("name = \"a\"\nstart = \"once\"\ncommand = []")],
                &[]
            ))
            .contains("absolute path")
        );
        assert!(
            reason(load(
                &[&svc("name = \"a b\"\nstart = \"once\"\ncommand = [\"/x\"]")],
                &[]
            ))
            .contains("service name")
        );
        assert!(
            reason(load(
                &[&svc("name = \"a\"\nstart = \"later\"\ncommand = [\"/x\"]")],
                &[]
            ))
            .starts_with("0.toml")
        );
        assert!(
            reason(load(
                &[&svc(
                    "name = \"a\"\nstart = \"once\"\ncommand = [\"/x\"]\nretry = 1"
                )],
                &[]
            ))
            .contains("unknown field")
        );
        assert!(
            reason(load(
                &[&svc(
                    "name = \"a\"\nstart = \"once\"\nrestart_delay_ms = 5\ncommand = [\"/x\"]"
                )],
                &[]
            ))
            .contains("daemons")
        );
        assert!(
            reason(load(
                &[&svc(
                    "name = \"a\"\nstart = \"once\"\ncommand = [\"/x\", \"${NOPE}\"]"
                )],
                &[]
            ))
            .contains("${NOPE}")
        );
        assert!(
            reason(load(
                &[&svc(
                    "name = \"a\"\nstart = \"once\"\ncommand = [\"/x\", \"${OPEN\"]"
                )],
                &[]
            ))
            .contains("unclosed")
        );
        let twice = svc("name = \"a\"\nstart = \"once\"\ncommand = [\"/x\"]");
        assert!(
            reason(load(&[&twice, &twice], &[]))
                .starts_with("1.toml: service \"a\" is defined twice")
        );
    }

    #[test]
    fn after_ready_takes_a_unix_socket_or_a_tcp_address_with_a_time() {
        let config = load(
            &[
                "[[service]]\nname = \"cdh\"\nstart = \"daemon\"\ncommand = [\"/cdh\"]\n\
               after_ready = { unix = \"/run/aa.sock\", within_ms = 60000 }\n\
               [[service]]\nname = \"fwd\"\nstart = \"daemon\"\ncommand = [\"/fwd\"]\n\
               after_ready = { tcp = \"127.0.0.1:8006\", within_ms = 500 }\n",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            config.services[0].after_ready,
            Some(Readiness {
                endpoint: Endpoint::Unix("/run/aa.sock".into()),
                within: Duration::from_secs(60)
            })
        );
        assert_eq!(
            config.services[1].after_ready,
            Some(Readiness {
                endpoint: Endpoint::Tcp("127.0.0.1:8006".parse().unwrap()),
                within: Duration::from_millis(500)
            })
        );
    }

    #[test]
    fn a_bad_after_ready_is_refused_with_the_reason() {
        let svc = |ready: &str| {
            format!(
                "[[service]]\nname = \"a\"\nstart = \"daemon\"\ncommand = [\"/x\"]\nafter_ready = {ready}\n"
            )
        };
        let cases = [
            ("{ within_ms = 5 }", "exactly one of unix or tcp"),
            (
                "{ unix = \"/a\", tcp = \"127.0.0.1:1\", within_ms = 5 }",
                "exactly one",
            ),
            ("{ unix = \"rel.sock\", within_ms = 5 }", "absolute path"),
            ("{ tcp = \"localhost:80\", within_ms = 5 }", "IP literal"),
            ("{ tcp = \"127.0.0.1:1\", within_ms = 0 }", "more than 0"),
            ("{ tcp = \"127.0.0.1:1\" }", "within_ms"),
            (
                "{ tcp = \"127.0.0.1:1\", within_ms = 5, every = 1 }",
                "unknown field",
            ),
        ];
        for (ready, expected) in cases {
            let why = reason(load(&[&svc(ready)], &[]));
            assert!(why.contains(expected), "{ready}: {why}");
        }
    }

    #[test]
    fn expansion_handles_several_and_adjacent_variables() {
        let env = [
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "".to_string()),
        ]
        .into();
        assert_eq!(expand("x${A}${B}y${A}", &env).unwrap(), "x1y1");
        assert_eq!(
            expand("no variables $A {A}", &env).unwrap(),
            "no variables $A {A}"
        );
    }

    #[test]
    fn a_directory_without_toml_files_is_an_error() {
        let dir = std::env::temp_dir().join(format!("pp-init-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("README"), "not toml").unwrap();
        assert!(reason(Config::load_dir(&dir, &BTreeMap::new())).contains("no *.toml files"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
