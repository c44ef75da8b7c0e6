//! What `nce` and `cnce` share: the data checked against the pattern and standardised, the
//! starting point, and the certified minimum of a full-batch loss.

use std::time::Instant;

use gmrf_model::{Pattern, Precision};
use ndarray::{Array2, ArrayView2};

use super::mle::{MleOptions, mle};
use crate::EstimationError;
use crate::fit::{Progress, TraceRow};
use crate::moments::{Reach, SecondMoments, Standardisation};
use crate::objective::{
    Adjacency, BarrierObjective, ContrastiveLoss, Smooth, heldout_nll, max_entry_gradient,
};
use crate::solve::lbfgs::lbfgs;
use crate::solve::newton::minimise;
use crate::solve::{
    BarrierStage, LbfgsOptions, NewtonOptions, NewtonState, PathOptions, Uncentred, follow_barrier_path,
};

/// What a full-batch Newton fit reached.
#[derive(Clone, Debug, PartialEq)]
pub struct Certificate {
    /// The barrier weight t of the returned Λ, the minimiser of J − t·log|Λ| on all rows, chosen on
    /// the validation rows; `None`: the minimiser of J itself.
    pub barrier_t: Option<f64>,
    /// The stages of the barrier path that chose t, fitted without the validation rows.
    pub validation_path: Vec<BarrierStage>,
    /// L-BFGS iterations before Newton.
    pub lbfgs_iterations: usize,
    /// Newton steps.
    pub newton_steps: usize,
    /// CG iterations over those steps.
    pub cg_iterations: usize,
    /// Whether Newton met its decrement rule: the returned Λ is the optimum.
    pub converged: bool,
    /// max over the pattern of the returned Λ's |∂F/∂Λᵢⱼ|, F = J − t·log|Λ| (standardised
    /// coordinates): the stationarity measure.
    pub max_gradient: f64,
}

/// A certified minimum: Λ (standardised coordinates), how it was reached, and the solver's trace.
pub(crate) struct Minimum {
    pub(crate) precision: Precision,
    pub(crate) certificate: Certificate,
    pub(crate) trace: Vec<TraceRow>,
}

/// Λᵢᵢ in standardised coordinates (1/Var(zᵢ | rest) against Var(zᵢ) = 1) past which the loss is
/// taken to fall without bound: as for `mle`, far beyond what 8-bit data supports.
const UNBOUNDED_PRECISION: f64 = 1e8;

/// Minimises the convex `loss` over the positive definite cone from `start` (standardised
/// coordinates): L-BFGS until the largest entry gradient falls to 1e-2 of its start, then
/// Newton-CG until half the squared decrement is at most `decrement_tol`·max(1, |J|), in rounds
/// of four steps checked for a loss that falls without bound (Λ growing past any scale, where the
/// data and the noise can be told apart by a quadratic form). An error if Newton stops short.
fn certified_minimum(
    method: &'static str,
    loss: &dyn Smooth,
    start: Precision,
    decrement_tol: f64,
    progress: Progress<'_>,
) -> Result<Minimum, EstimationError> {
    let pattern = start.pattern().clone();
    let adjacency = Adjacency::new(&pattern);
    let objective = BarrierObjective { pattern: &pattern, adjacency: &adjacency, smooth: loss };
    let mut state = NewtonState::new(Instant::now(), progress);
    let warm = LbfgsOptions { memory: 30, until_gap: 1e-2, max_iterations: 300 };
    let (mut lam, lbfgs_iterations) = lbfgs(&objective, start, 0.0, &warm, None, &mut state)?;
    check_bounded(method, &lam)?;
    const ROUND: usize = 4;
    let options = NewtonOptions { decrement_tol, stop_when_cg_fails: true, ..NewtonOptions::default() };
    let round = NewtonOptions { max_steps: ROUND, ..options };
    let (mut newton_steps, mut cg_iterations) = (0, 0);
    let converged = loop {
        let outcome = minimise(&objective, lam, 0.0, &round, None, &mut state)?;
        lam = outcome.precision;
        newton_steps += outcome.steps;
        cg_iterations += outcome.cg_iterations;
        check_bounded(method, &lam)?;
        if outcome.converged || outcome.steps < ROUND || newton_steps >= options.max_steps {
            break outcome.converged;
        }
    };
    let max_gradient = max_entry_gradient(&pattern, &loss.gradient(lam.values()));
    if !converged {
        return Err(EstimationError::NoProgress {
            method,
            reason: format!(
                "Newton stopped after {newton_steps} steps ({cg_iterations} CG iterations) short of \
                 its decrement rule, largest gradient entry {max_gradient:.3e}: the minimiser may lie \
                 on the boundary of the positive definite cone"
            ),
        });
    }
    let certificate = Certificate {
        barrier_t: None,
        validation_path: Vec::new(),
        lbfgs_iterations,
        newton_steps,
        cg_iterations,
        converged,
        max_gradient,
    };
    Ok(Minimum { precision: lam, certificate, trace: state.trace })
}

