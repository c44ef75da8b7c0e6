//! Round trips of the typed tables and the reader's refusals, each naming the file and column.

use std::collections::BTreeMap;

use gmrf_table::{Centred, Images, MeanImage, Meta, Stage, TableError, read, read_meta, write};
use ndarray::Array2;

fn images(rows: usize) -> Images {
    Images {
        height: 2,
        width: 3,
        id: (0..rows as u32).collect(),
        label: (0..rows).map(|i| (i % 2 == 0).then_some(i as u8)).collect(),
        source: (0..rows).map(|i| format!("photo-{}.jpg", i % 3)).collect(),
        top: (0..rows).map(|i| Some(i as u16)).collect(),
        left: vec![None; rows],
        pixels: Array2::from_shape_fn((rows, 6), |(i, j)| (i * 7 + j) as u8),
    }
}

fn centred(rows: usize) -> Centred {
    let im = images(rows);
    Centred {
        height: 2,
        width: 3,
        id: im.id,
        label: im.label,
        source: im.source,
        // Within (−1, 1), as (pixel + u)/256 − μ is.
        x: Array2::from_shape_fn((rows, 6), |(i, j)| (i % 4) as f32 * 0.2 - j as f32 * 0.125),
    }
}

#[test]
fn images_round_trip_across_row_groups_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("images.parquet");
    // More rows than one row group (8192), so that batches are concatenated on read.
    let table = images(20_000);
    let meta = Meta::new(Stage::Images, 2, 3).with("seed", 42).with("ingest", "test");
    let landed = write(&path, &table, &meta).unwrap().commit().unwrap();
    assert_eq!(landed, path);
    let (back, back_meta) = read::<Images>(&path).unwrap();
    assert_eq!(back, table);
    assert_eq!(back_meta, meta);
    assert_eq!(read_meta(&path).unwrap().param("seed"), Some("42"));
}

#[test]
fn centred_and_mean_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.parquet");
    let table = centred(10);
    write(&path, &table, &Meta::new(Stage::Centred, 2, 3)).unwrap().commit().unwrap();
    assert_eq!(read::<Centred>(&path).unwrap().0, table);

    let mean = MeanImage { height: 2, width: 3, mean: vec![0.5, 0.25, 1e-300, -3.0, 7.0, 0.0] };
    let path = dir.path().join("m.parquet");
    write(&path, &mean, &Meta::new(Stage::Mean, 2, 3)).unwrap().commit().unwrap();
    assert_eq!(read::<MeanImage>(&path).unwrap().0, mean);
}

#[test]
fn uncommitted_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.parquet");
    let pending = write(&path, &images(3), &Meta::new(Stage::Images, 2, 3)).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the temporary file exists");
    assert!(!path.exists());
    drop(pending);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn table_of_another_stage_is_refused_with_both_stages_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("centred.parquet");
    write(&path, &centred(2), &Meta::new(Stage::Centred, 2, 3)).unwrap().commit().unwrap();
    let error = read::<Images>(&path).unwrap_err();
    assert!(matches!(error, TableError::WrongStage { .. }));
    let message = error.to_string();
    assert!(message.starts_with(&path.display().to_string()), "{message}");
    assert!(message.contains("is a `centred` table"), "{message}");
    assert!(message.contains("expected a `images` table"), "{message}");
}

#[test]
fn nan_in_centred_data_is_refused_naming_row_and_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.parquet");
    let mut table = centred(5);
    table.x[[3, 4]] = f32::NAN;
    write(&path, &table, &Meta::new(Stage::Centred, 2, 3)).unwrap().commit().unwrap();
    let message = read::<Centred>(&path).unwrap_err().to_string();
    assert!(message.contains("column `x`, row 3: pixel 4 is NaN, not a finite number"), "{message}");
}

