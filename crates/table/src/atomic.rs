//! Atomic writes: a table is written to a hidden temporary file in the destination folder and only
//! renamed into place once complete, so a failed stage never leaves a partial file behind.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::TableError;

/// A fully written file waiting under a temporary name beside its destination. [`commit`] renames
/// it into place; dropping it uncommitted deletes it.
///
/// [`commit`]: PendingFile::commit
#[derive(Debug)]
pub struct PendingFile {
    temporary: PathBuf,
    destination: PathBuf,
    committed: bool,
}

impl PendingFile {
    /// Creates the temporary file (and the destination's folder, if missing).
    pub(crate) fn create(destination: &Path) -> Result<(Self, File), TableError> {
        let folder = match destination.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&folder).map_err(|e| TableError::io(&folder, e))?;
        let name = destination
            .file_name()
            .ok_or_else(|| TableError::io(destination, std::io::Error::other("output path names no file")))?
            .to_string_lossy();
        let temporary = folder.join(format!(".{name}.{}.partial", std::process::id()));
        let file = File::create(&temporary).map_err(|e| TableError::io(&temporary, e))?;
        let pending = PendingFile { temporary, destination: destination.to_path_buf(), committed: false };
        Ok((pending, file))
    }

    pub(crate) fn temporary(&self) -> &Path {
        &self.temporary
    }

    /// Where the file lands on commit.
    pub fn destination(&self) -> &Path {
        &self.destination
    }

    /// Renames the temporary file into place.
    pub fn commit(mut self) -> Result<PathBuf, TableError> {
        std::fs::rename(&self.temporary, &self.destination)
            .map_err(|e| TableError::io(&self.destination, e))?;
        self.committed = true;
        Ok(self.destination.clone())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Commits several outputs of one stage together, once all of them are written.
pub fn commit_all(pending: Vec<PendingFile>) -> Result<Vec<PathBuf>, TableError> {
    pending.into_iter().map(PendingFile::commit).collect()
}

/// Writes `bytes` (a figure, a report) under a temporary name beside `destination`, to be committed
/// with a stage's tables so that the run folder never holds a figure without its tables.
pub fn write_bytes(destination: &Path, bytes: &[u8]) -> Result<PendingFile, TableError> {
    use std::io::Write;
    let (pending, mut file) = PendingFile::create(destination)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| TableError::io(pending.temporary(), e))?;
    Ok(pending)
}
