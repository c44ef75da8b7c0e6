use std::path::PathBuf;

/// Why a table could not be read or written. Every variant names the file; those about a column
/// name the column and what was expected, so a user can act on the message alone.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{}: not a readable Parquet file: {source}", path.display())]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },

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
    Value { path: PathBuf, column: &'static str, row: usize, problem: String },
}

impl TableError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        TableError::Io { path: path.to_path_buf(), source }
    }
    pub(crate) fn parquet(path: &std::path::Path, source: parquet::errors::ParquetError) -> Self {
        TableError::Parquet { path: path.to_path_buf(), source }
    }
}
