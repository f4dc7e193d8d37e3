//! The command-line edge shared by the lab's binaries: argument parsing
//! whose errors are one human line, as every Capstan binary answers.

use std::process::ExitCode;

/// Parses the command line; --help/--version print and exit 0, anything
/// else wrong prints `<name>: <what> (see --help)` and yields exit code 2.
pub fn parse<C: clap::Parser>(name: &str) -> Result<C, ExitCode> {
    match C::try_parse() {
        Ok(c) => Ok(c),
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let msg = e.render().to_string();
            let first = msg.lines().next().unwrap_or("bad arguments");
            eprintln!(
                "{name}: {} (see --help)",
                first.trim_start_matches("error: ")
            );
            Err(ExitCode::from(2))
        }
    }
}