/// Writes a Parquet file by hand with gmrf metadata but a column of the wrong type.
#[test]
fn wrong_column_type_is_refused_naming_column_and_types() {
    use std::sync::Arc;

    use arrow_array::{RecordBatch, UInt16Array};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mean.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("pixel", DataType::UInt16, false),
        Field::new("row", DataType::UInt16, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(UInt16Array::from(vec![0u16])), Arc::new(UInt16Array::from(vec![0u16]))],
    )
    .unwrap();
    let kv: BTreeMap<&str, &str> = [("gmrf.stage", "mean"), ("gmrf.height", "1"), ("gmrf.width", "1")].into();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(
            kv.iter().map(|(k, v)| KeyValue::new(k.to_string(), v.to_string())).collect(),
        ))
        .build();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let message = read::<MeanImage>(&path).unwrap_err().to_string();
    assert!(message.contains("column `row`: expected u8, found u16"), "{message}");
}

#[test]
fn mean_table_with_too_few_rows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.parquet");
    // Metadata says 2x3 but only 4 pixels are stored.
    let short = MeanImage { height: 2, width: 3, mean: vec![0.0; 4] };
    write(&path, &short, &Meta::new(Stage::Mean, 2, 3)).unwrap().commit().unwrap();
    let message = read::<MeanImage>(&path).unwrap_err().to_string();
    assert!(message.contains("the table has 4 rows, expected one per pixel of a 2x3 image (6)"), "{message}");
}

#[test]
fn parquet_without_gmrf_metadata_is_refused() {
    use std::sync::Arc;

    use arrow_array::{RecordBatch, UInt32Array};
    use arrow_schema::{DataType, Field, Schema};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::UInt32, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(UInt32Array::from(vec![1u32]))]).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let message = read::<Images>(&path).unwrap_err().to_string();
    assert!(message.contains("not a gmrf table (no `gmrf.stage` in its metadata)"), "{message}");
}

fn precision_3x3() -> gmrf_table::PrecisionEntries {
    // Diagonal and right neighbours of a 3x3 grid's first row: (0,0), (0,1), (1,1), (1,2), (2,2).
    gmrf_table::PrecisionEntries {
        height: 3,
        width: 3,
        i: vec![0, 0, 1, 1, 2],
        j: vec![0, 1, 1, 2, 2],
        di: vec![0, 0, 0, 0, 0],
        dj: vec![0, 1, 0, 1, 0],
        value: vec![2.0, -0.5, 2.0, -0.5, 2.0],
    }
}

#[test]
fn precision_and_trace_round_trip() {
    use gmrf_table::{Trace, TraceRow};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    let p = precision_3x3();
    write(&path, &p, &Meta::new(Stage::Precision, 3, 3).with("method", "sm")).unwrap().commit().unwrap();
    assert_eq!(read::<gmrf_table::PrecisionEntries>(&path).unwrap().0, p);

    let trace = Trace {
        rows: (0..5)
            .map(|k| TraceRow {
                step: k,
                loss: -(k as f64),
                grad_norm: 1.0 / (k as f64 + 1.0),
                step_size: 0.1,
                elapsed_s: k as f64 * 0.01,
                heldout_loss: (k % 2 == 0).then_some(k as f64),
            })
            .collect(),
    };
    let path = dir.path().join("t.parquet");
    write(&path, &trace, &Meta::new(Stage::Trace, 3, 3)).unwrap().commit().unwrap();
    assert_eq!(read::<Trace>(&path).unwrap().0, trace);
}

#[test]
fn precision_entry_inconsistent_with_its_offset_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    let mut p = precision_3x3();
    // (2, 3) would wrap from the end of row 0 to the start of row 1: not a right neighbour.
    p.i[4] = 2;
    p.j[4] = 3;
    p.dj[4] = 1;
    write(&path, &p, &Meta::new(Stage::Precision, 3, 3)).unwrap().commit().unwrap();
    let message = read::<gmrf_table::PrecisionEntries>(&path).unwrap_err().to_string();
    assert!(message.contains("row 4: entry (2, 3) does not match its offset (di, dj) = (0, 1)"), "{message}");
}

