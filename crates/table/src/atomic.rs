//! Atomic writes: every output of a stage is written to a hidden temporary file beside its
//! destination, `.NAME.PID.partial`, and only renamed into place once all of them are complete, so
//! a failed or interrupted stage never leaves a partial file behind and never replaces some of its
//! outputs but not the others.
//!
//! - [`check_outputs`] refuses, before any work, an output that is a folder, a symbolic link or
//!   another non-regular file (`/dev/null`, a fifo), whose folder is a file, that two options name,
//!   or that is one of the stage's inputs.
//! - Folders are created with the first temporary file in them and removed again if the run fails.
//! - [`remove_temporaries_on_signals`] removes the temporary files (and folders) of a run stopped by
//!   SIGINT or SIGTERM; the temporary files of a process that was killed outright (SIGKILL) are
//!   removed by the next run that writes the same output.
//! - A full disk is reported as "no space left on device while writing OUT", naming the output.

use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::TableError;

/// The temporary files and created folders of this process that are not committed yet, so that a
/// signal handler can remove them. Held while a temporary file is created or renamed, so that
/// the handler never runs in between.
#[derive(Default)]
struct Unfinished {
    temporaries: Vec<PathBuf>,
    folders: Vec<PathBuf>,
}

static UNFINISHED: Mutex<Unfinished> =
    Mutex::new(Unfinished { temporaries: Vec::new(), folders: Vec::new() });

fn unfinished() -> MutexGuard<'static, Unfinished> {
    UNFINISHED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Unfinished {
    /// Removes the folders created for outputs under `below` that are empty, deepest first.
    fn remove_empty_folders(&mut self, below: &Path) {
        let mut folders: Vec<PathBuf> =
            self.folders.iter().filter(|f| below.starts_with(f)).cloned().collect();
        folders.sort_by_key(|f| std::cmp::Reverse(f.components().count()));
        for folder in folders {
            match std::fs::remove_dir(&folder) {
                Ok(()) => self.folders.retain(|f| f != &folder),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.folders.retain(|f| f != &folder),
                Err(_) => {}
            }
        }
    }

    /// Removes every temporary file and every created folder left empty (on a signal).
    fn remove_all(&mut self) -> usize {
        let removed = self.temporaries.drain(..).filter(|t| std::fs::remove_file(t).is_ok()).count();
        for folder in self.folders.clone() {
            self.remove_empty_folders(&folder);
        }
        removed
    }
}

/// A fully written file waiting under a temporary name beside its destination. [`commit`] renames
/// it into place; dropping it uncommitted deletes it (and the folders created for it, if empty).
///
/// [`commit`]: PendingFile::commit
#[derive(Debug)]
pub struct PendingFile {
    temporary: PathBuf,
    destination: PathBuf,
    committed: bool,
}

impl PendingFile {
    /// Creates the temporary file (and the destination's folder, if missing), after checking that
    /// the destination can be replaced ([`check_outputs`]'s per-file checks) and removing
    /// temporary files of the same output left by dead processes.
    pub(crate) fn create(destination: &Path) -> Result<(Self, File), TableError> {
        check_destination(destination)?;
        let folder = folder_of(destination);
        let name = destination.file_name().expect("checked: names a file").to_string_lossy();
        let temporary = folder.join(format!(".{name}.{}.partial", std::process::id()));
        let mut registry = unfinished();
        if registry.temporaries.contains(&temporary) {
            return Err(output(destination, "is given for two outputs of this run; each needs its own file"));
        }
        create_folder(&mut registry, &folder)?;
        remove_stale_temporaries(&folder, &name);
        let file = match File::create(&temporary) {
            Ok(file) => file,
            Err(e) => {
                registry.remove_empty_folders(&temporary);
                return Err(write_error(destination, e));
            }
        };
        registry.temporaries.push(temporary.clone());
        let pending = PendingFile { temporary, destination: destination.to_path_buf(), committed: false };
        Ok((pending, file))
    }

