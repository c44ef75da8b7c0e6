//! The minibatch first-order loop of the contrastive estimators: plain gradient descent, RMSprop
//! (the original's) and Adam (Kingma & Ba 2015), with a constant or cosine-decayed learning rate,
//! over an objective that gives its loss and gradient on a range of rows ([`Minibatched`]).
//!
//! Each update rule returns the step Δ to subtract from θ; the loop shortens Δ until Λ stays
//! positive definite. The moment estimates are updated with the gradient whatever happens to the
//! step.

use std::time::Instant;

use gmrf_model::{Cholesky, Precision};
use rand::Rng;

use super::line_search::halve_until;
use crate::EstimationError;
use crate::fit::{Progress, TraceRow};
use crate::moments::norm;

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OptimiserKind {
    /// Δ = η g.
    Gd,
    /// v ← ρv + (1 − ρ)g², Δ = η g/(√v + ε), ρ = 0.9, ε = 1e-10 (TensorFlow 1's RMSprop, which
    /// the original used).
    RmsProp,
    /// m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², Δ = η m̂/(√v̂ + ε) with bias-corrected m̂, v̂,
    /// β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    #[default]
    Adam,
}

impl OptimiserKind {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            OptimiserKind::Gd => "gd",
            OptimiserKind::RmsProp => "rmsprop",
            OptimiserKind::Adam => "adam",
        }
    }
}

/// How the learning rate evolves over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Schedule {
    /// η_t = η.
    Constant,
    /// η_t = η · ½(1 + cos(π t/T)) over the T steps of the run.
    #[default]
    Cosine,
}

impl Schedule {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Cosine => "cosine",
        }
    }

    /// η at step `t` (0-based) of `total`.
    pub fn rate(self, eta: f64, t: u32, total: u32) -> f64 {
        match self {
            Schedule::Constant => eta,
            Schedule::Cosine => {
                eta * 0.5 * (1.0 + (std::f64::consts::PI * f64::from(t) / f64::from(total.max(1))).cos())
            }
        }
    }
}

/// The optimiser's state over the parameter vector.
#[derive(Clone, Debug)]
pub struct Optimiser {
    kind: OptimiserKind,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Optimiser {
    /// A fresh optimiser for `n` parameters.
    pub fn new(kind: OptimiserKind, n: usize) -> Self {
        Optimiser { kind, m: vec![0.0; n], v: vec![0.0; n], t: 0 }
    }

    /// Updates the state with gradient `g` and returns the step Δ (θ ← θ − Δ) at rate `eta`.
    pub fn step(&mut self, g: &[f64], eta: f64) -> Vec<f64> {
        self.t += 1;
        match self.kind {
            OptimiserKind::Gd => g.iter().map(|g| eta * g).collect(),
            OptimiserKind::RmsProp => {
                const RHO: f64 = 0.9;
                const EPS: f64 = 1e-10;
                g.iter()
                    .zip(&mut self.v)
                    .map(|(&g, v)| {
                        *v = RHO * *v + (1.0 - RHO) * g * g;
                        eta * g / (v.sqrt() + EPS)
                    })
                    .collect()
            }
            OptimiserKind::Adam => {
                const B1: f64 = 0.9;
                const B2: f64 = 0.999;
                const EPS: f64 = 1e-8;
                let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
                g.iter()
                    .zip(self.m.iter_mut().zip(&mut self.v))
                    .map(|(&g, (m, v))| {
                        *m = B1 * *m + (1.0 - B1) * g;
                        *v = B2 * *v + (1.0 - B2) * g * g;
                        eta * (*m / c1) / ((*v / c2).sqrt() + EPS)
                    })
                    .collect()
            }
        }
    }
}

/// Settings shared by [`crate::fit_nce`] and [`crate::fit_cnce`]: the optimiser and its batches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContrastiveOptions {
    /// Update rule. Default Adam.
    pub optimiser: OptimiserKind,
    /// Learning-rate schedule. Default cosine decay to 0 over `steps`.
    pub schedule: Schedule,
    /// Initial learning rate η, in standardised coordinates. Default 0.1 (the prototype's).
    pub learning_rate: f64,
    /// Data rows per step (0: full batch). NCE adds ν times as many noise rows. Default 2000.
    pub batch_size: usize,
    /// Step limit. Default 1000.
    pub steps: u32,
    /// Stop when ‖θ_{t+1} − θ_t‖ < tolerance·‖θ_t‖. Default 0 (run all `steps`).
    pub tolerance: f64,
    /// Halvings of a step tried before it is rejected (Λ kept). Default 30.
    pub max_halvings: u32,
    /// Draw the noise afresh at each epoch instead of once per fit. Default false.
    pub noise_per_epoch: bool,
    /// Seed of the noise and of the minibatch order (ChaCha8). Default 0.
    pub seed: u64,
    /// Held-out loss every this many steps (and at the last), when held-out data is given; 0:
    /// never. Default 50.
    pub trace_every: u32,
}

impl Default for ContrastiveOptions {
    fn default() -> Self {
        ContrastiveOptions {
            optimiser: OptimiserKind::Adam,
            schedule: Schedule::Cosine,
            learning_rate: 0.1,
            batch_size: 2000,
            steps: 1000,
            tolerance: 0.0,
            max_halvings: 30,
            noise_per_epoch: false,
            seed: 0,
            trace_every: 50,
        }
    }
}

