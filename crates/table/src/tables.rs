//! The typed tables: what each stage's rows hold, in memory, and their conversion to batches.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow_array::types::ArrowPrimitiveType;
use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, Float64Array, Int8Array, PrimitiveArray, RecordBatch, StringArray,
    UInt8Array, UInt16Array, UInt32Array,
};
use arrow_schema::SchemaRef;
use ndarray::Array2;

use crate::schema::list_item;
use crate::{Meta, Stage, Table, TableError};

/// Raw 8-bit images (MNIST digits) or patches (cut from photos): the `images` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub height: usize,
    pub width: usize,
    pub id: Vec<u32>,
    /// The class label (MNIST digit); `None` for patches.
    pub label: Vec<Option<u8>>,
    /// `train`/`test` for MNIST, or a patch's photo path relative to the corpus root.
    pub source: Vec<String>,
    /// Patch position in its photo; `None` for MNIST.
    pub top: Vec<Option<u16>>,
    pub left: Vec<Option<u16>>,
    /// One image per row, `height × width` pixels row-major.
    pub pixels: Array2<u8>,
}

/// Centred images, `x = (pixel + u)/256 − μ`: the `centred` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Centred {
    pub height: usize,
    pub width: usize,
    pub id: Vec<u32>,
    pub label: Vec<Option<u8>>,
    pub source: Vec<String>,
    /// One centred image per row, `height × width` values row-major.
    pub x: Array2<f32>,
}

/// The mean image μ, in the units of `x`: the `mean` table (one row per pixel).
#[derive(Clone, Debug, PartialEq)]
pub struct MeanImage {
    pub height: usize,
    pub width: usize,
    /// μ per pixel, row-major.
    pub mean: Vec<f64>,
}

impl MeanImage {
    /// A content hash of μ: 64-bit FNV-1a ([`stable_hash`](crate::stable_hash)) of the height,
    /// width and every mean's IEEE-754 bits (little-endian), as 16 hex digits. It depends on the
    /// values alone, not on how the table was compressed or which program wrote it back, and is
    /// recorded as `gmrf.mean_hash` in every table centred with this mean (see
    /// [`check_centred_with_mean`](crate::check_centred_with_mean)).
    pub fn content_hash(&self) -> String {
        let mut bytes = Vec::with_capacity(16 + 8 * self.mean.len());
        bytes.extend_from_slice(&(self.height as u64).to_le_bytes());
        bytes.extend_from_slice(&(self.width as u64).to_le_bytes());
        for m in &self.mean {
            bytes.extend_from_slice(&m.to_bits().to_le_bytes());
        }
        format!("{:016x}", crate::stable_hash(&bytes))
    }
}

impl Images {
    pub fn len(&self) -> usize {
        self.id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }
}

impl Centred {
    pub fn len(&self) -> usize {
        self.id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }
}

impl Table for Images {
    const STAGE: Stage = Stage::Images;

    fn len(&self) -> usize {
        self.id.len()
    }

    fn batch(&self, rows: Range<usize>, schema: &SchemaRef) -> RecordBatch {
        let mut columns = identity_columns(&self.id, &self.label, &self.source, rows.clone());
        columns.push(Arc::new(UInt16Array::from(self.top[rows.clone()].to_vec())));
        columns.push(Arc::new(UInt16Array::from(self.left[rows.clone()].to_vec())));
        columns.push(image_column::<arrow_array::types::UInt8Type>(&self.pixels, rows));
        RecordBatch::try_new(schema.clone(), columns).expect("images batch matches its schema")
    }

    fn from_batches(path: &Path, meta: &Meta, batches: Vec<RecordBatch>) -> Result<Self, TableError> {
        let (id, label, source) = identity_from(path, &batches)?;
        let mut top = Vec::with_capacity(id.len());
        let mut left = Vec::with_capacity(id.len());
        for batch in &batches {
            top.extend(column::<UInt16Array>(batch, "top").iter());
            left.extend(column::<UInt16Array>(batch, "left").iter());
        }
        let pixels = image_from::<arrow_array::types::UInt8Type>(path, meta, &batches, "pixels")?;
        Ok(Images { height: meta.height, width: meta.width, id, label, source, top, left, pixels })
    }
}

impl Table for Centred {
    const STAGE: Stage = Stage::Centred;

