//! Steps that keep Λ positive definite: every trial point must have a Cholesky factor.

use gmrf_model::{Cholesky, Precision};

use crate::EstimationError;
use crate::objective::BarrierObjective;

/// The longest of the steps Λ + s·D, s = α₀, α₀/2, …, α₀/2^`max_halvings`, at which Λ + s·D has a
/// Cholesky factor and `accept(Λ + s·D, its factor, s)` holds: (s, halvings taken, Λ + s·D, its
/// factor), or `None` if none does. The positive definite cone is open and Λ in it, so a short
/// enough step always factorises; the cap only bounds the work when `accept` never holds.
pub(crate) fn halve_until<F>(
    lam: &Precision,
    dir: &[f64],
    alpha0: f64,
    max_halvings: u32,
    mut accept: F,
) -> Result<Option<(f64, u32, Precision, Cholesky)>, EstimationError>
where
    F: FnMut(&Precision, &Cholesky, f64) -> bool,
{
    let mut alpha = alpha0;
    for halvings in 0..=max_halvings {
        let trial = lam.with_values(lam.values().iter().zip(dir).map(|(x, d)| x + alpha * d).collect())?;
        if let Ok(factor) = trial.try_factor()
            && accept(&trial, &factor, alpha)
        {
            return Ok(Some((alpha, halvings, trial, factor)));
        }
        alpha *= 0.5;
    }
    Ok(None)
}

/// An accepted step of [`backtrack`]: its length α, the new Λ with its factor
/// and log|Λ|, and the change of F.
pub(crate) struct LineStep {
    pub(crate) alpha: f64,
    pub(crate) precision: Precision,
    pub(crate) factor: gmrf_model::Cholesky,
    pub(crate) log_det: f64,
    pub(crate) change: f64,
}

/// Backtracking along `dir` from Λ (log|Λ| = `log_det`, ∇q = `gq`, ∇F·d = `gd` < 0): halves α
/// from 1 until Λ + αD factorises and the Armijo condition ΔF ≤ 1e-4·α·∇F·d holds, at most
/// 60 times; `None` if it never does. ΔF = Δq − t·Δlog|Λ|, with Δq from
/// [`crate::objective::Smooth::change_along`].
pub(crate) fn backtrack(
    objective: &BarrierObjective<'_>,
    lam: &Precision,
    log_det: f64,
    gq: &[f64],
    gd: f64,
    dir: &[f64],
    t: f64,
) -> Result<Option<LineStep>, EstimationError> {
    let q_change = objective.smooth.change_along(lam.values(), gq, dir);
    let mut change = 0.0;
    let mut new_log_det = 0.0;
    let armijo = |_: &Precision, factor: &Cholesky, alpha: f64| {
        new_log_det = factor.log_det();
        change = q_change(alpha) - t * (new_log_det - log_det);
        change <= 1e-4 * alpha * gd
    };
    Ok(halve_until(lam, dir, 1.0, 59, armijo)?.map(|(alpha, _, precision, factor)| LineStep {
        alpha,
        precision,
        factor,
        log_det: new_log_det,
        change,
    }))
}