    /// Where the file lands on commit.
    pub fn destination(&self) -> &Path {
        &self.destination
    }

    /// Renames the temporary file into place, unless the destination has become something other
    /// than a regular file meanwhile (a rename never replaces a folder, device, fifo or link).
    pub fn commit(mut self) -> Result<PathBuf, TableError> {
        check_destination(&self.destination)?;
        let mut registry = unfinished();
        std::fs::rename(&self.temporary, &self.destination).map_err(|e| write_error(&self.destination, e))?;
        self.committed = true;
        registry.temporaries.retain(|t| t != &self.temporary);
        registry.folders.retain(|f| !self.destination.starts_with(f));
        Ok(self.destination.clone())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let mut registry = unfinished();
            let _ = std::fs::remove_file(&self.temporary);
            registry.temporaries.retain(|t| t != &self.temporary);
            registry.remove_empty_folders(&self.temporary);
        }
    }
}

/// Commits several outputs of one stage together, once all of them are written: every destination
/// is checked again first, so that no foreseeable failure happens after the first rename.
pub fn commit_all(pending: Vec<PendingFile>) -> Result<Vec<PathBuf>, TableError> {
    for p in &pending {
        check_destination(p.destination())?;
    }
    pending.into_iter().map(PendingFile::commit).collect()
}

/// Writes `bytes` (a figure, a report) under a temporary name beside `destination`, to be committed
/// with a stage's tables so that the run folder never holds a figure without its tables.
pub fn write_bytes(destination: &Path, bytes: &[u8]) -> Result<PendingFile, TableError> {
    use std::io::Write;
    let (pending, mut file) = PendingFile::create(destination)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| write_error(destination, e))?;
    Ok(pending)
}

