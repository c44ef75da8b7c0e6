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
    // Ctrl-C or SIGTERM removes the unfinished outputs; the previous ones stay as they were.
    gmrf_table::remove_temporaries_on_signals();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes as one line, `outer: inner: ...`. A cause whose text the line already
/// holds is left out (an error that prints its source, as `path: No such file` does, is followed
/// in the chain by that same source), and line breaks inside a message become spaces.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("{path}: {source}")]
        struct Named {
            path: String,
            source: std::io::Error,
        }
        let io = std::io::Error::from_raw_os_error(21);
        let twice = anyhow::Error::new(Named { path: "runs/out".into(), source: io });
        assert_eq!(format!("{twice:#}").matches("os error 21").count(), 2, "anyhow's own chain repeats it");
        assert_eq!(one_line(&twice), "runs/out: Is a directory (os error 21)");

        let wrapped = anyhow::anyhow!("line one\n  line two").context("reading config.toml");
        assert_eq!(one_line(&wrapped), "reading config.toml: line one line two");
    }
}
