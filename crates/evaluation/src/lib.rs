//! Evaluation of fitted GMRFs: held-out likelihood, baselines, samples, figures and a report.
//!
//! # Brief overview
//!
//! Every model is a zero-mean [`Gaussian`] (the model crate's): a fitted sparse Λθ (banded
//! Cholesky factor), a dense covariance (the `full` baseline) or independent pixels (`diagonal`),
//! so every model's likelihood comes from one formula, [`nll_per_pixel`], and
//! [`bits_per_pixel`] turns it into bits per pixel of the 8-bit data. [`evaluate`] takes the
//! centred train and test tables, the mean image and the fitted [`Model`]s, and returns an
//! [`Evaluation`]: the `metrics`, `scores` (per image) and `samples` tables, the figures as PNG
//! bytes ([`figures`]) and `report.md` rendered from those tables ([`report`]). It writes
//! nothing: the caller commits the outputs together.
//!
//! ```
//! use gmrf_evaluation::{Gaussian, bits_per_pixel};
//! use ndarray::{Array2, array};
//!
//! // A standard normal in 2 dimensions: nll per pixel of x = 0 is ½ log 2π.
//! let g = Gaussian::from_covariance(Array2::eye(2))?;
//! let nll = g.nll_per_pixel(array![[0.0f32, 0.0]].view())[0];
//! assert!((nll - 0.5 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12);
//! assert!((bits_per_pixel(0.0, 256.0) - 8.0).abs() < 1e-12);
//! # Ok::<(), gmrf_evaluation::EvaluationError>(())
//! ```

pub mod completion;
pub mod denoising;
pub mod figures;
mod likelihood;
pub mod report;
mod run;
mod samples;

pub use gmrf_model::{Gaussian, nll_per_pixel};
pub use likelihood::bits_per_pixel;
pub use run::{DENOISING_LEVELS, Evaluation, FIGURES, Model, Options, evaluate, mean_log_jacobian};
pub use samples::{Sampler, draw, to_pixel};

/// What can go wrong in an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    #[error(transparent)]
    Model(#[from] gmrf_model::ModelError),
    /// A baseline's covariance has no Cholesky factor.
    #[error("the covariance of the training data is not positive definite")]
    NotPositiveDefinite,
    /// The tables do not fit together (shapes, names).
    #[error("{0}")]
    Inputs(String),
    #[error("drawing a figure: {0}")]
    Figure(String),
}
