//! The `pp-adaptor` command line (being written: subcommands land in the next commits).
fn main() {}
