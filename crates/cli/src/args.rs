//! The command-line interface, as clap declares it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// Gaussian Markov random field models of images.
///
/// Each stage reads and writes Parquet tables (open them with polars: `pl.read_parquet(path)`).
/// A pipeline runs the stages in order: `ingest` → `centre` → `estimate` → `evaluate`; the
/// justfile's recipes (`just --list`) run whole pipelines with the parameters in `pipelines/`.
#[derive(Debug, Parser)]
#[command(name = "gmrf", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Turn raw data into an `images` table (8-bit pixels, one row per image).
    #[command(subcommand)]
    Ingest(Ingest),
    /// Fit the mean image on a training table; write centred, dequantised tables.
    Centre(CentreArgs),
    /// Fit a sparse precision matrix Λθ to a `centred` table; write `precision` and `trace`.
    ///
    /// Methods: `sm`, exact score matching kept positive definite (the unconstrained optimum
    /// when it is positive definite, else a log-barrier path whose weight is chosen by held-out
    /// likelihood on a validation split of the training table); `sm-gd`, the original homework's
    /// fixed-step gradient descent; `mle`, masked maximum likelihood (the reference); `nce`,
    /// noise-contrastive estimation (logistic discrimination of the data from ν times as many
    /// samples of a Gaussian noise); `cnce`, conditional NCE (discrimination of each image from κ
    /// noisy copies of itself, which needs no normaliser). nce and cnce run a first-order
    /// optimiser on minibatches in standardised coordinates (pixels scaled to unit variance; Λθ
    /// is written in the original units) and keep Λθ positive definite at every step.
    Estimate(EstimateArgs),
    /// Score fitted models on held-out data; write metrics, per-image scores, samples, figures and
    /// a report.
    ///
    /// Every model, and two baselines fitted to the training table by the same code (`diagonal`:
    /// independent pixels; `full`: Λ = S⁻¹), is scored on the training and test tables: mean
    /// negative log-likelihood in nats per pixel and bits per pixel of the 8-bit data. Writes into
    /// --out: `metrics.parquet` (one row per model), `scores.parquet` (one row per image and
    /// model), `samples.parquet` (both samplers), `figures/*.png` and `report.md`.
    Evaluate(EvaluateArgs),
}

#[derive(Debug, Subcommand)]
pub enum Ingest {
    /// Read an MNIST-style pair of IDX files (raw or gzipped) into an `images` table.
    ///
    /// The files are checked: magic number, dimension count, exactly the bytes the header
    /// promises, and as many labels as images. `id` is the image's index in the file.
    Mnist(IngestMnistArgs),
    /// Cut grayscale patches from a folder of photos (JPEG, PNG) into train and test tables.
    ///
    /// Walks --root (subfolders too) for files ending in .jpg, .jpeg or .png (any case; other
    /// files are ignored) in sorted path order; converts each photo to 8-bit grey as TensorFlow's
    /// rgb_to_grayscale does (BT.601 weights 0.2989, 0.587, 0.114 on c/255, then ×255.5
    /// truncated); tiles it into non-overlapping patches aligned at the top-left corner (the
    /// remainder dropped); keeps --per-photo distinct tiles drawn by an RNG seeded from (seed,
    /// the photo's relative path); and stops at --cap patches. A photo's patches all go to the
    /// test table or all to the training table, by a stable hash of (seed, relative path).
    /// `source` is the photo's path relative to --root, `top` and `left` the patch's position,
    /// `id` numbers the kept patches in corpus order across both tables.
    ///
    /// Unreadable, corrupt or truncated photos, and photos smaller than one tile, are skipped and
    /// listed with the reason in the --skipped table. A folder with no usable photo is an error.
    /// The three tables are written together, or not at all.
    Photos(IngestPhotosArgs),
}

#[derive(Debug, Args)]
pub struct IngestPhotosArgs {
    /// Folder of photos, e.g. Flickr30k's flickr30k-images/ (searched recursively).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Output `images` table of the training patches.
    #[arg(long, value_name = "TRAIN.parquet")]
    pub train: PathBuf,
    /// Output `images` table of the test patches (those of the held-out photos).
    #[arg(long, value_name = "TEST.parquet")]
    pub test: PathBuf,
    /// Output `skipped` table: one row per photo left out (`path`, `reason`).
    #[arg(long, value_name = "SKIPPED.parquet")]
    pub skipped: PathBuf,
    /// Pipeline parameters (`pipelines/*.toml`, section `[ingest]`); flags override them.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub params: PhotoParams,
}

