//! Damped Newton-CG for F(θ) = q(θ) − t·log|Λ(θ)| over the free entries of Λ, with q any smooth
//! convex [`crate::objective::Smooth`] term: a quadratic (score matching), a linear one (the
//! likelihood) or a contrastive loss (NCE, cNCE), and t ≥ 0.
//!
//! Every iterate keeps a Cholesky factor: the line search halves α until Λ + αD factorises and
//! the Armijo condition holds. The change of q along the step comes from
//! [`crate::objective::Smooth::change_along`], never as a difference of two values near |q|
//! (≈ 4e7 for score matching on MNIST).

use std::time::Instant;

use gmrf_model::{InverseBand, Precision};
use ndarray::Array2;

use super::cg::{FactorStorage, Preconditioner, conjugate_gradient};
use super::line_search::{LineStep, backtrack};
use crate::EstimationError;
use crate::fit::{Progress, TraceRow};
use crate::moments::{dot, norm};
use crate::objective::{BarrierObjective, log_det_gradient, scaled_hessian_column};

/// CG iterations allowed with an f32 Hessian factor before it is rebuilt in f64. A fresh f32
/// factor solves in 1–3 iterations while it is accurate.
const SINGLE_PRECISION_CG_LIMIT: usize = 25;

/// Default CG iterations within which a Hessian factor from an earlier Newton step is kept
/// (a rebuild costs about as much as 20 CG iterations: `docs/decisions.md`). F/t is
/// self-concordant, so after a step of local length λ the Hessian moves by at most a factor
/// (1 − λ)^{∓2} (Nesterov 2004, Thm 4.1.6): an earlier factor stays a good preconditioner.
pub(crate) const REUSE_WITHIN: usize = 15;

/// Preconditioner of the Newton systems.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewtonPreconditioner {
    /// Diagonal of the Hessian: cheap, but CG iterations grow as the barrier weight falls.
    Jacobi,
    /// Dense Cholesky factor of the explicit Hessian in the free entries, Jacobi-scaled to unit
    /// diagonal and factorised in f32 (in f64 once a fresh f32 factor stops converging CG within
    /// 25 iterations). Built as an n × n matrix, by a blocked Cholesky whose block columns run
    /// in parallel (bit-identical on any thread count). A fresh factor is the exact Hessian up
    /// to f32 rounding, so CG only polishes that rounding (1–3 iterations).
    HessianCholesky {
        /// Keep the factor for the next Newton steps of the same minimisation while CG with it
        /// converges within this many iterations; when it does not, rebuild it at the current
        /// point and solve again. 0: rebuild at every step.
        reuse_within: usize,
    },
}

/// Settings of one Newton minimisation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewtonOptions {
    /// Maximum Newton steps per minimisation. Default 100.
    pub max_steps: usize,
    /// Stop when half the squared Newton decrement, ½ gᵀH⁻¹g, is at most this times
    /// max(1, |F|). Default 1e-13 (F is accurate to ~1e-16 relative; the decrement is quadratic
    /// in the error, so this leaves θ accurate to ~3e-7 relative in the Hessian norm).
    pub decrement_tol: f64,
    /// Also stop when λ², the squared Newton decrement of F/t (gᵀH⁻¹g/t, scale free: F/t is
    /// self-concordant), is at most this. Default 0 (off). A barrier stage that only leads to the
    /// next needs a point near its centre, not the centre itself (Boyd & Vandenberghe 2004,
    /// §11.3.3): with λ² ≤ 1e-2 one more Newton step would already bring λ² under 1.5e-4.
    pub centring_tol: f64,
    /// Relative residual at which CG stops. Default 1e-8.
    pub cg_rel_tol: f64,
    /// Maximum CG iterations per Newton step. Default 2000.
    pub max_cg_iterations: usize,
    /// Preconditioner. Default: Hessian Cholesky, reused while CG with it converges within 15
    /// iterations.
    pub preconditioner: NewtonPreconditioner,
    /// Stop, short of the rule, when CG does not converge even with a fresh f64 factor, instead
    /// of stepping along its unfinished direction. Default false. The contrastive losses set it:
    /// there such a step is a sliver (α ~ 1e-6 after 2,000 CG iterations, step after step, on
    /// a cNCE loss that falls without bound: `docs/decisions.md`).
    pub stop_when_cg_fails: bool,
}