#[test]
fn skipped_round_trips_and_is_not_an_images_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skipped.parquet");
    let table = gmrf_table::Skipped {
        path: vec!["a/broken.jpg".into(), "tiny.png".into()],
        reason: vec!["truncated: unexpected end of file".into(), "too small: 20x20 pixels".into()],
    };
    write(&path, &table, &Meta::new(Stage::Skipped, 28, 28).with("root", "photos"))
        .unwrap()
        .commit()
        .unwrap();
    let (back, meta) = read::<gmrf_table::Skipped>(&path).unwrap();
    assert_eq!(back, table);
    assert_eq!(meta.param("root"), Some("photos"));
    let refused = read::<Images>(&path).unwrap_err().to_string();
    assert!(refused.contains("is a `skipped` table (written by `gmrf ingest`)"), "{refused}");
}

/// Writes `columns` with arrow-rs' own writer (every column nullable, as other writers declare
/// them), with `compression` and the key-value metadata `kv`.
fn write_columns(
    path: &std::path::Path,
    columns: Vec<(&str, arrow_array::ArrayRef)>,
    kv: Vec<(String, String)>,
    compression: parquet::basic::Compression,
) {
    use std::sync::Arc;

    use arrow_array::RecordBatch;
    use arrow_schema::{Field, Schema};
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;

    let schema = Arc::new(Schema::new(
        columns.iter().map(|(name, c)| Field::new(*name, c.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, c)| c).collect()).unwrap();
    let kv = kv.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
    let props =
        WriterProperties::builder().set_compression(compression).set_key_value_metadata(Some(kv)).build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props))
            .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// The columns of `table` as another writer might store them: `pixels` as `list` (i32 offsets)
/// or `large_list` with `lengths[row]` values per row, `source` as `text` (`string`,
/// `large_string` or `string_view`).
fn columns_as_another_writer(
    table: &Images,
    large: bool,
    text: arrow_schema::DataType,
    lengths: &[usize],
) -> Vec<(&'static str, arrow_array::ArrayRef)> {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, LargeListArray, LargeStringArray, ListArray, StringArray, StringViewArray};
    use arrow_array::{UInt8Array, UInt16Array, UInt32Array};
    use arrow_buffer::OffsetBuffer;
    use arrow_schema::{DataType, Field};

    let item = Arc::new(Field::new("element", DataType::UInt8, true));
    let values: Vec<u8> = table
        .pixels
        .outer_iter()
        .zip(lengths)
        .flat_map(|(row, &n)| row.iter().copied().cycle().take(n).collect::<Vec<_>>())
        .collect();
    let values = Arc::new(UInt8Array::from(values));
    let offsets = OffsetBuffer::from_lengths(lengths.iter().copied());
    let pixels: ArrayRef = if large {
        Arc::new(LargeListArray::new(item, OffsetBuffer::from_lengths(lengths.iter().copied()), values, None))
    } else {
        Arc::new(ListArray::new(item, offsets, values, None))
    };
    let source: ArrayRef = match text {
        DataType::Utf8 => Arc::new(StringArray::from_iter_values(&table.source)),
        DataType::LargeUtf8 => Arc::new(LargeStringArray::from_iter_values(&table.source)),
        _ => Arc::new(StringViewArray::from_iter_values(&table.source)),
    };
    let (id, label): (ArrayRef, ArrayRef) =
        (Arc::new(UInt32Array::from(table.id.clone())), Arc::new(UInt8Array::from(table.label.clone())));
    let (top, left): (ArrayRef, ArrayRef) =
        (Arc::new(UInt16Array::from(table.top.clone())), Arc::new(UInt16Array::from(table.left.clone())));
    vec![("id", id), ("label", label), ("source", source), ("top", top), ("left", left), ("pixels", pixels)]
}

fn write_as_another_writer(
    path: &std::path::Path,
    table: &Images,
    large: bool,
    text: arrow_schema::DataType,
    compression: parquet::basic::Compression,
    lengths: &[usize],
) {
    let kv = Meta::new(Stage::Images, table.height, table.width).key_values();
    write_columns(path, columns_as_another_writer(table, large, text, lengths), kv, compression);
}

