//! `sm`: exact, positive definite score matching.
//!
//! J(θ) = ½θᵀHθ − bᵀθ is quadratic, so its unconstrained optimum solves Hθ = b, i.e.
//! P(½(SV + VS)) = P(I) (CG, Jacobi preconditioner). If that Λ is positive definite it is the
//! answer. Otherwise (MNIST: 29 eigenvalues ≤ 0 for 4 neighbours) we solve min J s.t. Λ ≻ 0 by a
//! log-barrier: minimise J(Λ) − t·log|Λ| for t = t₀, t₀/10, …, each stage warm started from the
//! previous one moved along the central path's tangent (Boyd & Vandenberghe 2004, §11.3; the
//! first stage from the diagonal minimiser), by L-BFGS and then Newton-CG to near its centre.
//! The constrained optimum is singular, and t acts as a regulariser: by default it is chosen by
//! held-out likelihood on a validation split, and the model is then refitted on all the rows
//! (training and validation) at the chosen t, centred tightly.

use std::time::Instant;

use gmrf_model::{Pattern, Precision};
use ndarray::ArrayView2;

use super::{check_rows, diagonal_start, with_validation_rows};
use crate::EstimationError;
use crate::fit::{Fit, Progress, TraceRow};
use crate::moments::{Reach, SecondMoments, norm};
use crate::objective::heldout_nll;
use crate::objective::{BarrierObjective, Quadratic, ScoreMatching};
use crate::solve::{
    BarrierStage, LbfgsOptions, NewtonOptions, NewtonState, PathOptions, Preconditioner, conjugate_gradient,
    follow_barrier_path,
};

/// How the barrier weight t of the returned Λ is decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BarrierWeight {
    /// Follow the path down to `t_min` and return the stage with the lowest validation nll;
    /// stop early once it has risen for `patience` consecutive stages. Needs validation data.
    ByValidation {
        /// Smallest t tried. Default 1e-3.
        t_min: f64,
        /// Stages of rising validation nll tolerated before stopping. Default 1 (the validation
        /// nll has been unimodal in t: `docs/decisions.md`).
        patience: usize,
    },
    /// Follow the path down to exactly this t and return that stage.
    Fixed(f64),
}

impl BarrierWeight {
    /// The default `t_min` of [`BarrierWeight::ByValidation`].
    pub const DEFAULT_T_MIN: f64 = 1e-3;
    /// The default `patience` of [`BarrierWeight::ByValidation`].
    pub const DEFAULT_PATIENCE: usize = 1;
}

