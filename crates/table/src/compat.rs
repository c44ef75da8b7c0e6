//! Columns as other writers store them. pyarrow and polars write a table back with the same
//! values but not always the same Arrow types: text as `large_string` or `string_view`, and an
//! image column as a plain (large) list when it lost its fixed size on the way. Such a column is
//! accepted when it holds the contract's values, and turned into the contract's type on reading.

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, GenericListArray, OffsetSizeTrait, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};

use crate::schema::same_type;
use crate::{Meta, TableError};

/// Whether a column of type `found` can be read as the contract's `expected`: the same type, text
/// in another string type, or an image column as a plain list of the right item type (each row's
/// length is checked when the rows are read, by [`normalise`]).
pub(crate) fn readable_as(expected: &DataType, found: &DataType) -> bool {
    match (expected, found) {
        (DataType::Utf8, DataType::LargeUtf8 | DataType::Utf8View) => true,
        (DataType::FixedSizeList(e, _), DataType::List(f) | DataType::LargeList(f)) => {
            same_type(e.data_type(), f.data_type())
        }
        _ => same_type(expected, found),
    }
}

/// `batch` with every column of `expected` in the contract's type; `first_row` is the batch's first
/// row in the file, for messages. Columns already in the contract's type are passed through.
pub(crate) fn normalise(
    path: &Path,
    meta: &Meta,
    batch: RecordBatch,
    expected: &Schema,
    first_row: usize,
) -> Result<RecordBatch, TableError> {
    let mut fields = Vec::with_capacity(expected.fields().len());
    let mut columns = Vec::with_capacity(expected.fields().len());
    for field in expected.fields() {
        let column = batch.column_by_name(field.name()).expect("projected column").clone();
        let column: ArrayRef = match (field.data_type(), column.data_type()) {
            (DataType::Utf8, DataType::LargeUtf8) => {
                Arc::new(column.as_string::<i64>().iter().collect::<StringArray>())
            }
            (DataType::Utf8, DataType::Utf8View) => {
                Arc::new(column.as_string_view().iter().collect::<StringArray>())
            }
            (DataType::FixedSizeList(_, _), DataType::List(_)) => {
                fixed_size(path, meta, field.name(), column.as_list::<i32>(), first_row)?
            }
            (DataType::FixedSizeList(_, _), DataType::LargeList(_)) => {
                fixed_size(path, meta, field.name(), column.as_list::<i64>(), first_row)?
            }
            _ => column,
        };
        fields.push(Field::new(field.name(), column.data_type().clone(), true));
        columns.push(column);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("columns of one batch"))
}

/// A plain list column as the fixed-size list of `height × width` values the contract asks for,
/// refusing a null row or a row of another length (named by its row in the file).
fn fixed_size<O: OffsetSizeTrait>(
    path: &Path,
    meta: &Meta,
    column: &str,
    list: &GenericListArray<O>,
    first_row: usize,
) -> Result<ArrayRef, TableError> {
    let d = meta.pixels();
    let problem = |k: usize, problem: String| TableError::Value {
        path: path.to_path_buf(),
        column: column.to_string(),
        row: first_row + k,
        problem,
    };
    for k in 0..list.len() {
        if list.is_null(k) {
            return Err(problem(k, "null where every image needs all its pixels".into()));
        }
        let length = list.value_length(k).as_usize();
        if length != d {
            return Err(problem(
                k,
                format!(
                    "{length} values, expected {d} (one per pixel of a {}x{} image)",
                    meta.height, meta.width
                ),
            ));
        }
    }
    let offsets = list.value_offsets();
    let (start, end) = (offsets[0].as_usize(), offsets[list.len()].as_usize());
    let values = list.values().slice(start, end - start);
    let item = Arc::new(Field::new("item", values.data_type().clone(), true));
    let fixed =
        FixedSizeListArray::try_new(item, d as i32, values, None).expect("every row holds exactly d values");
    Ok(Arc::new(fixed))
}