/// Checks a stage's outputs before it does any work: each names a file that is absent or a
/// regular file (not a folder, symbolic link, device or fifo) in a folder (or a path where one
/// can be created), no two outputs are the same file, and no output is one of the `inputs`.
/// Outputs and inputs are given with the option that named them, for the message.
pub fn check_outputs(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<(), TableError> {
    for (k, &(option, path)) in outputs.iter().enumerate() {
        check_destination(path).map_err(|e| match e {
            TableError::Output { path, problem } => {
                TableError::Output { path, problem: format!("{option} {problem}") }
            }
            other => other,
        })?;
        for &(earlier, other) in &outputs[..k] {
            if same_file(path, other) {
                return Err(output(
                    path,
                    &format!("is given to both {earlier} and {option}; each output needs its own file"),
                ));
            }
        }
        for &(input_option, input) in inputs {
            if same_file(path, input) {
                return Err(output(
                    path,
                    &format!("{option} names the input of {input_option}; write the output to another file"),
                ));
            }
        }
    }
    Ok(())
}

fn output(path: &Path, problem: &str) -> TableError {
    TableError::Output { path: path.to_path_buf(), problem: problem.to_string() }
}

/// The folder an output lands in (`.` for a bare file name).
fn folder_of(destination: &Path) -> PathBuf {
    match destination.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `destination` can be replaced by a rename: it names a file, is absent or a regular file,
/// and its nearest existing ancestor is a folder.
fn check_destination(destination: &Path) -> Result<(), TableError> {
    if destination.file_name().is_none() {
        return Err(output(destination, "names no file (give the path of the file to write)"));
    }
    match std::fs::symlink_metadata(destination) {
        Ok(m) if m.is_dir() => {
            return Err(output(
                destination,
                "is a folder, not a file: give the path of the file to write in it",
            ));
        }
        Ok(m) if m.file_type().is_symlink() => {
            return Err(output(
                destination,
                "is a symbolic link; gmrf replaces only regular files, so remove it or write elsewhere",
            ));
        }
        Ok(m) if !m.is_file() => {
            return Err(output(
                destination,
                "is not a regular file (a device, fifo or socket); gmrf replaces only regular files",
            ));
        }
        _ => {}
    }
    let folder = folder_of(destination);
    if let Some(existing) = folder.ancestors().find(|a| a.as_os_str().is_empty() || a.exists())
        && !existing.as_os_str().is_empty()
        && !existing.is_dir()
    {
        return Err(output(
            destination,
            &format!("cannot be created: {} is a file, not a folder", existing.display()),
        ));
    }
    Ok(())
}

/// Creates `folder` and its missing ancestors, recording the ones created so that a failed run
/// removes them again.
fn create_folder(registry: &mut Unfinished, folder: &Path) -> Result<(), TableError> {
    let missing: Vec<PathBuf> = folder
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(folder).map_err(|e| TableError::io(folder, e))?;
    registry.folders.extend(missing);
    Ok(())
}

/// Removes `.NAME.PID.partial` files in `folder` whose process has ended (killed before it could
/// clean up). Files of live processes, and anything that does not parse, are left alone.
fn remove_stale_temporaries(folder: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    let own = std::process::id();
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|f| f.strip_suffix(".partial"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != own && !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` exists (signal 0 checks for it without sending anything).
#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill with signal 0 only checks whether the process exists and may be signalled.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Without a way to ask, every process is assumed alive: nothing is removed.
#[cfg(not(unix))]
fn process_alive(_: u32) -> bool {
    true
}

/// An I/O error while writing `destination` (its temporary file), with a full disk said in words.
pub(crate) fn write_error(destination: &Path, e: std::io::Error) -> TableError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        TableError::NoSpace { path: destination.to_path_buf() }
    } else {
        TableError::io(destination, e)
    }
}

/// Whether two paths name the same file: the same file on disk if both exist, else the same
/// absolute path once `.`, `..` and the symbolic links of their existing folders are resolved.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return (ma.dev(), ma.ino()) == (mb.dev(), mb.ino());
        }
    }
    resolved(a) == resolved(b)
}

/// `path` made absolute, its longest existing prefix canonicalised and the rest normalised.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut normal = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    let existing = normal.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
    let rest = normal.strip_prefix(existing).unwrap_or(Path::new("")).to_path_buf();
    std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf()).join(rest)
}

/// Installs (once) a handler that, on SIGINT or SIGTERM, removes this process's unfinished
/// temporary files and the folders created for them, prints one line, and exits with 128 + the
/// signal number. Previous outputs are untouched: nothing was renamed over them yet.
pub fn remove_temporaries_on_signals() {
    #[cfg(unix)]
    {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            use signal_hook::consts::{SIGINT, SIGTERM};
            let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else { return };
            std::thread::spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    let mut registry = unfinished();
                    let removed = registry.remove_all();
                    let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
                    eprintln!("error: interrupted by {name}; removed {removed} unfinished output file(s)");
                    std::process::exit(128 + signal);
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_reported_naming_the_output() {
        // /dev/full fails every write with ENOSPC.
        let Ok(mut full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else { return };
        let error = std::io::Write::write_all(&mut full, &[0; 64]).unwrap_err();
        let message = write_error(Path::new("runs/mnist/train.parquet"), error).to_string();
        assert_eq!(message, "no space left on device while writing runs/mnist/train.parquet");
    }

    #[test]
    fn paths_to_one_file_are_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        assert!(same_file(&d.join("a.parquet"), &d.join("sub/../a.parquet")));
        assert!(same_file(&d.join("new/a.parquet"), &d.join("./new/./a.parquet")));
        assert!(!same_file(&d.join("a.parquet"), &d.join("b.parquet")));
        std::fs::write(d.join("a.parquet"), b"x").unwrap();
        std::fs::hard_link(d.join("a.parquet"), d.join("link.parquet")).unwrap();
        assert!(same_file(&d.join("a.parquet"), &d.join("link.parquet")));
    }
}