/// Parameters of `gmrf ingest photos`, from flags or from a pipeline file's `[ingest]` section.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoParams {
    /// Seed of the tile choice and of the train/test split [default: 0]. Same seed and photos:
    /// the same bytes out, whatever the number of threads.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Side of a square patch, in pixels [default: 28].
    #[arg(long, value_name = "PIXELS")]
    pub patch_size: Option<usize>,
    /// Distinct tiles drawn from each photo (all its tiles if it has fewer) [default: 2].
    #[arg(long, value_name = "N")]
    pub per_photo: Option<usize>,
    /// Most patches kept, counted over both tables in sorted path order; photos after the one
    /// that reaches it are not read [default: 50000].
    #[arg(long, value_name = "N")]
    pub cap: Option<usize>,
    /// Dilation rate r: a patch takes every r-th pixel over a span of (size − 1)·r + 1 pixels,
    /// tiles being non-overlapping spans (tf.image.extract_patches with strides = span, VALID
    /// padding); the original used 6 [default: 1, plain tiles].
    #[arg(long, value_name = "R")]
    pub rate: Option<usize>,
    /// Fraction of photos whose patches go to the test table [default: 0.1].
    #[arg(long, value_name = "F")]
    pub test_fraction: Option<f64>,
}

#[derive(Debug, Args)]
pub struct IngestMnistArgs {
    /// IDX image file (e.g. train-images-idx3-ubyte, or .gz).
    #[arg(long, value_name = "FILE")]
    pub images: PathBuf,
    /// IDX label file of the same split (e.g. train-labels-idx1-ubyte, or .gz).
    #[arg(long, value_name = "FILE")]
    pub labels: PathBuf,
    /// Output `images` table.
    #[arg(long, value_name = "FILE.parquet")]
    pub out: PathBuf,
    /// Value of the `source` column [default: `test` if the image file's name starts with
    /// `t10k` or contains `test`, else `train`].
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,
}

#[derive(Debug, Args)]
pub struct CentreArgs {
    /// Training `images` table: the mean image is fitted on it, and it is centred.
    #[arg(long, value_name = "TRAIN.parquet")]
    pub fit: PathBuf,
    /// Output `mean` table (one row per pixel).
    #[arg(long, value_name = "MEAN.parquet")]
    pub mean: PathBuf,
    /// Output `centred` table for the training table.
    #[arg(long, value_name = "TRAIN-CENTRED.parquet")]
    pub out: PathBuf,
    /// Another `images` table (e.g. the test split) to centre with the same mean; repeatable,
    /// each paired with an --apply-out in the same order.
    #[arg(long, value_name = "TEST.parquet")]
    pub apply: Vec<PathBuf>,
    /// Output `centred` table for the --apply table at the same position.
    #[arg(long, value_name = "TEST-CENTRED.parquet")]
    pub apply_out: Vec<PathBuf>,
    /// Pipeline parameters (`pipelines/*.toml`, section `[centre]`); flags override them.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub params: CentreParams,
}

