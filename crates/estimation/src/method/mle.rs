//! `mle`: masked maximum likelihood (covariance selection), argmax log|Λ| − tr(SΛ) on the pattern.
//!
//! Newton-CG on F(θ) = tr(SΛ) − log|Λ| = sᵀθ − log|Λ| with sₑ = mₑSᵢⱼ (Dempster 1972): ∇F =
//! m ∘ P(S − Σ), and the optimum satisfies Σᵢⱼ = Sᵢⱼ on the pattern. Stops once
//! |(Λ⁻¹ − S)ᵢⱼ| < tol · √(SᵢᵢSⱼⱼ) on every entry of the pattern, which implies
//! max |(Λ⁻¹ − S)ᵢⱼ| < tol · max |Sᵢⱼ| (|Sᵢⱼ| ≤ √(SᵢᵢSⱼⱼ) ≤ max Sₖₖ) and, unlike it, does not
//! change with a pixel's scale. L-BFGS brings the gap to 3e-2 first (an iteration costs a sparse
//! factor and the band of Σ); Newton-CG then converges quadratically.

use std::time::Instant;

use gmrf_model::{Pattern, Precision};
use ndarray::ArrayView2;

use super::{check_rows, diagonal_start};
use crate::EstimationError;
use crate::fit::{Fit, Progress};
use crate::moments::{Reach, SecondMoments};
use crate::objective::{Adjacency, BarrierObjective, Quadratic};
use crate::solve::lbfgs::lbfgs;
use crate::solve::newton::{NewtonOutcome, minimise};
use crate::solve::{LbfgsOptions, NewtonOptions, NewtonState};

/// Options of [`fit_mle`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MleOptions {
    /// Relative optimality tolerance: stop when |(Λ⁻¹ − S)ᵢⱼ| < `tolerance` · √(SᵢᵢSⱼⱼ) on every
    /// entry of the pattern. Default 1e-6.
    pub tolerance: f64,
    /// L-BFGS iterations before Newton, until the relative optimality gap is at most
    /// `until_gap`; `None`: Newton from the diagonal start. Default memory 30, until 3e-2.
    pub warm_start: Option<LbfgsOptions>,
    /// Newton-CG settings (its decrement rule is switched off: the optimality condition rules).
    pub newton: NewtonOptions,
    /// Once the optimality condition holds, Newton continues until half its squared decrement
    /// is at most this times |F| (0: stop at the condition). Default 1e-17. The condition
    /// certifies Σ on the pattern to `tolerance`, but Λ of near-constant pixels (MNIST's border)
    /// is then determined only to ~1e-5 relative; one more Newton step (quadratic convergence)
    /// makes the returned Λ the same, to rounding, whatever path the solver took.
    pub polish_decrement_tol: f64,
}

impl Default for MleOptions {
    fn default() -> Self {
        MleOptions {
            tolerance: 1e-6,
            warm_start: Some(LbfgsOptions { memory: 30, until_gap: 3e-2, max_iterations: 1000 }),
            newton: NewtonOptions { decrement_tol: 0.0, ..NewtonOptions::default() },
            polish_decrement_tol: 1e-17,
        }
    }
}

/// Diagnostics of [`fit_mle`].
#[derive(Clone, Debug, PartialEq)]
pub struct MleDiagnostics {
    /// L-BFGS iterations before Newton.
    pub lbfgs_iterations: usize,
    /// Newton steps taken.
    pub newton_steps: usize,
    /// CG iterations over those steps.
    pub cg_iterations: usize,
    /// Whether the optimality condition was met.
    pub converged: bool,
    /// max |(Λ⁻¹ − S)ᵢⱼ| / max |Sᵢⱼ| over the pattern at the returned Λ (issue 3's gap).
    pub relative_optimality_gap: f64,
    /// max |(Λ⁻¹ − S)ᵢⱼ| / √(SᵢᵢSⱼⱼ) over the pattern at the returned Λ (the stopping rule's).
    pub scaled_optimality_gap: f64,
}

