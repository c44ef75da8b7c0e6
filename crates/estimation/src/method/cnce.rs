//! `cnce`: conditional noise-contrastive estimation of Λ (Ceylan & Gutmann 2018).
//!
//! Each data row xᵢ gets κ noisy copies yᵢₖ = xᵢ + σεᵢₖ, εᵢₖ ~ N(0, I) in standardised
//! coordinates (so each pixel's noise is σ times its own standard deviation). The noise is
//! symmetric, p(y|x) = p(x|y), so the classifier's log-odds need no normaliser:
//!
//! G(x, y) = log p_θ(x) − log p_θ(y) = −½ xᵀΛx + ½ yᵀΛy,
//! J(θ) = (1/(Nκ)) Σᵢₖ softplus(−G(xᵢ, yᵢₖ)),
//! ∂J/∂Λ = Σᵢₖ wᵢₖ · ½ (yᵢₖyᵢₖᵀ − xᵢxᵢᵀ),  wᵢₖ = −σ(−G(xᵢ, yᵢₖ))/(Nκ),
//!
//! read on the pattern: weighted second moments only, no Λ⁻¹ (the Cholesky factor serves only
//! to keep Λ positive definite).
//!
//! The default σ = 2/√d (in units of each pixel's standard deviation; 0.071 on 28 × 28): at the
//! start, Λ = I in standardised coordinates, G(x, y) = σεᵀx + ½σ²‖ε‖² ~ N(σ²d/2, σ²d) = N(2, 4),
//! so the copies are told apart often but not always. A σ fixed regardless of d is either
//! trivially separable on 784 pixels or nearly indistinguishable on a few: what matters is the
//! spread of G, which grows like σ√(tr Λ). Much smaller σ and cNCE tends to score matching
//! (Ceylan & Gutmann 2018, §4), whose optimum on MNIST is not positive definite; much larger,
//! and the copies are separated by their energy alone and the gradients vanish.
//!
//! On MNIST's 4- and 8-neighbour patterns cNCE, like score matching, has no positive definite
//! optimum: for every σ tried (0.071 to 1) the fit runs into the boundary of the cone and stops
//! there, its smallest eigenvalue ~1e-13. As for score matching, a log-barrier keeps it inside and
//! acts as a regulariser: with `barrier` t > 0 the objective is
//!
//! J_t(θ) = J(θ) − (t/d) log|Λ|,  ∂J_t/∂θₑ = ∂J/∂θₑ − (t/d) mₑ (Λ⁻¹)ᵢⱼ,
//!
//! in standardised coordinates; (1/d) log|Λ| is the mean log-eigenvalue, so t weighs it against
//! the per-copy loss J (O(1)) whatever the image size.
//!
//! The noise of row i is drawn from its own ChaCha8 stream (seed, epoch, row), so it does not
//! depend on the minibatch order or the thread count, and is regenerated rather than stored.

use gmrf_model::{Cholesky, Pattern, Precision, log_normaliser};
use ndarray::{Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use std::time::Instant;

use super::contrastive::{
    Certificate, Chosen, Standardised, choose_barrier_weight, full_batch_minimum, identity_start,
    masked_mle_start, refit_at, standardise,
};
use super::nce::Solver;
use super::{check_rows, with_validation_rows};
use crate::EstimationError;
use crate::fit::{Fit, Progress};
use crate::moments::{Reach, SecondMoments};
use crate::objective::cnce::{add_barrier, cnce_terms, gradient_of};
use crate::objective::{ContrastiveLoss, Planes, Sample, Smooth};
use crate::solve::{ContrastiveOptions, Minibatched, NewtonState, RunSummary, optimise, permutation};

/// Options of [`fit_cnce`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CnceOptions {
    /// Noisy copies per data row, κ. Default 4.
    pub kappa: u32,
    /// Noise standard deviation as a fraction of each pixel's standard deviation; `None`: with
    /// [`Solver::Newton`] and validation rows, the σ of [`SIGMA_GRID`] (times 2/√d) whose
    /// validated fit scores best on them; otherwise 2/√d.
    pub sigma: Option<f64>,
    /// Weight t of the log-barrier −(t/d) log|Λ| added to J (standardised coordinates); 0 for
    /// plain cNCE. Default 0.
    pub barrier: f64,
    /// Full-batch Newton (default) or the minibatch loop of `run`.
    pub solver: Solver,
    /// Optimiser, batches and seed.
    pub run: ContrastiveOptions,
}

impl Default for CnceOptions {
    fn default() -> Self {
        CnceOptions {
            kappa: 4,
            sigma: None,
            barrier: 0.0,
            solver: Solver::Newton,
            run: ContrastiveOptions::default(),
        }
    }
}

