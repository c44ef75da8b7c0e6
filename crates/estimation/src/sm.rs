//! `sm`: exact, positive definite score matching.
//!
//! J(θ) = ½θᵀHθ − bᵀθ is quadratic, so its unconstrained optimum solves Hθ = b, i.e.
//! P(½(SV + VS)) = P(I) (CG, Jacobi preconditioner). If that Λ is positive definite it is the
//! answer. Otherwise (MNIST: 29 eigenvalues ≤ 0 for 4 neighbours) we solve min J s.t. Λ ≻ 0 by a
//! log-barrier: minimise J(Λ) − t·log|Λ| for t = t₀, t₀/10, …, each stage warm started from the
//! previous one moved along the central path's tangent (Boyd & Vandenberghe 2004, §11.3; the
//! first stage from the diagonal minimiser), by L-BFGS and then Newton-CG to near its centre.
//! The constrained optimum is singular, and t acts as a regulariser: by default it is chosen by
//! held-out likelihood, and the chosen stage is then centred tightly.

use std::time::Instant;

use gmrf_model::{Pattern, Precision};
use ndarray::ArrayView2;

use crate::cg::{Preconditioner, conjugate_gradient};
use crate::fit::{Fit, Progress, TraceRow};
use crate::lbfgs::LbfgsOptions;
use crate::newton::{BarrierObjective, NewtonOptions, NewtonState};
use crate::score_matching::ScoreMatching;
use crate::stats::{Reach, SecondMoments};
use crate::{EstimationError, diagonal_start, heldout_nll};