impl NewtonOptions {
    /// The half decrement ½gᵀH⁻¹g at or below which Newton stops, at a point where the objective
    /// is `f` and the barrier weight t: the looser of the two rules above.
    fn stopping_half_decrement(&self, f: f64, t: f64) -> f64 {
        (self.decrement_tol * f.abs().max(1.0)).max(0.5 * t * self.centring_tol)
    }
}

impl Default for NewtonOptions {
    fn default() -> Self {
        NewtonOptions {
            max_steps: 100,
            decrement_tol: 1e-13,
            centring_tol: 0.0,
            cg_rel_tol: 1e-8,
            max_cg_iterations: 2000,
            stop_when_cg_fails: false,
            preconditioner: NewtonPreconditioner::HessianCholesky { reuse_within: REUSE_WITHIN },
        }
    }
}

/// How a minimisation ended.
pub(crate) struct NewtonOutcome {
    pub(crate) precision: Precision,
    pub(crate) steps: usize,
    pub(crate) cg_iterations: usize,
    pub(crate) converged: bool,
}

/// Mutable state carried across minimisations (barrier stages): the step counter, the trace,
/// and the preconditioner with the iteration count of its last use.
pub(crate) struct NewtonState<'p> {
    pub(crate) step: u32,
    pub(crate) trace: Vec<TraceRow>,
    pub(crate) start: Instant,
    pub(crate) progress: Progress<'p>,
    preconditioner: Option<Preconditioner>,
    /// Whether the Hessian factor is built in f64 (sticky once f32 failed within this fit).
    double_precision: bool,
    /// Buffers of the Hessian factor, reused from step to step.
    storage: FactorStorage,
}

impl<'p> NewtonState<'p> {
    pub(crate) fn new(start: Instant, progress: Progress<'p>) -> Self {
        NewtonState {
            step: 0,
            trace: Vec::new(),
            start,
            progress,
            preconditioner: None,
            double_precision: false,
            storage: FactorStorage::default(),
        }
    }

    /// Counts a step that moved θ, appends its trace row and reports it.
    pub(crate) fn record(&mut self, loss: f64, grad_norm: f64, step_size: f64) {
        self.step += 1;
        self.trace.push(TraceRow {
            step: self.step,
            loss,
            grad_norm,
            step_size,
            elapsed_s: self.start.elapsed().as_secs_f64(),
            heldout_loss: None,
        });
        if let Some(p) = self.progress {
            p(self.step, loss);
        }
    }

    /// Writes a held-out score into the last trace row (nothing without a score or a row).
    pub(crate) fn annotate_heldout(&mut self, score: Option<f64>) {
        if let (Some(row), Some(v)) = (self.trace.last_mut(), score) {
            row.heldout_loss = Some(v);
        }
    }

    /// Forces a rebuild of the preconditioner at the next step (new barrier weight), keeping its
    /// matrix for the next one.
    pub(crate) fn invalidate_preconditioner(&mut self) {
        let p = self.preconditioner.take();
        self.recycle(p);
    }

    /// Takes the preconditioner out: into `kept` when `keep` (whatever `kept` held is recycled),
    /// else recycled. [`NewtonState::restore_preconditioner`] puts a kept one back.
    pub(crate) fn set_aside_preconditioner(&mut self, keep: bool, kept: &mut Option<Preconditioner>) {
        let p = self.preconditioner.take();
        let done = if keep { std::mem::replace(kept, p) } else { p };
        self.recycle(done);
    }

    /// Makes `p` the preconditioner of the next step (for the same barrier weight as when it was
    /// taken out: a factor for another weight rarely converges within the reuse limit).
    pub(crate) fn restore_preconditioner(&mut self, p: Option<Preconditioner>) {
        self.invalidate_preconditioner();
        self.preconditioner = p;
    }

    /// Keeps the matrix of `p` for the next factor.
    fn recycle(&mut self, p: Option<Preconditioner>) {
        if let Some(p) = p {
            p.recycle(&mut self.storage);
        }
    }
}

