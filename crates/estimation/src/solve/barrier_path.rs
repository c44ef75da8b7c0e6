//! The log-barrier path of a convex objective on the positive definite cone: minimise
//! F_t(θ) = q(θ) − t·log|Λ(θ)| for a decreasing sequence of weights t (Boyd & Vandenberghe 2004,
//! §11.3), each stage warm started from the previous centre moved along the central path's
//! tangent, by L-BFGS and then Newton-CG to near its centre. When validation data scores the
//! stages, t acts as a regulariser: the path returns the stage with the best validation score
//! (stopping once it has risen for `patience` stages), centred tightly. Without it, the path
//! runs down to its last weight and returns that stage.

use gmrf_model::Precision;

use super::lbfgs::{LbfgsOptions, lbfgs};
use super::newton::{NewtonOptions, NewtonState, minimise, path_tangent};
use crate::EstimationError;
use crate::moments::norm;
use crate::objective::BarrierObjective;

/// How a barrier path runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PathOptions {
    /// The first weight.
    pub(crate) t_start: f64,
    /// The last weight (the path lands exactly on it).
    pub(crate) t_end: f64,
    /// Divisor of t between stages (> 1).
    pub(crate) t_factor: f64,
    /// Stages of rising validation score tolerated before stopping; `None`: run to `t_end` and
    /// return the last stage.
    pub(crate) patience: Option<usize>,
    /// Newton settings inside a stage (loose: a stage only leads to the next).
    pub(crate) stage_newton: NewtonOptions,
    /// L-BFGS at the start of every stage.
    pub(crate) stage_warm_start: Option<LbfgsOptions>,
    /// Newton settings of the final centring of the returned stage.
    pub(crate) polish: NewtonOptions,
    /// Refuse the path as soon as a stage's Newton run ends short of its centring rule: the
    /// stages of a validated path are candidates, and a point where Newton happened to stop is not
    /// a defined one. `None`: keep going from where Newton stopped.
    pub(crate) require_centred: Option<Uncentred>,
}

/// What the error says when a stage is not centred: the method it names, and the caller's
/// explanation of why that can happen and what to do about it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Uncentred {
    pub(crate) method: &'static str,
    pub(crate) hint: &'static str,
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
    /// The objective q (without the barrier) at the stage's centre: J(Λ(t)) for score matching.
    pub objective: f64,
    /// Validation score (nll, nats per pixel) of Λ(t), when validation data was given.
    pub validation_nll: Option<f64>,
}

/// Where a path ended.
pub(crate) struct PathOutcome {
    /// The returned stage's centre, polished.
    pub(crate) precision: Precision,
    /// Its weight.
    pub(crate) chosen_t: f64,
    /// Every stage run, in order.
    pub(crate) stages: Vec<BarrierStage>,
}

/// The best stage so far: its validation score, weight, centre and index.
struct Best {
    score: f64,
    t: f64,
    precision: Precision,
    stage: usize,
}

