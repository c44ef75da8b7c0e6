//! The command-line interface, as clap declares it.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use gmrf_estimation::{
    BarrierWeight, CnceOptions, ContrastiveOptions, GdGradient, MleOptions, Named, NceOptions,
    NoiseKind as NceNoise, Normaliser, OptimiserKind, Schedule, SmGdOptions, Solver,
};
use gmrf_model::Neighbourhood;
use serde::{Deserialize, Serialize};

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
    /// Fit a sparse precision matrix Λθ to a `centred` table by one method; write `precision` and
    /// `trace`.
    ///
    /// `gmrf estimate METHOD --help` lists that method's flags. With --config, the pipeline file's
    /// `[estimate]` section gives `method` (which must name METHOD) and that method's keys; flags
    /// override it. Every option is checked before any input is read.
    #[command(subcommand)]
    Estimate(Estimate),
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
#[derive(Debug, Default, Args, Serialize, Deserialize)]
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
#[derive(Debug, Default, Args, Serialize, Deserialize)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransformKind {
    None,
    Logit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseKind {
    Uniform,
    None,
    Gaussian,
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
#[derive(Debug, Default, Args, Serialize, Deserialize)]
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

/// The methods of `gmrf estimate`, one subcommand each.
#[derive(Debug, Subcommand)]
pub enum Estimate {
    /// Exact score matching kept positive definite: the unconstrained optimum when it is positive
    /// definite, else a log-barrier path whose weight t is chosen by held-out likelihood on a
    /// validation split of the training table (or fixed by --barrier-t).
    Sm(EstimateArgs<SmParams>),
    /// The original homework's score matching: fixed-step, full-batch gradient descent.
    SmGd(EstimateArgs<SmGdParams>),
    /// Masked maximum likelihood (covariance selection), the reference: L-BFGS, then Newton-CG.
    Mle(EstimateArgs<MleParams>),
    /// Noise-contrastive estimation: logistic discrimination of the data from ν times as many
    /// samples of a Gaussian noise, in standardised coordinates (pixels scaled to unit variance; Λθ
    /// is written in the original units). By default (--solver newton) the full-batch loss with a
    /// learned normaliser, convex in Λ, minimised by Newton-CG: its certified minimiser, or, with a
    /// validation split (the default), the certified minimiser of loss − t·log|Λ| on all rows with
    /// t chosen by the validation rows' likelihood. --solver minibatch runs the homework's
    /// first-order loop instead. Slow on tens of thousands of images (minutes to hours).
    Nce(EstimateArgs<NceParams>),
    /// Conditional NCE: discrimination of each image from κ noisy copies of itself, which needs
    /// no normaliser; solved as nce is.
    Cnce(EstimateArgs<CnceParams>),
}

/// The estimators, by the names of their subcommands and of `method` in a pipeline file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Sm,
    SmGd,
    Mle,
    Nce,
    Cnce,
}

impl Method {
    pub const ALL: [Method; 5] = [Method::Sm, Method::SmGd, Method::Mle, Method::Nce, Method::Cnce];

    pub fn name(self) -> &'static str {
        match self {
            Method::Sm => "sm",
            Method::SmGd => "sm-gd",
            Method::Mle => "mle",
            Method::Nce => "nce",
            Method::Cnce => "cnce",
        }
    }

    /// The pipeline-file keys (flag names with `_` for `-`) of this method's own options.
    pub fn keys(self) -> Vec<String> {
        match self {
            Method::Sm => keys::<SmParams>(),
            Method::SmGd => keys::<SmGdParams>(),
            Method::Mle => keys::<MleParams>(),
            Method::Nce => keys::<NceParams>(),
            Method::Cnce => keys::<CnceParams>(),
        }
    }
}

/// The ids of the arguments that `T` declares: its field names, which are the pipeline keys.
pub fn keys<T: Args>() -> Vec<String> {
    T::augment_args(clap::Command::new("keys")).get_arguments().map(|a| a.get_id().to_string()).collect()
}

/// The inputs and outputs of `gmrf estimate METHOD`, the options every method shares, and the
/// method's own options `P`.
#[derive(Debug, Args)]
pub struct EstimateArgs<P: Args> {
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
    pub shared: SharedParams,
    #[command(flatten)]
    pub params: P,
}

/// The neighbourhood of a fit when neither a flag nor the pipeline file names one.
pub const DEFAULT_NEIGHBOURHOOD: Neighbourhood = Neighbourhood::Four;
/// The seed of a fit when neither a flag nor the pipeline file gives one.
pub const DEFAULT_SEED: u64 = 0;
/// `sm`'s validation fraction when neither a flag nor the pipeline file gives one.
pub const DEFAULT_VALIDATION_FRACTION: f64 = 0.1;