/// Fits Λ by masked maximum likelihood on centred data `x` (N × d).
pub fn fit_mle(
    x: ArrayView2<'_, f32>,
    pattern: &Pattern,
    options: &MleOptions,
    progress: Progress<'_>,
) -> Result<Fit<MleDiagnostics>, EstimationError> {
    check_rows("mle", x.nrows())?;
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
    let q = Quadratic { hessian: None, linear: &linear };
    let objective = BarrierObjective { pattern, adjacency: &adjacency, smooth: &q };
    let mut state = NewtonState::new(start, progress);
    let diagonal = moments.diagonal();
    let mut lam = diagonal_start(pattern, &diagonal)?;
    check_rows_for_cycles(pattern, moments.n_samples())?;
    check_pairs(pattern, &s, &diagonal)?;
    check_squares(pattern, moments)?;
    let mut lbfgs_iterations = 0;
    if let Some(warm) = &options.warm_start {
        (lam, lbfgs_iterations) = lbfgs(&objective, lam, 1.0, warm, Some(s_max), &mut state)?;
        check_bounded(&lam, &diagonal)?;
    }
    let scale: Vec<f64> =
        pattern.entries().iter().map(|e| (diagonal[e.i as usize] * diagonal[e.j as usize]).sqrt()).collect();
    let tolerance: Vec<f64> = scale.iter().map(|s| options.tolerance * s).collect();
    // Newton in rounds of a few steps, checked between rounds for a likelihood that grows without
    // bound (too few rows for the pattern), which it would otherwise chase for its every step.
    const ROUND: usize = 4;
    let round = NewtonOptions { max_steps: ROUND, ..options.newton };
    let mut outcome = minimise(&objective, lam, 1.0, &round, Some(&tolerance), &mut state)?;
    while !outcome.converged && outcome.steps < options.newton.max_steps {
        check_bounded(&outcome.precision, &diagonal)?;
        let more = minimise(&objective, outcome.precision, 1.0, &round, Some(&tolerance), &mut state)?;
        if more.steps == 0 && !more.converged {
            outcome.precision = more.precision;
            break;
        }
        outcome = NewtonOutcome {
            steps: outcome.steps + more.steps,
            cg_iterations: outcome.cg_iterations + more.cg_iterations,
            ..more
        };
    }
    check_bounded(&outcome.precision, &diagonal)?;
    if !outcome.converged {
        return Err(EstimationError::NoProgress {
            method: "mle",
            reason: format!(
                "Newton stopped after {} steps ({} CG iterations) without meeting the optimality \
                 condition |(Λ⁻¹ − S)ᵢⱼ| < {:e}·√(SᵢᵢSⱼⱼ)",
                outcome.steps, outcome.cg_iterations, options.tolerance
            ),
        });
    }
    if options.polish_decrement_tol > 0.0 {
        let polish = NewtonOptions { decrement_tol: options.polish_decrement_tol, ..options.newton };
        let polished = minimise(&objective, outcome.precision, 1.0, &polish, None, &mut state)?;
        outcome.steps += polished.steps;
        outcome.cg_iterations += polished.cg_iterations;
        outcome.precision = polished.precision;
    }
    // |∇F|ₑ/mₑ = |(Λ⁻¹ − S)ᵢⱼ|.
    let sigma = outcome.precision.try_factor()?.inverse_band().on_pattern(pattern);
    let gap = |e: usize| (sigma[e] - s[e]).abs();
    let diagnostics = MleDiagnostics {
        lbfgs_iterations,
        newton_steps: outcome.steps,
        cg_iterations: outcome.cg_iterations,
        converged: outcome.converged,
        relative_optimality_gap: (0..s.len()).map(gap).fold(0.0, f64::max) / s_max,
        scaled_optimality_gap: (0..s.len()).map(|e| gap(e) / scale[e]).fold(0.0, f64::max),
    };
    Ok(Fit { precision: outcome.precision, trace: state.trace, diagnostics })
}

/// The masked MLE on a graph with a cycle does not exist from two rows: a cycle's maximum
/// likelihood threshold is 3 (Buhl 1993), so no pattern that contains one has an MLE from fewer
/// rows. A pattern on d pixels (a connected grid) has a cycle when it has d or more edges. Without
/// this check Newton spent minutes chasing the unbounded likelihood of 2 rows on 28 × 28.
fn check_rows_for_cycles(pattern: &Pattern, rows: usize) -> Result<(), EstimationError> {
    let edges = pattern.entries().iter().filter(|e| !e.is_diagonal()).count();
    if rows < 3 && edges >= pattern.dim() {
        return Err(EstimationError::NoEstimate {
            method: "mle",
            reason: format!(
                "the {} pattern has cycles, and the likelihood of a graph with a cycle has no \
                 maximum from {rows} rows (3 at least): give more training rows",
                pattern.neighbourhood()
            ),
        });
    }
    Ok(())
}