/// How the barrier weight t of the returned Λ is decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BarrierWeight {
    /// Follow the path down to `t_min` and return the stage with the lowest validation nll;
    /// stop early once it has risen for `patience` consecutive stages. Needs validation data.
    ByValidation {
        /// Smallest t tried. Default 1e-3.
        t_min: f64,
        /// Stages of rising validation nll tolerated before stopping. Default 1: over decades of
        /// t the validation nll has been unimodal wherever we looked (MNIST and BSDS500 patches,
        /// 4 and 8 neighbours, the CLI's and the solver bench's splits), so its first rise
        /// brackets the minimum; a second stage below it (patience 2) cost ~15% of the path.
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
    /// from the optimum than the start itself and only cost Newton steps (§11.3.1). On MNIST this
    /// starts at t = 1e4 instead of 1e6. Default true.
    pub t_start_from_gap: bool,
    /// Divisor of t between stages. Default 10.
    pub t_factor: f64,
    /// Choice of the final t. Default by validation down to 1e-3 with patience 1.
    pub weight: BarrierWeight,
    /// How near its centre each stage stops: λ² ≤ this, the squared Newton decrement of F/t
    /// ([`NewtonOptions::centring_tol`]). Only the returned stage is then centred to
    /// `polish_decrement_tol`, from where its stage stopped. Default 1e-2: on all of MNIST, with
    /// Newton alone in the stages (`stage_warm_start: None`), they then take 17 / 21 Newton steps
    /// instead of 25 / 29 (4 / 8 neighbours), plus one step of polishing, and return the same t
    /// and Λ to 2e-11 relative. The validation nll of each stage moves by < 3e-4 (the first
    /// stage's, at t = 1e4, by 3e-3).
    pub stage_centring_tol: f64,
    /// Relative residual at which CG stops in the stages' Newton steps and path tangents: inexact
    /// Newton (Dembo, Eisenstat & Steihaug 1982). A stage that only leads to the next needs
    /// λ² ≤ `stage_centring_tol`, and a tangent only a start for the next stage; the polish of
    /// the returned stage solves to `newton.cg_rel_tol`. Default 1e-4: on the solver bench's
    /// split of MNIST (4 / 8 neighbours) the stages' Newton steps then take 25 / 26 CG
    /// iterations instead of 43 / 45 (~9 ms each at 8 neighbours), for the same t and Λ to
    /// 1e-12.
    pub stage_cg_rel_tol: f64,
    /// L-BFGS at the start of every stage, until max |∇F|ₑ/mₑ has fallen to `until_gap` times its
    /// value at the stage's start; Newton then finishes the stage. `None`: Newton alone.
    /// Default memory 30, until 3e-2, at most 300 iterations.
    ///
    /// An L-BFGS iteration costs a sparse factor and the band of Σ (~1 ms), a Newton step with a
    /// fresh Hessian factor ~0.25 s at 8 neighbours, one that reuses the last factor a few CG
    /// iterations of ~9 ms ([`crate::NewtonPreconditioner::HessianCholesky`]). With the other
    /// defaults, on the solver bench's split of MNIST (4 / 8 neighbours), the path takes 398 / 455
    /// L-BFGS iterations and 6 / 7 Newton steps. Measured when this default was chosen (patience
    /// 2, CG to 1e-8 in the stages): until 3e-2, 415 / 477 iterations and 6 / 8 Newton steps, for
    /// the same t and Λ to 5e-13; until 1e-2, 603 / 781 for 5 / 7, and slower at 8 neighbours
    /// (3.8 against 3.1 s, best of five); until 1e-1, 307 / 237 for 8 / 11 (4.1 s). Newton alone
    /// took 18 / 22 steps, each with a fresh factor.
    pub stage_warm_start: Option<LbfgsOptions>,
    /// The decrement rule (relative to |F|, as `newton.decrement_tol`) to which the returned stage
    /// is polished. Default 1e-17, tighter than `newton.decrement_tol`: F is accurate to ~1e-16
    /// relative, but ∇F and the decrement are computed directly, and the rule 1e-13 pins the
    /// near-singular direction of Λ only to ~1e-7 relative. Polished to 1e-17, the returned Λ
    /// agrees across solver paths to ~1e-12, so a 4-digit rendering of it no longer flips with
    /// every change to the path. On all of MNIST it costs no extra Newton step.
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

/// One barrier stage.
#[derive(Clone, Debug, PartialEq)]
pub struct BarrierStage {
    /// Barrier weight.
    pub t: f64,
    /// L-BFGS iterations before Newton.
    pub lbfgs_iterations: usize,
    /// Newton steps taken (for the returned stage, its polishing steps included).
    pub newton_steps: usize,
    /// CG iterations over those steps.
    pub cg_iterations: usize,
    /// Whether Newton met its stopping rule (for the returned stage, the full rule).
    pub converged: bool,
    /// J(Λ(t)).
    pub sm_objective: f64,
    /// Validation nll (nats per pixel) of Λ(t), when validation data was given.
    pub validation_nll: Option<f64>,
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
    /// Every barrier stage run, in order (empty when the unconstrained optimum is PD).
    pub barrier_path: Vec<BarrierStage>,
    /// J at the returned Λ.
    pub sm_objective: f64,
}

/// Fits Λ by exact positive definite score matching on centred `train` data (N × d), choosing
/// the barrier weight on `validation` (also centred with the training mean) when asked to.
pub fn fit_sm(
    train: ArrayView2<'_, f32>,
    validation: Option<ArrayView2<'_, f32>>,
    pattern: &Pattern,
    options: &SmOptions,
    progress: Progress<'_>,
) -> Result<Fit<SmDiagnostics>, EstimationError> {
    let moments = SecondMoments::compute(train, pattern, Reach::TwoHops)?;
    let validation = validation.map(|v| SecondMoments::compute(v, pattern, Reach::Pattern)).transpose()?;
    let sm = ScoreMatching::new(pattern, &moments)?;
    sm_exact(&sm, &moments.diagonal(), validation.as_ref(), options, progress)
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
/// λᵢ = (1 + √(1 + 4tSᵢᵢ)) / (2Sᵢᵢ), which is 1/Sᵢᵢ at t = 0. Started from diag(1/Sᵢᵢ) instead,
/// Newton spent 5 of its 11 steps in the first stage on MNIST (t = 1e4) doubling the
/// high-variance pixels' λᵢ. The variances must be positive ([`diagonal_start`] checks them).
fn barrier_diagonal_start(
    pattern: &Pattern,
    s_diagonal: &[f64],
    t: f64,
) -> Result<Precision, EstimationError> {
    let lam: Vec<f64> = s_diagonal.iter().map(|s| (1.0 + (1.0 + 4.0 * t * s).sqrt()) / (2.0 * s)).collect();
    Ok(Precision::diagonal(pattern.clone(), &lam)?)
}

/// Moves the centre `lam` for weight t towards the centre for `t_next` along the path tangent
/// (the predictor of predictor–corrector path following): of the points θ + β·(t_next − t)·dθ/dt
/// for β on a grid from 2 down to 0.2, takes the one where F for t_next is lowest if it is lower
/// than at the centre itself, and records it as a step of size β. Each candidate costs two sparse
/// factors, against a dense one per Newton step.
///
/// Without it every stage began with 3–4 damped Newton steps: the near-singular eigenvalues of
/// Λ scale with t, so the centre for t lies far from the next one. A candidate must also keep
/// Λ_new − ½(t_next/t)·Λ positive definite, i.e. shrink no generalised eigenvalue below half the
/// ratio of the weights: on MNIST (8 neighbours, t = 0.1 → 0.01) the linear extrapolation
/// otherwise put one eigenvalue so near 0 that Newton spent 8 steps doubling it, in f64.
///
/// Newton steps of the whole path on all of MNIST (4 / 8 neighbours, on `gmrf estimate`'s
/// validation split and on the solver bench's): without a predictor 45 / 54 and 45 / 47;
/// β ∈ {1, ¾, ½, ¼} 28 / 36–37; this grid 25 / 29 (the chosen β ranged from 0.25 to 1.6). A
/// geometric grid 2·0.85ᵏ gave 36 / 29–30: which β wins is sensitive, so the grid is dense.
fn predict(
    objective: &BarrierObjective<'_>,
    lam: Precision,
    t: f64,
    t_next: f64,
    options: &NewtonOptions,
    state: &mut NewtonState<'_>,
) -> Result<Precision, EstimationError> {
    let Some(tangent) = objective.path_tangent(&lam, t, options, state)? else { return Ok(lam) };
    let Some(centre_value) = objective.value(&lam, t_next) else { return Ok(lam) };
    let floor = 0.5 * t_next / t;
    let mut best: Option<(f64, Precision, f64)> = None; // (β, Λ, F for t_next at Λ)
    for beta in [2.0, 1.6, 1.3, 1.15, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2] {
        let step = beta * (t_next - t);
        let values = lam.values().iter().zip(&tangent).map(|(x, d)| x + step * d).collect();
        let candidate = lam.with_values(values)?;
        let shrunk = candidate.values().iter().zip(lam.values()).map(|(p, c)| p - floor * c).collect();
        if !lam.with_values(shrunk)?.is_positive_definite() {
            continue;
        }
        let Some(value) = objective.value(&candidate, t_next) else { continue };
        if value < best.as_ref().map_or(centre_value, |b| b.2) {
            best = Some((beta, candidate, value));
        }
    }
    Ok(match best {
        Some((beta, candidate, value)) => {
            // Like a Newton row: the loss after the move, the gradient before it.
            let g = objective.gradient_at(&lam, t_next).expect("the centre is positive definite");
            let grad_norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
            state.record(value, grad_norm, beta);
            candidate
        }
        None => lam,
    })
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
        grad_norm: g.iter().map(|x| x * x).sum::<f64>().sqrt(),
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
        barrier_path: Vec::new(),
        sm_objective: objective,
    };
    if is_pd {
        return Ok(Fit { precision: unconstrained, trace, diagnostics });
    }

    // Constrained: the log-barrier path.
    let t_end = match options.weight {
        BarrierWeight::Fixed(t) => t,
        BarrierWeight::ByValidation { t_min, .. } => {
            if validation.is_none() {
                return Err(EstimationError::Shape(
                    "the unconstrained SM optimum is not positive definite and choosing the barrier weight \
                     by validation needs validation data (or pass a fixed t)"
                        .into(),
                ));
            }
            t_min
        }
    };
    if t_end.is_nan() || t_end <= 0.0 || options.t_factor.is_nan() || options.t_factor <= 1.0 {
        return Err(EstimationError::Shape("the barrier needs t > 0 and a factor > 1".into()));
    }
    let objective_fn = BarrierObjective {
        pattern,
        adjacency: &sm.adjacency,
        quadratic: Some(&sm.hessian),
        linear: &sm.linear.iter().map(|b| -b).collect::<Vec<f64>>(),
    };
    let mut state = NewtonState::new(start, progress);
    state.step = 1;
    state.trace = std::mem::take(&mut trace);
    let lam = diagonal_start(pattern, s_diagonal)?;
    let mut t = options.t_start.max(t_end);
    if options.t_start_from_gap {
        let gap_per_pixel = (sm.sm_objective(lam.values()) - objective) / pattern.dim() as f64;
        if gap_per_pixel.is_finite() && gap_per_pixel > 0.0 {
            t = 10f64.powf(gap_per_pixel.log10().round()).clamp(t_end, t);
        }
    }
    let mut lam = barrier_diagonal_start(pattern, s_diagonal, t)?;
    let mut best: Option<(f64, f64, Precision, usize)> = None; // (nll, t, Λ, stage)
    let mut rising = 0;
    let stage_newton = NewtonOptions {
        centring_tol: options.stage_centring_tol,
        cg_rel_tol: options.stage_cg_rel_tol,
        ..options.newton
    };
    // The Hessian factor that the returned stage's last Newton step used, kept for its polish:
    // it is one step from where the stage stopped, so the polish need not build one (a factor
    // costs ~0.25 s at 8 neighbours, CG with the kept one ~5 iterations of ~10 ms).
    let mut chosen_factor = None;
    let mut stage_is_chosen = false;
    loop {
        state.set_aside_preconditioner(stage_is_chosen, &mut chosen_factor);
        let mut lbfgs_iterations = 0;
        if let Some(warm) = &options.stage_warm_start {
            (lam, lbfgs_iterations) = objective_fn.lbfgs(lam, t, warm, None, &mut state)?;
        }
        let outcome = objective_fn.minimise(lam, t, &stage_newton, None, &mut state)?;
        lam = outcome.precision;
        let nll = heldout(&lam)?;
        if let (Some(row), Some(v)) = (state.trace.last_mut(), nll) {
            row.heldout_loss = Some(v);
        }
        diagnostics.barrier_path.push(BarrierStage {
            t,
            lbfgs_iterations,
            newton_steps: outcome.steps,
            cg_iterations: outcome.cg_iterations,
            converged: outcome.converged,
            sm_objective: sm.sm_objective(lam.values()),
            validation_nll: nll,
        });
        // Without validation the last stage is returned.
        stage_is_chosen = true;
        if let BarrierWeight::ByValidation { patience, .. } = options.weight {
            let v = nll.expect("validation data checked above");
            match &best {
                Some((b, _, _, _)) if v >= *b => {
                    rising += 1;
                    stage_is_chosen = false;
                }
                _ => {
                    best = Some((v, t, lam.clone(), diagnostics.barrier_path.len() - 1));
                    rising = 0;
                }
            }
            if rising >= patience {
                break;
            }
        }
        if t <= t_end * (1.0 + 1e-12) {
            break;
        }
        // The last stage lands exactly on t_end.
        let t_next = (t / options.t_factor).max(t_end);
        lam = predict(&objective_fn, lam, t, t_next, &stage_newton, &mut state)?;
        t = t_next;
    }
    let (precision, chosen_t, stage) = match best {
        Some((_, t_best, lam_best, stage)) => (lam_best, t_best, stage),
        None => (lam, t, diagnostics.barrier_path.len() - 1),
    };
    // Polish: centre the returned stage to the polishing rule. Its steps come last in the trace,
    // and the last row then carries the polished point's validation nll.
    state.set_aside_preconditioner(stage_is_chosen, &mut chosen_factor);
    state.restore_preconditioner(chosen_factor);
    let polish = NewtonOptions { decrement_tol: options.polish_decrement_tol, ..options.newton };
    let outcome = objective_fn.minimise(precision, chosen_t, &polish, None, &mut state)?;
    let precision = outcome.precision;
    let s = &mut diagnostics.barrier_path[stage];
    s.newton_steps += outcome.steps;
    s.cg_iterations += outcome.cg_iterations;
    s.converged = outcome.converged;
    if outcome.steps > 0 {
        let nll = heldout(&precision)?;
        if let (Some(row), Some(v)) = (state.trace.last_mut(), nll) {
            row.heldout_loss = Some(v);
        }
        s.sm_objective = sm.sm_objective(precision.values());
        s.validation_nll = nll;
    }
    diagnostics.chosen_t = Some(chosen_t);
    diagnostics.sm_objective = sm.sm_objective(precision.values());
    Ok(Fit { precision, trace: state.trace, diagnostics })
}