/// Options of [`fit_sm`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmOptions {
    /// Relative residual of the unconstrained CG solve. Default 1e-12 (the solve is cheap, and
    /// the PD case returns it as the answer).
    pub cg_rel_tol: f64,
    /// Iteration cap of the unconstrained CG solve. Default 50,000.
    pub max_cg_iterations: usize,
    /// First barrier weight, or its upper bound when `t_start_from_gap` is set. Default 1e6.
    pub t_start: f64,
    /// Start the path at the power of ten nearest to (J(Λ₀) − J(Λ_u))/d instead, Λ₀ the
    /// diagonal start and Λ_u the unconstrained optimum (a lower bound on the constrained
    /// optimum), clamped to [final t, `t_start`]. On the central path the suboptimality at t is
    /// at most d·t (Boyd & Vandenberghe 2004, §11.2.2), so stages with a larger t are farther
    /// from the optimum than the start itself and only cost Newton steps (§11.3.1). Default true.
    pub t_start_from_gap: bool,
    /// Divisor of t between stages. Default 10.
    pub t_factor: f64,
    /// Choice of the final t. Default by validation down to 1e-3 with patience 1.
    pub weight: BarrierWeight,
    /// How near its centre each stage stops: λ² ≤ this, the squared Newton decrement of F/t
    /// ([`NewtonOptions::centring_tol`]). Only the returned stage is then centred to
    /// `polish_decrement_tol`, from where its stage stopped (Boyd & Vandenberghe 2004, §11.3.3).
    /// Default 1e-2.
    pub stage_centring_tol: f64,
    /// Relative residual at which CG stops in the stages' Newton steps and path tangents: inexact
    /// Newton (Dembo, Eisenstat & Steihaug 1982). A stage that only leads to the next needs
    /// λ² ≤ `stage_centring_tol`, and a tangent only a start for the next stage; the polish of
    /// the returned stage solves to `newton.cg_rel_tol`. Default 1e-4.
    pub stage_cg_rel_tol: f64,
    /// L-BFGS at the start of every stage, until max |∇F|ₑ/mₑ has fallen to `until_gap` times its
    /// value at the stage's start; Newton then finishes the stage. `None`: Newton alone.
    /// Default memory 30, until 3e-2, at most 300 iterations. An L-BFGS iteration costs a sparse
    /// factor and the band of Σ; a Newton step with a fresh Hessian factor, a dense n × n
    /// Cholesky.
    pub stage_warm_start: Option<LbfgsOptions>,
    /// The decrement rule (relative to |F|, as `newton.decrement_tol`) to which the returned stage
    /// is polished. Default 1e-17, tighter than `newton.decrement_tol`: F is accurate to ~1e-16
    /// relative, but ∇F and the decrement are computed directly, and the rule 1e-13 pins the
    /// near-singular direction of Λ only to ~1e-7 relative. Polished to 1e-17, the returned Λ
    /// agrees across solver paths to ~1e-12.
    pub polish_decrement_tol: f64,
    /// Inner Newton-CG settings.
    pub newton: NewtonOptions,
}

impl Default for SmOptions {
    fn default() -> Self {
        SmOptions {
            cg_rel_tol: 1e-12,
            max_cg_iterations: 50_000,
            t_start: 1e6,
            t_start_from_gap: true,
            t_factor: 10.0,
            weight: BarrierWeight::ByValidation {
                t_min: BarrierWeight::DEFAULT_T_MIN,
                patience: BarrierWeight::DEFAULT_PATIENCE,
            },
            stage_centring_tol: 1e-2,
            stage_cg_rel_tol: 1e-4,
            stage_warm_start: Some(LbfgsOptions { memory: 30, until_gap: 3e-2, max_iterations: 300 }),
            polish_decrement_tol: 1e-17,
            newton: NewtonOptions::default(),
        }
    }
}

/// Diagnostics of [`fit_sm`].
#[derive(Clone, Debug, PartialEq)]
pub struct SmDiagnostics {
    /// CG iterations of the unconstrained solve.
    pub unconstrained_cg_iterations: usize,
    /// Whether that solve reached its tolerance.
    pub unconstrained_converged: bool,
    /// J at the unconstrained optimum (a lower bound for every Λ on the pattern).
    pub unconstrained_objective: f64,
    /// Whether the unconstrained optimum is positive definite (then it is the answer).
    pub unconstrained_pd: bool,
    /// Eigenvalues ≤ 0 of the unconstrained optimum.
    pub unconstrained_nonpositive_eigenvalues: usize,
    /// Smallest eigenvalue of the unconstrained optimum.
    pub unconstrained_min_eigenvalue: f64,
    /// The barrier weight of the returned Λ (`None` when the unconstrained optimum is returned).
    pub chosen_t: Option<f64>,
    /// The stages of the path that chose t on the validation rows, fitted without them (empty
    /// when t was fixed or no barrier was needed).
    pub validation_path: Vec<BarrierStage>,
    /// Every barrier stage of the returned fit, in order (empty when the unconstrained optimum is
    /// PD); with validation data, the refit on all rows.
    pub barrier_path: Vec<BarrierStage>,
    /// J at the returned Λ.
    pub sm_objective: f64,
}

