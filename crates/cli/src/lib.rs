//! The `gmrf` command line: one subcommand per stage.
//!
//! # Brief overview
//!
//! [`args`] declares the commands with clap (every flag documented in `--help`); [`config`] reads a
//! pipeline's parameters from `pipelines/*.toml`, which flags override; [`commands`] runs a stage:
//! it reads and checks every input first, computes, writes every output to a temporary file and
//! commits them together, so a failed stage leaves nothing behind. [`progress`] draws progress bars
//! on stderr (only on a terminal) and ends each stage with a one-line summary: what was written,
//! the wall time and the peak resident memory.
//!
//! Errors end the process with exit code 1 and one line on stderr: `error: ` and the cause, naming
//! the file and the problem.

pub mod args;
pub mod commands;
pub mod config;
pub mod progress;

use std::process::ExitCode;

/// Runs `gmrf` with the process's arguments.
pub fn main() -> ExitCode {
    let cli = args::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
