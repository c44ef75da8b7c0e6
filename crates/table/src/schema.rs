//! The schema of every gmrf table, defined once. Other crates never build a schema by hand.
//!
//! `pixels` and `x` are fixed-size lists of `height × width` values, row-major, so that polars
//! reads them as `Array(UInt8, 784)` and `Array(Float32, 784)` for 28×28 images.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::Stage;

/// The element field of the fixed-size-list columns.
pub fn list_item(item: DataType) -> Arc<Field> {
    Arc::new(Field::new("item", item, false))
}

fn image_column(name: &str, item: DataType, pixels: usize) -> Field {
    Field::new(name, DataType::FixedSizeList(list_item(item), pixels as i32), false)
}

/// The columns that identify an image across stages: `id`, `label`, `source`.
fn identity() -> [Field; 3] {
    [
        Field::new("id", DataType::UInt32, false),
        Field::new("label", DataType::UInt8, true),
        Field::new("source", DataType::Utf8, false),
    ]
}

/// The schema of a `stage` table for images of `pixels` pixels.
pub fn schema(stage: Stage, pixels: usize) -> SchemaRef {
    let f64 = |name: &str| Field::new(name, DataType::Float64, false);
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, false);
    let u32 = |name: &str| Field::new(name, DataType::UInt32, false);
    let fields: Vec<Field> = match stage {
        Stage::Images => {
            let [id, label, source] = identity();
            vec![
                id,
                label,
                source,
                Field::new("top", DataType::UInt16, true),
                Field::new("left", DataType::UInt16, true),
                image_column("pixels", DataType::UInt8, pixels),
            ]
        }
        Stage::Centred => {
            let mut fields = identity().to_vec();
            fields.push(image_column("x", DataType::Float32, pixels));
            fields
        }
        Stage::Mean => vec![
            Field::new("pixel", DataType::UInt16, false),
            Field::new("row", DataType::UInt8, false),
            Field::new("col", DataType::UInt8, false),
            f64("mean"),
        ],
        Stage::Precision => vec![
            Field::new("i", DataType::UInt16, false),
            Field::new("j", DataType::UInt16, false),
            Field::new("di", DataType::Int8, false),
            Field::new("dj", DataType::Int8, false),
            f64("value"),
        ],
        Stage::Trace => vec![
            u32("step"),
            f64("loss"),
            f64("grad_norm"),
            f64("step_size"),
            f64("elapsed_s"),
            Field::new("heldout_loss", DataType::Float64, true),
        ],
        Stage::Metrics => vec![
            utf8("model"),
            utf8("method"),
            utf8("neighbourhood"),
            utf8("parameters"),
            u32("n_train"),
            u32("n_test"),
            u32("nnz"),
            f64("train_nll"),
            f64("test_nll"),
            f64("train_bpd"),
            f64("test_bpd"),
            f64("min_eigenvalue"),
            f64("condition_number"),
            Field::new("fit_seconds", DataType::Float64, true),
        ],
        Stage::Samples => {
            vec![utf8("model"), u32("id"), utf8("sampler"), image_column("pixels", DataType::UInt8, pixels)]
        }
        Stage::Skipped => vec![utf8("path"), utf8("reason")],
        Stage::Scores => {
            let [id, label, source] = identity();
            vec![utf8("model"), utf8("split"), id, label, source, f64("nll")]
        }
    };
    Arc::new(Schema::new(fields))
}

/// Whether a column found in a file has the type the contract asks for. Names and nullability of
/// list elements are not compared: other writers (polars, pyarrow) name them differently.
pub(crate) fn same_type(expected: &DataType, found: &DataType) -> bool {
    match (expected, found) {
        (DataType::FixedSizeList(e, n), DataType::FixedSizeList(f, m)) => {
            n == m && same_type(e.data_type(), f.data_type())
        }
        _ => expected == found,
    }
}

/// How a type reads in an error message.
pub(crate) fn describe(t: &DataType) -> String {
    match t {
        DataType::FixedSizeList(item, n) => format!("fixed-size list of {n} {}", describe(item.data_type())),
        DataType::List(item) | DataType::LargeList(item) => format!("list of {}", describe(item.data_type())),
        DataType::UInt8 => "u8".into(),
        DataType::UInt16 => "u16".into(),
        DataType::UInt32 => "u32".into(),
        DataType::Int8 => "i8".into(),
        DataType::Float32 => "f32".into(),
        DataType::Float64 => "f64".into(),
        DataType::Utf8 => "utf8".into(),
        other => other.to_string(),
    }
}
