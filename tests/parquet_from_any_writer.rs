//! A table opened in polars or pyarrow and written back feeds the next stage: every codec they
//! write (uncompressed, Snappy, gzip, LZ4, Brotli, zstd) and `pixels` as a plain list instead of a
//! fixed-size one. `gmrf centre` reads such an `images` table and writes byte for byte what it
//! writes from gmrf's own file. (`estimate` and `evaluate` read `centred` tables through the same
//! reader, `gmrf_table::read`; the last test reads a polars-written `centred` table through it.)

mod common;
#[path = "common/polars.rs"]
mod rewrite;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{MnistFiles, fails, files_in, ok, root};
use polars::prelude::*;
use rewrite::{open, write_like};

/// `gmrf centre` of `fit` (and the prepared test table) into `out`, as `MnistFiles::prepare` runs it.
fn centre(fit: &Path, test: &Path, out: &Path) -> std::process::Output {
    let o = |name: &str| out.join(name).into_os_string();
    common::gmrf([
        "centre".into(),
        "--config".into(),
        root().join("pipelines/mnist.toml").into_os_string(),
        "--fit".into(),
        fit.as_os_str().to_owned(),
        "--mean".into(),
        o("mean.parquet"),
        "--out".into(),
        o("train-centred.parquet"),
        "--apply".into(),
        test.as_os_str().to_owned(),
        "--apply-out".into(),
        o("test-centred.parquet"),
    ] as [std::ffi::OsString; 13])
}

/// The outputs of a centring from a rewritten table equal those from gmrf's own table, byte for
/// byte (the same values, seed and file names give the same bytes).
fn assert_same_outputs(reference: &Path, out: &Path, what: &str) {
    for name in ["mean.parquet", "train-centred.parquet", "test-centred.parquet"] {
        let expected = std::fs::read(reference.join(name)).unwrap();
        let found = std::fs::read(out.join(name)).unwrap();
        assert!(expected == found, "{what}: {name} differs from the centring of gmrf's own table");
    }
}

/// An empty folder `dir/name`.
fn folder(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    path
}

#[test]
fn images_written_back_by_polars_in_every_codec_and_as_a_plain_list_centre_alike() {
    let dir = tempfile::tempdir().unwrap();
    let reference = folder(dir.path(), "reference");
    MnistFiles::fixture().prepare(&reference, None, &[]);
    let (train, test) = (reference.join("train.parquet"), reference.join("test.parquet"));
    let original = open(&train);

    let codecs = [
        ("uncompressed", ParquetCompression::Uncompressed),
        ("snappy", ParquetCompression::Snappy),
        ("gzip", ParquetCompression::Gzip(None)),
        ("lz4", ParquetCompression::Lz4Raw),
        ("brotli", ParquetCompression::Brotli(None)),
        ("zstd", ParquetCompression::Zstd(None)),
    ];
    for (name, compression) in codecs {
        let out = folder(dir.path(), name);
        write_like(&mut original.clone(), &out.join("train.parquet"), compression, &train);
        ok(centre(&out.join("train.parquet"), &test, &out));
        assert_same_outputs(&reference, &out, &format!("polars, {name}"));
    }

    // `pixels` as polars' List(UInt8), which it writes as an Arrow large list.
    let mut listed = original.clone();
    let list = listed.column("pixels").unwrap().cast(&DataType::List(Box::new(DataType::UInt8))).unwrap();
    listed.with_column(list.clone()).unwrap();
    let out = folder(dir.path(), "list");
    write_like(&mut listed, &out.join("train.parquet"), ParquetCompression::Snappy, &train);
    ok(centre(&out.join("train.parquet"), &test, &out));
    assert_same_outputs(&reference, &out, "polars, pixels as a list");

    // One row one pixel short: refused, naming the file, the column and the row, and nothing written.
    let list = list.list().unwrap();
    let rows: Vec<Series> = (0..list.len())
        .map(|i| {
            let row = list.get_as_series(i).unwrap();
            if i == 1234 { row.slice(0, 783) } else { row }
        })
        .collect();
    let mut short = original.clone();
    short.with_column(Series::new("pixels".into(), rows).into()).unwrap();
    let out = folder(dir.path(), "short");
    let bad = out.join("train.parquet");
    write_like(&mut short, &bad, ParquetCompression::Snappy, &train);
    let message = fails(centre(&bad, &test, &out));
    assert!(message.contains(&bad.display().to_string()), "{message}");
    assert!(
        message
            .contains("column `pixels`, row 1234: 783 values, expected 784 (one per pixel of a 28x28 image)"),
        "{message}"
    );
    assert_eq!(files_in(&out), ["train.parquet"], "nothing written beside the input");
}

#[test]
fn centred_table_written_back_by_polars_as_a_plain_list_reads_as_gmrf_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    MnistFiles::fixture().prepare(dir.path(), None, &[]);
    let path = dir.path().join("test-centred.parquet");
    let mut df = open(&path);
    let x = df.column("x").unwrap().cast(&DataType::List(Box::new(DataType::Float32))).unwrap();
    df.with_column(x).unwrap();
    let rewritten = dir.path().join("rewritten.parquet");
    write_like(&mut df, &rewritten, ParquetCompression::Lz4Raw, &path);
    let (expected, expected_meta) = gmrf_table::read::<gmrf_table::Centred>(&path).unwrap();
    let (found, found_meta) = gmrf_table::read::<gmrf_table::Centred>(&rewritten).unwrap();
    assert_eq!(found, expected);
    assert_eq!(found_meta, expected_meta);
}

/// pyarrow (Python) where the machine has it: `pq.write_table` in every codec, and `pixels` as a
/// `list` and a `large_list`. The metadata travels in the schema pyarrow reads.
#[test]
fn images_written_back_by_pyarrow_centre_alike() {
    let probe = Command::new("python3").args(["-c", "import pyarrow"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: python3 cannot import pyarrow (pip install pyarrow to run this test)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let reference = folder(dir.path(), "reference");
    MnistFiles::fixture().prepare(&reference, None, &[]);
    let (train, test) = (reference.join("train.parquet"), reference.join("test.parquet"));
    let script = r#"
import sys, pyarrow as pa, pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
out = sys.argv[2]
for codec in ["none", "snappy", "gzip", "lz4", "brotli", "zstd"]:
    pq.write_table(table, f"{out}/{codec}/train.parquet", compression=codec)
for kind, t in [("list", pa.list_(pa.uint8())), ("large_list", pa.large_list(pa.uint8()))]:
    i = table.schema.get_field_index("pixels")
    listed = table.set_column(i, pa.field("pixels", t), table.column("pixels").cast(t))
    pq.write_table(listed, f"{out}/{kind}/train.parquet")
"#;
    let variants = ["none", "snappy", "gzip", "lz4", "brotli", "zstd", "list", "large_list"];
    for name in variants {
        folder(dir.path(), name);
    }
    let run = Command::new("python3").arg("-c").arg(script).arg(&train).arg(dir.path()).output().unwrap();
    assert!(run.status.success(), "pyarrow: {}", String::from_utf8_lossy(&run.stderr));
    for name in variants {
        let out = dir.path().join(name);
        ok(centre(&out.join("train.parquet"), &test, &out));
        assert_same_outputs(&reference, &out, &format!("pyarrow, {name}"));
    }
}
