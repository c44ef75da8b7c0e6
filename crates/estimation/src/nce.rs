//! `nce`: noise-contrastive estimation of Λ (Gutmann & Hyvärinen 2010, 2012).
//!
//! Logistic discrimination of N data rows from νN rows of a noise density p_n:
//!
//! J(θ) = (1/N) Σᵢ softplus(−G(xᵢ)) + (1/N) Σⱼ softplus(G(x'ⱼ)),
//! G(x) = log p_θ(x) − log p_n(x) − log ν,
//!
//! with log p_θ(x) = ½ log|Λ| − (d/2) log 2π − ½ xᵀΛx (normaliser exact, from the Cholesky
//! factor), or c − ½ xᵀΛx with c a free parameter (the classic NCE for unnormalised models).
//! Written with softplus, J never overflows although |G| reaches 10³ on MNIST. Its gradient, with
//! wᵢ = −σ(−G(xᵢ))/N for data and wⱼ = σ(G(x'ⱼ))/N for noise (σ the logistic function), is
//!
//! ∂J/∂Λ = Σₖ wₖ ∂G(xₖ)/∂Λ = ½ (Σₖ wₖ) Λ⁻¹ − ½ Σₖ wₖ xₖxₖᵀ   (exact normaliser),
//! ∂J/∂Λ = −½ Σₖ wₖ xₖxₖᵀ,  ∂J/∂c = Σₖ wₖ                       (learned normaliser),
//!
//! read on the pattern (mₑ times the matrix entry for stored value θₑ): the data enter only
//! through weighted second moments on the pattern, Λ⁻¹ only through its selected inverse.
//! The fit runs in standardised coordinates (see [`Standardisation`]).

use gmrf_model::{Cholesky, Pattern, Precision};
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::EstimationError;
use crate::contrastive::{
    ContrastiveOptions, Objective, Planes, RunSummary, Standardisation, optimise, permutation, reduce_blocks,
    row_f64, sigmoid, softplus,
};
use crate::fit::{Fit, Progress};
use crate::noise::{GaussianNoise, NoiseKind};

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

/// J and its gradient: `precision` in θ (canonical order), `normaliser` in c (learned only).
#[derive(Clone, Debug, PartialEq)]
pub struct NceGradient {
    /// J.
    pub loss: f64,
    /// ∂J/∂θₑ for every stored entry.
    pub precision: Vec<f64>,
    /// ∂J/∂c, with a learned normaliser.
    pub normaliser: Option<f64>,
}

/// log ν, the prior log-odds of noise against data.
fn log_nu(nu: f64) -> f64 {
    nu.ln()
}

/// One side of J over `rows` of `x`: Σ softplus(∓G)·inv_n, Σ w, Σ w x xᵀ (planes), with
/// G = constant − ½xᵀΛx − log p_n(x) − log ν; `data` selects the sign.
#[allow(clippy::too_many_arguments)]
fn nce_terms(
    planes: &Planes,
    lam_planes: &[f64],
    constant: f64,
    x: ArrayView2<'_, f32>,
    rows: &[usize],
    log_pn: &[f64],
    log_nu: f64,
    inv_n: f64,
    data: bool,
) -> (f64, f64, Vec<f64>) {
    reduce_blocks(rows, planes.len(), |block| {
        let (mut loss, mut sum_w) = (0.0, 0.0);
        let mut acc = vec![0.0; planes.len()];
        let (mut buf, mut scratch) = (vec![0.0; x.ncols()], vec![0.0; x.ncols()]);
        for &r in block {
            row_f64(x, r, &mut buf);
            let g =
                constant - 0.5 * planes.quadratic_form(lam_planes, &buf, &mut scratch) - log_pn[r] - log_nu;
            let w = if data {
                loss += softplus(-g) * inv_n;
                -sigmoid(-g) * inv_n
            } else {
                loss += softplus(g) * inv_n;
                sigmoid(g) * inv_n
            };
            sum_w += w;
            planes.accumulate(&mut acc, w, &buf, &mut scratch);
        }
        (loss, sum_w, acc)
    })
}

/// The model's log-normaliser: c when learned, else ½ log|Λ| − (d/2) log 2π.
fn log_normaliser(factor: &Cholesky, d: usize, learned: Option<f64>) -> f64 {
    learned.unwrap_or_else(|| 0.5 * factor.log_det() - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln())
}