#[test]
fn plain_lists_and_other_string_types_in_any_codec_read_as_the_contract() {
    use arrow_schema::DataType;
    use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};

    let dir = tempfile::tempdir().unwrap();
    let table = images(50);
    let lengths = vec![6; 50];
    let codecs = [
        Compression::UNCOMPRESSED,
        Compression::SNAPPY,
        Compression::GZIP(GzipLevel::default()),
        Compression::LZ4_RAW,
        Compression::LZ4,
        Compression::BROTLI(BrotliLevel::default()),
        Compression::ZSTD(ZstdLevel::default()),
    ];
    for (k, compression) in codecs.into_iter().enumerate() {
        for (large, text) in
            [(false, DataType::Utf8), (true, DataType::LargeUtf8), (k % 2 == 0, DataType::Utf8View)]
        {
            let path = dir.path().join(format!("{k}-{large}-{text}.parquet"));
            write_as_another_writer(&path, &table, large, text.clone(), compression, &lengths);
            let (back, _) = read::<Images>(&path).unwrap_or_else(|e| panic!("{compression:?}, {text}: {e}"));
            assert_eq!(back, table, "{compression:?}, large list {large}, {text}");
        }
    }
}

#[test]
fn plain_list_row_of_the_wrong_length_is_refused_naming_column_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.parquet");
    let mut lengths = vec![6; 5];
    lengths[3] = 5;
    let compression = parquet::basic::Compression::SNAPPY;
    write_as_another_writer(&path, &images(5), true, arrow_schema::DataType::Utf8, compression, &lengths);
    let message = read::<Images>(&path).unwrap_err().to_string();
    assert!(message.starts_with(&path.display().to_string()), "{message}");
    assert!(
        message.contains("column `pixels`, row 3: 5 values, expected 6 (one per pixel of a 2x3 image)"),
        "{message}"
    );
}

/// Writes `images(5)` with `column` replaced by `array` (or the metadata's `key` set to `value`).
fn write_images_with(
    path: &std::path::Path,
    column: Option<(&str, arrow_array::ArrayRef)>,
    key_value: Option<(&str, &str)>,
) {
    let table = images(5);
    let mut columns = columns_as_another_writer(&table, false, arrow_schema::DataType::Utf8, &[6; 5]);
    if let Some((name, array)) = column {
        columns.iter_mut().find(|(n, _)| *n == name).unwrap().1 = array;
    }
    let mut kv = Meta::new(Stage::Images, 2, 3).key_values();
    if let Some((key, value)) = key_value {
        kv.retain(|(k, _)| k != key);
        kv.push((key.into(), value.into()));
    }
    write_columns(path, columns, kv, parquet::basic::Compression::UNCOMPRESSED);
}

#[test]
fn null_or_duplicate_id_and_null_source_are_refused_naming_the_row() {
    use std::sync::Arc;

    use arrow_array::{StringArray, UInt32Array};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("images.parquet");
    let null_id: arrow_array::ArrayRef =
        Arc::new(UInt32Array::from(vec![Some(0), Some(1), Some(2), None, Some(4)]));
    write_images_with(&path, Some(("id", null_id)), None);
    let message = read::<Images>(&path).unwrap_err().to_string();
    assert!(message.contains("column `id`, row 3: null, but every image needs one"), "{message}");

    let null_source: arrow_array::ArrayRef =
        Arc::new(StringArray::from(vec![Some("a"), None, Some("c"), Some("d"), Some("e")]));
    write_images_with(&path, Some(("source", null_source)), None);
    let message = read::<Images>(&path).unwrap_err().to_string();
    assert!(message.contains("column `source`, row 1: null, but every image needs one"), "{message}");

    // Written by gmrf's own writer: the contract's types, but an id used twice.
    let mut twice = centred(5);
    twice.id[4] = 1;
    write(&path, &twice, &Meta::new(Stage::Centred, 2, 3)).unwrap().commit().unwrap();
    let message = read::<Centred>(&path).unwrap_err().to_string();
    assert!(
        message.contains("column `id`, row 4: id 1 is also the id of row 1: ids must be unique"),
        "{message}"
    );
}

