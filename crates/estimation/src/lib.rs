//! Estimators of a GMRF precision Λ from centred images: score matching and masked maximum likelihood.
//!
//! # Brief overview
//!
//! [`SecondMoments`] holds the entries of S = (1/N) Σ xxᵀ an estimator needs, computed in one
//! parallel pass that is bit-identical on any thread count. [`ScoreMatching`] turns them into the
//! quadratic J(Λ) = ½ tr(ΛSΛ) − tr Λ in the free entries of Λ (objective, gradient and
//! Hessian-vector product). Three estimators return a [`Fit`] (the [`Precision`], a trace of
//! [`TraceRow`]s, and diagnostics): [`fit_sm_gd`], the original's fixed-step gradient descent;
//! [`fit_sm`], exact score matching that returns the unconstrained optimum when it is positive
//! definite and otherwise follows a log-barrier path (Newton-CG), choosing the barrier weight by
//! held-out likelihood; and [`fit_mle`], masked maximum likelihood by Newton-CG. Options structs
//! carry documented defaults; an optional callback reports (step, loss) for a progress bar.
//!
//! ```
//! use gmrf_estimation::{MleOptions, fit_mle};
//! use gmrf_model::{Neighbourhood, Pattern};
//! use ndarray::Array2;
//!
//! let pattern = Pattern::new(3, 3, Neighbourhood::Four)?;
//! // Centred data: N × d rows (here a deterministic toy set).
//! let x = Array2::from_shape_fn((200, 9), |(n, p)| ((n * 7 + p * 3) % 11) as f32 / 11.0 - 0.45);
//! let fit = fit_mle(x.view(), &pattern, &MleOptions::default(), None)?;
//! assert!(fit.diagnostics.converged);
//! assert!(fit.precision.is_positive_definite());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Precision`]: gmrf_model::Precision

mod cg;
mod checks;
mod cnce;
mod contrastive;
mod error;
mod fit;
mod lbfgs;
mod log_det;
mod mle;
mod nce;
mod newton;
mod noise;
mod optimiser;
mod score_matching;
mod sm;
mod sm_gd;
mod stats;

pub use checks::{Named, UnknownName};
pub use cnce::{CnceDiagnostics, CnceOptions, cnce_gradient, cnce_objective, fit_cnce};
pub use contrastive::{ContrastiveOptions, RunSummary, Standardisation, sigmoid, softplus};
pub use error::EstimationError;
pub use fit::{Fit, Progress, TraceRow};
pub use lbfgs::LbfgsOptions;
pub use log_det::log_det_gradient;
pub use mle::{MleDiagnostics, MleOptions, fit_mle, mle};
pub use nce::{NceDiagnostics, NceGradient, NceOptions, Normaliser, fit_nce, nce_gradient, nce_objective};
pub use newton::{NewtonOptions, NewtonPreconditioner};
pub use noise::{GaussianNoise, NoiseKind};
pub use optimiser::{Optimiser, OptimiserKind, Schedule};
pub use score_matching::ScoreMatching;
pub use sm::{
    BarrierStage, BarrierWeight, SmDiagnostics, SmOptions, fit_sm, sm_exact, sm_unconstrained_optimum,
};
pub use sm_gd::{GdGradient, SmGdDiagnostics, SmGdOptions, fit_sm_gd, sm_gd};
pub use stats::{BLOCK_ROWS, Reach, SecondMoments, dense_second_moments};

use gmrf_model::{Pattern, Precision};

/// The starting point of every estimator, Λ₀ = diag(1/Sᵢᵢ): the maximum-likelihood fit of
/// independent pixels, positive definite whenever every pixel has positive variance.
pub fn diagonal_start(pattern: &Pattern, s_diagonal: &[f64]) -> Result<Precision, EstimationError> {
    if let Some(i) = s_diagonal.iter().position(|&s| s.is_nan() || s <= 0.0) {
        return Err(EstimationError::Shape(format!(
            "pixel {i} has variance {} in the data: dequantise so every pixel varies",
            s_diagonal[i]
        )));
    }
    let inv: Vec<f64> = s_diagonal.iter().map(|s| 1.0 / s).collect();
    Ok(Precision::diagonal(pattern.clone(), &inv)?)
}

/// Held-out negative log-likelihood in nats per pixel from the held-out second moments on the
/// pattern: −(1/d)·(½ log|Λ| − (d/2) log 2π − ½ tr(S Λ)), the mean of −log p(x)/d over the rows.
pub fn heldout_nll(precision: &Precision, moments: &SecondMoments) -> Result<f64, EstimationError> {
    let d = precision.dim() as f64;
    let log_det = precision.log_det()?;
    let tr: f64 = precision
        .pattern()
        .entries()
        .iter()
        .zip(precision.values())
        .map(|(e, v)| e.multiplicity() * v * moments.at(e.i as usize, e.j as usize))
        .sum();
    Ok(-(0.5 * log_det - 0.5 * d * (2.0 * std::f64::consts::PI).ln() - 0.5 * tr) / d)
}
