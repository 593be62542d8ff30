//! Command-line flags for the doubles: `--name VALUE` or `--name=VALUE`,
//! each flag at most once, `-h`/`--help` for the usage text. Unknown flags
//! and missing values are errors that name the flag.

use std::collections::BTreeMap;

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
        let Some(flag) = arg.strip_prefix("--") else {
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
    }
}