/// A stage of the barrier path of the fitting rows, chosen by the validation rows.
pub(crate) struct Chosen {
    /// Its weight t and centre (standardised coordinates).
    pub(crate) t: f64,
    pub(crate) precision: Precision,
    /// Its validation nll (nats per pixel).
    pub(crate) validation_nll: f64,
    /// Every stage run.
    pub(crate) stages: Vec<BarrierStage>,
}

/// The full-batch estimate of nce and cnce: with `validation` (the loss over the fitting rows
/// alone and the validation rows' second moments), the barrier path of the fitting rows chooses
/// t ([`choose_barrier_weight`]) and all rows are fitted at that t ([`refit_at`]); without, the
/// certified minimiser of `all`.
pub(crate) fn full_batch_minimum(
    method: &'static str,
    all: &ContrastiveLoss<'_>,
    validation: Option<(ContrastiveLoss<'_>, SecondMoments)>,
    start: Precision,
    decrement_tol: f64,
    progress: Progress<'_>,
) -> Result<Minimum, EstimationError> {
    let Some((fit, held_out)) = validation else {
        return certified_minimum(method, all, start, decrement_tol, progress);
    };
    let mut state = NewtonState::new(Instant::now(), progress);
    let chosen = choose_barrier_weight(method, &fit, &held_out, start, &mut state)?;
    refit_at(method, all, chosen, decrement_tol, state)
}

/// The barrier path of J_fit − t·log|Λ| over the fitting rows, from `start`, each stage scored by
/// the held-out nll of the validation rows' second moments: the stage with the lowest, polished.
/// The first weight is on the scale of J per pixel at `start` (where the barrier and J weigh
/// alike), falling tenfold to 1e-6 of it, stopping once the score has risen for a stage.
pub(crate) fn choose_barrier_weight(
    method: &'static str,
    fit: &dyn Smooth,
    held_out: &SecondMoments,
    start: Precision,
    state: &mut NewtonState<'_>,
) -> Result<Chosen, EstimationError> {
    let pattern = start.pattern().clone();
    let adjacency = Adjacency::new(&pattern);
    let objective = BarrierObjective { pattern: &pattern, adjacency: &adjacency, smooth: fit };
    let score = |lam: &Precision| Ok(Some(heldout_nll(lam, held_out)?));
    let t_start = 10f64.powf((fit.value(start.values()) / start.dim() as f64).log10().round());
    let newton = NewtonOptions { stop_when_cg_fails: true, ..NewtonOptions::default() };
    let path = PathOptions {
        t_start,
        t_end: t_start * 1e-6,
        t_factor: 10.0,
        patience: Some(1),
        stage_newton: NewtonOptions { centring_tol: 1e-2, cg_rel_tol: 1e-4, ..newton },
        stage_warm_start: None,
        polish: NewtonOptions { decrement_tol: 1e-13, ..newton },
        require_centred: Some(Uncentred {
            method,
            hint: "where the data and the noise are nearly separable by a quadratic form on this \
                   pattern the loss keeps falling; more rows, fewer neighbours or --solver minibatch",
        }),
    };
    let chosen = follow_barrier_path(&objective, start, &path, &score, state)?;
    check_bounded(method, &chosen.precision)?;
    let validation_nll = chosen
        .stages
        .iter()
        .find(|s| s.t == chosen.chosen_t)
        .and_then(|s| s.validation_nll)
        .ok_or(EstimationError::NoValidationRows { method, what: "the barrier weight t" })?;
    Ok(Chosen { t: chosen.chosen_t, precision: chosen.precision, validation_nll, stages: chosen.stages })
}

/// The minimiser of J_all − t·log|Λ| at the chosen stage's t, from its centre, to the decrement
/// rule: the loss over all rows once the validation rows have chosen t. J − t·log|Λ| is strictly
/// convex, so its centre, the returned Λ, does not depend on where Newton started.
pub(crate) fn refit_at(
    method: &'static str,
    all: &dyn Smooth,
    chosen: Chosen,
    decrement_tol: f64,
    mut state: NewtonState<'_>,
) -> Result<Minimum, EstimationError> {
    let Chosen { t, precision, stages, .. } = chosen;
    let pattern = precision.pattern().clone();
    let adjacency = Adjacency::new(&pattern);
    let objective = BarrierObjective { pattern: &pattern, adjacency: &adjacency, smooth: all };
    state.invalidate_preconditioner();
    let refit = NewtonOptions { decrement_tol, stop_when_cg_fails: true, ..NewtonOptions::default() };
    let outcome = minimise(&objective, precision, t, &refit, None, &mut state)?;
    check_bounded(method, &outcome.precision)?;
    let lam = outcome.precision;
    let g = objective.gradient_at(&lam, t).ok_or_else(|| EstimationError::NoProgress {
        method,
        reason: "the refit on all rows left the positive definite cone".into(),
    })?;
    let max_gradient = max_entry_gradient(&pattern, &g);
    if !outcome.converged {
        return Err(EstimationError::NoProgress {
            method,
            reason: format!(
                "Newton stopped after {} steps of the refit on all rows at t = {t:e} short of its \
                 decrement rule, largest gradient entry {max_gradient:.3e}",
                outcome.steps
            ),
        });
    }
    let certificate = Certificate {
        barrier_t: Some(t),
        lbfgs_iterations: stages.iter().map(|s| s.lbfgs_iterations).sum(),
        newton_steps: stages.iter().map(|s| s.newton_steps).sum::<usize>() + outcome.steps,
        cg_iterations: stages.iter().map(|s| s.cg_iterations).sum::<usize>() + outcome.cg_iterations,
        validation_path: stages,
        converged: true,
        max_gradient,
    };
    Ok(Minimum { precision: lam, certificate, trace: state.trace })
}

/// Refuses a Λ that has run off towards a loss that falls without bound.
fn check_bounded(method: &'static str, lam: &Precision) -> Result<(), EstimationError> {
    let pattern = lam.pattern();
    for i in 0..pattern.dim() {
        let v = lam.values()[pattern.diagonal_position(i)];
        if v > UNBOUNDED_PRECISION {
            return Err(EstimationError::NoEstimate {
                method,
                reason: format!(
                    "the loss falls without bound: pixel {i}'s precision reached {v:.1e} times its \
                     inverse variance, i.e. a quadratic form on the pattern tells the data from the \
                     noise ever better as Λ grows"
                ),
            });
        }
    }
    Ok(())
}

/// Training rows (and held-out rows, if any) in standardised coordinates z = D⁻¹x.
pub(crate) struct Standardised {
    pub(crate) standard: Standardisation,
    pub(crate) z: Array2<f32>,
    pub(crate) test: Option<Array2<f32>>,
}

/// Checks `x` (and `test`) against the pattern, fits the standardisation on `x` (every pixel must
/// vary) and applies it to both. An empty `test` counts as none.
pub(crate) fn standardise(
    x: ArrayView2<'_, f32>,
    test: Option<ArrayView2<'_, f32>>,
    pattern: &Pattern,
) -> Result<Standardised, EstimationError> {
    check_shape(x, pattern)?;
    let standard = Standardisation::fit(x);
    if let Some(pixel) = standard.scale.iter().position(|&s| s.is_nan() || s <= 0.0) {
        return Err(EstimationError::ConstantPixel { pixel, variance: standard.scale[pixel].powi(2) });
    }
    let test = match test {
        Some(t) if t.nrows() > 0 => {
            check_shape(t, pattern)?;
            Some(standard.apply(t))
        }
        _ => None,
    };
    Ok(Standardised { z: standard.apply(x), standard, test })
}

/// The masked MLE of `z` (standardised coordinates), where the full-batch contrastive fits start:
/// near their optima when the model fits the data, so Newton needs fewer damped steps than from
/// I. Where it does not exist (too few rows for the pattern), Λ₀ = I. The fits' optima do not
/// depend on their start.
pub(crate) fn masked_mle_start(
    z: ArrayView2<'_, f32>,
    pattern: &Pattern,
) -> Result<Precision, EstimationError> {
    let moments = SecondMoments::compute(z, pattern, Reach::Pattern)?;
    match mle(pattern, &moments, &MleOptions::default(), None) {
        Ok(fit) => Ok(fit.precision),
        Err(_) => identity_start(pattern),
    }
}

/// Λ₀ = I in standardised coordinates, i.e. diag(1/sᵢ²) in the original units: independent
/// pixels fitted by maximum likelihood.
pub(crate) fn identity_start(pattern: &Pattern) -> Result<Precision, EstimationError> {
    Ok(Precision::diagonal(pattern.clone(), &vec![1.0; pattern.dim()])?)
}

fn check_shape(x: ArrayView2<'_, f32>, pattern: &Pattern) -> Result<(), EstimationError> {
    if x.ncols() != pattern.dim() {
        return Err(EstimationError::Shape(format!(
            "data has {} columns, the {}x{} grid {} pixels",
            x.ncols(),
            pattern.height(),
            pattern.width(),
            pattern.dim()
        )));
    }
    if x.nrows() == 0 {
        return Err(EstimationError::Shape("no data rows".into()));
    }
    Ok(())
}