    fn len(&self) -> usize {
        self.id.len()
    }

    fn batch(&self, rows: Range<usize>, schema: &SchemaRef) -> RecordBatch {
        let mut columns = identity_columns(&self.id, &self.label, &self.source, rows.clone());
        columns.push(image_column::<arrow_array::types::Float32Type>(&self.x, rows));
        RecordBatch::try_new(schema.clone(), columns).expect("centred batch matches its schema")
    }

    fn from_batches(path: &Path, meta: &Meta, batches: Vec<RecordBatch>) -> Result<Self, TableError> {
        let (id, label, source) = identity_from(path, &batches)?;
        let x = image_from::<arrow_array::types::Float32Type>(path, meta, &batches, "x")?;
        let bound = centred_bound(path, meta)?;
        if let Some(at) = x.iter().position(|v| !v.is_finite() || v.abs() > bound) {
            let d = meta.pixels();
            let v = x.as_slice().expect("standard layout")[at];
            let problem = if v.is_finite() {
                let v = if v.abs() < 1e6 { v.to_string() } else { format!("{v:e}") };
                format!("pixel {} is {v}, outside the range of centred values, |x| ≤ {bound}", at % d)
            } else {
                format!("pixel {} is {v}, not a finite number", at % d)
            };
            return Err(TableError::Value {
                path: path.to_path_buf(),
                column: "x".into(),
                row: at / d,
                problem,
            });
        }
        Ok(Centred { height: meta.height, width: meta.width, id, label, source, x })
    }
}

impl Table for MeanImage {
    const STAGE: Stage = Stage::Mean;

    fn len(&self) -> usize {
        self.mean.len()
    }

    fn batch(&self, rows: Range<usize>, schema: &SchemaRef) -> RecordBatch {
        let narrow = |v: usize| u8::try_from(v).expect("rows and columns fit the contract's u8");
        let pixel: UInt16Array =
            rows.clone().map(|p| u16::try_from(p).expect("pixel index fits u16")).collect();
        let row: UInt8Array = rows.clone().map(|p| narrow(p / self.width)).collect();
        let col: UInt8Array = rows.clone().map(|p| narrow(p % self.width)).collect();
        let mean = Float64Array::from(self.mean[rows].to_vec());
        let columns: Vec<ArrayRef> = vec![Arc::new(pixel), Arc::new(row), Arc::new(col), Arc::new(mean)];
        RecordBatch::try_new(schema.clone(), columns).expect("mean batch matches its schema")
    }

    fn from_batches(path: &Path, meta: &Meta, batches: Vec<RecordBatch>) -> Result<Self, TableError> {
        let mut mean = Vec::with_capacity(meta.pixels());
        let value = |row: usize, column: &str, problem: String| TableError::Value {
            path: path.to_path_buf(),
            column: column.into(),
            row,
            problem,
        };
        for batch in &batches {
            let pixels = column::<UInt16Array>(batch, "pixel");
            let rows = column::<UInt8Array>(batch, "row");
            let cols = column::<UInt8Array>(batch, "col");
            let means = column::<Float64Array>(batch, "mean");
            for k in 0..batch.num_rows() {
                let p = mean.len();
                if pixels.value(k) as usize != p
                    || rows.value(k) as usize != p / meta.width
                    || cols.value(k) as usize != p % meta.width
                {
                    return Err(value(
                        p,
                        "pixel",
                        format!(
                            "expected pixel {p} at row {}, col {} (one row per pixel, row-major)",
                            p / meta.width,
                            p % meta.width
                        ),
                    ));
                }
                let m = means.value(k);
                if !m.is_finite() {
                    return Err(value(p, "mean", format!("{m} is not a finite number")));
                }
                mean.push(m);
            }
        }
        if mean.len() != meta.pixels() {
            return Err(value(
                mean.len(),
                "pixel",
                format!(
                    "the table has {} rows, expected one per pixel of a {}x{} image ({})",
                    mean.len(),
                    meta.height,
                    meta.width,
                    meta.pixels()
                ),
            ));
        }
        Ok(MeanImage { height: meta.height, width: meta.width, mean })
    }
}