/// Diagnostics of [`fit_cnce`].
#[derive(Clone, Debug, PartialEq)]
pub struct CnceDiagnostics {
    /// The σ used (fraction of each pixel's standard deviation).
    pub sigma: f64,
    /// The σ tried on the validation rows ([`Solver::Newton`] with validation rows: the grid, or
    /// the σ given), in order.
    pub sigma_path: Vec<SigmaCandidate>,
    /// The minibatch optimiser's summary ([`Solver::Minibatch`]).
    pub run: Option<RunSummary>,
    /// Newton's certificate ([`Solver::Newton`]).
    pub certificate: Option<Certificate>,
    /// ½ log|Λ| − (d/2) log 2π at the returned Λ, in the original units.
    pub exact_log_normaliser: f64,
    /// J over all fitted rows and their copies at the returned Λ (minibatch: J_t, plus the
    /// barrier term, with the first epoch's copies).
    pub final_loss: f64,
    /// J_t on the validation rows at the returned Λ (minibatch, when they were given).
    pub heldout_loss: Option<f64>,
}

/// yᵢₖ = xᵢ + σεᵢₖ, k = 1..κ, with the εᵢₖ drawn in order from the ChaCha8 stream `r` of a
/// generator seeded by `key`.
fn random_copies(key: u64, sigma: f64, r: usize, x: &[f64], ys: &mut [f64]) {
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    rng.set_stream(r as u64);
    for y in ys.chunks_mut(x.len()) {
        for (yv, &xv) in y.iter_mut().zip(x) {
            *yv = xv + sigma * rng.sample::<f64, _>(StandardNormal);
        }
    }
}

/// The key of the noise of epoch `epoch` (0 when the noise is fixed) of set `set` (0 training,
/// 1 held-out): a SplitMix64 mix of the seed, so keys of nearby seeds share nothing.
fn noise_key(seed: u64, epoch: u64, set: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ set.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct CnceProblem {
    planes: Planes,
    options: CnceOptions,
    sigma: f64,
    rng: ChaCha8Rng,
    z: Array2<f32>,
    order: Vec<usize>,
    key: u64,
    test: Option<Array2<f32>>,
}

impl CnceProblem {
    fn loss_acc(&self, lam: &Precision, x: ArrayView2<'_, f32>, rows: &[usize], key: u64) -> (f64, Vec<f64>) {
        let (sigma, kappa) = (self.sigma, self.options.kappa as usize);
        let copies = move |r: usize, x: &[f64], ys: &mut [f64]| random_copies(key, sigma, r, x, ys);
        let lp = self.planes.of_values(lam.pattern(), lam.values());
        cnce_terms(&self.planes, &lp, x, rows, kappa, &copies)
    }

    /// J_t = J − (t/d) log|Λ| over `rows` of `x`, with the copies of noise `key`.
    fn loss(
        &self,
        lam: &Precision,
        factor: &Cholesky,
        x: ArrayView2<'_, f32>,
        rows: &[usize],
        key: u64,
    ) -> f64 {
        let mut loss = self.loss_acc(lam, x, rows, key).0;
        add_barrier(lam, factor, self.options.barrier, &mut loss, None);
        loss
    }
}

impl Minibatched for CnceProblem {
    fn n_rows(&self) -> usize {
        self.z.nrows()
    }

    fn learned_normaliser(&self) -> bool {
        false
    }

    fn start_epoch(&mut self, epoch: u64) -> Result<(), EstimationError> {
        self.key =
            noise_key(self.options.run.seed, if self.options.run.noise_per_epoch { epoch } else { 0 }, 0);
        self.order = permutation(self.z.nrows(), &mut self.rng);
        Ok(())
    }

    fn loss_gradient(
        &self,
        lam: &Precision,
        factor: &Cholesky,
        _c: f64,
        range: std::ops::Range<usize>,
    ) -> Result<(f64, Vec<f64>), EstimationError> {
        let (mut loss, acc) = self.loss_acc(lam, self.z.view(), &self.order[range], self.key);
        let mut gradient = gradient_of(&self.planes, lam.pattern(), &acc);
        add_barrier(lam, factor, self.options.barrier, &mut loss, Some(&mut gradient));
        Ok((loss, gradient))
    }

    fn heldout_loss(
        &self,
        lam: &Precision,
        factor: &Cholesky,
        _c: f64,
    ) -> Result<Option<f64>, EstimationError> {
        let key = noise_key(self.options.run.seed, 0, 1);
        Ok(self
            .test
            .as_ref()
            .map(|t| self.loss(lam, factor, t.view(), &(0..t.nrows()).collect::<Vec<_>>(), key)))
    }
}

/// Fits Λ by cNCE on centred data `x` (N × d); `validation` holds rows of the same training
/// table set aside. With [`Solver::Newton`] they choose the barrier weight t by their held-out
/// likelihood under fits to `x`, and Λ is then fitted to all rows at that t (without them, Λ is
/// the minimiser of J itself); with [`Solver::Minibatch`] their loss is traced.
pub fn fit_cnce(
    x: ArrayView2<'_, f32>,
    validation: Option<ArrayView2<'_, f32>>,
    pattern: &Pattern,
    options: &CnceOptions,
    progress: Progress<'_>,
) -> Result<Fit<CnceDiagnostics>, EstimationError> {
    options.check()?;
    check_rows("cnce", x.nrows())?;
    let default_sigma = 2.0 / (pattern.dim() as f64).sqrt();
    let sigma = options.sigma.unwrap_or(default_sigma);
    if options.solver == Solver::Newton {
        let validation = validation.filter(|v| v.nrows() > 0);
        let sigmas: Vec<f64> = match (options.sigma, validation) {
            (None, Some(_)) => SIGMA_GRID.iter().map(|k| k * default_sigma).collect(),
            _ => vec![sigma],
        };
        return newton_cnce(x, validation, &sigmas, pattern, options, progress);
    }
    let Standardised { standard, z, test } = standardise(x, validation, pattern)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.run.seed);
    rng.set_stream(2);
    let mut problem = CnceProblem {
        planes: Planes::new(pattern),
        options: *options,
        sigma,
        rng,
        z,
        order: Vec::new(),
        key: 0,
        test,
    };
    let d = pattern.dim();
    let start = identity_start(pattern)?;
    let (lam_z, _, trace, run) = optimise(&mut problem, "cnce", start, 0.0, &options.run, progress)?;
    let rows: Vec<usize> = (0..problem.z.nrows()).collect();
    let factor = lam_z.try_factor()?;
    let final_loss =
        problem.loss(&lam_z, &factor, problem.z.view(), &rows, noise_key(options.run.seed, 0, 0));
    let heldout_loss = problem.heldout_loss(&lam_z, &factor, 0.0)?;
    let exact_log_normaliser = log_normaliser(factor.log_det(), d) - standard.log_det();
    Ok(Fit {
        precision: standard.to_original(&lam_z)?,
        trace,
        diagnostics: CnceDiagnostics {
            sigma,
            sigma_path: Vec::new(),
            run: Some(run),
            certificate: None,
            exact_log_normaliser,
            final_loss,
            heldout_loss,
        },
    })
}