/// Minimises F from the positive definite `start`, with the stopping rule of `options`
/// and, when `gradient_tol` is set, also stopping once |∇F|ₑ/mₑ ≤ `gradient_tol`ₑ for every
/// entry e.
pub(crate) fn minimise(
    objective: &BarrierObjective<'_>,
    start: Precision,
    t: f64,
    options: &NewtonOptions,
    gradient_tol: Option<&[f64]>,
    state: &mut NewtonState<'_>,
) -> Result<NewtonOutcome, EstimationError> {
    let pattern = objective.pattern;
    let mut lam = start;
    let mut chol = lam.try_factor()?;
    let mut log_det = chol.log_det();
    let mut cg_total = 0;
    let mut steps = 0;
    // Set when the last full Newton step provably met the decrement rule (see below), which
    // spares the factor that checking it directly would cost.
    let mut centred = false;
    loop {
        let theta = lam.values();
        let band = chol.inverse_band();
        let sel = band.on_pattern(pattern);
        let gq = objective.quadratic_gradient(theta);
        let g = objective.gradient(&gq, &sel, t);
        let f_value = objective.quadratic_value(theta) - t * log_det;
        let within = |tol: &[f64]| {
            g.iter().zip(pattern.entries()).zip(tol).all(|((g, e), tol)| g.abs() / e.multiplicity() <= *tol)
        };
        if centred || gradient_tol.is_some_and(within) {
            return Ok(NewtonOutcome { precision: lam, steps, cg_iterations: cg_total, converged: true });
        }
        if steps >= options.max_steps {
            return Ok(NewtonOutcome { precision: lam, steps, cg_iterations: cg_total, converged: false });
        }
        let sigma = chol.inverse_dense();
        let hvp = |v: &[f64]| objective.hessian_vector_product(theta, &sigma, t, v);
        let neg_g: Vec<f64> = g.iter().map(|x| -x).collect();
        let reuse_within = match options.preconditioner {
            NewtonPreconditioner::Jacobi => None,
            NewtonPreconditioner::HessianCholesky { reuse_within } => Some(reuse_within),
        };
        if reuse_within.is_none_or(|r| r == 0) {
            state.invalidate_preconditioner();
        }
        let mut fresh = false;
        let mut iterations = 0;
        let cg = loop {
            if state.preconditioner.is_none() {
                let single = !state.double_precision;
                let precond = preconditioner(
                    objective,
                    theta,
                    options.preconditioner,
                    &band,
                    &sigma,
                    t,
                    single,
                    &mut state.storage,
                );
                state.double_precision |= !precond.is_single_precision();
                state.preconditioner = Some(precond);
                fresh = true;
            }
            let precond = state.preconditioner.as_ref().expect("just built");
            let single = precond.is_single_precision();
            let limit = match (fresh, single) {
                (false, _) => reuse_within.unwrap_or(0),
                (true, true) => SINGLE_PRECISION_CG_LIMIT,
                (true, false) => options.max_cg_iterations,
            }
            .min(options.max_cg_iterations);
            let cg = conjugate_gradient(&hvp, &neg_g, precond, options.cg_rel_tol, limit);
            iterations += cg.iterations;
            if cg.converged || (fresh && !single) {
                break cg;
            }
            // A factor from an earlier point no longer pays for itself: rebuild it here. A
            // fresh f32 factor that fails means f32 no longer carries the Hessian's
            // conditioning (small barrier weights): f64 for the rest of the fit.
            state.double_precision |= fresh;
            state.invalidate_preconditioner();
        };
        cg_total += iterations;
        if !cg.converged && options.stop_when_cg_fails {
            return Ok(NewtonOutcome { precision: lam, steps, cg_iterations: cg_total, converged: false });
        }
        let dir = cg.x;
        let gd = dot(&g, &dir);
        if gd >= 0.0 {
            // CG failed to give a descent direction: only possible through rounding at the optimum.
            return Ok(NewtonOutcome { precision: lam, steps, cg_iterations: cg_total, converged: false });
        }
        if -0.5 * gd <= options.stopping_half_decrement(f_value, t) {
            return Ok(NewtonOutcome { precision: lam, steps, cg_iterations: cg_total, converged: true });
        }
        let Some(LineStep { alpha, precision: trial, factor: c, log_det: ld, change }) =
            backtrack(objective, &lam, log_det, &gq, gd, &dir, t)?
        else {
            return Ok(NewtonOutcome { precision: lam, steps, cg_iterations: cg_total, converged: false });
        };
        // If the bound on the next decrement already meets the rule, the new point is where
        // the rule would stop.
        centred = objective.smooth.is_quadratic()
            && alpha == 1.0
            && half_decrement_after_full_step(-0.5 * gd, t)
                <= options.stopping_half_decrement(f_value + change, t);
        lam = trial;
        chol = c;
        log_det = ld;
        steps += 1;
        state.record(f_value + change, norm(&g), alpha);
    }
}

