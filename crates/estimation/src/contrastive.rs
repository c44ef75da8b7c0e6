//! What NCE and cNCE share: Λ as offset planes (quadratic forms and weighted second moments in
//! O(nnz) per image, vectorised along grid rows), the numerically safe logistic functions,
//! standardised coordinates, deterministic dense row products, and the reproducible shuffles.
//!
//! Every reduction over images runs over fixed blocks of [`BLOCK_ROWS`] rows (never derived from
//! the thread count) and adds the block partials in block order, so results are bit-identical on
//! any number of threads.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use gmrf_model::{Pattern, Precision};
use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use std::time::Instant;

use gmrf_model::Cholesky;

use crate::fit::{Progress, TraceRow};
use crate::optimiser::{Optimiser, OptimiserKind, Schedule};
use crate::{BLOCK_ROWS, EstimationError};

/// softplus(t) = log(1 + eᵗ), written as max(t, 0) + log1p(e^{−|t|}) so that it never overflows
/// (G is a difference of log-densities of order ±10³ nats on MNIST, where eᴳ is infinite).
pub fn softplus(t: f64) -> f64 {
    t.max(0.0) + (-t.abs()).exp().ln_1p()
}

/// The logistic function σ(t) = 1/(1 + e^{−t}) = d softplus(t)/dt, evaluated on the side where
/// the exponential cannot overflow.
pub fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// Λ on a pattern stored as one plane per forward offset δ (the zero offset first):
/// `plane[f·d + i]` = mₑ Λ_{i, i+δ_f} (multiplicity folded in), zero where the pattern has no such
/// entry. With δ_f also read as a step in row-major order (di·w + dj > 0 for a forward offset),
/// xᵀΛx = Σ_f Σᵢ plane_f[i] xᵢ x_{i+δ_f} is one contiguous loop of d − δ_f terms per plane; pairs
/// that wrap around a grid row meet a zero coefficient. The same loops accumulate weighted second
/// moments Σₖ wₖ xₖᵢ xₖ,ᵢ₊δ, whose wrapped slots are never read.
#[derive(Clone, Debug)]
pub(crate) struct Planes {
    d: usize,
    /// Row-major step of each plane's offset.
    steps: Vec<usize>,
    /// For each pattern entry: its plane and first pixel.
    entry_slot: Vec<(usize, usize)>,
    /// The widest SIMD instruction set of this CPU, detected once (see [`Planes::quadratic_form`]).
    arch: pulp::Arch,
}

impl Planes {
    pub(crate) fn new(pattern: &Pattern) -> Self {
        let w = pattern.width() as i32;
        let mut offsets = vec![(0i32, 0i32)];
        offsets.extend(pattern.neighbourhood().forward_offsets());
        let steps = offsets
            .iter()
            .map(|&(di, dj)| {
                usize::try_from(di * w + dj).expect("a forward offset steps forward in row-major order")
            })
            .collect();
        let entry_slot = pattern
            .entries()
            .iter()
            .map(|e| {
                let f = offsets
                    .iter()
                    .position(|&o| o == (i32::from(e.di), i32::from(e.dj)))
                    .expect("every entry's offset is a forward offset of its neighbourhood");
                (f, e.i as usize)
            })
            .collect();
        Planes { d: pattern.dim(), steps, entry_slot, arch: pulp::Arch::new() }
    }

    /// Length of a plane vector.
    pub(crate) fn len(&self) -> usize {
        self.steps.len() * self.d
    }

    /// The planes of Λ with stored values `theta`.
    pub(crate) fn of_values(&self, pattern: &Pattern, theta: &[f64]) -> Vec<f64> {
        let mut planes = vec![0.0; self.len()];
        for ((&(f, i), e), &v) in self.entry_slot.iter().zip(pattern.entries()).zip(theta) {
            planes[f * self.d + i] = e.multiplicity() * v;
        }
        planes
    }

    /// xᵀΛx from the planes of Λ, as Σᵢ xᵢ tᵢ with tᵢ = Σ_f plane_f[i] x_{i+δ_f} built in
    /// `scratch` (d values), one contiguous pass per plane: two flops per plane entry instead of
    /// three. (Fusing the planes into one pass over i, with x zero-padded, was 1.6x slower.)
    ///
    /// The loops are compiled for the widest instruction set this CPU has (AVX2 where present;
    /// without it the compiler may only assume SSE2, two f64 per instruction) and chosen at run
    /// time. Rust never fuses a multiply and an add, and the lanes of `dot` are fixed, so every
    /// instruction set gives the same bits.
    pub(crate) fn quadratic_form(&self, planes: &[f64], x: &[f64], scratch: &mut [f64]) -> f64 {
        let t = &mut scratch[..self.d];
        self.arch.dispatch(QuadraticForm { steps: &self.steps, planes, x, t })
    }