/// A necessary condition for the masked MLE to exist: S restricted to every pair of neighbours
/// is positive definite (else the likelihood grows without bound along that pair's 2 × 2 block;
/// one row, or two pixels that always move together, give such a pair).
fn check_pairs(pattern: &Pattern, s: &[f64], diagonal: &[f64]) -> Result<(), EstimationError> {
    for (e, &sij) in pattern.entries().iter().zip(s) {
        let (sii, sjj) = (diagonal[e.i as usize], diagonal[e.j as usize]);
        if !e.is_diagonal() && sii * sjj - sij * sij <= 1e-12 * sii * sjj {
            return Err(EstimationError::NoEstimate {
                method: "mle",
                reason: format!(
                    "the sample covariance of neighbouring pixels {} and {} is singular \
                     (S = [[{sii:.3e}, {sij:.3e}], [{sij:.3e}, {sjj:.3e}]]), so the likelihood has no \
                     maximum on this pattern: give more (or dequantised) training rows",
                    e.i, e.j
                ),
            });
        }
    }
    Ok(())
}

/// Λᵢᵢ·Sᵢᵢ = Sᵢᵢ / Var(xᵢ | the rest) at Λ. Past this the conditional variance is a 1e-8
/// fraction of the marginal one: far beyond what 8-bit data supports (dequantised, its
/// conditional variances are at least 1/(12·256²) ≈ 1.3e-6, its marginal ones at most 1/4), so the
/// likelihood is growing without bound.
const UNBOUNDED_PRECISION_RATIO: f64 = 1e8;

/// Another necessary condition: S restricted to every 2 × 2 square of pixels whose six pairs are
/// all neighbours (a clique of 8-neighbour and wider patterns) is positive definite. With fewer
/// than four rows it never is.
fn check_squares(pattern: &Pattern, moments: &SecondMoments) -> Result<(), EstimationError> {
    let (h, w) = (pattern.height(), pattern.width());
    for r in 0..h.saturating_sub(1) {
        for c in 0..w.saturating_sub(1) {
            let square = [r * w + c, r * w + c + 1, (r + 1) * w + c, (r + 1) * w + c + 1];
            // Not a clique of this pattern (4 neighbours): nothing to check.
            if pattern.position(square[0], square[3]).is_none()
                || pattern.position(square[1], square[2]).is_none()
            {
                return Ok(());
            }
            let mut block = [[0.0; 4]; 4];
            for (a, &i) in square.iter().enumerate() {
                for (b, &j) in square.iter().enumerate() {
                    block[a][b] = moments.at(i, j) / (moments.at(i, i) * moments.at(j, j)).sqrt();
                }
            }
            if !is_positive_definite(block) {
                return Err(EstimationError::NoEstimate {
                    method: "mle",
                    reason: format!(
                        "the sample covariance of the 2 × 2 square of pixels {square:?}, all of them \
                         neighbours, is singular, so the likelihood has no maximum on this pattern \
                         (with fewer than 4 rows it always is): give more training rows"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Cholesky of a 4 × 4 correlation matrix with a pivot floor of 1e-10.
fn is_positive_definite(mut a: [[f64; 4]; 4]) -> bool {
    for k in 0..4 {
        let pivot = a[k][k] - (0..k).map(|m| a[k][m] * a[k][m]).sum::<f64>();
        if pivot <= 1e-10 {
            return false;
        }
        a[k][k] = pivot.sqrt();
        for i in k + 1..4 {
            a[i][k] = (a[i][k] - (0..k).map(|m| a[i][m] * a[k][m]).sum::<f64>()) / a[k][k];
        }
    }
    true
}

/// Refuses a warm start that has run off towards an unbounded likelihood.
fn check_bounded(lam: &Precision, diagonal: &[f64]) -> Result<(), EstimationError> {
    let pattern = lam.pattern();
    for (i, &sii) in diagonal.iter().enumerate() {
        let ratio = lam.values()[pattern.diagonal_position(i)] * sii;
        if ratio > UNBOUNDED_PRECISION_RATIO {
            return Err(EstimationError::NoEstimate {
                method: "mle",
                reason: format!(
                    "the likelihood grows without bound: pixel {i}'s precision reached {ratio:.1e} \
                     times 1/S_ii, i.e. the data lie (nearly) on a subspace that the pattern can \
                     pin; give more (or dequantised) training rows"
                ),
            });
        }
    }
    Ok(())
}