/// Options of every method.
#[derive(Debug, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedParams {
    /// Neighbourhood pattern of Λθ: `4`, `8`, or `r<radius>` (every offset within that
    /// Euclidean radius).
    #[arg(long, value_name = "4|8|rR")]
    #[serde(default, with = "crate::config::text")]
    pub neighbourhood: Option<Neighbourhood>,
    /// Seed of everything random in the fit (sm: the validation split; nce, cnce: the noise and
    /// the minibatch order). Same seed and input: the same bytes out on any number of threads.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Options of `gmrf estimate sm`.
#[derive(Debug, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmParams {
    /// Fraction of training images held out to choose the barrier weight t, split by a stable
    /// hash of (seed, source, id); in [0, 1).
    #[arg(long, value_name = "F")]
    pub validation_fraction: Option<f64>,
    /// Use this barrier weight t instead of choosing it on the validation split.
    #[arg(long, value_name = "T")]
    pub barrier_t: Option<f64>,
    /// Smallest barrier weight tried when choosing t by validation.
    #[arg(long, value_name = "T")]
    pub t_min: Option<f64>,
    /// Stop following the barrier path once the validation nll has risen for this many
    /// consecutive stages (t falls tenfold per stage).
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
}

/// Options of `gmrf estimate sm-gd`.
#[derive(Debug, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmGdParams {
    /// Learning rate η.
    #[arg(long, value_name = "ETA")]
    pub learning_rate: Option<f64>,
    /// Number of full-batch steps.
    #[arg(long, value_name = "N")]
    pub steps: Option<u32>,
    /// `symmetrised` gradient ½(SΛ + ΛS) − I, or the `original` code's upper triangle of ΛS − I
    /// copied to the lower (a different fixed point).
    #[arg(long, value_parser = named::<GdGradient>())]
    #[serde(default, with = "crate::config::text")]
    pub gradient: Option<GdGradient>,
}

/// Options of `gmrf estimate mle`.
#[derive(Debug, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MleParams {
    /// Stop when |(Λ⁻¹ − S)ᵢⱼ| < TOL · √(SᵢᵢSⱼⱼ) on every entry of the pattern, which implies
    /// max |(Λ⁻¹ − S)ᵢⱼ| < TOL · max |Sᵢⱼ|.
    #[arg(long, value_name = "TOL")]
    pub tolerance: Option<f64>,
}

/// Options of `gmrf estimate nce`.
#[derive(Debug, Default, Args, Serialize, Deserialize)]
pub struct NceParams {
    /// The model's log-normaliser: `exact` (½ log|Λ| − (d/2) log 2π from the Cholesky factor) or
    /// `learned` (a free parameter c beside Λ, the classic NCE for unnormalised models; reported
    /// next to the exact value), for --solver minibatch; --solver newton always learns c, which
    /// makes the loss convex.
    #[arg(long, value_parser = named::<Normaliser>())]
    #[serde(default, with = "crate::config::text")]
    pub normaliser: Option<Normaliser>,
    /// The noise density, a zero-mean Gaussian fitted to the training data: `full` covariance S
    /// (plus a small ridge), `diagonal` (diag S), `isotropic` (mean variance times I), or
    /// `original`, the homework's N(0, (M ⊙ S⁻¹)⁻¹), refused when M ⊙ S⁻¹ is not positive
    /// definite (as on MNIST).
    #[arg(long, value_parser = named::<NceNoise>())]
    #[serde(default, with = "crate::config::text")]
    pub noise: Option<NceNoise>,
    /// Noise samples per data sample, ν.
    #[arg(long, value_name = "NU")]
    pub nu: Option<f64>,
    #[command(flatten)]
    #[serde(flatten)]
    pub run: ContrastiveParams,
}

/// Options of `gmrf estimate cnce`.
#[derive(Debug, Default, Args, Serialize, Deserialize)]
pub struct CnceParams {
    /// Noisy copies per training image, κ.
    #[arg(long, value_name = "K")]
    pub kappa: Option<u32>,
    /// Standard deviation of the copies' noise, as a fraction of each pixel's standard deviation
    /// [default: --solver newton chooses it on the validation split from 2, 1, 1/2 and 1/4 times
    /// 2/√d (metadata `sigma_path`); --solver minibatch uses 2/√d, 0.071 for 28x28, where at the
    /// start G(x, y) ~ N(2, 4)].
    #[arg(long, value_name = "S")]
    pub sigma: Option<f64>,
    /// Weight t of the log-barrier −(t/d) log|Λ| added to the loss of --solver minibatch, which
    /// keeps the fit off the boundary of positive definiteness (plain cNCE runs into it on MNIST).
    /// --solver newton chooses its barrier weight on the validation split instead.
    #[arg(long, value_name = "T")]
    pub barrier_t: Option<f64>,
    #[command(flatten)]
    #[serde(flatten)]
    pub run: ContrastiveParams,
}

