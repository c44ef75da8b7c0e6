//! `nce`: noise-contrastive estimation of Λ (Gutmann & Hyvärinen 2010, 2012), in standardised
//! coordinates.
//!
//! By default ([`Solver::Newton`]) the estimate is the certified minimiser of the full-batch NCE
//! loss with a learned normaliser, J(Λ) = min_c (1/N) [Σᵢ softplus(−G(xᵢ)) + Σⱼ softplus(G(yⱼ))],
//! G(u) = c − ½uᵀΛu − log p_n(u) − log ν, over the data xᵢ and a fixed draw of νN noise rows yⱼ
//! ([`crate::objective::ContrastiveLoss`]): a convex function of Λ, minimised by Newton-CG to a
//! decrement tolerance. The minibatch first-order loop ([`Solver::Minibatch`], the homework's
//! way; objective [`crate::objective::nce`]) stays available.

use gmrf_model::{Cholesky, Pattern, Precision};
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::contrastive::{
    Certificate, Standardised, full_batch_minimum, identity_start, masked_mle_start, standardise,
};
use super::{check_rows, with_validation_rows};
use crate::EstimationError;
use crate::fit::{Fit, Progress};
use crate::moments::{Reach, SecondMoments};
use crate::objective::nce::{all_rows, log_normaliser, nce_loss_gradient};
use crate::objective::{
    ContrastiveLoss, GaussianNoise, NoiseKind, Planes, Sample, Smooth,
};
use crate::solve::{ContrastiveOptions, Minibatched, RunSummary, optimise, permutation};

/// How the model's log-normaliser is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Normaliser {
    /// ½ log|Λ| − (d/2) log 2π from the Cholesky factor.
    #[default]
    Exact,
    /// A free parameter c, learned beside Λ.
    Learned,
}

impl Normaliser {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Normaliser::Exact => "exact",
            Normaliser::Learned => "learned",
        }
    }
}

/// How `nce` and `cnce` compute their estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Solver {
    /// The full-batch loss (learned normaliser for NCE) minimised by Newton-CG: a certified
    /// optimum, or a point of a barrier path chosen on validation data.
    #[default]
    Newton,
    /// The minibatch first-order loop (GD, RMSprop, Adam) for a fixed number of steps.
    Minibatch,
}

/// Options of [`fit_nce`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NceOptions {
    /// Full-batch Newton (default) or the minibatch loop of `run`.
    pub solver: Solver,
    /// Newton's stopping rule for [`Solver::Newton`]: half the squared Newton decrement at most
    /// this times max(1, |J|). Default 1e-16.
    pub decrement_tol: f64,
    /// Exact or learned log-normaliser, for [`Solver::Minibatch`] (full-batch Newton always
    /// learns c: the loss is then convex). Default exact.
    pub normaliser: Normaliser,
    /// Noise density. Default [`NoiseKind::Full`].
    pub noise: NoiseKind,
    /// Noise rows per data row, ν. Default 1.
    pub nu: f64,
    /// Ridge added to the (standardised, unit-diagonal) covariance of `full` noise. Default 1e-4.
    pub ridge: f64,
    /// Optimiser, batches and seed.
    pub run: ContrastiveOptions,
}

impl NceOptions {
    /// Noise rows for `rows` data rows: round(ν·rows), at least one (as f64, so that a size past
    /// any memory can still be reported).
    pub(crate) fn noise_rows(&self, rows: usize) -> f64 {
        (self.nu * rows as f64).round().max(1.0)
    }
}

impl Default for NceOptions {
    fn default() -> Self {
        NceOptions {
            solver: Solver::Newton,
            decrement_tol: 1e-16,
            normaliser: Normaliser::Exact,
            noise: NoiseKind::Full,
            nu: 1.0,
            ridge: 1e-4,
            run: ContrastiveOptions::default(),
        }
    }
}

/// Diagnostics of [`fit_nce`].
#[derive(Clone, Debug, PartialEq)]
pub struct NceDiagnostics {
    /// The minibatch optimiser's summary ([`Solver::Minibatch`]).
    pub run: Option<RunSummary>,
    /// Newton's certificate ([`Solver::Newton`]).
    pub certificate: Option<Certificate>,
    /// Noise rows in the pool (ν N).
    pub n_noise: usize,
    /// ½ log|Λ| − (d/2) log 2π at the returned Λ, in the original units.
    pub exact_log_normaliser: f64,
    /// The learned c, in the original units (`None` with the exact normaliser).
    pub learned_log_normaliser: Option<f64>,
    /// J over all training rows and the whole noise pool at the returned Λ.
    pub final_loss: f64,
    /// J on the held-out rows at the returned Λ, when they were given.
    pub heldout_loss: Option<f64>,
}

/// Held-out rows, their noise rows, and both noise log-densities.
type HeldOut = (Array2<f32>, Vec<f64>, Array2<f32>, Vec<f64>);