/// The largest |x| a centred table may hold, from how it was centred (its metadata):
/// x = (pixel + u)/scale − μ with pixel + u and scale·μ in [0, 256], so |x| ≤ 256/scale for
/// `noise` `none` and `uniform`; Gaussian noise of standard deviation s adds at most 50·s (a
/// 50-sigma draw has probability below 1e-500). For a table that does not say how it was
/// centred, or that applied another transform, |x| ≤ 1000: beyond any centring of 8-bit pixels.
/// A relative 1e-6 allows for the f32 rounding of x.
fn centred_bound(path: &Path, meta: &Meta) -> Result<f32, TableError> {
    const ANY_CENTRING: f64 = 1000.0;
    let scale = meta.scale(path)?.unwrap_or(256.0);
    let transformed = meta.param("transform").is_some_and(|t| t != "none");
    let bound = match meta.param("noise") {
        _ if transformed => ANY_CENTRING,
        Some("none" | "uniform") => 256.0 / scale,
        Some(noise) => match noise.strip_prefix("gaussian(std=").and_then(|s| s.strip_suffix(')')) {
            Some(std) => match std.parse::<f64>() {
                Ok(std) if std.is_finite() && std >= 0.0 => 256.0 / scale + 50.0 * std,
                _ => ANY_CENTRING,
            },
            None => ANY_CENTRING,
        },
        None => ANY_CENTRING,
    };
    Ok((bound * (1.0 + 1e-6)) as f32)
}

/// Checks that the centred table at `centred_path` (metadata `centred_meta`) was centred with the
/// mean table at `mean_path`: its recorded `gmrf.mean_hash` must equal `mean`'s
/// [`content_hash`](MeanImage::content_hash), so tables are tied by content, not by file name.
pub fn check_centred_with_mean(
    centred_path: &Path,
    centred_meta: &Meta,
    mean_path: &Path,
    mean: &MeanImage,
) -> Result<(), TableError> {
    let problem = |problem: String| TableError::Metadata {
        path: centred_path.to_path_buf(),
        key: "gmrf.mean_hash".into(),
        problem,
    };
    let Some(recorded) = centred_meta.param("mean_hash") else {
        return Err(problem(format!(
            "missing, so the table cannot be tied to {}: centre it again with `gmrf centre`",
            mean_path.display()
        )));
    };
    let actual = mean.content_hash();
    if recorded != actual {
        return Err(problem(format!(
            "the table was centred with the mean {recorded}, but {} holds the mean {actual}: give the mean table it was centred with",
            mean_path.display()
        )));
    }
    Ok(())
}

/// A column of a batch whose type was checked against the contract when the file was opened.
pub(crate) fn column<'a, A: Array + 'static>(batch: &'a RecordBatch, name: &str) -> &'a A {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<A>())
        .unwrap_or_else(|| panic!("column `{name}` was checked against the contract"))
}

fn identity_columns(
    id: &[u32],
    label: &[Option<u8>],
    source: &[String],
    rows: Range<usize>,
) -> Vec<ArrayRef> {
    vec![
        Arc::new(UInt32Array::from(id[rows.clone()].to_vec())),
        Arc::new(UInt8Array::from(label[rows.clone()].to_vec())),
        Arc::new(StringArray::from_iter_values(source[rows].iter())),
    ]
}

/// The identity columns of an `images` or `centred` table, refusing a null `id` or `source` and an
/// `id` used twice (an image's noise and its held-out membership are keyed by it).
#[allow(clippy::type_complexity)]
fn identity_from(
    path: &Path,
    batches: &[RecordBatch],
) -> Result<(Vec<u32>, Vec<Option<u8>>, Vec<String>), TableError> {
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let (mut id, mut label, mut source) =
        (Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::with_capacity(rows));
    let problem = |column: &str, row: usize, problem: String| TableError::Value {
        path: path.to_path_buf(),
        column: column.into(),
        row,
        problem,
    };
    for batch in batches {
        let (ids, sources) = (column::<UInt32Array>(batch, "id"), column::<StringArray>(batch, "source"));
        for (name, nulls) in [("id", ids.nulls()), ("source", sources.nulls())] {
            if let Some(k) = nulls.and_then(|n| n.iter().position(|valid| !valid)) {
                return Err(problem(name, id.len() + k, "null, but every image needs one".into()));
            }
        }
        id.extend_from_slice(ids.values());
        label.extend(column::<UInt8Array>(batch, "label").iter());
        source.extend(sources.iter().map(|s| s.unwrap_or_default().to_string()));
    }
    let mut first_row = std::collections::HashMap::with_capacity(id.len());
    for (row, &i) in id.iter().enumerate() {
        if let Some(first) = first_row.insert(i, row) {
            return Err(problem(
                "id",
                row,
                format!("id {i} is also the id of row {first}: ids must be unique"),
            ));
        }
    }
    Ok((id, label, source))
}

