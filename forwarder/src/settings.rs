//! The forwarder's own settings: defaults, an optional TOML file and
//! command-line flags (flags win over the file, the file over defaults).
//!
//! Init-data (what the WN wants: its public key, tunnels) is not here; it is
//! read by `initdata.rs`. A bad setting fails at start with the flag or file
//! field, the value, and the expected form.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pp_http::CDH_ADDRESS;
use pp_minitoml as minitoml;

pub const HELP: &str = "\
pp-forwarder: the peer-pod side of secure comms (SSH appliance).

The worker node (WN) connects over SSH. First the attestation phase: exactly
one connection is ever admitted, authenticated by the WN public key from
init-data (or with no key when init-data has none); through it CDH reaches
Trustee, and the forwarder fetches its keys from CDH. Then the Kubernetes
phase: the host key and the only accepted client key are the ones Trustee
released. If the Kubernetes phase is not reached before the deadline, the
forwarder fails closed.

USAGE:
    pp-forwarder [OPTIONS]

OPTIONS:
    --config FILE               TOML file with any of the settings below
                                (same names, e.g. listen = \"0.0.0.0:2222\")
    --listen IP:PORT            SSH listen address [default: 0.0.0.0:2222]
    --state-dir DIR             where the phase record and the keys are kept;
                                must be a tmpfs (guest memory)
                                [default: /run/pp-forwarder]
    --initdata FILE             init-data: plain TOML, or base64(gzip(TOML)) as
                                peer pods deliver it [default: /run/peerpod/initdata]
    --initdata-optional         run with the built-in defaults when the
                                init-data file does not exist (attestation
                                phase then admits a client with NO key)
    --cdh-url URL               CDH resource API, http://IP:PORT
                                [default: http://127.0.0.1:8006]
    --cdh-timeout DUR           limit for one CDH request (each runs a whole
                                attestation round) [default: 60s]
    --attestation-deadline DUR  fail closed if the Kubernetes phase is not
                                reached by then, e.g. 10m, 90s [default: 10m]
    --deadline-action ACTION    poweroff | exit [default: poweroff]
    --upgrade-grace DUR         how long the attestation connection stays up
                                after UPGRADE [default: 30s]

  Before authentication (docs/threat-model.md; a refused connection is
  closed at accept, before any SSH byte; refusals are logged at most once
  per reason per 10s, with a count):
    --max-startups N            most unauthenticated connections at once
                                [default: 32]
    --max-startups-reserved N   of those, slots only for preferred sources:
                                init-data's wn-source-networks and sources
                                that authenticated before [default: N/4]
    --max-startups-per-source N most unauthenticated connections of one
                                source (an IPv4 /32 or IPv6 /64) [default: 4]
    --source-prefixes V4,V6     prefix lengths that make one source
                                [default: 32,64]
    --max-sources N             sources remembered (penalties, earlier
                                logins); the least recently seen idle one
                                is forgotten first [default: 4096]
    --penalty-max DUR           a source whose connections end without
                                authenticating is refused while the slots
                                are half taken: 1s, doubling each time, at
                                most this; forgiven on a login [default: 60s]
    --handshake-grace DUR       time a connection has to send its SSH version
                                and finish key exchange [default: 5s]
    --login-grace DUR           time a connection has to authenticate
                                [default: 20s]
    --log-level LEVEL           error | warn | info | debug | trace [default: info]
    --nft-rules FILE            write to FILE the nftables rules that enforce
                                init-data's wn-source-networks-only (only a
                                comment when it is off) and exit; the image
                                loads them at boot before the forwarder starts
    -h, --help                  print this help
    -V, --version               print the version
";

/// What happens when the attestation deadline passes or the phase fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailAction {
    /// Power the VM off at once (reboot(2)).
    Poweroff,
    /// Exit the process with status 3 (tests, supervised setups).
    Exit,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub initdata: PathBuf,
    pub initdata_optional: bool,
    pub cdh: SocketAddr,
    pub cdh_timeout: Duration,
    pub attestation_deadline: Duration,
    pub deadline_action: FailAction,
    pub max_startups: usize,
    /// `None`: a quarter of `max_startups`.
    pub max_startups_reserved: Option<usize>,
    pub max_startups_per_source: usize,
    pub source_prefixes: (u8, u8),
    pub max_sources: usize,
    pub penalty_max: Duration,
    pub handshake_grace: Duration,
    pub login_grace: Duration,
    pub upgrade_grace: Duration,
    pub log_level: log::LevelFilter,
    /// Write the firewall rules there and exit (`--nft-rules`).
    pub nft_rules: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 2222)),
            state_dir: PathBuf::from("/run/pp-forwarder"),
            initdata: PathBuf::from("/run/peerpod/initdata"),
            initdata_optional: false,
            cdh: CDH_ADDRESS,
            cdh_timeout: Duration::from_secs(60),
            attestation_deadline: Duration::from_secs(600),
            deadline_action: FailAction::Poweroff,
            max_startups: 32,
            max_startups_reserved: None,
            max_startups_per_source: 4,
            source_prefixes: (32, 64),
            max_sources: 4096,
            penalty_max: Duration::from_secs(60),
            handshake_grace: Duration::from_secs(5),
            login_grace: Duration::from_secs(20),
            upgrade_grace: Duration::from_secs(30),
            log_level: log::LevelFilter::Info,
            nft_rules: None,
        }
    }
}