struct NceProblem {
    planes: Planes,
    normaliser: Normaliser,
    nu: f64,
    noise: GaussianNoise,
    per_epoch: bool,
    rng: ChaCha8Rng,
    z: Array2<f32>,
    z_log_pn: Vec<f64>,
    pool: Array2<f32>,
    pool_log_pn: Vec<f64>,
    data_order: Vec<usize>,
    noise_order: Vec<usize>,
    test: Option<HeldOut>,
}

impl NceProblem {
    fn c(&self, c: f64) -> Option<f64> {
        (self.normaliser == Normaliser::Learned).then_some(c)
    }
}

impl Minibatched for NceProblem {
    fn n_rows(&self) -> usize {
        self.z.nrows()
    }

    fn learned_normaliser(&self) -> bool {
        self.normaliser == Normaliser::Learned
    }

    fn start_epoch(&mut self, epoch: u64) -> Result<(), EstimationError> {
        if epoch > 0 && self.per_epoch {
            self.pool = self.noise.sample(self.pool.nrows(), &mut self.rng);
            self.pool_log_pn = self.noise.log_density(self.pool.view());
        }
        self.data_order = permutation(self.z.nrows(), &mut self.rng);
        self.noise_order = permutation(self.pool.nrows(), &mut self.rng);
        Ok(())
    }

    fn loss_gradient(
        &self,
        lam: &Precision,
        factor: &Cholesky,
        c: f64,
        range: std::ops::Range<usize>,
    ) -> Result<(f64, Vec<f64>), EstimationError> {
        let ratio = self.pool.nrows() as f64 / self.z.nrows() as f64;
        let (a, b) =
            ((range.start as f64 * ratio).round() as usize, (range.end as f64 * ratio).round() as usize);
        let g = nce_loss_gradient(
            &self.planes,
            lam,
            factor,
            self.c(c),
            (self.z.view(), &self.data_order[range], &self.z_log_pn),
            (self.pool.view(), &self.noise_order[a..b.min(self.pool.nrows())], &self.pool_log_pn),
            self.nu,
            true,
        );
        let mut grad = g.precision;
        grad.extend(g.normaliser);
        Ok((g.loss, grad))
    }

    fn heldout_loss(
        &self,
        lam: &Precision,
        factor: &Cholesky,
        c: f64,
    ) -> Result<Option<f64>, EstimationError> {
        Ok(self.test.as_ref().map(|(x, x_lpn, y, y_lpn)| {
            let (xr, yr) = (all_rows(x.nrows()), all_rows(y.nrows()));
            nce_loss_gradient(
                &self.planes,
                lam,
                factor,
                self.c(c),
                (x.view(), &xr, x_lpn),
                (y.view(), &yr, y_lpn),
                self.nu,
                false,
            )
            .loss
        }))
    }
}

/// Fits Λ by NCE on centred data `x` (N × d); `validation` holds rows of the same training
/// table set aside (centred with the same mean). The noise pool (round(ν·rows) rows) is drawn from
/// ChaCha8 seeded with `options.run.seed` (stream 0), so a seed fixes the result on every machine
/// and thread count.
///
/// With [`Solver::Newton`], the validation rows choose the barrier weight t (by their held-out
/// likelihood under fits to `x`), and the model is then fitted to all rows, `x` and `validation`
/// together, at that t; without validation rows, the estimate is the minimiser of J itself. With
/// [`Solver::Minibatch`], `x` is fitted and the validation rows' loss is traced (noise stream 1).
pub fn fit_nce(
    x: ArrayView2<'_, f32>,
    validation: Option<ArrayView2<'_, f32>>,
    pattern: &Pattern,
    options: &NceOptions,
    progress: Progress<'_>,
) -> Result<Fit<NceDiagnostics>, EstimationError> {
    options.check()?;
    check_rows("nce", x.nrows())?;
    if options.solver == Solver::Newton {
        return newton_nce(x, validation.filter(|v| v.nrows() > 0), pattern, options, progress);
    }
    let Standardised { standard, z, test } = standardise(x, validation, pattern)?;
    let noise = GaussianNoise::fit(options.noise, z.view(), pattern, &standard.scale, options.ridge)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.run.seed);
    let n_noise = options.noise_rows(x.nrows()) as usize;
    let pool = noise.sample(n_noise, &mut rng);
    let pool_log_pn = noise.log_density(pool.view());
    let z_log_pn = noise.log_density(z.view());
    let test = match test {
        Some(zt) => {
            let mut test_rng = ChaCha8Rng::seed_from_u64(options.run.seed);
            test_rng.set_stream(1);
            let yt = noise.sample(options.noise_rows(zt.nrows()) as usize, &mut test_rng);
            let (zt_lpn, yt_lpn) = (noise.log_density(zt.view()), noise.log_density(yt.view()));
            Some((zt, zt_lpn, yt, yt_lpn))
        }
        None => None,
    };
    let mut problem = NceProblem {
        planes: Planes::new(pattern),
        normaliser: options.normaliser,
        nu: options.nu,
        noise,
        per_epoch: options.run.noise_per_epoch,
        rng,
        z,
        z_log_pn,
        pool,
        pool_log_pn,
        data_order: Vec::new(),
        noise_order: Vec::new(),
        test,
    };
    // c₀: the exact log-normaliser of Λ₀ = I.
    let d = pattern.dim();
    let start = identity_start(pattern)?;
    let c0 = gmrf_model::log_normaliser(0.0, d);
    let (lam_z, c, trace, run) = optimise(&mut problem, "nce", start, c0, &options.run, progress)?;
    let factor = lam_z.try_factor()?;
    let rows = all_rows(problem.z.nrows());
    let pool_rows = all_rows(problem.pool.nrows());
    let final_loss = nce_loss_gradient(
        &problem.planes,
        &lam_z,
        &factor,
        problem.c(c),
        (problem.z.view(), &rows, &problem.z_log_pn),
        (problem.pool.view(), &pool_rows, &problem.pool_log_pn),
        options.nu,
        false,
    )
    .loss;
    let heldout_loss = problem.heldout_loss(&lam_z, &factor, c)?;
    let log_det_d = standard.log_det();
    let diagnostics = NceDiagnostics {
        run: Some(run),
        certificate: None,
        n_noise,
        exact_log_normaliser: log_normaliser(&factor, d, None) - log_det_d,
        learned_log_normaliser: problem.c(c).map(|c| c - log_det_d),
        final_loss,
        heldout_loss,
    };
    Ok(Fit { precision: standard.to_original(&lam_z)?, trace, diagnostics })
}