/// What the optimiser loop reports besides Λ.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// Steps taken.
    pub steps: u32,
    /// Whether the relative-change tolerance stopped the run.
    pub converged: bool,
    /// Total step halvings (steps shortened to keep Λ positive definite).
    pub halvings: u64,
    /// Steps rejected after every halving failed.
    pub rejected_steps: u32,
    /// Epochs started (passes over the training data).
    pub epochs: u64,
}

/// A contrastive objective, minibatched over the data rows.
pub(crate) trait Minibatched {
    /// Number of data rows N.
    fn n_rows(&self) -> usize;
    /// Whether a free log-normaliser c follows the entries of Λ in θ.
    fn learned_normaliser(&self) -> bool;
    /// Starts epoch `epoch` (0-based): a new order of the rows, and new noise if asked.
    fn start_epoch(&mut self, epoch: u64) -> Result<(), EstimationError>;
    /// Loss and gradient in θ over the data rows at positions `range` of this epoch's order.
    fn loss_gradient(
        &self,
        lam: &Precision,
        factor: &Cholesky,
        c: f64,
        range: std::ops::Range<usize>,
    ) -> Result<(f64, Vec<f64>), EstimationError>;
    /// Loss on the held-out data, if any.
    fn heldout_loss(
        &self,
        lam: &Precision,
        factor: &Cholesky,
        c: f64,
    ) -> Result<Option<f64>, EstimationError>;
}

/// Minimises `objective` from (Λ₀, c₀). Every accepted step has a Cholesky factor: a step whose
/// Λ has none is halved, up to `max_halvings` times, then rejected. Fails as soon as a loss or
/// gradient is not finite.
pub(crate) fn optimise(
    objective: &mut dyn Minibatched,
    method: &'static str,
    start: Precision,
    c0: f64,
    options: &ContrastiveOptions,
    progress: Progress<'_>,
) -> Result<(Precision, f64, Vec<TraceRow>, RunSummary), EstimationError> {
    let clock = Instant::now();
    let n = objective.n_rows();
    let batch = if options.batch_size == 0 || options.batch_size >= n { n } else { options.batch_size };
    let learned = objective.learned_normaliser();
    let mut lam = start;
    let mut c = c0;
    let mut factor = lam.try_factor()?;
    let n_theta = lam.values().len() + usize::from(learned);
    let mut opt = Optimiser::new(options.optimiser, n_theta);
    let mut trace = Vec::with_capacity(options.steps as usize);
    let mut summary = RunSummary { steps: 0, converged: false, halvings: 0, rejected_steps: 0, epochs: 0 };
    let mut pos = 0usize;
    for step in 1..=options.steps {
        if pos == 0 {
            objective.start_epoch(summary.epochs)?;
            summary.epochs += 1;
        }
        let range = pos..(pos + batch).min(n);
        pos = if range.end == n { 0 } else { range.end };
        let (loss, grad) = objective.loss_gradient(&lam, &factor, c, range)?;
        let grad_norm = norm(&grad);
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(EstimationError::NoProgress {
                method,
                reason: format!(
                    "step {step}: the loss ({loss}) or the gradient norm ({grad_norm}) is not finite"
                ),
            });
        }
        let eta = options.schedule.rate(options.learning_rate, step - 1, options.steps);
        let delta = opt.step(&grad, eta);
        let step_dir: Vec<f64> = delta.iter().map(|d| -d).collect();
        let accepted = halve_until(&lam, &step_dir, 1.0, options.max_halvings, |_, _, _| true)?;
        let (scale, change) = match accepted {
            Some((scale, halvings, trial, f)) => {
                summary.halvings += u64::from(halvings);
                lam = trial;
                factor = f;
                if learned {
                    c -= scale * delta[n_theta - 1];
                }
                (scale, delta.iter().map(|d| (scale * d).powi(2)).sum::<f64>().sqrt())
            }
            None => {
                summary.halvings += u64::from(options.max_halvings);
                summary.rejected_steps += 1;
                (0.0, 0.0)
            }
        };
        let theta_norm =
            (lam.values().iter().map(|v| v * v).sum::<f64>() + if learned { c * c } else { 0.0 }).sqrt();
        let converged = scale > 0.0 && change < options.tolerance * theta_norm;
        let last = step == options.steps || converged;
        let heldout_loss = if options.trace_every > 0 && (step % options.trace_every == 0 || last) {
            objective.heldout_loss(&lam, &factor, c)?
        } else {
            None
        };
        trace.push(TraceRow {
            step,
            loss,
            grad_norm,
            step_size: eta * scale,
            elapsed_s: clock.elapsed().as_secs_f64(),
            heldout_loss,
        });
        if let Some(p) = progress {
            p(step, loss);
        }
        summary.steps = step;
        if converged {
            summary.converged = true;
            break;
        }
    }
    Ok((lam, c, trace, summary))
}

/// A uniformly random permutation of 0..n (Fisher–Yates with the caller's RNG).
pub(crate) fn permutation<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_optimiser_minimises_a_quadratic() {
        for kind in [OptimiserKind::Gd, OptimiserKind::RmsProp, OptimiserKind::Adam] {
            let mut theta = vec![3.0, -2.0];
            let mut opt = Optimiser::new(kind, 2);
            for t in 0..2000 {
                let g = vec![theta[0] - 1.0, 4.0 * (theta[1] + 0.5)];
                let eta = Schedule::Cosine.rate(0.1, t, 2000);
                for (x, d) in theta.iter_mut().zip(opt.step(&g, eta)) {
                    *x -= d;
                }
            }
            assert!((theta[0] - 1.0).abs() < 1e-3 && (theta[1] + 0.5).abs() < 1e-3, "{kind:?}: {theta:?}");
        }
    }
}