/// What the command line asked for.
pub enum Command {
    Run(Box<Settings>),
    Help,
    Version,
}

/// Parses the command line (and the `--config` file it names).
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_iter(args);
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut config_file = None;
    let mut initdata_optional = false;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("initdata-optional") => initdata_optional = true,
            Long("config") => {
                config_file = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?))
            }
            Long(name) => {
                let name = name.to_string();
                let value = parser.value().map_err(|e| format!("--{name}: {e}"))?;
                let value = value
                    .into_string()
                    .map_err(|_| format!("--{name}: the value is not valid UTF-8"))?;
                flags.push((name, value));
            }
            other => return Err(format!("{}; see --help", other.unexpected())),
        }
    }
    let mut settings = Settings::default();
    if let Some(path) = config_file {
        apply_file(&mut settings, &path)?;
    }
    for (name, value) in flags {
        apply(&mut settings, &name, &value).map_err(|e| format!("--{name} {value}: {e}"))?;
    }
    if initdata_optional {
        settings.initdata_optional = true;
    }
    settings.preauth_limits()?;
    Ok(Command::Run(Box::new(settings)))
}

fn apply_file(settings: &mut Settings, path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read settings file {}: {e}", path.display()))?;
    let in_file = |message: String| format!("settings file {}: {message}", path.display());
    let table = minitoml::parse(&text).map_err(|e| in_file(e.to_string()))?;
    for (key, value) in table.into_entries() {
        let applied = match key.as_str() {
            "initdata-optional" => value
                .into_bool(&key)
                .map(|optional| settings.initdata_optional = optional),
            "max-startups"
            | "max-startups-reserved"
            | "max-startups-per-source"
            | "max-sources" => value
                .into_integer(&key)
                .and_then(|n| apply(settings, &key, &n.to_string())),
            "listen"
            | "state-dir"
            | "initdata"
            | "cdh-url"
            | "cdh-timeout"
            | "attestation-deadline"
            | "deadline-action"
            | "login-grace"
            | "handshake-grace"
            | "penalty-max"
            | "source-prefixes"
            | "upgrade-grace"
            | "log-level" => value
                .into_string(&key)
                .and_then(|value| apply(settings, &key, &value)),
            _ => Err(minitoml::unknown_key(
                &key,
                "one of the option names of --help",
            )),
        };
        applied.map_err(|e| in_file(format!("field {key}: {e}")))?;
    }
    Ok(())
}