/// The κ noisy copies zᵣ + σε of every row, ε drawn from ChaCha8 seeded by a hash of the seed and
/// the row's own values: the copies of an image do not depend on where it stands in the table.
fn copies_by_content(
    z: ArrayView2<'_, f32>,
    x: ArrayView2<'_, f32>,
    kappa: usize,
    sigma: f64,
    seed: u64,
) -> Array2<f32> {
    let d = z.ncols();
    let mut copies = Array2::<f32>::zeros((z.nrows() * kappa, d));
    copies.axis_chunks_iter_mut(Axis(0), kappa).into_par_iter().enumerate().for_each(|(r, mut block)| {
        let key = x.row(r).iter().fold(seed, |h, v| noise_key(h, u64::from(v.to_bits()), 2));
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        for mut y in block.rows_mut() {
            for (yv, &zv) in y.iter_mut().zip(z.row(r)) {
                *yv = (f64::from(zv) + sigma * rng.sample::<f64, _>(StandardNormal)) as f32;
            }
        }
    });
    copies
}

/// The candidates of σ that the validation rows choose from when none is given ([`Solver::Newton`]),
/// as multiples of the default 2/√d: from copies told apart at a glance to copies within
/// rounding of the data, where cNCE becomes score matching.
pub const SIGMA_GRID: [f64; 4] = [2.0, 1.0, 0.5, 0.25];

/// One σ tried on the validation rows.
#[derive(Clone, Debug, PartialEq)]
pub struct SigmaCandidate {
    /// σ (fraction of each pixel's standard deviation).
    pub sigma: f64,
    /// The barrier weight its path chose, and that stage's validation nll (nats per pixel);
    /// `None` when the loss had no estimate for it (the reason is in `refused`).
    pub chosen: Option<(f64, f64)>,
    /// Why σ was refused: the error of its barrier path.
    pub refused: Option<String>,
}

