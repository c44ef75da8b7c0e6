//! The tables `gmrf evaluate` writes: `metrics` (one row per model), `scores` (one row per image
//! and model) and `samples` (synthetic images).

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow_array::types::UInt8Type;
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray, UInt8Array, UInt32Array};
use arrow_schema::SchemaRef;
use ndarray::Array2;

use crate::tables::{column, image_column, image_from};
use crate::{Meta, Stage, Table, TableError};

/// One fitted model (or baseline) measured on the training and test tables: the `metrics` table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub rows: Vec<MetricsRow>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricsRow {
    /// The model's name in this run (e.g. `sm-4`, `baseline-diagonal`).
    pub model: String,
    pub method: String,
    pub neighbourhood: String,
    /// The fit's parameters as `key=value` pairs, for the reader.
    pub parameters: String,
    pub n_train: u32,
    pub n_test: u32,
    /// Free entries of Λθ (upper triangle with diagonal).
    pub nnz: u32,
    /// Mean negative log-likelihood, nats per pixel.
    pub train_nll: f64,
    pub test_nll: f64,
    /// Bits per pixel of the discrete 8-bit data.
    pub train_bpd: f64,
    pub test_bpd: f64,
    pub min_eigenvalue: f64,
    pub condition_number: f64,
    /// Wall time of the fit, from its trace; `None` for baselines.
    pub fit_seconds: Option<f64>,
}

/// The negative log-likelihood of each image under each model: the `scores` table. A user groups
/// it (by `label`, `source`, …) to break a metric down.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    pub height: usize,
    pub width: usize,
    pub model: Vec<String>,
    /// `train` or `test`: which table the image came from.
    pub split: Vec<String>,
    pub id: Vec<u32>,
    pub label: Vec<Option<u8>>,
    pub source: Vec<String>,
    /// −log p(x) / d, nats per pixel.
    pub nll: Vec<f64>,
}

/// Synthetic 8-bit images drawn from fitted models: the `samples` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Samples {
    pub height: usize,
    pub width: usize,
    pub model: Vec<String>,
    pub id: Vec<u32>,
    /// `cholesky` (μ + L⁻ᵀz) or `inverse-sqrt` (μ + Λ^{-1/2}ε).
    pub sampler: Vec<String>,
    pub pixels: Array2<u8>,
}

fn strings(values: &[String]) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values.iter()))
}

fn strings_from(batches: &[RecordBatch], name: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| column::<StringArray>(b, name).iter().map(|s| s.unwrap_or_default().to_string()))
        .collect()
}

impl Table for Metrics {
    const STAGE: Stage = Stage::Metrics;

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn batch(&self, rows: Range<usize>, schema: &SchemaRef) -> RecordBatch {
        let rows = &self.rows[rows];
        let text = |get: fn(&MetricsRow) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(rows.iter().map(get)))
        };
        let count = |get: fn(&MetricsRow) -> u32| -> ArrayRef {
            Arc::new(rows.iter().map(get).collect::<UInt32Array>())
        };
        let real = |get: fn(&MetricsRow) -> f64| -> ArrayRef {
            Arc::new(rows.iter().map(get).collect::<Float64Array>())
        };
        let columns: Vec<ArrayRef> = vec![
            text(|r| &r.model),
            text(|r| &r.method),
            text(|r| &r.neighbourhood),
            text(|r| &r.parameters),
            count(|r| r.n_train),
            count(|r| r.n_test),
            count(|r| r.nnz),
            real(|r| r.train_nll),
            real(|r| r.test_nll),
            real(|r| r.train_bpd),
            real(|r| r.test_bpd),
            real(|r| r.min_eigenvalue),
            real(|r| r.condition_number),
            Arc::new(rows.iter().map(|r| r.fit_seconds).collect::<Float64Array>()),
        ];
        RecordBatch::try_new(schema.clone(), columns).expect("metrics batch matches its schema")
    }

    fn from_batches(_: &Path, _: &Meta, batches: Vec<RecordBatch>) -> Result<Self, TableError> {
        let mut rows = Vec::new();
        for batch in &batches {
            let text = |name| column::<StringArray>(batch, name);
            let count = |name| column::<UInt32Array>(batch, name);
            let real = |name| column::<Float64Array>(batch, name);
            let fit_seconds = real("fit_seconds");
            for k in 0..batch.num_rows() {
                rows.push(MetricsRow {
                    model: text("model").value(k).to_string(),
                    method: text("method").value(k).to_string(),
                    neighbourhood: text("neighbourhood").value(k).to_string(),
                    parameters: text("parameters").value(k).to_string(),
                    n_train: count("n_train").value(k),
                    n_test: count("n_test").value(k),
                    nnz: count("nnz").value(k),
                    train_nll: real("train_nll").value(k),
                    test_nll: real("test_nll").value(k),
                    train_bpd: real("train_bpd").value(k),
                    test_bpd: real("test_bpd").value(k),
                    min_eigenvalue: real("min_eigenvalue").value(k),
                    condition_number: real("condition_number").value(k),
                    fit_seconds: fit_seconds.is_valid(k).then(|| fit_seconds.value(k)),
                });
            }
        }
        Ok(Metrics { rows })
    }
}

impl Table for Scores {
    const STAGE: Stage = Stage::Scores;

    fn len(&self) -> usize {
        self.nll.len()
    }

    fn batch(&self, rows: Range<usize>, schema: &SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            strings(&self.model[rows.clone()]),
            strings(&self.split[rows.clone()]),
            Arc::new(UInt32Array::from(self.id[rows.clone()].to_vec())),
            Arc::new(UInt8Array::from(self.label[rows.clone()].to_vec())),
            strings(&self.source[rows.clone()]),
            Arc::new(Float64Array::from(self.nll[rows].to_vec())),
        ];
        RecordBatch::try_new(schema.clone(), columns).expect("scores batch matches its schema")
    }

    fn from_batches(_: &Path, meta: &Meta, batches: Vec<RecordBatch>) -> Result<Self, TableError> {
        let mut scores = Scores {
            height: meta.height,
            width: meta.width,
            model: strings_from(&batches, "model"),
            split: strings_from(&batches, "split"),
            source: strings_from(&batches, "source"),
            ..Scores::default()
        };
        for batch in &batches {
            scores.id.extend_from_slice(column::<UInt32Array>(batch, "id").values());
            scores.label.extend(column::<UInt8Array>(batch, "label").iter());
            scores.nll.extend_from_slice(column::<Float64Array>(batch, "nll").values());
        }
        Ok(scores)
    }
}

impl Table for Samples {
    const STAGE: Stage = Stage::Samples;

    fn len(&self) -> usize {
        self.id.len()
    }

    fn batch(&self, rows: Range<usize>, schema: &SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            strings(&self.model[rows.clone()]),
            Arc::new(UInt32Array::from(self.id[rows.clone()].to_vec())),
            strings(&self.sampler[rows.clone()]),
            image_column::<UInt8Type>(&self.pixels, rows),
        ];
        RecordBatch::try_new(schema.clone(), columns).expect("samples batch matches its schema")
    }

    fn from_batches(path: &Path, meta: &Meta, batches: Vec<RecordBatch>) -> Result<Self, TableError> {
        let mut id = Vec::new();
        for batch in &batches {
            id.extend_from_slice(column::<UInt32Array>(batch, "id").values());
        }
        Ok(Samples {
            height: meta.height,
            width: meta.width,
            model: strings_from(&batches, "model"),
            id,
            sampler: strings_from(&batches, "sampler"),
            pixels: image_from::<UInt8Type>(path, meta, &batches, "pixels")?,
        })
    }
}