fn apply(settings: &mut Settings, name: &str, value: &str) -> Result<(), String> {
    match name {
        "listen" => settings.listen = parse_socket_addr(value)?,
        "state-dir" => settings.state_dir = PathBuf::from(value),
        "initdata" => settings.initdata = PathBuf::from(value),
        "nft-rules" => settings.nft_rules = Some(PathBuf::from(value)),
        "cdh-url" => settings.cdh = parse_http_url(value)?,
        "cdh-timeout" => settings.cdh_timeout = parse_duration(value)?,
        "attestation-deadline" => settings.attestation_deadline = parse_duration(value)?,
        "deadline-action" => {
            settings.deadline_action = match value {
                "poweroff" => FailAction::Poweroff,
                "exit" => FailAction::Exit,
                _ => return Err("expected poweroff or exit".into()),
            }
        }
        "max-startups" => settings.max_startups = parse_count(value)?,
        "max-startups-reserved" => {
            settings.max_startups_reserved = Some(
                value
                    .parse()
                    .map_err(|_| "expected a whole number".to_string())?,
            )
        }
        "max-startups-per-source" => settings.max_startups_per_source = parse_count(value)?,
        "max-sources" => settings.max_sources = parse_count(value)?,
        "source-prefixes" => settings.source_prefixes = parse_prefixes(value)?,
        "penalty-max" => settings.penalty_max = parse_duration(value)?,
        "handshake-grace" => settings.handshake_grace = parse_duration(value)?,
        "login-grace" => settings.login_grace = parse_duration(value)?,
        "upgrade-grace" => settings.upgrade_grace = parse_duration(value)?,
        "log-level" => {
            settings.log_level = value
                .parse()
                .map_err(|_| "expected error, warn, info, debug or trace".to_string())?
        }
        _ => return Err(format!("unknown option --{name}; see --help")),
    }
    Ok(())
}

impl Settings {
    /// The numbers of pre-auth admission; an error if they contradict.
    pub fn preauth_limits(&self) -> Result<crate::preauth::Limits, String> {
        let reserved = self.max_startups_reserved.unwrap_or(self.max_startups / 4);
        if reserved >= self.max_startups {
            return Err(format!(
                "max-startups-reserved ({reserved}) must be below max-startups ({}): \
                 other sources need slots too",
                self.max_startups
            ));
        }
        Ok(crate::preauth::Limits {
            max_startups: self.max_startups,
            reserved,
            per_source: self.max_startups_per_source,
            penalty_max: self.penalty_max,
            max_sources: self.max_sources,
            ipv4_prefix: self.source_prefixes.0,
            ipv6_prefix: self.source_prefixes.1,
        })
    }
}

fn parse_count(value: &str) -> Result<usize, String> {
    match value.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number above 0".into()),
    }
}

/// `V4,V6`: prefix lengths, e.g. `32,64` or `24,48`.
fn parse_prefixes(value: &str) -> Result<(u8, u8), String> {
    let expected = || "expected V4,V6 prefix lengths, e.g. 32,64 (IPv4 0-32, IPv6 0-128)";
    let (v4, v6) = value.split_once(',').ok_or_else(expected)?;
    match (v4.trim().parse::<u8>(), v6.trim().parse::<u8>()) {
        (Ok(v4), Ok(v6)) if v4 <= 32 && v6 <= 128 => Ok((v4, v6)),
        _ => Err(expected().into()),
    }
}

/// `IP:PORT` with an IP literal (the forwarder never resolves names).
fn parse_socket_addr(value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| "expected IP:PORT with an IP literal, e.g. 0.0.0.0:2222 or [::]:2222".into())
}

/// `http://IP:PORT[/]`: CDH is always a loopback HTTP service.
fn parse_http_url(value: &str) -> Result<SocketAddr, String> {
    let rest = value
        .strip_prefix("http://")
        .ok_or_else(|| "expected http://IP:PORT (CDH speaks plain HTTP on loopback)".to_string())?;
    parse_socket_addr(rest.trim_end_matches('/'))
}