#[allow(clippy::too_many_arguments)]
fn preconditioner(
    objective: &BarrierObjective<'_>,
    theta: &[f64],
    kind: NewtonPreconditioner,
    band: &InverseBand,
    sigma: &Array2<f64>,
    t: f64,
    single: bool,
    storage: &mut FactorStorage,
) -> Preconditioner {
    let pattern = objective.pattern;
    let jacobi = objective.hessian_diagonal(theta, band, t);
    if kind == NewtonPreconditioner::Jacobi {
        return Preconditioner::Jacobi(jacobi);
    }
    // Symmetric Jacobi scaling C = D^{-1/2} H D^{-1/2} (unit diagonal) before rounding to
    // f32: the barrier makes H's diagonal span ~10 orders of magnitude on MNIST, C's
    // conditioning is what f32 has to carry.
    let scale: Vec<f64> = jacobi.iter().map(|h| 1.0 / h.sqrt()).collect();
    let column = |f: usize, out: &mut [f64]| {
        scaled_hessian_column(pattern, sigma, t, objective.smooth, theta, &scale, f, out)
    };
    // The exact Hessian is positive definite; if rounding says otherwise, fall back.
    // An f32 factor that breaks down is retried in f64 before giving up on the factor.
    let n = pattern.len();
    let factor = if single {
        Preconditioner::cholesky(n, &column, &scale, true, storage)
            .or_else(|| Preconditioner::cholesky(n, &column, &scale, false, storage))
    } else {
        Preconditioner::cholesky(n, &column, &scale, false, storage)
    };
    factor.unwrap_or(Preconditioner::Jacobi(jacobi))
}

/// The tangent dθ/dt of the central path at its point `centre` for weight t: differentiating
/// the centring condition ∇q(θ) − t·∇log|Λ(θ)| = 0 in t gives ∇²F · dθ/dt = ∇log|Λ| =
/// m ∘ P(Σ). Solved by CG with the preconditioner of the stage's last Newton step, built at
/// or next to `centre`; `None` if there is none or CG does not converge.
pub(crate) fn path_tangent(
    objective: &BarrierObjective<'_>,
    centre: &Precision,
    t: f64,
    options: &NewtonOptions,
    state: &NewtonState<'_>,
) -> Result<Option<Vec<f64>>, EstimationError> {
    let Some(precond) = state.preconditioner.as_ref() else { return Ok(None) };
    let chol = centre.try_factor()?;
    let rhs = log_det_gradient(objective.pattern, &chol.inverse_band().on_pattern(objective.pattern));
    let sigma = chol.inverse_dense();
    let hvp = |v: &[f64]| objective.hessian_vector_product(centre.values(), &sigma, t, v);
    let cg = conjugate_gradient(&hvp, &rhs, precond, options.cg_rel_tol, SINGLE_PRECISION_CG_LIMIT);
    Ok(cg.converged.then_some(cg.x))
}

