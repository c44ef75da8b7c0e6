use std::path::PathBuf;

/// Why a table could not be read or written. Every variant names the file; those about a column
/// name the column and what was expected, so a user can act on the message alone.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{}: not a readable Parquet file: {source}", path.display())]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },

    #[error("{}: could not write the Parquet file: {source}", path.display())]
    Write { path: PathBuf, source: parquet::errors::ParquetError },

    #[error("no space left on device while writing {}", path.display())]
    NoSpace { path: PathBuf },

    /// An output path that cannot be written or replaced (a folder, a device, an input, ...).
    #[error("{}: {problem}", path.display())]
    Output { path: PathBuf, problem: String },

    #[error("{}: not a gmrf table (no `gmrf.stage` in its metadata)", path.display())]
    NotGmrf { path: PathBuf },

    #[error(
        "{}: is a `{found}` table (written by `{found_by}`), expected a `{expected}` table (written by `{expected_by}`)",
        path.display()
    )]
    WrongStage {
        path: PathBuf,
        found: &'static str,
        found_by: &'static str,
        expected: &'static str,
        expected_by: &'static str,
    },

    #[error("{}: column `{column}`: expected {expected}, found {found}", path.display())]
    Column { path: PathBuf, column: String, expected: String, found: String },

    #[error("{}: metadata `{key}`: {problem}", path.display())]
    Metadata { path: PathBuf, key: String, problem: String },

    #[error("{}: column `{column}`, row {row}: {problem}", path.display())]
    Value { path: PathBuf, column: String, row: usize, problem: String },
}

impl TableError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        TableError::Io { path: path.to_path_buf(), source }
    }
    /// A failure to read `path` as Parquet; an I/O error inside it (a folder, a device) is
    /// reported as itself, without the "External:" wrapping.
    pub(crate) fn parquet(path: &std::path::Path, source: parquet::errors::ParquetError) -> Self {
        match io_inside(source) {
            Ok(io) => TableError::io(path, io),
            Err(source) => TableError::Parquet { path: path.to_path_buf(), source },
        }
    }
    /// A failure while writing `destination`'s temporary file, naming the destination (an I/O
    /// error, a full disk in words, is taken out of the Parquet error that wraps it).
    pub(crate) fn writing(destination: &std::path::Path, source: parquet::errors::ParquetError) -> Self {
        match io_inside(source) {
            Ok(io) => crate::atomic::write_error(destination, io),
            Err(source) => TableError::Write { path: destination.to_path_buf(), source },
        }
    }
}

/// The I/O error a Parquet error wraps, if it is one.
fn io_inside(source: parquet::errors::ParquetError) -> Result<std::io::Error, parquet::errors::ParquetError> {
    match source {
        parquet::errors::ParquetError::External(e) => match e.downcast::<std::io::Error>() {
            Ok(io) => Ok(*io),
            Err(e) => Err(parquet::errors::ParquetError::External(e)),
        },
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_inside_parquet_errors_are_reported_as_themselves() {
        use parquet::errors::ParquetError;
        let full = ParquetError::External(Box::new(std::io::Error::from_raw_os_error(28)));
        let message = TableError::writing("runs/a.parquet".as_ref(), full).to_string();
        assert_eq!(message, "no space left on device while writing runs/a.parquet");
        let folder = ParquetError::External(Box::new(std::io::Error::from_raw_os_error(21)));
        let message = TableError::parquet("runs".as_ref(), folder).to_string();
        assert_eq!(message, "runs: Is a directory (os error 21)");
        let other = TableError::parquet("a.parquet".as_ref(), ParquetError::General("bad footer".into()));
        assert_eq!(other.to_string(), "a.parquet: not a readable Parquet file: Parquet error: bad footer");
    }
}