/// J and ∂J/∂θ (and ∂J/∂c) over data rows `data_rows` and noise rows `noise_rows`, normalised
/// by the number of data rows.
#[allow(clippy::too_many_arguments)]
fn nce_loss_gradient(
    planes: &Planes,
    lam: &Precision,
    factor: &Cholesky,
    normaliser: Option<f64>,
    data: (ArrayView2<'_, f32>, &[usize], &[f64]),
    noise: (ArrayView2<'_, f32>, &[usize], &[f64]),
    nu: f64,
    need_gradient: bool,
) -> NceGradient {
    let pattern = lam.pattern();
    let lam_planes = planes.of_values(pattern, lam.values());
    let constant = log_normaliser(factor, lam.dim(), normaliser);
    let inv_n = 1.0 / data.1.len() as f64;
    let (l1, w1, m1) =
        nce_terms(planes, &lam_planes, constant, data.0, data.1, data.2, log_nu(nu), inv_n, true);
    let (l2, w2, m2) =
        nce_terms(planes, &lam_planes, constant, noise.0, noise.1, noise.2, log_nu(nu), inv_n, false);
    let loss = l1 + l2;
    if !need_gradient {
        return NceGradient { loss, precision: Vec::new(), normaliser: None };
    }
    let sum_w = w1 + w2;
    let moments: Vec<f64> =
        planes.on_pattern(&m1).iter().zip(planes.on_pattern(&m2)).map(|(a, b)| a + b).collect();
    let precision = match normaliser {
        None => {
            let sigma = factor.inverse_band().on_pattern(pattern);
            pattern
                .entries()
                .iter()
                .zip(sigma.iter().zip(&moments))
                .map(|(e, (s, m))| e.multiplicity() * 0.5 * (sum_w * s - m))
                .collect()
        }
        Some(_) => pattern.entries().iter().zip(&moments).map(|(e, m)| -0.5 * e.multiplicity() * m).collect(),
    };
    NceGradient { loss, precision, normaliser: normaliser.map(|_| sum_w) }
}

fn all_rows(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// J(θ) = (1/N) Σᵢ softplus(−G(xᵢ)) + (1/N) Σⱼ softplus(G(x'ⱼ)) over all rows of `data` (N) and
/// `noise` (νN), given their noise log-densities log p_n; `normaliser` is the learned c, or
/// `None` for the exact ½ log|Λ| − (d/2) log 2π.
pub fn nce_objective(
    precision: &Precision,
    normaliser: Option<f64>,
    data: ArrayView2<'_, f32>,
    data_log_noise: &[f64],
    noise: ArrayView2<'_, f32>,
    noise_log_noise: &[f64],
    nu: f64,
) -> Result<f64, EstimationError> {
    let sets = ((data, data_log_noise), (noise, noise_log_noise));
    Ok(nce_over_all_rows(precision, normaliser, sets, nu, false)?.loss)
}

/// J and its analytic gradient ∂J/∂θₑ = mₑ(½ (Σₖwₖ) (Λ⁻¹)ᵢⱼ − ½ Σₖ wₖ xₖᵢxₖⱼ) (exact normaliser;
/// without the Λ⁻¹ term and with ∂J/∂c = Σₖ wₖ when learned), arguments as [`nce_objective`].
pub fn nce_gradient(
    precision: &Precision,
    normaliser: Option<f64>,
    data: ArrayView2<'_, f32>,
    data_log_noise: &[f64],
    noise: ArrayView2<'_, f32>,
    noise_log_noise: &[f64],
    nu: f64,
) -> Result<NceGradient, EstimationError> {
    let sets = ((data, data_log_noise), (noise, noise_log_noise));
    nce_over_all_rows(precision, normaliser, sets, nu, true)
}

/// A data set and its noise log-densities log p_n.
type Scored<'v, 's> = (ArrayView2<'v, f32>, &'s [f64]);

/// [`nce_objective`] and [`nce_gradient`] over every row of the data and noise sets.
fn nce_over_all_rows(
    precision: &Precision,
    normaliser: Option<f64>,
    ((data, data_log_noise), (noise, noise_log_noise)): (Scored<'_, '_>, Scored<'_, '_>),
    nu: f64,
    with_gradient: bool,
) -> Result<NceGradient, EstimationError> {
    let factor = precision.try_factor()?;
    let planes = Planes::new(precision.pattern());
    let (dr, nr) = (all_rows(data.nrows()), all_rows(noise.nrows()));
    Ok(nce_loss_gradient(
        &planes,
        precision,
        &factor,
        normaliser,
        (data, &dr, data_log_noise),
        (noise, &nr, noise_log_noise),
        nu,
        with_gradient,
    ))
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

impl Objective for NceProblem {
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
    check_shape(x, pattern)?;
    if !(options.nu > 0.0 && options.nu.is_finite()) {
        return Err(EstimationError::Shape(format!("ν must be positive, got {}", options.nu)));
    }
    let standard = Standardisation::fit(x);
    if let Some(i) = standard.scale.iter().position(|&s| s.is_nan() || s <= 0.0) {
        return Err(EstimationError::Shape(format!(
            "pixel {i} has variance 0 in the data: dequantise so every pixel varies"
        )));
    }
    let z = standard.apply(x);
    let noise = GaussianNoise::fit(options.noise, z.view(), pattern, &standard.scale, options.ridge)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.run.seed);
    let n_noise = ((options.nu * x.nrows() as f64).round() as usize).max(1);
    let pool = noise.sample(n_noise, &mut rng)?;
    let pool_log_pn = noise.log_density(pool.view())?;
    let z_log_pn = noise.log_density(z.view())?;
    let test = match test {
        Some(t) if t.nrows() > 0 => {
            check_shape(t, pattern)?;
            let zt = standard.apply(t);
            let mut test_rng = ChaCha8Rng::seed_from_u64(options.run.seed);
            test_rng.set_stream(1);
            let yt =
                noise.sample(((options.nu * t.nrows() as f64).round() as usize).max(1), &mut test_rng)?;
            let (zt_lpn, yt_lpn) = (noise.log_density(zt.view())?, noise.log_density(yt.view())?);
            Some((zt, zt_lpn, yt, yt_lpn))
        }
        _ => None,
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
    // Λ₀ = I in standardised coordinates, i.e. diag(1/sᵢ²): independent pixels fitted by
    // maximum likelihood; c₀ its exact log-normaliser.
    let d = pattern.dim();
    let start = Precision::diagonal(pattern.clone(), &vec![1.0; d])?;
    let c0 = -0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
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

pub(crate) fn check_shape(x: ArrayView2<'_, f32>, pattern: &Pattern) -> Result<(), EstimationError> {
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