/// Rows `rows` of an image matrix as a fixed-size-list column.
pub(crate) fn image_column<T: ArrowPrimitiveType>(
    images: &Array2<T::Native>,
    rows: Range<usize>,
) -> ArrayRef {
    let d = images.ncols();
    let images = images.as_standard_layout();
    let values = &images.as_slice().expect("standard layout")[rows.start * d..rows.end * d];
    let values = PrimitiveArray::<T>::from_iter_values(values.iter().copied());
    Arc::new(FixedSizeListArray::new(list_item(T::DATA_TYPE), d as i32, Arc::new(values), None))
}

/// A fixed-size-list column of all batches as an image matrix, refusing nulls.
pub(crate) fn image_from<T: ArrowPrimitiveType>(
    path: &Path,
    meta: &Meta,
    batches: &[RecordBatch],
    name: &'static str,
) -> Result<Array2<T::Native>, TableError> {
    let d = meta.pixels();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut values = Vec::with_capacity(rows * d);
    let mut row = 0;
    for batch in batches {
        let list = column::<FixedSizeListArray>(batch, name);
        let items = list.values().as_any().downcast_ref::<PrimitiveArray<T>>().expect("checked item type");
        if list.null_count() > 0 || items.null_count() > 0 {
            let bad =
                (0..list.len()).find(|&k| list.is_null(k) || list.value(k).null_count() > 0).unwrap_or(0);
            return Err(TableError::Value {
                path: path.to_path_buf(),
                column: name.into(),
                row: row + bad,
                problem: "null where every image needs all its pixels".into(),
            });
        }
        let start = list.value_offset_at(0);
        values.extend_from_slice(&items.values()[start..start + list.len() * d]);
        row += list.len();
    }
    Ok(Array2::from_shape_vec((rows, d), values).expect("rows × pixels values"))
}

/// The stored entries of a precision matrix Λθ: upper triangle with diagonal, one row per entry,
/// `j = i + di·width + dj` (the `precision` table).
#[derive(Clone, Debug, PartialEq)]
pub struct PrecisionEntries {
    pub height: usize,
    pub width: usize,
    pub i: Vec<u16>,
    pub j: Vec<u16>,
    pub di: Vec<i8>,
    pub dj: Vec<i8>,
    pub value: Vec<f64>,
}

/// One row per optimiser step (the `trace` table).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub rows: Vec<TraceRow>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceRow {
    pub step: u32,
    pub loss: f64,
    pub grad_norm: f64,
    pub step_size: f64,
    pub elapsed_s: f64,
    /// The loss on held-out data, at the steps where it was computed.
    pub heldout_loss: Option<f64>,
}

impl Table for PrecisionEntries {
    const STAGE: Stage = Stage::Precision;

    fn len(&self) -> usize {
        self.value.len()
    }

