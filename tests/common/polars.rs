//! Writing gmrf tables back with polars, as a user who edits one in Python or Rust would. Only the
//! test files that use polars include this (`#[path = "common/polars.rs"] mod rewrite;`).
#![allow(dead_code)]

use std::path::Path;

use polars::prelude::*;

/// A table as polars reads it.
pub fn open(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

/// Writes `df` with polars, with `compression` and `kv` as the key-value metadata.
pub fn write_with(
    df: &mut DataFrame,
    path: &Path,
    compression: ParquetCompression,
    kv: Vec<(String, String)>,
) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::fs::File::create(path).unwrap();
    ParquetWriter::new(&mut file)
        .with_compression(compression)
        .with_key_value_metadata(Some(KeyValueMetadata::from_static(kv)))
        .finish(df)
        .unwrap();
}

/// Writes `df` with polars, with `compression` and the gmrf metadata of the table at `like`.
pub fn write_like(df: &mut DataFrame, path: &Path, compression: ParquetCompression, like: &Path) {
    write_with(df, path, compression, gmrf_table::read_meta(like).unwrap().key_values());
}
