//! Generic Parquet reading and writing for the typed tables, with the contract checks.

use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::compat::{normalise, readable_as};
use crate::schema::{describe, schema};
use crate::{Meta, PendingFile, Stage, TableError};

/// Rows per record batch and per Parquet row group: about 6 MB of pixels, 25 MB of `x`, so that
/// neither writing nor reading holds more than one group of a table twice in memory.
const ROWS_PER_GROUP: usize = 8192;

/// A typed table of one stage: how it turns into record batches and back.
pub trait Table: Sized {
    const STAGE: Stage;

    /// Number of rows.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `rows` as a record batch of `schema` (the stage's schema).
    fn batch(&self, rows: Range<usize>, schema: &SchemaRef) -> RecordBatch;

    /// Builds the table from the batches of a file whose columns were checked against the stage's
    /// schema (look them up by name: their order and list-element names are the file's).
    /// Checks the values (NaN, ranges, consistency) and names `path` and the column in errors.
    fn from_batches(path: &Path, meta: &Meta, batches: Vec<RecordBatch>) -> Result<Self, TableError>;

    /// Text columns that repeat (worth dictionary encoding).
    fn dictionary_columns() -> &'static [&'static str] {
        &["source", "sampler", "model", "method", "neighbourhood"]
    }
}

/// Writes `table` to a temporary file beside `path`, zstd-compressed, with `meta` as key-value
/// metadata (of the file, and of its Arrow schema). Nothing appears at `path` until the returned [`PendingFile`] is committed.
pub fn write<T: Table>(path: &Path, table: &T, meta: &Meta) -> Result<PendingFile, TableError> {
    assert_eq!(meta.stage, T::STAGE, "metadata of a {} table says {}", T::STAGE, meta.stage);
    // The metadata goes in the Arrow schema too: pyarrow keeps a schema's metadata when a table is
    // read and written back, so the copy still says what it is.
    let schema = schema(T::STAGE, meta.pixels());
    let schema = Arc::new(
        schema
            .as_ref()
            .clone()
            .with_metadata(meta.key_values().into_iter().collect::<std::collections::HashMap<_, _>>()),
    );
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
        .set_dictionary_enabled(false)
        .set_key_value_metadata(Some(meta.to_key_values()));
    for column in T::dictionary_columns() {
        if schema.field_with_name(column).is_ok() {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(*column), true);
        }
    }
    let (pending, file) = PendingFile::create(path)?;
    let pq = |e| TableError::writing(path, e);
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties.build())).map_err(pq)?;
    for start in (0..table.len()).step_by(ROWS_PER_GROUP) {
        let end = (start + ROWS_PER_GROUP).min(table.len());
        writer.write(&table.batch(start..end, &schema)).map_err(pq)?;
    }
    let file = writer.into_inner().map_err(pq)?;
    file.sync_all().map_err(|e| crate::atomic::write_error(path, e))?;
    Ok(pending)
}

/// Reads only the metadata of a gmrf table (cheap: the Parquet footer).
pub fn read_meta(path: &Path) -> Result<Meta, TableError> {
    let file = File::open(path).map_err(|e| TableError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| TableError::parquet(path, e))?;
    Meta::from_key_values(path, builder.metadata().file_metadata().key_value_metadata())
}

/// Reads a table of stage `T::STAGE`, refusing a file of another stage or whose columns do not
/// match the contract. Files from other writers are read as long as their columns hold the
/// contract's values (text in any string type, image columns as plain lists of the right length:
/// see `compat`), compressed with any codec pyarrow and polars write (uncompressed, Snappy, gzip,
/// LZ4, Brotli, zstd).
pub fn read<T: Table>(path: &Path) -> Result<(T, Meta), TableError> {
    let file = File::open(path).map_err(|e| TableError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| TableError::parquet(path, e))?;
    let meta = Meta::from_key_values(path, builder.metadata().file_metadata().key_value_metadata())?;
    if meta.stage != T::STAGE {
        return Err(TableError::WrongStage {
            path: path.to_path_buf(),
            found: meta.stage.name(),
            found_by: meta.stage.produced_by(),
            expected: T::STAGE.name(),
            expected_by: T::STAGE.produced_by(),
        });
    }
    let expected = schema(T::STAGE, meta.pixels());
    let found = builder.schema().clone();
    let mut projection = Vec::with_capacity(expected.fields().len());
    for field in expected.fields() {
        let Ok(index) = found.index_of(field.name()) else {
            return Err(TableError::Column {
                path: path.to_path_buf(),
                column: field.name().clone(),
                expected: describe(field.data_type()),
                found: "no such column".into(),
            });
        };
        let found_type = found.field(index).data_type();
        if !readable_as(field.data_type(), found_type) {
            return Err(TableError::Column {
                path: path.to_path_buf(),
                column: field.name().clone(),
                expected: describe(field.data_type()),
                found: describe(found_type),
            });
        }
        projection.push(index);
    }
    let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), projection.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(ROWS_PER_GROUP)
        .build()
        .map_err(|e| TableError::parquet(path, e))?;
    let mut batches = Vec::new();
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| TableError::parquet(path, e.into()))?;
        let next = rows + batch.num_rows();
        batches.push(normalise(path, &meta, batch, &expected, rows)?);
        rows = next;
    }
    let table = T::from_batches(path, &meta, batches)?;
    Ok((table, meta))
}