/// The solver options that `nce` and `cnce` share.
#[derive(Debug, Default, Args, Serialize, Deserialize)]
pub struct ContrastiveParams {
    /// `newton`: the full-batch loss minimised by Newton-CG to a certified optimum; `minibatch`:
    /// the homework's first-order loop over minibatches (--optimiser, --steps, …), which stops
    /// where its step count says.
    #[arg(long, value_parser = named::<Solver>())]
    #[serde(default, with = "crate::config::text")]
    pub solver: Option<Solver>,
    /// Minibatch update rule: `adam`, `rmsprop` (the original's) or `gd` (fixed-rate gradient
    /// descent).
    #[arg(long, value_parser = named::<OptimiserKind>())]
    #[serde(default, with = "crate::config::text")]
    pub optimiser: Option<OptimiserKind>,
    /// Learning-rate schedule: `cosine` decay to 0 over --steps, or `constant`.
    #[arg(long, value_parser = named::<Schedule>())]
    #[serde(default, with = "crate::config::text")]
    pub schedule: Option<Schedule>,
    /// Initial learning rate, in standardised coordinates.
    #[arg(long, value_name = "ETA")]
    pub learning_rate: Option<f64>,
    /// Number of optimiser steps (one per minibatch).
    #[arg(long, value_name = "N")]
    pub steps: Option<u32>,
    /// Stop when a step changes θ by less than TOL · ‖θ‖ (0: run all --steps).
    #[arg(long, value_name = "TOL")]
    pub tolerance: Option<f64>,
    /// Training images per step (nce adds ν times as many noise samples); 0 for full batch.
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// Draw the noise afresh at every epoch (pass over the training images) instead of once per
    /// fit.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub noise_per_epoch: Option<bool>,
    /// Fraction of training images held out, split by a stable hash of (seed, source, id), in
    /// [0, 1): with --solver newton they choose the barrier weight t by their held-out likelihood
    /// before the fit to all rows at that t (0: the minimiser of the loss itself); with
    /// --solver minibatch they are not fitted and their loss is traced.
    #[arg(long, value_name = "F")]
    pub validation_fraction: Option<f64>,
    /// Validation loss every this many minibatch steps, and at the last (0: never).
    #[arg(long, value_name = "K")]
    pub trace_every: Option<u32>,
}

/// A parser of a [`Named`] library enum that lists its names in `--help` and in errors.
fn named<T: Named + Clone + Send + Sync>() -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(T::NAMES.iter().map(|(_, name)| *name)).map(|name| {
        T::NAMES.iter().find(|(_, n)| *n == name).expect("PossibleValuesParser admits only these names").0
    })
}

/// `[default: …]` of the estimate flags whose default is a library `Default`, for `--help`:
/// (method, flag id, value).
fn estimate_defaults() -> Vec<(Method, &'static str, String)> {
    let (sm_gd, mle, nce, cnce) =
        (SmGdOptions::default(), MleOptions::default(), NceOptions::default(), CnceOptions::default());
    let run = ContrastiveOptions::default();
    let mut defaults = vec![
        (Method::Sm, "validation_fraction", DEFAULT_VALIDATION_FRACTION.to_string()),
        (Method::Sm, "t_min", BarrierWeight::DEFAULT_T_MIN.to_string()),
        (Method::Sm, "patience", BarrierWeight::DEFAULT_PATIENCE.to_string()),
        (Method::SmGd, "learning_rate", sm_gd.learning_rate.to_string()),
        (Method::SmGd, "steps", sm_gd.steps.to_string()),
        (Method::SmGd, "gradient", sm_gd.gradient.to_string()),
        (Method::Mle, "tolerance", mle.tolerance.to_string()),
        (Method::Nce, "normaliser", nce.normaliser.to_string()),
        (Method::Nce, "noise", nce.noise.to_string()),
        (Method::Nce, "nu", nce.nu.to_string()),
        (Method::Nce, "solver", nce.solver.to_string()),
        (Method::Cnce, "kappa", cnce.kappa.to_string()),
        (Method::Cnce, "barrier_t", cnce.barrier.to_string()),
    ];
    for method in [Method::Nce, Method::Cnce] {
        defaults.extend([
            (method, "optimiser", run.optimiser.to_string()),
            (method, "schedule", run.schedule.to_string()),
            (method, "learning_rate", run.learning_rate.to_string()),
            (method, "steps", run.steps.to_string()),
            (method, "tolerance", run.tolerance.to_string()),
            (method, "batch_size", run.batch_size.to_string()),
            (method, "trace_every", run.trace_every.to_string()),
        ]);
    }
    for method in Method::ALL {
        defaults.push((method, "neighbourhood", DEFAULT_NEIGHBOURHOOD.to_string()));
        defaults.push((method, "seed", DEFAULT_SEED.to_string()));
    }
    defaults
}

