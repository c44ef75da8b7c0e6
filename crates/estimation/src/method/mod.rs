//! The estimators, each a short composition of an objective, a solver and its options:
//!
//! | method | objective | solver |
//! |---|---|---|
//! | [`sm`] | score matching J(Λ) | CG for the unconstrained optimum; else the barrier path on J − t·log\|Λ\| |
//! | [`sm_gd`] | score matching J(Λ) | the original homework's fixed-step gradient descent |
//! | [`mle`] | tr(SΛ) − log\|Λ\| | L-BFGS, then Newton-CG to a certified optimality gap |
//! | [`nce`] | the NCE logistic loss against a Gaussian noise | the minibatch first-order loop |
//! | [`cnce`] | the conditional NCE loss against noisy copies | the minibatch first-order loop |
//!
//! A new estimator goes here as one file: its options struct (with documented defaults and a
//! `check`), its diagnostics, and a `fit_*` function that prepares the statistics or data its
//! objective needs (from [`crate::moments`] and [`crate::objective`]) and calls a solver from
//! [`crate::solve`].

pub mod cnce;
mod contrastive;
pub mod mle;
pub mod nce;
pub mod sm;
pub mod sm_gd;

use gmrf_model::{Pattern, Precision};

use crate::EstimationError;

/// The starting point of every estimator, Λ₀ = diag(1/Sᵢᵢ): the maximum-likelihood fit of
/// independent pixels, positive definite whenever every pixel has positive variance.
pub(crate) fn diagonal_start(pattern: &Pattern, s_diagonal: &[f64]) -> Result<Precision, EstimationError> {
    if let Some(i) = s_diagonal.iter().position(|&s| s.is_nan() || s <= 0.0) {
        return Err(EstimationError::Shape(format!(
            "pixel {i} has variance {} in the data: dequantise so every pixel varies",
            s_diagonal[i]
        )));
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
