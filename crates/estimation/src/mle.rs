//! `mle`: masked maximum likelihood (covariance selection), argmax log|Λ| − tr(SΛ) on the pattern.
//!
//! Newton-CG on F(θ) = tr(SΛ) − log|Λ| = sᵀθ − log|Λ| with sₑ = mₑSᵢⱼ (Dempster 1972): ∇F =
//! m ∘ P(S − Σ), and the optimum satisfies Σᵢⱼ = Sᵢⱼ on the pattern. Stops once
//! max over the pattern |(Λ⁻¹ − S)ᵢⱼ| < tol · max |Sᵢⱼ| (issue 3's optimality condition).

use std::time::Instant;

use gmrf_model::Pattern;
use ndarray::ArrayView2;

use crate::fit::{Fit, Progress};
use crate::newton::{BarrierObjective, NewtonOptions, NewtonState};
use crate::score_matching::Adjacency;
use crate::stats::{Reach, SecondMoments};
use crate::{EstimationError, diagonal_start};

/// Options of [`fit_mle`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MleOptions {
    /// Relative optimality tolerance: stop when max |(Λ⁻¹ − S)ᵢⱼ| < `tolerance` · max |Sᵢⱼ| over
    /// the pattern. Default 1e-6.
    pub tolerance: f64,
    /// Newton-CG settings (its decrement rule is switched off: the optimality condition rules).
    pub newton: NewtonOptions,
}

impl Default for MleOptions {
    fn default() -> Self {
        MleOptions {
            tolerance: 1e-6,
            newton: NewtonOptions { decrement_tol: 0.0, ..NewtonOptions::default() },
        }
    }
}

/// Diagnostics of [`fit_mle`].
#[derive(Clone, Debug, PartialEq)]
pub struct MleDiagnostics {
    /// Newton steps taken.
    pub newton_steps: usize,
    /// CG iterations over those steps.
    pub cg_iterations: usize,
    /// Whether the optimality condition was met.
    pub converged: bool,
    /// max |(Λ⁻¹ − S)ᵢⱼ| / max |Sᵢⱼ| over the pattern at the returned Λ.
    pub relative_optimality_gap: f64,
}

/// Fits Λ by masked maximum likelihood on centred data `x` (N × d).
pub fn fit_mle(
    x: ArrayView2<'_, f32>,
    pattern: &Pattern,
    options: &MleOptions,
    progress: Progress<'_>,
) -> Result<Fit<MleDiagnostics>, EstimationError> {
    let moments = SecondMoments::compute(x, pattern, Reach::Pattern)?;
    mle(pattern, &moments, options, progress)
}

/// Masked maximum likelihood from second moments that hold at least the pattern's offsets.
pub fn mle(
    pattern: &Pattern,
    moments: &SecondMoments,
    options: &MleOptions,
    progress: Progress<'_>,
) -> Result<Fit<MleDiagnostics>, EstimationError> {
    let start = Instant::now();
    let s = moments.on_pattern(pattern);
    let s_max = s.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let linear: Vec<f64> = s.iter().zip(pattern.entries()).map(|(s, e)| e.multiplicity() * s).collect();
    let adjacency = Adjacency::new(pattern);
    let objective = BarrierObjective { pattern, adjacency: &adjacency, quadratic: None, linear: &linear };
    let mut state = NewtonState::new(start, progress);
    let lam = diagonal_start(pattern, &moments.diagonal())?;
    let outcome =
        objective.minimise(lam, 1.0, &options.newton, Some(options.tolerance * s_max), &mut state)?;
    let diagnostics = MleDiagnostics {
        newton_steps: outcome.steps,
        cg_iterations: outcome.cg_iterations,
        converged: outcome.converged,
        relative_optimality_gap: outcome.max_scaled_gradient / s_max,
    };
    Ok(Fit { precision: outcome.precision, trace: state.trace, diagnostics })
}
