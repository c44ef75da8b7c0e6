//! Tables that break the contract in ways a reader could miss are refused by the stage that reads
//! them, with exit code 1, one line naming the file and the problem, and no output: a null or
//! repeated `id`, a null `source`, a table from a newer gmrf, a meaningless `gmrf.scale`, a
//! centred value no centring produces. The tables are written back with polars, as a user who
//! edited them would.

mod common;
#[path = "common/polars.rs"]
mod rewrite;

use std::ffi::OsString;
use std::path::Path;

use common::{MnistFiles, fails, files_in};
use polars::prelude::*;
use rewrite::{open, write_like, write_with};

/// `gmrf centre` of `fit` into the empty folder `out`; returns the one-line message after checking
/// that nothing was written.
fn centre_fails(fit: &Path, out: &Path) -> String {
    let args: Vec<OsString> = vec![
        "centre".into(),
        "--fit".into(),
        fit.into(),
        "--mean".into(),
        out.join("mean.parquet").into(),
        "--out".into(),
        out.join("train-centred.parquet").into(),
    ];
    let message = fails(common::gmrf(args));
    assert_eq!(files_in(out), Vec::<String>::new(), "left behind");
    message
}

/// `gmrf estimate` of `train` into `out/est`; returns the message after checking that no folder
/// was created.
fn estimate_fails(train: &Path, out: &Path) -> String {
    let est = out.join("est");
    let args: Vec<OsString> = vec![
        "estimate".into(),
        "sm".into(),
        "--train".into(),
        train.into(),
        "--out".into(),
        est.clone().into(),
    ];
    let message = fails(common::gmrf(args));
    assert!(!est.exists(), "left behind: {est:?}");
    message
}

#[test]
fn images_with_a_null_or_repeated_id_or_a_null_source_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    MnistFiles::fixture().prepare(dir.path(), None, &[]);
    let train = dir.path().join("train.parquet");
    let original = open(&train);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let bad = dir.path().join("edited/train.parquet");

    let ids: Vec<Option<u32>> = (0..2000).map(|i| (i != 17).then_some(i)).collect();
    let mut df = original.clone();
    df.with_column(Series::new("id".into(), ids).into()).unwrap();
    write_like(&mut df, &bad, ParquetCompression::Snappy, &train);
    let message = centre_fails(&bad, &out);
    assert!(message.contains(&format!("{}: column `id`, row 17: null", bad.display())), "{message}");

    let ids: Vec<u32> = (0..2000).map(|i| if i == 1999 { 5 } else { i }).collect();
    let mut df = original.clone();
    df.with_column(Series::new("id".into(), ids).into()).unwrap();
    write_like(&mut df, &bad, ParquetCompression::Snappy, &train);
    let message = centre_fails(&bad, &out);
    assert!(message.contains("column `id`, row 1999: id 5 is also the id of row 5"), "{message}");

    let sources: Vec<Option<&str>> = (0..2000).map(|i| (i != 3).then_some("train")).collect();
    let mut df = original.clone();
    df.with_column(Series::new("source".into(), sources).into()).unwrap();
    write_like(&mut df, &bad, ParquetCompression::Snappy, &train);
    let message = centre_fails(&bad, &out);
    assert!(message.contains("column `source`, row 3: null"), "{message}");

    let mut kv = gmrf_table::read_meta(&train).unwrap().key_values();
    kv.iter_mut().find(|(k, _)| k == "gmrf.version").unwrap().1 = "7.0.0".into();
    write_with(&mut original.clone(), &bad, ParquetCompression::Snappy, kv);
    let message = centre_fails(&bad, &out);
    assert!(
        message.contains("metadata `gmrf.version`: written by gmrf 7.0.0, newer than this gmrf"),
        "{message}"
    );
}

#[test]
fn centred_table_with_a_bad_scale_or_an_absurd_value_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    MnistFiles::fixture().prepare(dir.path(), None, &[]);
    let train = dir.path().join("train-centred.parquet");
    let original = open(&train);
    let bad = dir.path().join("edited/train-centred.parquet");

    for scale in ["NaN", "0", "-1"] {
        let mut kv = gmrf_table::read_meta(&train).unwrap().key_values();
        kv.iter_mut().find(|(k, _)| k == "gmrf.scale").unwrap().1 = scale.into();
        write_with(&mut original.clone(), &bad, ParquetCompression::Zstd(None), kv);
        let message = estimate_fails(&bad, dir.path());
        assert!(
            message.contains(&format!("{}: metadata `gmrf.scale`: `{scale}`", bad.display())),
            "{message}"
        );
    }

    // One value of 3e38 in row 42: as a list column, so that polars can set one element.
    let x = original.column("x").unwrap().cast(&DataType::List(Box::new(DataType::Float32))).unwrap();
    let x = x.list().unwrap();
    let rows: Vec<Series> = (0..x.len())
        .map(|i| {
            let row = x.get_as_series(i).unwrap();
            if i != 42 {
                return row;
            }
            let mut values: Vec<f32> = row.f32().unwrap().into_no_null_iter().collect();
            values[300] = 3e38;
            Series::new("".into(), values)
        })
        .collect();
    let mut df = original.clone();
    df.with_column(Series::new("x".into(), rows).into()).unwrap();
    write_like(&mut df, &bad, ParquetCompression::Zstd(None), &train);
    let message = estimate_fails(&bad, dir.path());
    assert!(
        message.contains("column `x`, row 42: pixel 300 is 3e38, outside the range of centred values"),
        "{message}"
    );
}