#[test]
fn table_of_a_newer_gmrf_or_with_a_meaningless_scale_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("images.parquet");
    write_images_with(&path, None, Some(("gmrf.version", "99.0.0")));
    let message = read::<Images>(&path).unwrap_err().to_string();
    assert!(message.starts_with(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!(
            "metadata `gmrf.version`: written by gmrf 99.0.0, newer than this gmrf ({})",
            env!("CARGO_PKG_VERSION")
        )),
        "{message}"
    );
    write_images_with(&path, None, Some(("gmrf.version", "0.0.9")));
    read::<Images>(&path).expect("an older version reads");
    write_images_with(&path, None, Some(("gmrf.version", "next")));
    let message = read::<Images>(&path).unwrap_err().to_string();
    assert!(message.contains("`next` is not a version"), "{message}");

    for scale in ["NaN", "0", "-256", "inf", "many"] {
        let meta = Meta::new(Stage::Centred, 2, 3).with("scale", scale);
        write(&path, &centred(3), &meta).unwrap().commit().unwrap();
        let message = read::<Centred>(&path).unwrap_err().to_string();
        assert!(
            message.contains(&format!("metadata `gmrf.scale`: `{scale}` is not a finite number > 0")),
            "{message}"
        );
    }
}

#[test]
fn centred_value_outside_the_range_of_its_centring_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.parquet");
    let uniform = Meta::new(Stage::Centred, 2, 3).with("noise", "uniform").with("scale", 256);
    let gaussian = Meta::new(Stage::Centred, 2, 3).with("noise", "gaussian(std=0.01)").with("scale", 256);
    // (value, metadata, refused?): |x| ≤ 256/scale = 1 for uniform noise, 1 + 50·0.01 = 1.5 for
    // Gaussian noise of std 0.01, 1000 for a table that does not say how it was centred.
    let cases = [
        (3e38, &uniform, true),
        (-1.0001, &uniform, true),
        (-0.9999, &uniform, false),
        (1.49, &gaussian, false),
        (1.6, &gaussian, true),
        (1.6, &Meta::new(Stage::Centred, 2, 3), false),
        (3e38, &Meta::new(Stage::Centred, 2, 3), true),
    ];
    for (value, meta, refused) in cases {
        let mut table = centred(4);
        table.x[[2, 5]] = value;
        write(&path, &table, meta).unwrap().commit().unwrap();
        match read::<Centred>(&path) {
            Err(e) if refused => {
                let message = e.to_string();
                assert!(message.contains("column `x`, row 2: pixel 5 is"), "{message}");
                assert!(message.contains("outside the range of centred values"), "{message}");
            }
            Ok(_) if !refused => {}
            other => panic!("x = {value} with {:?}: {other:?}", meta.params),
        }
    }
}

#[test]
fn centred_table_is_tied_to_its_mean_by_content() {
    use gmrf_table::check_centred_with_mean;
    let mean = MeanImage { height: 2, width: 3, mean: vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6] };
    let mut other = mean.clone();
    other.mean[5] = 0.6000000000000001;
    assert_ne!(mean.content_hash(), other.content_hash(), "one ulp changes the hash");
    // The hash is FNV-1a of the bytes, computed here independently of the crate.
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&2u64.to_le_bytes());
    bytes.extend_from_slice(&3u64.to_le_bytes());
    mean.mean.iter().for_each(|m| bytes.extend_from_slice(&m.to_le_bytes()));
    let fnv = bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    assert_eq!(mean.content_hash(), format!("{fnv:016x}"));

    let (c, m) = (std::path::Path::new("test-centred.parquet"), std::path::Path::new("other/mean.parquet"));
    let meta = Meta::new(Stage::Centred, 2, 3).with("mean_hash", mean.content_hash());
    check_centred_with_mean(c, &meta, m, &mean).unwrap();
    let message = check_centred_with_mean(c, &meta, m, &other).unwrap_err().to_string();
    assert!(
        message.starts_with(
            "test-centred.parquet: metadata `gmrf.mean_hash`: the table was centred with the mean"
        ),
        "{message}"
    );
    assert!(
        message.contains(&format!("but other/mean.parquet holds the mean {}", other.content_hash())),
        "{message}"
    );
    let message =
        check_centred_with_mean(c, &Meta::new(Stage::Centred, 2, 3), m, &mean).unwrap_err().to_string();
    assert!(message.contains("`gmrf.mean_hash`: missing"), "{message}");
}