/// Fits Λ by exact positive definite score matching on centred data (N × d). With
/// [`BarrierWeight::ByValidation`], the barrier weight t is chosen by the held-out likelihood of
/// the `validation` rows (centred with the same mean) under fits to the `train` rows, and Λ is
/// then refitted on all rows, `train` and `validation` together, at that t; with a fixed weight,
/// Λ is fitted to all rows at once.
pub fn fit_sm(
    train: ArrayView2<'_, f32>,
    validation: Option<ArrayView2<'_, f32>>,
    pattern: &Pattern,
    options: &SmOptions,
    progress: Progress<'_>,
) -> Result<Fit<SmDiagnostics>, EstimationError> {
    options.check()?;
    check_rows("sm", train.nrows())?;
    let validation = validation.filter(|v| v.nrows() > 0);
    let all = with_validation_rows(train, validation)?;
    let refit = |weight: BarrierWeight| {
        let moments = SecondMoments::compute(all.view(), pattern, Reach::TwoHops)?;
        let sm = ScoreMatching::new(pattern, &moments)?;
        let options = SmOptions { weight, ..*options };
        sm_exact(&sm, &moments.diagonal(), None, &options, progress)
    };
    let (BarrierWeight::ByValidation { t_min, .. }, Some(v)) = (options.weight, validation) else {
        return refit(options.weight);
    };
    let moments = SecondMoments::compute(train, pattern, Reach::TwoHops)?;
    let held_out = SecondMoments::compute(v, pattern, Reach::Pattern)?;
    let sm = ScoreMatching::new(pattern, &moments)?;
    let chosen = sm_exact(&sm, &moments.diagonal(), Some(&held_out), options, progress)?;
    // Where the training rows alone needed no barrier, t_min stands in case all rows do.
    let mut fit = refit(BarrierWeight::Fixed(chosen.diagnostics.chosen_t.unwrap_or(t_min)))?;
    let offset = chosen.trace.last().map_or(0, |r| r.step);
    for row in &mut fit.trace {
        row.step += offset;
    }
    fit.trace = [chosen.trace, fit.trace].concat();
    fit.diagnostics.validation_path = chosen.diagnostics.barrier_path;
    Ok(fit)
}

/// The unconstrained optimum of J: the solution of Hθ = b by Jacobi-preconditioned CG from 0.
/// Returns (θ, iterations, converged).
pub fn sm_unconstrained_optimum(
    sm: &ScoreMatching,
    rel_tol: f64,
    max_iter: usize,
) -> (Vec<f64>, usize, bool) {
    let jacobi = Preconditioner::Jacobi(sm.hessian_diagonal());
    let cg = conjugate_gradient(&|v| sm.sm_hessian_vector_product(v), &sm.linear, &jacobi, rel_tol, max_iter);
    (cg.x, cg.iterations, cg.converged)
}

/// The minimiser of J(Λ) − t·log|Λ| over diagonal Λ, where the first barrier stage starts. On the
/// diagonal J is separable, Σᵢ ½Sᵢᵢλᵢ² − λᵢ, so each λᵢ solves Sᵢᵢλᵢ − 1 − t/λᵢ = 0:
/// λᵢ = (1 + √(1 + 4tSᵢᵢ)) / (2Sᵢᵢ), which is 1/Sᵢᵢ at t = 0. The variances must be positive
/// ([`diagonal_start`] checks them).
fn barrier_diagonal_start(
    pattern: &Pattern,
    s_diagonal: &[f64],
    t: f64,
) -> Result<Precision, EstimationError> {
    let lam: Vec<f64> = s_diagonal.iter().map(|s| (1.0 + (1.0 + 4.0 * t * s).sqrt()) / (2.0 * s)).collect();
    Ok(Precision::diagonal(pattern.clone(), &lam)?)
}

