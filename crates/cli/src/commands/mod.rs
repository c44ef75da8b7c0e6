//! One module per stage; each reads and checks all its inputs before it writes anything.

mod centre;
mod estimate;
mod evaluate;
mod ingest;

use std::path::Path;

use crate::args::{Cli, Command, Ingest};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Ingest(Ingest::Mnist(args)) => ingest::mnist(args),
        Command::Ingest(Ingest::Photos(args)) => ingest::photos(args),
        Command::Centre(args) => centre::run(args),
        Command::Estimate(command) => estimate::run(command),
        Command::Evaluate(args) => evaluate::run(args),
    }
}

/// A file's name, for metadata: recording names rather than full paths keeps the output bytes
/// independent of where a run happens.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The memory a fit may plan its buffers against: the machine's (Linux `MemTotal`), or no bound
/// where that is not known.
pub(crate) fn memory_budget() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    });
    total_kib.map_or(u64::MAX, |kib| kib.saturating_mul(1024))
}