    /// acc += w·x xᵀ on the pattern's offsets (plane layout, no multiplicity), with w·x formed
    /// once in `scratch` (d values); dispatched as [`Planes::quadratic_form`].
    pub(crate) fn accumulate(&self, acc: &mut [f64], weight: f64, x: &[f64], scratch: &mut [f64]) {
        let wx = &mut scratch[..self.d];
        self.arch.dispatch(Accumulate { steps: &self.steps, acc, weight, x, wx });
    }

    /// The accumulated moments read off in the pattern's canonical order.
    pub(crate) fn on_pattern(&self, acc: &[f64]) -> Vec<f64> {
        self.entry_slot.iter().map(|&(f, i)| acc[f * self.d + i]).collect()
    }
}

/// The loops of [`Planes::quadratic_form`], as a `pulp` operation so that they are compiled
/// (inlined) once per instruction set.
struct QuadraticForm<'a> {
    steps: &'a [usize],
    planes: &'a [f64],
    x: &'a [f64],
    t: &'a mut [f64],
}

impl pulp::WithSimd for QuadraticForm<'_> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> f64 {
        let QuadraticForm { steps, planes, x, t } = self;
        let n = t.len();
        t.fill(0.0);
        for (f, &step) in steps.iter().enumerate() {
            for ((t, &p), &v) in t.iter_mut().zip(&planes[f * n..f * n + n - step]).zip(&x[step..]) {
                *t += p * v;
            }
        }
        dot(x, t)
    }
}

/// The loops of [`Planes::accumulate`], as [`QuadraticForm`].
struct Accumulate<'a> {
    steps: &'a [usize],
    acc: &'a mut [f64],
    weight: f64,
    x: &'a [f64],
    wx: &'a mut [f64],
}

impl pulp::WithSimd for Accumulate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Accumulate { steps, acc, weight, x, wx } = self;
        let n = wx.len();
        for (s, &u) in wx.iter_mut().zip(x) {
            *s = weight * u;
        }
        for (f, &step) in steps.iter().enumerate() {
            let m = &mut acc[f * n..f * n + n - step];
            for ((s, &u), &v) in m.iter_mut().zip(wx.iter()).zip(&x[step..]) {
                *s += u * v;
            }
        }
    }
}