/// Exact PD score matching on a prepared problem; `validation` holds the validation second
/// moments on the pattern ([`Reach::Pattern`]).
pub fn sm_exact(
    sm: &ScoreMatching,
    s_diagonal: &[f64],
    validation: Option<&SecondMoments>,
    options: &SmOptions,
    progress: Progress<'_>,
) -> Result<Fit<SmDiagnostics>, EstimationError> {
    options.check()?;
    let start = Instant::now();
    let pattern = sm.pattern();
    let (theta, iterations, converged) =
        sm_unconstrained_optimum(sm, options.cg_rel_tol, options.max_cg_iterations);
    let unconstrained = Precision::new(pattern.clone(), theta)?;
    let objective = sm.sm_objective(unconstrained.values());
    let g = sm.sm_gradient(unconstrained.values());
    let eigenvalues = unconstrained.eigenvalues()?;
    let nonpositive = eigenvalues.iter().filter(|&&v| v <= 0.0).count();
    let is_pd = unconstrained.is_positive_definite();
    let heldout = |lam: &Precision| validation.map(|v| heldout_nll(lam, v)).transpose();
    let mut trace = vec![TraceRow {
        step: 1,
        loss: objective,
        grad_norm: norm(&g),
        step_size: 1.0,
        elapsed_s: start.elapsed().as_secs_f64(),
        heldout_loss: if is_pd { heldout(&unconstrained)? } else { None },
    }];
    if let Some(p) = progress {
        p(1, objective);
    }
    let mut diagnostics = SmDiagnostics {
        unconstrained_cg_iterations: iterations,
        unconstrained_converged: converged,
        unconstrained_objective: objective,
        unconstrained_pd: is_pd,
        unconstrained_nonpositive_eigenvalues: nonpositive,
        unconstrained_min_eigenvalue: eigenvalues[0],
        chosen_t: None,
        validation_path: Vec::new(),
        barrier_path: Vec::new(),
        sm_objective: objective,
    };
    if is_pd {
        return Ok(Fit { precision: unconstrained, trace, diagnostics });
    }

    // Constrained: the log-barrier path.
    let (t_end, patience) = match options.weight {
        BarrierWeight::Fixed(t) => (t, None),
        BarrierWeight::ByValidation { t_min, patience } => {
            if validation.is_none() {
                // The unconstrained optimum is not positive definite: the barrier weight decides.
                return Err(EstimationError::NoValidationRows { method: "sm", what: "the barrier weight t" });
            }
            (t_min, Some(patience))
        }
    };
    let linear: Vec<f64> = sm.linear.iter().map(|b| -b).collect();
    let q = Quadratic { hessian: Some(&sm.hessian), linear: &linear };
    let objective_fn = BarrierObjective { pattern, adjacency: &sm.adjacency, smooth: &q };
    let mut state = NewtonState::new(start, progress);
    state.step = 1;
    state.trace = std::mem::take(&mut trace);
    let mut t_start = options.t_start.max(t_end);
    if options.t_start_from_gap {
        let lam = diagonal_start(pattern, s_diagonal)?;
        let gap_per_pixel = (sm.sm_objective(lam.values()) - objective) / pattern.dim() as f64;
        if gap_per_pixel.is_finite() && gap_per_pixel > 0.0 {
            t_start = 10f64.powf(gap_per_pixel.log10().round()).clamp(t_end, t_start);
        }
    }
    let path = PathOptions {
        t_start,
        t_end,
        t_factor: options.t_factor,
        patience,
        stage_newton: NewtonOptions {
            centring_tol: options.stage_centring_tol,
            cg_rel_tol: options.stage_cg_rel_tol,
            ..options.newton
        },
        stage_warm_start: options.stage_warm_start,
        polish: NewtonOptions { decrement_tol: options.polish_decrement_tol, ..options.newton },
        require_centred: None,
    };
    let start_point = barrier_diagonal_start(pattern, s_diagonal, t_start)?;
    let outcome = follow_barrier_path(&objective_fn, start_point, &path, &heldout, &mut state)?;
    diagnostics.chosen_t = Some(outcome.chosen_t);
    diagnostics.barrier_path = outcome.stages;
    diagnostics.sm_objective = sm.sm_objective(outcome.precision.values());
    Ok(Fit { precision: outcome.precision, trace: state.trace, diagnostics })
}
