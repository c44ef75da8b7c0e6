//! Users open our files in polars as they are: every table of a prepared run reads with polars'
//! own Parquet reader, with the dtypes of the contract and the same values gmrf wrote.

mod common;

use std::path::Path;

use common::{MnistFiles, read_idx};
use polars::prelude::*;

fn open(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

fn dtypes(df: &DataFrame) -> Vec<(String, DataType)> {
    df.columns().iter().map(|c| (c.name().to_string(), c.dtype().clone())).collect()
}

/// A text column's values.
fn strings(df: &DataFrame, name: &str) -> Vec<String> {
    let column = df.column(name).unwrap().str().unwrap();
    (0..column.len()).map(|i| column.get(i).unwrap().to_string()).collect()
}

fn owned(columns: &[(&str, DataType)]) -> Vec<(String, DataType)> {
    columns.iter().map(|(n, t)| (n.to_string(), t.clone())).collect()
}

#[test]
fn every_table_opens_in_polars_with_the_contract_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let files = MnistFiles::fixture();
    files.prepare(dir.path(), None, &[]);

    let images = open(&dir.path().join("train.parquet"));
    assert_eq!(images.height(), 2000);
    assert_eq!(
        dtypes(&images),
        owned(&[
            ("id", DataType::UInt32),
            ("label", DataType::UInt8),
            ("source", DataType::String),
            ("top", DataType::UInt16),
            ("left", DataType::UInt16),
            ("pixels", DataType::Array(Box::new(DataType::UInt8), 784)),
        ])
    );
    // Values as polars sees them: the labels and the 7th image's pixels equal the IDX files'.
    let (_, labels) = read_idx(&files.train_labels);
    let polars_labels: Vec<u8> = images.column("label").unwrap().u8().unwrap().into_no_null_iter().collect();
    assert_eq!(polars_labels, labels);
    let (_, pixels) = read_idx(&files.train_images);
    let row = images.column("pixels").unwrap().array().unwrap().get_as_series(7).unwrap();
    let row: Vec<u8> = row.u8().unwrap().into_no_null_iter().collect();
    assert_eq!(row, pixels[7 * 784..8 * 784]);
    assert_eq!(images.column("top").unwrap().null_count(), 2000);

    for name in ["train-centred.parquet", "test-centred.parquet"] {
        let centred = open(&dir.path().join(name));
        assert_eq!(
            dtypes(&centred),
            owned(&[
                ("id", DataType::UInt32),
                ("label", DataType::UInt8),
                ("source", DataType::String),
                ("x", DataType::Array(Box::new(DataType::Float32), 784)),
            ]),
            "{name}"
        );
    }
    assert_eq!(open(&dir.path().join("test-centred.parquet")).height(), 500);

    let mean = open(&dir.path().join("mean.parquet"));
    assert_eq!(
        dtypes(&mean),
        owned(&[
            ("pixel", DataType::UInt16),
            ("row", DataType::UInt8),
            ("col", DataType::UInt8),
            ("mean", DataType::Float64),
        ])
    );
    assert_eq!(mean.height(), 784);
    let rows: Vec<u8> = mean.column("row").unwrap().u8().unwrap().into_no_null_iter().collect();
    assert_eq!(rows[29], 1, "pixel 29 is in row 1 of a 28-wide image");
}

#[test]
fn photo_patch_and_skipped_tables_open_in_polars() {
    let dir = tempfile::tempdir().unwrap();
    common::ok(common::ingest_photos(
        &common::fixture("photos"),
        dir.path(),
        None,
        &["--test-fraction", "0"],
    ));
    let patches = open(&dir.path().join("train.parquet"));
    assert_eq!(patches.height(), 8);
    assert_eq!(
        dtypes(&patches),
        owned(&[
            ("id", DataType::UInt32),
            ("label", DataType::UInt8),
            ("source", DataType::String),
            ("top", DataType::UInt16),
            ("left", DataType::UInt16),
            ("pixels", DataType::Array(Box::new(DataType::UInt8), 784)),
        ])
    );
    assert_eq!(patches.column("label").unwrap().null_count(), 8, "patches have no label");
    assert_eq!(patches.column("top").unwrap().null_count(), 0);
    let sources = strings(&patches, "source");
    assert_eq!(sources[6..], ["nested/rocket.JPG"; 2]);
    assert_eq!(open(&dir.path().join("test.parquet")).height(), 0);

    let skipped = open(&dir.path().join("skipped.parquet"));
    assert_eq!(dtypes(&skipped), owned(&[("path", DataType::String), ("reason", DataType::String)]));
    let paths = strings(&skipped, "path");
    assert_eq!(paths, ["not-a-photo.jpg", "tiny.png", "truncated.jpg"]);
}