/// Parameters of `gmrf centre`, from flags or from a pipeline file's `[centre]` section.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreParams {
    /// Seed of the pixel noise [default: 0]. Same seed and input: the same bytes out.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Pixel noise: `uniform` dequantisation (pixel + u)/256, u ~ U(0,1), which makes every
    /// pixel's variance positive and bits/pixel meaningful; `none`; or `gaussian` noise of
    /// --noise-std on the scaled pixels (the original homework's choice) [default: uniform].
    #[arg(long, value_enum)]
    pub noise: Option<NoiseKind>,
    /// Standard deviation of `gaussian` pixel noise, in scaled units [default: 0.01].
    #[arg(long, value_name = "STD")]
    pub noise_std: Option<f64>,
    /// Transform of the dequantised pixel x before centring: `none`, or `logit`,
    /// y = logit(α + (1 − 2α)x), the logit space of RealNVP and MAF; recorded in the tables'
    /// metadata so that `evaluate` reports bits per pixel with its log-Jacobian [default: none].
    #[arg(long, value_enum)]
    pub transform: Option<TransformKind>,
    /// α of the logit transform, in (0, 0.5) [default: 1e-6].
    #[arg(long, value_name = "A")]
    pub alpha: Option<f64>,
    /// Keep only these rows of the --fit table, `START..END` (0-based, END excluded), e.g.
    /// `0..50000` for the first 50,000 training digits as MAF fits them [default: all rows].
    #[arg(long, value_name = "START..END")]
    pub fit_rows: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransformKind {
    None,
    Logit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseKind {
    Uniform,
    None,
    Gaussian,
}

#[derive(Debug, Args)]
pub struct EstimateArgs {
    /// Training `centred` table.
    #[arg(long, value_name = "TRAIN-CENTRED.parquet")]
    pub train: PathBuf,
    /// Output folder: `precision.parquet` and `trace.parquet` are written there.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Pipeline parameters (`pipelines/*.toml`, section `[estimate]`); flags override them.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub params: EstimateParams,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Training `centred` table (the one the models were fitted to).
    #[arg(long, value_name = "TRAIN-CENTRED.parquet")]
    pub train: PathBuf,
    /// Held-out `centred` table, centred with the same mean.
    #[arg(long, value_name = "TEST-CENTRED.parquet")]
    pub test: PathBuf,
    /// The `mean` table the centred tables were made with (for samples and the mean image).
    #[arg(long, value_name = "MEAN.parquet")]
    pub mean: PathBuf,
    /// A fitted model: `NAME=DIR`, or just `DIR`, where DIR holds the `precision.parquet` (and
    /// `trace.parquet`) that `gmrf estimate` wrote. NAME defaults to `<method>-<neighbourhood>`
    /// from the table's metadata. Repeatable: all models land in one report.
    #[arg(long = "model", value_name = "[NAME=]DIR")]
    pub models: Vec<String>,
    /// Output folder of the tables, figures and report.md.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Pipeline parameters (`pipelines/*.toml`, section `[evaluate]`); flags override them.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub params: EvaluateParams,
}

/// Parameters of `gmrf evaluate`, from flags or from a pipeline file's `[evaluate]` section.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateParams {
    /// The report's title [default: the output folder's name].
    #[arg(long)]
    pub title: Option<String>,
    /// Samples per model and sampler [default: 64, an 8 × 8 grid].
    #[arg(long, value_name = "N")]
    pub samples: Option<usize>,
    /// τ of the sampler μ + Λ^(-1/2)ε, ε ~ N(0, τ²I) (0.1 reproduces the original) [default: 0.1].
    #[arg(long)]
    pub tau: Option<f64>,
    /// Seed of the samples [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Parameters of `gmrf estimate`, from flags or from a pipeline file's `[estimate]` section.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateParams {
    /// Estimator [default: sm].
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Neighbourhood pattern of Λθ: `4`, `8`, or `r<radius>` (every offset within that
    /// Euclidean radius) [default: 4].
    #[arg(long, value_name = "4|8|rR")]
    pub neighbourhood: Option<String>,
    /// Seed of the validation split (sm), and of the noise and minibatch order (nce, cnce)
    /// [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// sm: fraction of training images held out to choose the barrier weight t, split by a
    /// stable hash of (seed, source, id) [default: 0.1].
    #[arg(long, value_name = "F")]
    pub validation_fraction: Option<f64>,
    /// sm: use this barrier weight t instead of choosing it on the validation split. cnce: weight
    /// t of the log-barrier −(t/d) log|Λ| added to the loss, which keeps the fit off the boundary
    /// of positive definiteness (plain cNCE runs into it on MNIST) [default: 0].
    #[arg(long, value_name = "T")]
    pub barrier_t: Option<f64>,
    /// sm: smallest barrier weight tried when choosing t by validation [default: 1e-3].
    #[arg(long, value_name = "T")]
    pub t_min: Option<f64>,
    /// sm: stop following the barrier path once the validation nll has risen for this many
    /// consecutive stages (t falls tenfold per stage) [default: 1].
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// sm-gd: learning rate [default: 1e-3]. nce, cnce: initial learning rate in standardised
    /// coordinates [default: 0.1].
    #[arg(long, value_name = "ETA")]
    pub learning_rate: Option<f64>,
    /// sm-gd: number of full-batch steps [default: 500]. nce, cnce: number of optimiser steps
    /// (one per minibatch) [default: 1000].
    #[arg(long, value_name = "N")]
    pub steps: Option<u32>,
    /// sm-gd: `symmetrised` gradient ½(SΛ + ΛS) − I, or the `original` code's upper triangle of
    /// ΛS − I copied to the lower (a different fixed point) [default: symmetrised].
    #[arg(long, value_enum)]
    pub gradient: Option<GradientKind>,
    /// mle: stop when |(Λ⁻¹ − S)ᵢⱼ| < TOL · √(SᵢᵢSⱼⱼ) on every entry of the pattern, which
    /// implies max |(Λ⁻¹ − S)ᵢⱼ| < TOL · max |Sᵢⱼ| [default: 1e-6].
    /// nce, cnce: stop when a step changes θ by less than TOL · ‖θ‖ [default: 0, run all
    /// --steps].
    #[arg(long, value_name = "TOL")]
    pub tolerance: Option<f64>,
    /// nce: the model's log-normaliser, `exact` (½ log|Λ| − (d/2) log 2π from the Cholesky
    /// factor) or `learned` (a free parameter c beside Λ, the classic NCE for unnormalised
    /// models; reported next to the exact value) [default: exact].
    #[arg(long, value_enum)]
    pub normaliser: Option<NormaliserKind>,
    /// nce: the noise density, a zero-mean Gaussian fitted to the training data: `full`
    /// covariance S (plus a small ridge), `diagonal` (diag S), `isotropic` (mean variance times
    /// I), or `original`, the homework's N(0, (M ⊙ S⁻¹)⁻¹), refused when M ⊙ S⁻¹ is not positive
    /// definite (as on MNIST) [default: full].
    #[arg(long, value_enum)]
    pub noise: Option<NceNoise>,
    /// nce: noise samples per data sample, ν [default: 1].
    #[arg(long, value_name = "NU")]
    pub nu: Option<f64>,
    /// nce, cnce: `adam` (default), `rmsprop` (the original's) or `gd` (fixed-rate gradient
    /// descent).
    #[arg(long, value_enum)]
    pub optimiser: Option<OptimiserName>,
    /// nce, cnce: learning-rate schedule, `cosine` decay to 0 over --steps, or `constant`
    /// [default: cosine].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleName>,
    /// nce, cnce: training images per step; nce adds ν times as many noise samples; 0 for full
    /// batch [default: 2000].
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// nce, cnce: draw the noise afresh at every epoch (pass over the training images) instead of
    /// once per fit.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub noise_per_epoch: Option<bool>,
    /// cnce: noisy copies per training image, κ [default: 4].
    #[arg(long, value_name = "K")]
    pub kappa: Option<u32>,
    /// cnce: standard deviation of the copies' noise, as a fraction of each pixel's standard
    /// deviation [default: 2/√d, 0.071 for 28x28: at the start G(x, y) ~ N(2, 4)].
    #[arg(long, value_name = "S")]
    pub sigma: Option<f64>,
    /// nce, cnce: a `centred` test table (centred with the training mean) whose loss is written
    /// to the trace every --trace-every steps.
    #[arg(long, value_name = "TEST-CENTRED.parquet")]
    pub test: Option<std::path::PathBuf>,
    /// nce, cnce: held-out loss every this many steps, and at the last [default: 50].
    #[arg(long, value_name = "K")]
    pub trace_every: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormaliserKind {
    Exact,
    Learned,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NceNoise {
    Full,
    Diagonal,
    Isotropic,
    Original,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimiserName {
    Gd,
    Rmsprop,
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleName {
    Constant,
    Cosine,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Sm,
    SmGd,
    Mle,
    Nce,
    Cnce,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Sm => "sm",
            Method::SmGd => "sm-gd",
            Method::Mle => "mle",
            Method::Nce => "nce",
            Method::Cnce => "cnce",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GradientKind {
    Symmetrised,
    Original,
}