/// The full-batch cNCE estimate: all rows (`x`, then the validation rows) standardised, κ copies
/// of each. With validation rows, each σ of `sigmas` runs the barrier path of the first N_fit rows'
/// pairs; the σ and t whose stage scores best on the validation rows are kept, and the pairs of
/// every row are fitted at them. Without, the minimiser of J for `sigmas[0]` (see [`fit_cnce`]).
fn newton_cnce(
    x: ArrayView2<'_, f32>,
    validation: Option<ArrayView2<'_, f32>>,
    sigmas: &[f64],
    pattern: &Pattern,
    options: &CnceOptions,
    progress: Progress<'_>,
) -> Result<Fit<CnceDiagnostics>, EstimationError> {
    let all = with_validation_rows(x, validation)?;
    let Standardised { standard, z, .. } = standardise(all.view(), None, pattern)?;
    let kappa = options.kappa as usize;
    let (n, n_fit) = (z.nrows(), x.nrows());
    // Data rows then their copies; the copies of an image depend on its pixels and the seed alone.
    let rows_for = |sigma: f64| -> Result<Array2<f32>, EstimationError> {
        let copies = copies_by_content(z.view(), all.view(), kappa, sigma, options.run.seed);
        ndarray::concatenate(Axis(0), &[z.view(), copies.view()])
            .map_err(|e| EstimationError::Shape(format!("data rows and copies: {e}")))
    };
    // softplus(−G), G = ½yᵀΛy − ½xᵀΛx, for every pair (row r, its copy k) of the first `rows` rows.
    let pairs = |rows: usize| -> Vec<Sample> {
        (0..rows * kappa)
            .map(|p| Sample {
                sign: -1.0,
                offset: 0.0,
                parts: [((p / kappa) as u32, -0.5), ((n + p) as u32, 0.5)],
            })
            .collect()
    };
    let start = masked_mle_start(z.slice(ndarray::s![..n_fit, ..]), pattern)?;
    let mut sigma_path = Vec::new();
    // J over all rows and their copies at the estimate, from the loss that fitted it.
    let (sigma, minimum, final_loss) = if n_fit < n {
        let held_out = SecondMoments::compute(z.slice(ndarray::s![n_fit.., ..]), pattern, Reach::Pattern)?;
        let mut state = NewtonState::new(Instant::now(), progress);
        let mut best: Option<(f64, Chosen)> = None;
        for &sigma in sigmas {
            let rows = rows_for(sigma)?;
            let fit = ContrastiveLoss::new(pattern, rows.view(), pairs(n_fit), n_fit * kappa, false);
            state.invalidate_preconditioner();
            match choose_barrier_weight("cnce", &fit, &held_out, start.clone(), &mut state) {
                Ok(chosen) => {
                    sigma_path.push(SigmaCandidate {
                        sigma,
                        chosen: Some((chosen.t, chosen.validation_nll)),
                        refused: None,
                    });
                    if best.as_ref().is_none_or(|(_, b)| chosen.validation_nll < b.validation_nll) {
                        best = Some((sigma, chosen));
                    }
                }
                // A σ at which the loss has no estimate (or Newton cannot reach it) is not a candidate.
                Err(e @ (EstimationError::NoEstimate { .. } | EstimationError::NoProgress { .. })) => {
                    sigma_path.push(SigmaCandidate { sigma, chosen: None, refused: Some(e.to_string()) })
                }
                Err(e) => return Err(e),
            }
        }
        let Some((sigma, chosen)) = best else {
            return Err(EstimationError::NoEstimate {
                method: "cnce",
                reason: format!(
                    "no σ of {sigmas:?} gave a barrier path on the fitting rows: {}",
                    sigma_path.iter().filter_map(|c| c.refused.as_deref()).collect::<Vec<_>>().join("; ")
                ),
            });
        };
        let rows = rows_for(sigma)?;
        let loss = ContrastiveLoss::new(pattern, rows.view(), pairs(n), n * kappa, false);
        let minimum = refit_at("cnce", &loss, chosen, 1e-16, state)?;
        let final_loss = loss.value(minimum.precision.values());
        (sigma, minimum, final_loss)
    } else {
        let sigma = sigmas[0];
        let rows = rows_for(sigma)?;
        let loss = ContrastiveLoss::new(pattern, rows.view(), pairs(n), n * kappa, false);
        let minimum = full_batch_minimum("cnce", &loss, None, start, 1e-16, progress)?;
        let final_loss = loss.value(minimum.precision.values());
        (sigma, minimum, final_loss)
    };
    let lam_z = minimum.precision;
    let factor = lam_z.try_factor()?;
    let exact_log_normaliser = log_normaliser(factor.log_det(), pattern.dim()) - standard.log_det();
    Ok(Fit {
        precision: standard.to_original(&lam_z)?,
        trace: minimum.trace,
        diagnostics: CnceDiagnostics {
            sigma,
            sigma_path,
            run: None,
            certificate: Some(minimum.certificate),
            exact_log_normaliser,
            final_loss,
            heldout_loss: None,
        },
    })
}