/// Follows the barrier path of `objective` from `start` (positive definite, near the centre for
/// `options.t_start`). `validation` scores a centre (lower is better; `None` without validation
/// data, which `options.patience` must then be `None` for).
pub(crate) fn follow_barrier_path(
    objective: &BarrierObjective<'_>,
    start: Precision,
    options: &PathOptions,
    validation: &dyn Fn(&Precision) -> Result<Option<f64>, EstimationError>,
    state: &mut NewtonState<'_>,
) -> Result<PathOutcome, EstimationError> {
    let mut t = options.t_start;
    let mut lam = start;
    let mut stages = Vec::new();
    let mut best: Option<Best> = None;
    let mut rising = 0;
    // The Hessian factor that the returned stage's last Newton step used, kept for its polish:
    // it is one step from where the stage stopped, so the polish need not build one.
    let mut chosen_factor = None;
    let mut stage_is_chosen = false;
    loop {
        state.set_aside_preconditioner(stage_is_chosen, &mut chosen_factor);
        let mut lbfgs_iterations = 0;
        if let Some(warm) = &options.stage_warm_start {
            (lam, lbfgs_iterations) = lbfgs(objective, lam, t, warm, None, state)?;
        }
        let outcome = minimise(objective, lam, t, &options.stage_newton, None, state)?;
        lam = outcome.precision;
        if let (Some(Uncentred { method, hint }), false) = (options.require_centred, outcome.converged) {
            return Err(EstimationError::NoProgress {
                method,
                reason: format!(
                    "the barrier stage t = {t:e} was not centred: Newton stopped after {} steps short \
                     of its rule ({hint})",
                    outcome.steps
                ),
            });
        }
        let score = validation(&lam)?;
        state.annotate_heldout(score);
        stages.push(BarrierStage {
            t,
            lbfgs_iterations,
            newton_steps: outcome.steps,
            cg_iterations: outcome.cg_iterations,
            converged: outcome.converged,
            objective: objective.quadratic_value(lam.values()),
            validation_nll: score,
        });
        // Without validation the last stage is returned.
        stage_is_chosen = true;
        if let Some(patience) = options.patience {
            let score = score.ok_or(EstimationError::NoValidationRows {
                method: "barrier path",
                what: "the barrier weight t",
            })?;
            match &best {
                Some(b) if score >= b.score => {
                    rising += 1;
                    stage_is_chosen = false;
                }
                _ => {
                    best = Some(Best { score, t, precision: lam.clone(), stage: stages.len() - 1 });
                    rising = 0;
                }
            }
            if rising >= patience {
                break;
            }
        }
        if t <= options.t_end * (1.0 + 1e-12) {
            break;
        }
        // The last stage lands exactly on t_end.
        let t_next = (t / options.t_factor).max(options.t_end);
        lam = predict(objective, lam, t, t_next, &options.stage_newton, state)?;
        t = t_next;
    }
    let (precision, chosen_t, stage) = match best {
        Some(b) => (b.precision, b.t, b.stage),
        None => (lam, t, stages.len() - 1),
    };
    // Polish: centre the returned stage to the polishing rule. Its steps come last in the trace,
    // and the last row then carries the polished point's validation score.
    state.set_aside_preconditioner(stage_is_chosen, &mut chosen_factor);
    state.restore_preconditioner(chosen_factor);
    let outcome = minimise(objective, precision, chosen_t, &options.polish, None, state)?;
    let precision = outcome.precision;
    let s = &mut stages[stage];
    s.newton_steps += outcome.steps;
    s.cg_iterations += outcome.cg_iterations;
    s.converged = outcome.converged;
    if outcome.steps > 0 {
        let score = validation(&precision)?;
        state.annotate_heldout(score);
        s.objective = objective.quadratic_value(precision.values());
        s.validation_nll = score;
    }
    Ok(PathOutcome { precision, chosen_t, stages })
}

/// Moves the centre `lam` for weight t towards the centre for `t_next` along the path tangent
/// (the predictor of predictor–corrector path following): of the points θ + β·(t_next − t)·dθ/dt
/// for β on a grid from 2 down to 0.2, takes the one where F for t_next is lowest if it is lower
/// than at the centre itself, and records it as a step of size β. Each candidate costs two sparse
/// factors, against a dense one per Newton step.
///
/// The near-singular eigenvalues of Λ scale with t, so the centre for t lies far from the next
/// one. A candidate must also keep Λ_new − ½(t_next/t)·Λ positive definite, i.e. shrink no
/// generalised eigenvalue below half the ratio of the weights (else Newton spends its steps
/// doubling that eigenvalue). The grid is dense because which β wins is sensitive
/// (`docs/decisions.md`).
fn predict(
    objective: &BarrierObjective<'_>,
    lam: Precision,
    t: f64,
    t_next: f64,
    options: &NewtonOptions,
    state: &mut NewtonState<'_>,
) -> Result<Precision, EstimationError> {
    let Some(tangent) = path_tangent(objective, &lam, t, options, state)? else { return Ok(lam) };
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
            let grad_norm = norm(&g);
            state.record(value, grad_norm, beta);
            candidate
        }
        None => lam,
    })
}