/// A bound on the half decrement ½gᵀ(∇²F)⁻¹g after a full Newton step from a point where it is
/// `half_decrement`. F/t is standard self-concordant (a convex quadratic plus −log|Λ|), and a
/// full step from a point whose decrement of F/t is λ < 1 lands where it is at most (λ/(1 − λ))²
/// (Nesterov 2004, Thm 4.1.14); with λ ≥ 1 there is no bound.
fn half_decrement_after_full_step(half_decrement: f64, t: f64) -> f64 {
    let lambda = (2.0 * half_decrement / t).sqrt();
    if lambda >= 1.0 {
        return f64::INFINITY;
    }
    0.5 * t * (lambda / (1.0 - lambda)).powi(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::diagonal_start;
    use crate::moments::{Reach, SecondMoments};
    use crate::objective::{Quadratic, ScoreMatching};
    use faer::linalg::solvers::Solve;
    use gmrf_model::Neighbourhood;
    use gmrf_model::Pattern;
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    /// Score matching on a 4 × 5 grid, 4 neighbours, from rows of white noise smoothed along the
    /// grid rows (so neighbours correlate), as the barrier objective F = J − t·log|Λ|.
    struct Problem {
        sm: ScoreMatching,
        linear: Vec<f64>,
    }

    impl Problem {
        fn new() -> Self {
            let (h, w, n) = (4, 5, 300);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let x = Array2::from_shape_fn((n, h * w), |_| StandardNormal.sample(&mut rng));
            let smooth = Array2::from_shape_fn((n, h * w), |(r, p)| {
                let left = if p % w > 0 { x[(r, p - 1)] } else { 0.0 };
                (x[(r, p)] + 0.6 * left) as f32
            });
            let pattern = Pattern::new(h, w, Neighbourhood::Four).unwrap();
            let moments = SecondMoments::compute(smooth.view(), &pattern, Reach::TwoHops).unwrap();
            let sm = ScoreMatching::new(&pattern, &moments).unwrap();
            let linear = sm.linear.iter().map(|b| -b).collect();
            Problem { sm, linear }
        }

        fn quadratic(&self) -> Quadratic<'_> {
            Quadratic { hessian: Some(&self.sm.hessian), linear: &self.linear }
        }

        /// diag(1/Sᵢᵢ); H_q on a diagonal entry (i, i) is Sᵢᵢ.
        fn diagonal_start(&self) -> Precision {
            let pattern = self.sm.pattern();
            let d = self.sm.hessian.diagonal();
            let s: Vec<f64> = (0..pattern.dim()).map(|i| d[pattern.diagonal_position(i)]).collect();
            diagonal_start(pattern, &s).unwrap()
        }
    }

    /// The centre for t, to the decrement rule `tol`, or with `tol` = 0 as far as rounding allows.
    fn centre(
        objective: &BarrierObjective<'_>,
        start: Precision,
        t: f64,
        tol: f64,
    ) -> (Precision, NewtonState<'static>) {
        let options = NewtonOptions { decrement_tol: tol, ..NewtonOptions::default() };
        let mut state = NewtonState::new(Instant::now(), None);
        let outcome = minimise(objective, start, t, &options, None, &mut state).unwrap();
        assert!(outcome.converged || tol == 0.0);
        let g = gradient_at(objective, outcome.precision.values(), t);
        let scale = objective
            .quadratic_gradient(outcome.precision.values())
            .iter()
            .fold(0.0, |a: f64, v| a.max(v.abs()));
        assert!(
            g.iter().all(|v| v.abs() <= 1e-6 * scale),
            "not centred: max |∇F| = {:e}",
            g.iter().fold(0.0, |a: f64, v| a.max(v.abs()))
        );
        (outcome.precision, state)
    }

    fn gradient_at(objective: &BarrierObjective<'_>, theta: &[f64], t: f64) -> Vec<f64> {
        let lam = Precision::new(objective.pattern.clone(), theta.to_vec()).unwrap();
        let sel = lam.selected_inverse().unwrap();
        objective.gradient(&objective.quadratic_gradient(theta), &sel, t)
    }

    #[test]
    fn path_tangent_matches_central_differences_of_the_centres() {
        let problem = Problem::new();
        let q = problem.quadratic();
        let objective =
            BarrierObjective { pattern: problem.sm.pattern(), adjacency: &problem.sm.adjacency, smooth: &q };
        let t = 0.5;
        let start = problem.diagonal_start();
        let (lam, state) = centre(&objective, start, t, 0.0);
        let tangent = path_tangent(&objective, &lam, t, &NewtonOptions::default(), &state).unwrap().unwrap();
        // Centres at t(1 ± δ): their difference quotient is the tangent up to O(δ²).
        let delta = 1e-4;
        let (plus, _) = centre(&objective, lam.clone(), t * (1.0 + delta), 0.0);
        let (minus, _) = centre(&objective, lam.clone(), t * (1.0 - delta), 0.0);
        let fd: Vec<f64> =
            plus.values().iter().zip(minus.values()).map(|(p, m)| (p - m) / (2.0 * t * delta)).collect();
        let err = tangent.iter().zip(&fd).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
        let norm = fd.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(err <= 1e-5 * norm, "‖tangent − fd‖ / ‖fd‖ = {:e}", err / norm);
    }

    /// ∇²F at θ by central differences of the gradient (independent of the Hessian-vector
    /// product), symmetrised.
    fn dense_hessian(objective: &BarrierObjective<'_>, theta: &[f64], t: f64) -> faer::Mat<f64> {
        let n = theta.len();
        let mut h = faer::Mat::<f64>::zeros(n, n);
        for k in 0..n {
            let step = 1e-6 * theta[k].abs().max(1e-3);
            let shifted = |s: f64| {
                let mut th = theta.to_vec();
                th[k] += s;
                gradient_at(objective, &th, t)
            };
            let (gp, gm) = (shifted(step), shifted(-step));
            for i in 0..n {
                h[(i, k)] = (gp[i] - gm[i]) / (2.0 * step);
            }
        }
        faer::Mat::<f64>::from_fn(n, n, |i, j| 0.5 * (h[(i, j)] + h[(j, i)]))
    }

    /// The Newton step −H⁻¹g and the half decrement ½gᵀH⁻¹g at θ.
    fn newton_step(objective: &BarrierObjective<'_>, theta: &[f64], t: f64) -> (Vec<f64>, f64) {
        let g = gradient_at(objective, theta, t);
        let rhs = faer::Mat::<f64>::from_fn(g.len(), 1, |i, _| g[i]);
        let h = dense_hessian(objective, theta, t);
        let x = h.llt(faer::Side::Lower).expect("H is positive definite").solve(&rhs);
        let half_decrement = 0.5 * (0..g.len()).map(|i| g[i] * x[(i, 0)]).sum::<f64>();
        ((0..g.len()).map(|i| -x[(i, 0)]).collect(), half_decrement)
    }

    #[test]
    fn full_newton_steps_obey_the_decrement_bound_that_stops_minimise() {
        let problem = Problem::new();
        let q = problem.quadratic();
        let objective =
            BarrierObjective { pattern: problem.sm.pattern(), adjacency: &problem.sm.adjacency, smooth: &q };
        for t in [10.0, 0.1] {
            // Dense Newton from the diagonal start: damped by 1/(1 + λ) while λ ≥ 1, full after.
            let mut theta = problem.diagonal_start().into_values();
            let mut checked = 0;
            for _ in 0..30 {
                let (step, half) = newton_step(&objective, &theta, t);
                let lambda = (2.0 * half / t).sqrt();
                if half < 1e-20 {
                    break;
                }
                let alpha = if lambda < 1.0 { 1.0 } else { 1.0 / (1.0 + lambda) };
                theta = theta.iter().zip(&step).map(|(x, d)| x + alpha * d).collect();
                if alpha == 1.0 {
                    let (_, next) = newton_step(&objective, &theta, t);
                    let bound = half_decrement_after_full_step(half, t);
                    // Central differences limit the computed decrement to ~1e-18 of |F|.
                    assert!(
                        next <= bound * (1.0 + 1e-6) + 1e-18,
                        "t = {t}: λ = {lambda}: {next:e} > bound {bound:e}"
                    );
                    checked += 1;
                }
            }
            assert!(checked >= 2, "t = {t}: only {checked} full steps");

            // And minimise, which stops on the bound, returns a point that meets its rule.
            let tol = NewtonOptions::default().decrement_tol;
            let start = problem.diagonal_start();
            let (lam, _) = centre(&objective, start, t, tol);
            let (_, half) = newton_step(&objective, lam.values(), t);
            let f = objective.quadratic_value(lam.values()) - t * lam.log_det().unwrap();
            assert!(half <= tol * f.abs().max(1.0), "t = {t}: ½gᵀH⁻¹g = {half:e}, |F| = {f:e}");
        }
    }
}
