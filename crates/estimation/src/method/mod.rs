//! The estimators, each a short composition of an objective, a solver and its options:
//!
//! | method | objective | solver |
//! |---|---|---|
//! | [`sm`] | score matching J(Λ) | CG for the unconstrained optimum; else the barrier path on J − t·log\|Λ\| |
//! | [`sm_gd`] | score matching J(Λ) | the original homework's fixed-step gradient descent |
//! | [`mle`] | tr(SΛ) − log\|Λ\| | L-BFGS, then Newton-CG to a certified optimality gap |
//! | [`nce`] | the NCE logistic loss against a Gaussian noise, c learned | Newton-CG to a certified optimum, or the barrier path with t chosen on validation rows; or the minibatch first-order loop |
//! | [`cnce`] | the conditional NCE loss against noisy copies | as nce, σ also chosen on validation rows |
//!
//! A new estimator goes here as one file: its options struct (with documented defaults and a
//! `check`), its diagnostics, and a `fit_*` function that prepares the statistics or data its
//! objective needs (from the crate's `moments` and `objective` layers) and calls a solver from its
//! `solve` layer.

pub mod cnce;
mod contrastive;
pub mod mle;
pub mod nce;
pub mod sm;
pub mod sm_gd;

pub use contrastive::Certificate;

use gmrf_model::{Pattern, Precision};
use ndarray::{Array2, ArrayView2, Axis};

use crate::EstimationError;

/// The starting point of every estimator, Λ₀ = diag(1/Sᵢᵢ): the maximum-likelihood fit of
/// independent pixels, positive definite whenever every pixel has positive variance.
pub(crate) fn diagonal_start(pattern: &Pattern, s_diagonal: &[f64]) -> Result<Precision, EstimationError> {
    if let Some(pixel) = s_diagonal.iter().position(|&s| s.is_nan() || s <= 0.0) {
        return Err(EstimationError::ConstantPixel { pixel, variance: s_diagonal[pixel] });
    }
    let inv: Vec<f64> = s_diagonal.iter().map(|s| 1.0 / s).collect();
    Ok(Precision::diagonal(pattern.clone(), &inv)?)
}

/// Refuses a training table of fewer than two rows: one row gives a rank-one S, on which no
/// estimator here is defined (the likelihood and the contrastive losses are unbounded, the
/// score-matching optimum is singular).
pub(crate) fn check_rows(method: &'static str, rows: usize) -> Result<(), EstimationError> {
    const NEEDED: usize = 2;
    if rows < NEEDED {
        return Err(EstimationError::TooFewRows { method, rows, needed: NEEDED });
    }
    Ok(())
}

/// The training rows `x` followed by the validation rows, if any: what an estimator refits once
/// the validation rows have chosen its regularisation.
pub(crate) fn with_validation_rows(
    x: ArrayView2<'_, f32>,
    validation: Option<ArrayView2<'_, f32>>,
) -> Result<Array2<f32>, EstimationError> {
    match validation {
        Some(v) => ndarray::concatenate(Axis(0), &[x.view(), v.view()])
            .map_err(|e| EstimationError::Shape(format!("training and validation rows: {e}"))),
        None => Ok(x.to_owned()),
    }
}