    fn batch(&self, rows: Range<usize>, schema: &SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt16Array::from(self.i[rows.clone()].to_vec())),
            Arc::new(UInt16Array::from(self.j[rows.clone()].to_vec())),
            Arc::new(Int8Array::from(self.di[rows.clone()].to_vec())),
            Arc::new(Int8Array::from(self.dj[rows.clone()].to_vec())),
            Arc::new(Float64Array::from(self.value[rows].to_vec())),
        ];
        RecordBatch::try_new(schema.clone(), columns).expect("precision batch matches its schema")
    }

    fn from_batches(path: &Path, meta: &Meta, batches: Vec<RecordBatch>) -> Result<Self, TableError> {
        let mut t = PrecisionEntries {
            height: meta.height,
            width: meta.width,
            i: vec![],
            j: vec![],
            di: vec![],
            dj: vec![],
            value: vec![],
        };
        for batch in &batches {
            t.i.extend_from_slice(column::<UInt16Array>(batch, "i").values());
            t.j.extend_from_slice(column::<UInt16Array>(batch, "j").values());
            t.di.extend_from_slice(column::<Int8Array>(batch, "di").values());
            t.dj.extend_from_slice(column::<Int8Array>(batch, "dj").values());
            t.value.extend_from_slice(column::<Float64Array>(batch, "value").values());
        }
        let (w, d) = (meta.width as i64, meta.pixels() as i64);
        for k in 0..t.value.len() {
            let (i, j, di, dj) = (t.i[k] as i64, t.j[k] as i64, t.di[k] as i64, t.dj[k] as i64);
            let col = i % w + dj;
            let problem = if j >= d || i > j {
                Some(format!("entry ({i}, {j}) is not in the upper triangle of a {d}x{d} matrix"))
            } else if j != i + di * w + dj || !(0..w).contains(&col) {
                Some(format!(
                    "entry ({i}, {j}) does not match its offset (di, dj) = ({di}, {dj}) on a {w}-wide grid"
                ))
            } else if !t.value[k].is_finite() {
                Some(format!("value {} is not a finite number", t.value[k]))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(TableError::Value {
                    path: path.to_path_buf(),
                    column: "value".into(),
                    row: k,
                    problem,
                });
            }
        }
        Ok(t)
    }
}

impl Table for Trace {
    const STAGE: Stage = Stage::Trace;

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn batch(&self, rows: Range<usize>, schema: &SchemaRef) -> RecordBatch {
        let rows = &self.rows[rows];
        let f = |get: fn(&TraceRow) -> f64| -> ArrayRef {
            Arc::new(rows.iter().map(get).collect::<Float64Array>())
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(rows.iter().map(|r| r.step).collect::<UInt32Array>()),
            f(|r| r.loss),
            f(|r| r.grad_norm),
            f(|r| r.step_size),
            f(|r| r.elapsed_s),
            Arc::new(rows.iter().map(|r| r.heldout_loss).collect::<Float64Array>()),
        ];
        RecordBatch::try_new(schema.clone(), columns).expect("trace batch matches its schema")
    }

    fn from_batches(_: &Path, _: &Meta, batches: Vec<RecordBatch>) -> Result<Self, TableError> {
        let mut rows = Vec::new();
        for batch in &batches {
            let f = |name| column::<Float64Array>(batch, name);
            let (step, loss, grad, size, elapsed, heldout) = (
                column::<UInt32Array>(batch, "step"),
                f("loss"),
                f("grad_norm"),
                f("step_size"),
                f("elapsed_s"),
                f("heldout_loss"),
            );
            for k in 0..batch.num_rows() {
                rows.push(TraceRow {
                    step: step.value(k),
                    loss: loss.value(k),
                    grad_norm: grad.value(k),
                    step_size: size.value(k),
                    elapsed_s: elapsed.value(k),
                    heldout_loss: heldout.is_valid(k).then(|| heldout.value(k)),
                });
            }
        }
        Ok(Trace { rows })
    }
}

/// Inputs an ingest left out, with the reason: the `skipped` table (one row per file).
///
/// `path` is relative to the corpus root (forward slashes); `reason` starts with its kind
/// (`unreadable`, `corrupt`, `truncated`, `too small`), a colon, and the details.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Skipped {
    pub path: Vec<String>,
    pub reason: Vec<String>,
}

impl Skipped {
    pub fn len(&self) -> usize {
        self.path.len()
    }
    pub fn is_empty(&self) -> bool {
        self.path.is_empty()
    }
}

impl Table for Skipped {
    const STAGE: Stage = Stage::Skipped;

    fn len(&self) -> usize {
        self.path.len()
    }

    fn batch(&self, rows: Range<usize>, schema: &SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(self.path[rows.clone()].iter())),
            Arc::new(StringArray::from_iter_values(self.reason[rows].iter())),
        ];
        RecordBatch::try_new(schema.clone(), columns).expect("skipped batch matches its schema")
    }

    fn from_batches(_: &Path, _: &Meta, batches: Vec<RecordBatch>) -> Result<Self, TableError> {
        let mut t = Skipped::default();
        for batch in &batches {
            let text =
                |name| column::<StringArray>(batch, name).iter().map(|s| s.unwrap_or_default().to_string());
            t.path.extend(text("path"));
            t.reason.extend(text("reason"));
        }
        Ok(t)
    }
}