/// `90`, `90s`, `500ms`, `10m`, `1h`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let expected = || format!("expected a duration like 90s, 500ms, 10m or 1h, got {value:?}");
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| expected())?;
    let millis = match unit {
        "" | "s" => number.checked_mul(1000),
        "ms" => Some(number),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => None,
    };
    millis.map(Duration::from_millis).ok_or_else(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Settings, String> {
        let args = std::iter::once("pp-forwarder")
            .chain(args.iter().copied())
            .map(OsString::from);
        match parse_args(args)? {
            Command::Run(settings) => Ok(*settings),
            _ => Err("not a run".into()),
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = run(&[]).unwrap();
        assert_eq!(s.listen, "0.0.0.0:2222".parse().unwrap());
        assert_eq!(s.cdh, "127.0.0.1:8006".parse().unwrap());
        assert_eq!(s.attestation_deadline, Duration::from_secs(600));
        assert_eq!(s.deadline_action, FailAction::Poweroff);
        assert!(!s.initdata_optional);
    }

    #[test]
    fn flags_override_defaults() {
        let s = run(&[
            "--listen",
            "127.0.0.1:1",
            "--attestation-deadline",
            "90s",
            "--deadline-action",
            "exit",
        ])
        .unwrap();
        assert_eq!(s.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(s.attestation_deadline, Duration::from_secs(90));
        assert_eq!(s.deadline_action, FailAction::Exit);
    }

    #[test]
    fn host_names_are_refused_because_the_forwarder_never_resolves() {
        let err = run(&["--cdh-url", "http://localhost:8006"]).unwrap_err();
        assert!(err.contains("IP literal"), "{err}");
    }

    #[test]
    fn bad_durations_name_the_expected_form() {
        assert!(parse_duration("10x").unwrap_err().contains("like 90s"));
        assert!(parse_duration("").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
    }

    #[test]
    fn unknown_flags_are_errors() {
        assert!(
            run(&["--frobnicate", "1"])
                .unwrap_err()
                .contains("unknown option")
        );
    }

    #[test]
    fn settings_file_is_applied_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("ppf-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7\"\nmax-startups = 3\nlogin-grace = \"5s\"\n",
        )
        .unwrap();
        let s = run(&["--config", file.to_str().unwrap(), "--login-grace", "7s"]).unwrap();
        assert_eq!(s.listen, "127.0.0.1:7".parse().unwrap());
        assert_eq!(s.max_startups, 3);
        assert_eq!(s.login_grace, Duration::from_secs(7));
        assert_eq!(s.preauth_limits().unwrap().reserved, 0);
        std::fs::write(&file, "lissen = \"127.0.0.1:7\"\n").unwrap();
        assert!(
            run(&["--config", file.to_str().unwrap()])
                .unwrap_err()
                .contains("lissen")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn preauth_settings_have_safe_defaults_and_are_checked() {
        let limits = run(&[]).unwrap().preauth_limits().unwrap();
        assert_eq!(
            (limits.max_startups, limits.reserved, limits.per_source),
            (32, 8, 4)
        );
        assert_eq!((limits.ipv4_prefix, limits.ipv6_prefix), (32, 64));
        let s = run(&[
            "--max-startups-reserved",
            "3",
            "--source-prefixes",
            "24,48",
            "--handshake-grace",
            "2s",
        ])
        .unwrap();
        let limits = s.preauth_limits().unwrap();
        assert_eq!(
            (limits.reserved, limits.ipv4_prefix, limits.ipv6_prefix),
            (3, 24, 48)
        );
        assert_eq!(s.handshake_grace, Duration::from_secs(2));
        let error = run(&["--max-startups", "4", "--max-startups-reserved", "4"]).unwrap_err();
        assert!(error.contains("must be below max-startups"), "{error}");
        assert!(
            run(&["--source-prefixes", "33,64"])
                .unwrap_err()
                .contains("V4,V6")
        );
        assert!(run(&["--max-startups-per-source", "0"]).is_err());
    }
}