/// Appends ` [default: VALUE]` to an argument's help texts.
fn show_default(arg: clap::Arg, value: &str) -> clap::Arg {
    let help = arg.get_help().map(|h| format!("{h} [default: {value}]"));
    let long_help = arg.get_long_help().map(|h| format!("{h} [default: {value}]"));
    let arg = match help {
        Some(help) => arg.help(help),
        None => arg,
    };
    match long_help {
        Some(long_help) => arg.long_help(long_help),
        None => arg,
    }
}

/// Lets every option that takes a value take a negative number (`--learning-rate -0.1` reaches
/// the option checks, which name the option), in `command` and all its subcommands. A real-valued
/// option takes any value that starts with `-`, as clap's notion of a negative number leaves out
/// `-1e-3`, `-inf` and `-NaN`; its parser then refuses what is not a number, naming the option.
fn allow_negative_numbers(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| {
            if arg.get_value_parser().type_id() == std::any::TypeId::of::<f64>() {
                arg.allow_hyphen_values(true)
            } else if arg.get_action().takes_values() {
                arg.allow_negative_numbers(true)
            } else {
                arg
            }
        })
        .mut_subcommands(allow_negative_numbers)
}

/// The `gmrf` command: [`Cli`], with negative numbers allowed as values and the estimate flags'
/// library defaults in their help.
pub fn command() -> clap::Command {
    let mut command = allow_negative_numbers(Cli::command());
    for (method, id, value) in estimate_defaults() {
        command = command.mut_subcommand("estimate", |estimate| {
            estimate.mut_subcommand(method.name(), |sub| sub.mut_arg(id, |arg| show_default(arg, &value)))
        });
    }
    command
}

/// Parses the process's arguments. A usage error is one line (`error: ` and clap's message,
/// which names the flag) with exit code 1; `--help` and `--version` print and exit 0.
pub fn parse() -> Cli {
    let parsed = command().try_get_matches().and_then(|matches| Cli::from_arg_matches(&matches));
    match parsed {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(),
        // `gmrf estimate` alone: the help, which lists the methods.
        Err(error) if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprint!("{}", error.render());
            std::process::exit(1);
        }
        Err(error) => {
            eprintln!("error: {}", one_line(&error.render().to_string()));
            std::process::exit(1);
        }
    }
}

/// Clap's message without its usage and tips: the lines before the first blank one, joined.
fn one_line(message: &str) -> String {
    let message = message.strip_prefix("error: ").unwrap_or(message);
    message.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_consistent_and_every_shown_default_names_a_flag_of_its_method() {
        // clap's own checks of the declarations, and `mut_arg` of an undeclared id would panic.
        command().debug_assert();
        for (method, id, _) in estimate_defaults() {
            assert!(
                method.keys().contains(&id.to_string()) || keys::<SharedParams>().contains(&id.to_string())
            );
        }
    }

    #[test]
    fn negative_numbers_parse_as_values_of_every_subcommand() {
        let cli = command()
            .try_get_matches_from(["gmrf", "estimate", "nce", "--train", "t", "--out", "o", "--nu", "-2"])
            .unwrap();
        let cli = Cli::from_arg_matches(&cli).unwrap();
        let Command::Estimate(Estimate::Nce(args)) = cli.command else { panic!("{cli:?}") };
        assert_eq!(args.params.nu, Some(-2.0));
        let nce = [
            "gmrf",
            "estimate",
            "nce",
            "--train",
            "t",
            "--out",
            "o",
            "--learning-rate",
            "-1e-3",
            "--steps",
            "-1",
        ];
        let error = command().try_get_matches_from(nce).unwrap_err().render().to_string();
        assert!(error.contains("invalid value '-1' for '--steps <N>'"), "{error}");
        let centre = ["gmrf", "centre", "--fit", "f", "--mean", "m", "--out", "o", "--noise-std", "-1"];
        let cli = Cli::from_arg_matches(&command().try_get_matches_from(centre).unwrap()).unwrap();
        let Command::Centre(args) = cli.command else { panic!("{cli:?}") };
        assert_eq!(args.params.noise_std, Some(-1.0));
    }

    #[test]
    fn clap_errors_become_one_line_without_usage_or_tips() {
        let message =
            "error: the following required arguments were not provided:\n  --train <T>\n\nUsage: x\n";
        assert_eq!(one_line(message), "the following required arguments were not provided: --train <T>");
    }
}