/// Σₖ uₖvₖ in `LANES` independent partial sums, added in a fixed order. One running sum would be
/// a chain of dependent additions that the compiler may not reorder (nor vectorise): with it,
/// NCE's epoch took 1.7x as long. Same inputs, same bits, on any machine and thread count.
#[inline(always)]
fn dot(u: &[f64], v: &[f64]) -> f64 {
    const LANES: usize = 8;
    let mut lanes = [0.0; LANES];
    let (uc, vc) = (u.chunks_exact(LANES), v.chunks_exact(LANES));
    let tail: f64 = uc.remainder().iter().zip(vc.remainder()).map(|(u, v)| u * v).sum();
    for (u, v) in uc.zip(vc) {
        for k in 0..LANES {
            lanes[k] += u[k] * v[k];
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Rows of `x` (given by `rows`) as f64, one at a time, for a per-row kernel.
pub(crate) fn row_f64(x: ArrayView2<'_, f32>, r: usize, buf: &mut [f64]) {
    for (dst, &v) in buf.iter_mut().zip(x.row(r).iter()) {
        *dst = f64::from(v);
    }
}

/// Sum of per-block results in block order: `f` maps a block of row positions to a partial
/// (loss, weight sum, plane accumulator); blocks of [`BLOCK_ROWS`] positions run in parallel.
pub(crate) fn reduce_blocks<F>(rows: &[usize], planes_len: usize, f: F) -> (f64, f64, Vec<f64>)
where
    F: Fn(&[usize]) -> (f64, f64, Vec<f64>) + Sync + Send,
{
    let partials: Vec<(f64, f64, Vec<f64>)> = rows.par_chunks(BLOCK_ROWS).map(f).collect();
    let mut total = (0.0, 0.0, vec![0.0; planes_len]);
    for (l, w, acc) in partials {
        total.0 += l;
        total.1 += w;
        for (t, v) in total.2.iter_mut().zip(&acc) {
            *t += v;
        }
    }
    total
}

/// Standardised coordinates z = D⁻¹x, D = diag(sᵢ), sᵢ the root mean square of pixel i in the
/// (centred) training data. Λ_x = D⁻¹Λ_zD⁻¹, and log-densities shift by −Σ log sᵢ, which cancels
/// in every G, so NCE and cNCE give the same estimator in either coordinates; in z all pixels
/// have unit variance, which conditions the optimisation (on MNIST the ~160 near-constant
/// background pixels have precisions ~8e5, beside ~10 for the digit's pixels).
#[derive(Clone, Debug)]
pub struct Standardisation {
    /// sᵢ per pixel.
    pub scale: Vec<f64>,
}

impl Standardisation {
    /// sᵢ = √((1/N) Σₙ xₙᵢ²), summed in f64 over blocks in block order.
    pub fn fit(x: ArrayView2<'_, f32>) -> Self {
        let d = x.ncols();
        let partials: Vec<Vec<f64>> = x
            .axis_chunks_iter(Axis(0), BLOCK_ROWS)
            .into_par_iter()
            .map(|block| {
                let mut acc = vec![0.0; d];
                for row in block.axis_iter(Axis(0)) {
                    for (a, &v) in acc.iter_mut().zip(row.iter()) {
                        *a += f64::from(v) * f64::from(v);
                    }
                }
                acc
            })
            .collect();
        let mut total = vec![0.0; d];
        for p in &partials {
            for (t, v) in total.iter_mut().zip(p) {
                *t += v;
            }
        }
        let n = x.nrows().max(1) as f64;
        Standardisation { scale: total.iter().map(|s| (s / n).sqrt()).collect() }
    }

    /// z = D⁻¹x as f32 rows.
    pub fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let inv: Vec<f64> = self.scale.iter().map(|s| 1.0 / s).collect();
        let mut z = x.to_owned();
        z.axis_iter_mut(Axis(0)).into_par_iter().for_each(|mut row| {
            for (v, s) in row.iter_mut().zip(&inv) {
                *v = (f64::from(*v) * s) as f32;
            }
        });
        z
    }

    /// Λ_x = D⁻¹Λ_zD⁻¹: stored value θₑ/(sᵢsⱼ).
    pub fn to_original(&self, lam_z: &Precision) -> Result<Precision, gmrf_model::ModelError> {
        let values = lam_z
            .pattern()
            .entries()
            .iter()
            .zip(lam_z.values())
            .map(|(e, v)| v / (self.scale[e.i as usize] * self.scale[e.j as usize]))
            .collect();
        lam_z.with_values(values)
    }

    /// Λ_z = DΛ_xD.
    pub fn to_standardised(&self, lam_x: &Precision) -> Result<Precision, gmrf_model::ModelError> {
        let values = lam_x
            .pattern()
            .entries()
            .iter()
            .zip(lam_x.values())
            .map(|(e, v)| v * self.scale[e.i as usize] * self.scale[e.j as usize])
            .collect();
        lam_x.with_values(values)
    }

    /// Σᵢ log sᵢ = log|D|: log p_x(x) = log p_z(z) − log|D|.
    pub fn log_det(&self) -> f64 {
        self.scale.iter().map(|s| s.ln()).sum()
    }
}

/// Y = X Aᵀ for the f64 rows of X: blocks of [`BLOCK_ROWS`] rows in parallel, each a sequential
/// faer product, so every output row is computed the same way on any number of threads.
pub(crate) fn rows_times_transpose(x: &Array2<f64>, a: MatRef<'_, f64>) -> Array2<f64> {
    let (n, k) = (x.nrows(), a.nrows());
    let blocks: Vec<Mat<f64>> = (0..n.div_ceil(BLOCK_ROWS))
        .into_par_iter()
        .map(|b| {
            let r0 = b * BLOCK_ROWS;
            let r1 = (r0 + BLOCK_ROWS).min(n);
            let xb = Mat::<f64>::from_fn(r1 - r0, x.ncols(), |i, j| x[(r0 + i, j)]);
            let mut y = Mat::<f64>::zeros(r1 - r0, k);
            matmul(y.as_mut(), Accum::Replace, xb.as_ref(), a.transpose(), 1.0, Par::Seq);
            y
        })
        .collect();
    let mut out = Array2::zeros((n, k));
    for (b, y) in blocks.iter().enumerate() {
        for i in 0..y.nrows() {
            for j in 0..k {
                out[(b * BLOCK_ROWS + i, j)] = y[(i, j)];
            }
        }
    }
    out
}

/// The dense second moments (1/N) XᵀX of f32 rows, in f64: block products (sequential faer)
/// added in block order, in groups so that at most a few d × d partials are alive at once.
pub(crate) fn dense_moments(x: ArrayView2<'_, f32>) -> Mat<f64> {
    let (n, d) = (x.nrows(), x.ncols());
    let n_blocks = n.div_ceil(BLOCK_ROWS);
    let mut total = Mat::<f64>::zeros(d, d);
    let group = 8;
    for g0 in (0..n_blocks).step_by(group) {
        let partials: Vec<Mat<f64>> = (g0..(g0 + group).min(n_blocks))
            .into_par_iter()
            .map(|b| {
                let r0 = b * BLOCK_ROWS;
                let r1 = (r0 + BLOCK_ROWS).min(n);
                let xb = Mat::<f64>::from_fn(r1 - r0, d, |i, j| f64::from(x[(r0 + i, j)]));
                let mut p = Mat::<f64>::zeros(d, d);
                matmul(p.as_mut(), Accum::Replace, xb.transpose(), xb.as_ref(), 1.0, Par::Seq);
                p
            })
            .collect();
        for p in &partials {
            total += p;
        }
    }
    total * faer::Scale(1.0 / n.max(1) as f64)
}

/// n × d standard normals drawn sequentially from `rng` (row by row), so a seeded ChaCha8 gives
/// the same values on every machine and thread count.
pub(crate) fn standard_normals<R: Rng + ?Sized>(n: usize, d: usize, rng: &mut R) -> Array2<f64> {
    Array2::from_shape_simple_fn((n, d), || rng.sample::<f64, _>(StandardNormal))
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
    /// Held-out loss every this many steps (and at the last), when held-out data is given.
    /// Default 50.
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
pub(crate) trait Objective {
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
    objective: &mut dyn Objective,
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
        let grad_norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
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
        let theta = lam.values();
        let mut scale = 1.0;
        let mut accepted = None;
        for h in 0..=options.max_halvings {
            let values: Vec<f64> = theta.iter().zip(&delta).map(|(t, d)| t - scale * d).collect();
            if let Ok(trial) = lam.with_values(values)
                && let Ok(f) = trial.try_factor()
            {
                summary.halvings += u64::from(h);
                accepted = Some((trial, f));
                break;
            }
            scale *= 0.5;
        }
        let change = match accepted {
            Some((trial, f)) => {
                let change = delta.iter().map(|d| (scale * d).powi(2)).sum::<f64>().sqrt();
                lam = trial;
                factor = f;
                if learned {
                    c -= scale * delta[n_theta - 1];
                }
                change
            }
            None => {
                summary.halvings += u64::from(options.max_halvings);
                summary.rejected_steps += 1;
                scale = 0.0;
                0.0
            }
        };
        let norm =
            (lam.values().iter().map(|v| v * v).sum::<f64>() + if learned { c * c } else { 0.0 }).sqrt();
        let converged = scale > 0.0 && change < options.tolerance * norm;
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

#[cfg(test)]
mod tests {
    use super::*;
    use gmrf_model::Neighbourhood;

    #[test]
    fn softplus_and_sigmoid_never_overflow() {
        assert_eq!(softplus(1e4), 1e4);
        assert_eq!(softplus(-1e4), 0.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(sigmoid(1e4), 1.0);
        assert_eq!(sigmoid(-1e4), 0.0);
        assert!((sigmoid(0.3) + sigmoid(-0.3) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn planes_give_the_quadratic_form_and_moments_of_the_precision() {
        // Radius 2 has offsets (1, −2) and (2, −1), whose pairs wrap around a grid row.
        for n in [Neighbourhood::Four, Neighbourhood::Eight, Neighbourhood::Radius(2.0)] {
            let pattern = Pattern::new(4, 5, n).unwrap();
            let theta: Vec<f64> = (0..pattern.len()).map(|k| ((k * 37) % 11) as f64 / 7.0 - 0.6).collect();
            let lam = Precision::new(pattern.clone(), theta.clone()).unwrap();
            let planes = Planes::new(&pattern);
            let x: Vec<f64> = (0..20).map(|k| ((k * 13) % 7) as f64 / 3.0 - 1.0).collect();
            let p = planes.of_values(&pattern, &theta);
            let mut scratch = vec![0.0; 20];
            assert!((planes.quadratic_form(&p, &x, &mut scratch) - lam.quadratic_form(&x)).abs() < 1e-12);
            let mut acc = vec![0.0; planes.len()];
            planes.accumulate(&mut acc, 2.0, &x, &mut scratch);
            let m = planes.on_pattern(&acc);
            for (e, v) in pattern.entries().iter().zip(m) {
                assert_eq!(v, 2.0 * x[e.i as usize] * x[e.j as usize]);
            }
        }
    }
}
