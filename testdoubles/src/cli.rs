//! Command-line flags for the doubles: `--name VALUE` or `--name=VALUE`
//! (and `-x VALUE` for a one-letter name, as guest-components' `-c`), each
//! flag at most once, `-h`/`--help` for the usage text. Unknown flags
//! and missing values are errors that name the flag. `run_main` is the
//! shared `main` of the three binaries: usage errors exit 2, runtime
//! failures exit 1, each printed with the binary's name.

use std::collections::BTreeMap;
use std::future::Future;
use std::process::ExitCode;

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Run(Flags),
}

/// The flag values given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flags(BTreeMap<String, String>);

impl Flags {
    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Parses `args` (without the program name); `known` lists the flag names
/// without dashes, all of which take a value.
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
    known: &[&str],
) -> Result<Command, String> {
    let mut flags = BTreeMap::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let short = arg
            .strip_prefix('-')
            .filter(|name| name.len() == 1 && name != &"-");
        let Some(flag) = arg.strip_prefix("--").or(short) else {
            return Err(format!("unexpected argument {arg:?} (flags start with --)"));
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("--{flag} needs a value"))?;
                (flag.to_string(), value)
            }
        };
        if !known.contains(&name.as_str()) {
            return Err(format!("unknown flag --{name} (see --help)"));
        }
        if flags.insert(name.clone(), value).is_some() {
            return Err(format!("--{name} given twice"));
        }
    }
    Ok(Command::Run(Flags(flags)))
}

/// Parses the process arguments, prints `usage` for `--help`, lets
/// `start` check the configuration and build the server future, and runs
/// that future on a single-threaded tokio runtime.
pub fn run_main<F, Fut>(name: &str, usage: &str, known: &[&str], start: F) -> ExitCode
where
    F: FnOnce(&Flags) -> Result<Fut, String>,
    Fut: Future<Output = Result<(), String>>,
{
    let flags = match parse_args(std::env::args().skip(1), known) {
        Ok(Command::Help) => {
            print!("{usage}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(flags)) => flags,
        Err(e) => {
            eprintln!("{name} (test double): {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name} (test double): cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match start(&flags) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("{name} (test double): {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(server) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name} (test double): {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `--listen`: an IP literal and port on loopback.
pub fn loopback_listen_addr(flags: &Flags, default: &str) -> Result<std::net::SocketAddr, String> {
    let text = flags.get("listen").unwrap_or(default);
    let addr: std::net::SocketAddr = text.parse().map_err(|_| {
        format!("--listen {text:?} is not IP:PORT (IP literals only, no host names)")
    })?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "--listen {addr}: a test double listens on loopback only (127.0.0.0/8 or ::1)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn both_flag_forms_are_read() {
        let Ok(Command::Run(flags)) = parse_args(
            args(&["--listen", "a", "--kbs-url=b"]),
            &["listen", "kbs-url"],
        ) else {
            panic!("not parsed");
        };
        assert_eq!(
            (flags.get("listen"), flags.get("kbs-url")),
            (Some("a"), Some("b"))
        );
    }

    #[test]
    fn help_wins_and_mistakes_are_named() {
        assert_eq!(
            parse_args(args(&["--x", "1", "-h"]), &["x"]),
            Ok(Command::Help)
        );
        assert!(
            parse_args(args(&["--nope", "1"]), &["x"])
                .unwrap_err()
                .contains("--nope")
        );
        assert!(
            parse_args(args(&["--x"]), &["x"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse_args(args(&["--x", "1", "--x=2"]), &["x"])
                .unwrap_err()
                .contains("twice")
        );
        assert!(parse_args(args(&["stray"]), &["x"]).is_err());
        assert!(parse_args(args(&["-y", "1"]), &["x"]).is_err());
    }

    #[test]
    fn one_letter_flags_take_one_dash() {
        let Ok(Command::Run(flags)) = parse_args(args(&["-c", "/run/cdh.toml"]), &["c"]) else {
            panic!("not parsed");
        };
        assert_eq!(flags.get("c"), Some("/run/cdh.toml"));
    }

    #[test]
    fn listen_addresses_must_be_loopback_ip_literals() {
        let Ok(Command::Run(flags)) = parse_args(args(&[]), &["listen"]) else {
            panic!("not parsed");
        };
        assert_eq!(
            loopback_listen_addr(&flags, "127.0.0.1:8006"),
            Ok("127.0.0.1:8006".parse().unwrap())
        );
        for bad in ["0.0.0.0:1", "10.0.0.1:1", "localhost:1", "127.0.0.1"] {
            let Ok(Command::Run(flags)) = parse_args(args(&["--listen", bad]), &["listen"]) else {
                panic!("not parsed");
            };
            assert!(
                loopback_listen_addr(&flags, "127.0.0.1:1").is_err(),
                "accepted {bad}"
            );
        }
    }
}
