//! `nce`: noise-contrastive estimation of Λ (Gutmann & Hyvärinen 2010, 2012) by the minibatch
//! first-order loop, in standardised coordinates: the objective is [`crate::objective::nce`].

use gmrf_model::{Cholesky, Pattern, Precision};
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::check_rows;
use super::contrastive::{Standardised, identity_start, standardise};
use crate::EstimationError;
use crate::fit::{Fit, Progress};
use crate::objective::nce::{all_rows, log_normaliser, nce_loss_gradient};
use crate::objective::{GaussianNoise, NoiseKind, Planes, gaussian_log_normaliser};
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

/// Options of [`fit_nce`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NceOptions {
    /// Exact or learned log-normaliser. Default exact.
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

impl Default for NceOptions {
    fn default() -> Self {
        NceOptions {
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
    /// The optimiser's summary.
    pub run: RunSummary,
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
            self.pool = self.noise.sample(self.pool.nrows(), &mut self.rng)?;
            self.pool_log_pn = self.noise.log_density(self.pool.view())?;
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

/// Fits Λ by NCE on centred data `x` (N × d), with held-out rows `test` for the trace. The noise
/// pool (round(νN) rows) is drawn from ChaCha8 seeded with `options.run.seed` (stream 0; the
/// held-out noise uses stream 1), so a seed fixes the result on every machine and thread count.
pub fn fit_nce(
    x: ArrayView2<'_, f32>,
    test: Option<ArrayView2<'_, f32>>,
    pattern: &Pattern,
    options: &NceOptions,
    progress: Progress<'_>,
) -> Result<Fit<NceDiagnostics>, EstimationError> {
    check_rows("nce", x.nrows())?;
    if !(options.nu > 0.0 && options.nu.is_finite()) {
        return Err(EstimationError::Shape(format!("ν must be positive, got {}", options.nu)));
    }
    let Standardised { standard, z, test } = standardise(x, test, pattern)?;
    let noise = GaussianNoise::fit(options.noise, z.view(), pattern, &standard.scale, options.ridge)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.run.seed);
    let n_noise = ((options.nu * x.nrows() as f64).round() as usize).max(1);
    let pool = noise.sample(n_noise, &mut rng)?;
    let pool_log_pn = noise.log_density(pool.view())?;
    let z_log_pn = noise.log_density(z.view())?;
    let test = match test {
        Some(zt) => {
            let mut test_rng = ChaCha8Rng::seed_from_u64(options.run.seed);
            test_rng.set_stream(1);
            let yt =
                noise.sample(((options.nu * zt.nrows() as f64).round() as usize).max(1), &mut test_rng)?;
            let (zt_lpn, yt_lpn) = (noise.log_density(zt.view())?, noise.log_density(yt.view())?);
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
    let c0 = gaussian_log_normaliser(0.0, d);
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
        run,
        n_noise,
        exact_log_normaliser: log_normaliser(&factor, d, None) - log_det_d,
        learned_log_normaliser: problem.c(c).map(|c| c - log_det_d),
        final_loss,
        heldout_loss,
    };
    Ok(Fit { precision: standard.to_original(&lam_z)?, trace, diagnostics })
}