/// The full-batch NCE estimate with a learned normaliser (profiled out). All rows (`x`, then the
/// validation rows) are standardised and the noise fitted on them; the pool holds ν noise rows per
/// row. The loss over the first N_fit data rows and the first round(ν·N_fit) noise rows chooses t
/// on the validation rows; the loss over every row and the whole pool gives the estimate.
fn newton_nce(
    x: ArrayView2<'_, f32>,
    validation: Option<ArrayView2<'_, f32>>,
    pattern: &Pattern,
    options: &NceOptions,
    progress: Progress<'_>,
) -> Result<Fit<NceDiagnostics>, EstimationError> {
    let all = with_validation_rows(x, validation)?;
    let Standardised { standard, z, .. } = standardise(all.view(), None, pattern)?;
    drop(all);
    let noise = GaussianNoise::fit(options.noise, z.view(), pattern, &standard.scale, options.ridge)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.run.seed);
    let (n, n_fit) = (z.nrows(), x.nrows());
    let noise_rows = |rows: usize| options.noise_rows(rows) as usize;
    let n_noise = noise_rows(n);
    let pool = noise.sample(n_noise, &mut rng);
    let pool_log_pn = noise.log_density(pool.view());
    let z_log_pn = noise.log_density(z.view());
    let held_out = (n_fit < n)
        .then(|| SecondMoments::compute(z.slice(ndarray::s![n_fit.., ..]), pattern, Reach::Pattern))
        .transpose()?;
    let rows = ndarray::concatenate(Axis(0), &[z.view(), pool.view()])
        .map_err(|e| EstimationError::Shape(format!("data and noise rows: {e}")))?;
    drop((z, pool));
    // Data rows: softplus(−G), G = c − ½zᵀΛz − log p_n(z) − log ν; noise rows: softplus(G).
    let log_nu = options.nu.ln();
    let sample = |r: usize, sign: f64, lpn: f64| Sample {
        sign,
        offset: -lpn - log_nu,
        parts: [(r as u32, -0.5), (0, 0.0)],
    };
    let samples = |data: usize, noise: usize| -> Vec<Sample> {
        (0..data)
            .map(|r| sample(r, -1.0, z_log_pn[r]))
            .chain((0..noise).map(|j| sample(n + j, 1.0, pool_log_pn[j])))
            .collect()
    };
    let loss = ContrastiveLoss::new(pattern, rows.view(), samples(n, n_noise), n, true);
    let start = masked_mle_start(rows.slice(ndarray::s![..n_fit, ..]), pattern)?;
    let validation = held_out.map(|m| {
        (ContrastiveLoss::new(pattern, rows.view(), samples(n_fit, noise_rows(n_fit)), n_fit, true), m)
    });
    let minimum = full_batch_minimum("nce", &loss, validation, start, options.decrement_tol, progress)?;
    let lam_z = minimum.precision;
    let c = loss.normaliser(lam_z.values());
    let final_loss = loss.value(lam_z.values());
    let factor = lam_z.try_factor()?;
    let log_det_d = standard.log_det();
    let diagnostics = NceDiagnostics {
        run: None,
        certificate: Some(minimum.certificate),
        n_noise,
        exact_log_normaliser: log_normaliser(&factor, pattern.dim(), None) - log_det_d,
        learned_log_normaliser: Some(c - log_det_d),
        final_loss,
        heldout_loss: None,
    };
    Ok(Fit { precision: standard.to_original(&lam_z)?, trace: minimum.trace, diagnostics })
}
