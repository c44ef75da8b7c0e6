//! `sm-gd`: the original homework's score matching by fixed-step gradient descent.
//!
//! Each step moves every stored entry by −η·Gᵢⱼ with G = ½(SΛ + ΛS) − I on the pattern (the
//! matrix gradient, symmetric, so projecting onto the pattern keeps its upper triangle and the
//! lower follows), from Λ₀ = diag(1/Sᵢᵢ). A step whose Λ has no Cholesky factor is retried with
//! half the step, up to `max_halvings` times; the next step starts again from η. Kept to
//! reproduce the original; [`crate::fit_sm`] is the recommended method.

use std::time::Instant;

use gmrf_model::{Pattern, Precision};
use ndarray::ArrayView2;

use super::{check_rows, diagonal_start};
use crate::EstimationError;
use crate::fit::{Fit, Progress, TraceRow};
use crate::moments::{Reach, SecondMoments, norm};
use crate::objective::ScoreMatching;
use crate::solve::halve_until;

/// Which gradient `sm-gd` follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GdGradient {
    /// ½(SΛ + ΛS) − I: the true matrix gradient of J; its fixed point is the SM optimum.
    #[default]
    Symmetrised,
    /// The original code: the upper triangle of ΛS − I copied to the lower, which has a
    /// different fixed point (design.md).
    OriginalUpperTriangle,
}

/// Options of [`fit_sm_gd`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmGdOptions {
    /// Learning rate η. Default 1e-3 (the original's RMSprop rate; plain full-batch gradient
    /// descent converges only for η < 2/λ_max of the SM Hessian, about 1/max Sᵢᵢ).
    pub learning_rate: f64,
    /// Number of steps (full-batch epochs). Default 500, the original's epoch cap.
    pub steps: u32,
    /// Halvings tried before a step is given up. Default 30.
    pub max_halvings: u32,
    /// Gradient followed. Default [`GdGradient::Symmetrised`].
    pub gradient: GdGradient,
}

impl Default for SmGdOptions {
    fn default() -> Self {
        SmGdOptions { learning_rate: 1e-3, steps: 500, max_halvings: 30, gradient: GdGradient::Symmetrised }
    }
}

/// Diagnostics of [`fit_sm_gd`].
#[derive(Clone, Debug, PartialEq)]
pub struct SmGdDiagnostics {
    /// Total step halvings over the run.
    pub halvings: u64,
    /// Steps where every halving still left Λ without a Cholesky factor (Λ was kept).
    pub rejected_steps: u32,
    /// J at the returned Λ.
    pub sm_objective: f64,
}

/// Fits Λ by `sm-gd` on centred data `x` (N × d).
pub fn fit_sm_gd(
    x: ArrayView2<'_, f32>,
    pattern: &Pattern,
    options: &SmGdOptions,
    progress: Progress<'_>,
) -> Result<Fit<SmGdDiagnostics>, EstimationError> {
    check_rows("sm-gd", x.nrows())?;
    let moments = SecondMoments::compute(x, pattern, Reach::TwoHops)?;
    let sm = ScoreMatching::new(pattern, &moments)?;
    sm_gd(&sm, &moments.diagonal(), options, progress)
}

/// `sm-gd` on a prepared score-matching problem, starting from diag(1/`s_diagonal`).
pub fn sm_gd(
    sm: &ScoreMatching,
    s_diagonal: &[f64],
    options: &SmGdOptions,
    progress: Progress<'_>,
) -> Result<Fit<SmGdDiagnostics>, EstimationError> {
    let start = Instant::now();
    let mut lam: Precision = diagonal_start(sm.pattern(), s_diagonal)?;
    let mut trace = Vec::with_capacity(options.steps as usize);
    let (mut halvings, mut rejected) = (0u64, 0u32);
    for step in 1..=options.steps {
        let theta = lam.values();
        let grad = sm.sm_gradient(theta);
        let direction = match options.gradient {
            GdGradient::Symmetrised => sm.sm_matrix_gradient(theta),
            GdGradient::OriginalUpperTriangle => sm.original_upper_triangle_gradient(theta),
        };
        let descent: Vec<f64> = direction.iter().map(|g| -g).collect();
        let eta =
            match halve_until(&lam, &descent, options.learning_rate, options.max_halvings, |_, _, _| true)? {
                Some((eta, h, next, _)) => {
                    halvings += u64::from(h);
                    lam = next;
                    eta
                }
                None => {
                    halvings += u64::from(options.max_halvings);
                    rejected += 1;
                    0.0
                }
            };
        let loss = sm.sm_objective(lam.values());
        trace.push(TraceRow {
            step,
            loss,
            grad_norm: norm(&grad),
            step_size: eta,
            elapsed_s: start.elapsed().as_secs_f64(),
            heldout_loss: None,
        });
        if let Some(p) = progress {
            p(step, loss);
        }
    }
    let sm_objective = sm.sm_objective(lam.values());
    Ok(Fit {
        precision: lam,
        trace,
        diagnostics: SmGdDiagnostics { halvings, rejected_steps: rejected, sm_objective },
    })
}
