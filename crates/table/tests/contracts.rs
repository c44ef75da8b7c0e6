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
        x: Array2::from_shape_fn((rows, 6), |(i, j)| i as f32 - j as f32 * 0.25),
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
