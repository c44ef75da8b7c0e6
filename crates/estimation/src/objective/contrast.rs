//! The contrastive losses of NCE and cNCE over a whole training set, as one [`Smooth`] objective
//! in the free entries θ of Λ, so that the shared solvers (Newton-CG, L-BFGS, the barrier path)
//! compute their optima.
//!
//! Every sample k is a logistic loss of an affine function of θ:
//!
//! J(θ) = (1/N) Σₖ softplus(zₖ),  zₖ = sₖ·(c + yₖ),  yₖ = bₖ + Σ_p γₖₚ · uₖₚᵀ Λ uₖₚ,
//!
//! with a sign sₖ = ±1, a constant bₖ, and one or two quadratic forms of stored rows uₖₚ:
//!
//! - NCE (Gutmann & Hyvärinen 2012, eq. 8) with G(u) = c − ½uᵀΛu − log p_n(u) − log ν: a data
//!   row gives sₖ = −1 (softplus(−G)), a noise row sₖ = +1 (softplus(G)); bₖ = −log p_n(u) − log ν,
//!   γ = −½. The log-normaliser c is learned: it is profiled out, c*(θ) = argmin_c J(θ, c).
//! - cNCE (Ceylan & Gutmann 2018) with a symmetric perturbation, G(x, y) = ½yᵀΛy − ½xᵀΛx: a pair
//!   gives sₖ = −1, bₖ = 0, γ = −½ on x and +½ on y, and no c.
//!
//! zₖ is affine in (θ, c), so J is convex, and so is its partial minimum over c (Boyd &
//! Vandenberghe 2004, §3.2.5). With hₖ = σ(zₖ)(1 − σ(zₖ))/N and ∇zₖ = sₖ Σ_p γₖₚ m ∘ P(uₖₚuₖₚᵀ):
//!
//! - ∇J = Σₖ (σ(zₖ)/N) ∇zₖ at c* (the envelope theorem: ∂J/∂c = 0 there);
//! - ∇²J v = Σₖ hₖ (aₖ − sₖ μ) ∇zₖ with aₖ = ∇zₖ·v and μ = Σₖ hₖsₖaₖ / Σₖ hₖ: the Schur
//!   complement of the (θ, c) Hessian (μ = 0 without c).
//!
//! Both are weighted second moments of the stored rows, one pass each after one pass of quadratic
//! forms: a Hessian-vector product costs what a gradient does.

use std::sync::{Arc, Mutex};

use gmrf_model::Pattern;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

use super::barrier::Smooth;
use super::planes::{Planes, row_f64, sigmoid, softplus};
use crate::moments::{BLOCK_ROWS, sum_blocks};

/// One sample: zₖ = sign·(c + offset + Σ γ·uᵀΛu) over its parts (row, γ); γ = 0 marks no part.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) sign: f64,
    pub(crate) offset: f64,
    pub(crate) parts: [(u32, f64); 2],
}

/// Samples at most in the dense Hessian that preconditions Newton (see
/// [`ContrastiveLoss::dense_hessian`]).
const PRECONDITIONER_SAMPLES: usize = 16_384;

/// The dense ∇²J at θ: (θ, the n × n matrix).
type HessianAt = (Vec<f64>, Array2<f64>);

/// Per θ: the learned c* (0 without one) and every sample's yₖ.
struct AtTheta {
    theta: Vec<f64>,
    c: f64,
    y: Vec<f64>,
}

/// J over stored rows and samples, as a [`Smooth`] objective.
pub(crate) struct ContrastiveLoss<'a> {
    pattern: &'a Pattern,
    planes: Planes,
    rows: ArrayView2<'a, f32>,
    samples: Vec<Sample>,
    learned_normaliser: bool,
    inv_n: f64,
    /// The last θ evaluated: Newton asks for the value, gradient and many Hessian-vector products
    /// at one θ, and all need yₖ (one pass of quadratic forms) and c*.
    at: Mutex<Option<Arc<AtTheta>>>,
    /// The dense ∇²J at the last θ where the Newton preconditioner asked for it.
    hessian: Mutex<Option<Arc<HessianAt>>>,
}

impl<'a> ContrastiveLoss<'a> {
    /// J = (1/`n`) Σ softplus(zₖ) over `samples` of `rows`; `learned_normaliser` profiles out c.
    pub(crate) fn new(
        pattern: &'a Pattern,
        rows: ArrayView2<'a, f32>,
        samples: Vec<Sample>,
        n: usize,
        learned_normaliser: bool,
    ) -> Self {
        ContrastiveLoss {
            pattern,
            planes: Planes::new(pattern),
            rows,
            samples,
            learned_normaliser,
            inv_n: 1.0 / n as f64,
            at: Mutex::new(None),
            hessian: Mutex::new(None),
        }
    }

    /// The learned log-normaliser c* at θ (0 without one).
    pub(crate) fn normaliser(&self, theta: &[f64]) -> f64 {
        self.at(theta).c
    }

    /// uᵀVu for every stored row u, V the symmetric matrix with stored values `v`.
    fn row_forms(&self, v: &[f64]) -> Vec<f64> {
        let planes = self.planes.of_values(self.pattern, v);
        let d = self.rows.ncols();
        (0..self.rows.nrows())
            .into_par_iter()
            .with_min_len(BLOCK_ROWS)
            .map_init(
                || (vec![0.0; d], vec![0.0; d]),
                |(buf, scratch), r| {
                    row_f64(self.rows, r, buf);
                    self.planes.quadratic_form(&planes, buf, scratch)
                },
            )
            .collect()
    }

    /// Σ_p γₖₚ·forms[uₖₚ] for every sample.
    fn sample_forms(&self, forms: &[f64]) -> Vec<f64> {
        self.samples
            .iter()
            .map(|s| s.parts.iter().map(|&(r, g)| if g == 0.0 { 0.0 } else { g * forms[r as usize] }).sum())
            .collect()
    }

    /// yₖ and c* at θ, computed once per θ. The lock is not held while computing: the
    /// computation runs rayon tasks, and a thread waiting in one may take up another caller's task
    /// (the preconditioner's columns are filled in parallel), which would block on a held lock.
    fn at(&self, theta: &[f64]) -> Arc<AtTheta> {
        if let Some(at) = cached(&self.at, theta, |at| &at.theta) {
            return at;
        }
        let forms = self.sample_forms(&self.row_forms(theta));
        let y: Vec<f64> = self.samples.iter().zip(&forms).map(|(s, f)| s.offset + f).collect();
        let c = if self.learned_normaliser { self.profile(&y) } else { 0.0 };
        let at = Arc::new(AtTheta { theta: theta.to_vec(), c, y });
        *self.at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::clone(&at));
        at
    }

    /// c* = argmin_c Σₖ softplus(sₖ(c + yₖ)): the root of the increasing f(c) = Σₖ sₖσ(sₖ(c + yₖ)),
    /// by Newton's method kept inside a bracket that always holds the root (bisection where a
    /// Newton step leaves it), from the bracket's midpoint, so c* depends on θ alone. Both signs
    /// occur (data and noise), so the root exists.
    fn profile(&self, y: &[f64]) -> f64 {
        let (lo_y, hi_y) =
            y.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        // At c = −max y − 40 every σ(c + yₖ) < e⁻⁴⁰ (f < 0); at c = −min y + 40, σ(−(c + yₖ)) is.
        let (mut lo, mut hi) = (-hi_y - 40.0, -lo_y + 40.0);
        let mut c = 0.5 * (lo + hi);
        for _ in 0..200 {
            let (mut f, mut df) = (0.0, 0.0);
            for (s, y) in self.samples.iter().zip(y) {
                let p = sigmoid(s.sign * (c + y));
                f += s.sign * p;
                df += p * (1.0 - p);
            }
            if f == 0.0 {
                break;
            }
            if f > 0.0 {
                hi = c
            } else {
                lo = c
            }
            let newton = c - f / df;
            let next = if df > 0.0 && newton > lo && newton < hi { newton } else { 0.5 * (lo + hi) };
            if next == c || hi - lo <= 4.0 * f64::EPSILON * c.abs().max(1.0) {
                break;
            }
            c = next;
        }
        c
    }

    /// m ∘ P(Σ_r W_r u_r u_rᵀ) with the per-row weights W = Σ over sample parts of
    /// `weight(k)`·γₖₚ.
    fn weighted_moments(&self, weight: impl Fn(usize) -> f64) -> Vec<f64> {
        let mut per_row = vec![0.0; self.rows.nrows()];
        for (k, s) in self.samples.iter().enumerate() {
            let w = weight(k);
            for &(r, g) in &s.parts {
                if g != 0.0 {
                    per_row[r as usize] += w * g;
                }
            }
        }
        let d = self.rows.ncols();
        let indices: Vec<usize> = (0..self.rows.nrows()).collect();
        let acc = sum_blocks(&indices, self.planes.len(), |block| {
            let mut acc = vec![0.0; self.planes.len()];
            let (mut buf, mut scratch) = (vec![0.0; d], vec![0.0; d]);
            for &r in block {
                if per_row[r] != 0.0 {
                    row_f64(self.rows, r, &mut buf);
                    self.planes.accumulate(&mut acc, per_row[r], &buf, &mut scratch);
                }
            }
            acc
        });
        self.pattern
            .entries()
            .iter()
            .zip(self.planes.on_pattern(&acc))
            .map(|(e, m)| e.multiplicity() * m)
            .collect()
    }

    /// ∇²J at θ as a dense n × n matrix: Σₖ hₖ∇zₖ∇zₖᵀ, less (Σₖ hₖsₖ∇zₖ)(Σₖ hₖsₖ∇zₖ)ᵀ / Σₖ hₖ with a
    /// learned c (the Schur complement), built as ΦᵀΦ over blocks of the samples, Φ's rows
    /// √hₖ∇zₖ. Only the preconditioner sees this matrix (CG works with the exact products), so it
    /// may leave samples out: those with hₖ below 1e-14 of the largest (most of them, in a nearly
    /// separable problem), and, past 16,384 samples, all but a regular subsample. Column blocks of the product run in parallel; each is one sequential product,
    /// so the matrix is the same on any thread count.
    fn dense_hessian(&self, theta: &[f64]) -> Arc<HessianAt> {
        if let Some(hessian) = cached(&self.hessian, theta, |h| &h.0) {
            return hessian;
        }
        let at = self.at(theta);
        let h: Vec<f64> = self.curvatures(&at).iter().map(|h| h * self.inv_n).collect();
        let largest = h.iter().fold(0.0f64, |a, &b| a.max(b));
        let active: Vec<usize> = (0..h.len()).filter(|&k| h[k] > 1e-14 * largest).collect();
        // At most PRECONDITIONER_SAMPLES of them, every k-th with its weight times k: the factor
        // then costs O(PRECONDITIONER_SAMPLES·n²) whatever N.
        let stride = active.len().div_ceil(PRECONDITIONER_SAMPLES).max(1);
        let active: Vec<usize> = active.into_iter().step_by(stride).collect();
        let h: Vec<f64> = h.iter().map(|h| h * stride as f64).collect();
        let entries = self.pattern.entries();
        let n = entries.len();
        let mut hessian = Array2::<f64>::zeros((n, n));
        let mut weighted_sum = vec![0.0; n];
        const BLOCK: usize = 1024;
        let mut u = vec![0.0; self.rows.ncols()];
        for block in active.chunks(BLOCK) {
            let mut phi = Array2::<f64>::zeros((block.len(), n));
            for (mut row, &k) in phi.rows_mut().into_iter().zip(block) {
                let s = &self.samples[k];
                for &(r, gamma) in s.parts.iter().filter(|p| p.1 != 0.0) {
                    row_f64(self.rows, r as usize, &mut u);
                    for (slot, e) in row.iter_mut().zip(entries) {
                        *slot += s.sign * gamma * e.multiplicity() * u[e.i as usize] * u[e.j as usize];
                    }
                }
                for (w, g) in weighted_sum.iter_mut().zip(row.iter()) {
                    *w += h[k] * s.sign * g;
                }
                let root = h[k].sqrt();
                row.mapv_inplace(|g| g * root);
            }
            let half = n / 2;
            let (left, right) = hessian.view_mut().split_at(Axis(1), half);
            let phi_t = phi.t();
            rayon::join(
                || general_mat_mul(1.0, &phi_t, &phi.slice(s![.., ..half]), 1.0, &mut { left }),
                || general_mat_mul(1.0, &phi_t, &phi.slice(s![.., half..]), 1.0, &mut { right }),
            );
        }
        if self.learned_normaliser {
            let total: f64 = active.iter().map(|&k| h[k]).sum();
            for ((i, j), v) in hessian.indexed_iter_mut() {
                *v -= weighted_sum[i] * weighted_sum[j] / total;
            }
        }
        let computed = Arc::new((theta.to_vec(), hessian));
        *self.hessian.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::clone(&computed));
        computed
    }

    /// hₖ·N = σ(zₖ)(1 − σ(zₖ)) at θ.
    fn curvatures(&self, at: &AtTheta) -> Vec<f64> {
        self.samples
            .iter()
            .zip(&at.y)
            .map(|(s, y)| {
                let p = sigmoid(s.sign * (at.c + y));
                p * (1.0 - p)
            })
            .collect()
    }
}

/// The value in `slot` if it was computed at θ (`key` reads its θ); the lock is held only to look.
fn cached<T>(slot: &Mutex<Option<Arc<T>>>, theta: &[f64], key: impl Fn(&T) -> &Vec<f64>) -> Option<Arc<T>> {
    let slot = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    slot.as_ref().filter(|v| key(v).as_slice() == theta).map(Arc::clone)
}

impl Smooth for ContrastiveLoss<'_> {
    fn value(&self, theta: &[f64]) -> f64 {
        let at = self.at(theta);
        self.samples.iter().zip(&at.y).map(|(s, y)| softplus(s.sign * (at.c + y))).sum::<f64>() * self.inv_n
    }

    fn gradient(&self, theta: &[f64]) -> Vec<f64> {
        let at = self.at(theta);
        let s = &self.samples;
        self.weighted_moments(|k| s[k].sign * sigmoid(s[k].sign * (at.c + at.y[k])) * self.inv_n)
    }

    fn hessian_vector_product(&self, theta: &[f64], v: &[f64]) -> Vec<f64> {
        let at = self.at(theta);
        let h = self.curvatures(&at);
        let s = &self.samples;
        let a: Vec<f64> =
            self.sample_forms(&self.row_forms(v)).iter().zip(s).map(|(f, s)| s.sign * f).collect();
        let mu = if self.learned_normaliser {
            let (num, den) =
                h.iter().zip(&a).zip(s).fold((0.0, 0.0), |(n, d), ((h, a), s)| (n + h * s.sign * a, d + h));
            num / den
        } else {
            0.0
        };
        self.weighted_moments(|k| h[k] * (a[k] - s[k].sign * mu) * s[k].sign * self.inv_n)
    }

    fn hessian_diagonal(&self, theta: &[f64]) -> Vec<f64> {
        self.dense_hessian(theta).1.diag().to_vec()
    }

    fn add_hessian_column(&self, theta: &[f64], f: usize, out: &mut [f64]) {
        let hessian = self.dense_hessian(theta);
        for (o, h) in out.iter_mut().zip(hessian.1.column(f).iter().skip(f)) {
            *o += h;
        }
    }

    /// (1/N) Σₖ [softplus(sₖ(c*(α) + yₖ + α dₖ)) − softplus(sₖ(c* + yₖ))], dₖ = Σ_p γ uᵀDu, term by
    /// term (J is a sum of O(1) terms over ~10⁵ samples), with c* re-profiled at every α.
    fn change_along(&self, theta: &[f64], _gradient: &[f64], dir: &[f64]) -> Box<dyn Fn(f64) -> f64 + '_> {
        let at = self.at(theta);
        let dk = self.sample_forms(&self.row_forms(dir));
        Box::new(move |alpha| {
            let y: Vec<f64> = at.y.iter().zip(&dk).map(|(y, d)| y + alpha * d).collect();
            let c = if self.learned_normaliser { self.profile(&y) } else { 0.0 };
            self.samples
                .iter()
                .zip(y.iter().zip(&at.y))
                .map(|(s, (y, y0))| softplus(s.sign * (c + y)) - softplus(s.sign * (at.c + y0)))
                .sum::<f64>()
                * self.inv_n
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmrf_model::{Neighbourhood, Precision};
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// 60 rows on a 3 × 4 grid (8 neighbours): 20 "data" rows (smoothed noise), 40 "noise" rows
    /// (white), as NCE samples with offsets, and as cNCE pairs (data row, a noise row).
    fn rows() -> (Pattern, Array2<f32>) {
        let pattern = Pattern::new(3, 4, Neighbourhood::Eight).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let white = Array2::from_shape_fn((60, 12), |_| StandardNormal.sample(&mut rng));
        let x = Array2::from_shape_fn((60, 12), |(r, p): (usize, usize)| {
            let left: f64 = if r < 20 && p % 4 > 0 { white[(r, p - 1)] } else { 0.0 };
            (white[(r, p)] + 0.7 * left) as f32
        });
        (pattern, x)
    }

    fn nce_samples() -> Vec<Sample> {
        (0..60u32)
            .map(|r| Sample {
                sign: if r < 20 { -1.0 } else { 1.0 },
                offset: 0.1 * f64::from(r % 7) - 0.3,
                parts: [(r, -0.5), (0, 0.0)],
            })
            .collect()
    }

    fn cnce_samples() -> Vec<Sample> {
        (0..40u32)
            .map(|k| Sample { sign: -1.0, offset: 0.0, parts: [(k % 20, -0.5), (20 + k, 0.5)] })
            .collect()
    }

    /// A positive definite θ with every entry non-zero.
    fn theta(pattern: &Pattern) -> Vec<f64> {
        let values = pattern.entries().iter().map(|e| if e.is_diagonal() { 1.3 } else { -0.08 }).collect();
        let lam = Precision::new(pattern.clone(), values).unwrap();
        assert!(lam.is_positive_definite());
        lam.into_values()
    }

    fn direction(n: usize) -> Vec<f64> {
        (0..n).map(|k| ((k * 29) % 13) as f64 / 13.0 - 0.45).collect()
    }

    /// ∇J against central differences of J, ∇²J v against central differences of ∇J, and the
    /// change along a direction against differences of J, for NCE (c profiled) and cNCE.
    #[test]
    fn derivatives_match_finite_differences() {
        let (pattern, x) = rows();
        for (learned, samples, n) in [(true, nce_samples(), 20), (false, cnce_samples(), 40)] {
            let loss = ContrastiveLoss::new(&pattern, x.view(), samples, n, learned);
            let th = theta(&pattern);
            let g = loss.gradient(&th);
            let h = 1e-5;
            for e in 0..th.len() {
                let at = |s: f64| {
                    let mut t = th.clone();
                    t[e] += s;
                    t
                };
                let fd = (loss.value(&at(h)) - loss.value(&at(-h))) / (2.0 * h);
                assert!(
                    (g[e] - fd).abs() <= 1e-7 * (1.0 + fd.abs()),
                    "learned {learned}, ∇J[{e}] = {} vs {fd}",
                    g[e]
                );
            }
            let v = direction(th.len());
            let hv = loss.hessian_vector_product(&th, &v);
            let shifted =
                |s: f64| loss.gradient(&th.iter().zip(&v).map(|(t, v)| t + s * v).collect::<Vec<_>>());
            let (gp, gm) = (shifted(h), shifted(-h));
            for e in 0..th.len() {
                let fd = (gp[e] - gm[e]) / (2.0 * h);
                assert!(
                    (hv[e] - fd).abs() <= 1e-6 * (1.0 + fd.abs()),
                    "learned {learned}, ∇²J v[{e}] = {} vs {fd}",
                    hv[e]
                );
            }
            let change = loss.change_along(&th, &g, &v);
            for alpha in [1e-3, 0.1, 0.5] {
                let moved: Vec<f64> = th.iter().zip(&v).map(|(t, v)| t + alpha * v).collect();
                let direct = loss.value(&moved) - loss.value(&th);
                assert!(
                    (change(alpha) - direct).abs() <= 1e-13,
                    "learned {learned}, α = {alpha}: {} vs {direct}",
                    change(alpha)
                );
            }
        }
    }

    /// The dense Hessian's columns are the Hessian-vector products with unit vectors.
    #[test]
    fn dense_hessian_columns_are_hessian_vector_products() {
        let (pattern, x) = rows();
        for (learned, samples, n) in [(true, nce_samples(), 20), (false, cnce_samples(), 40)] {
            let loss = ContrastiveLoss::new(&pattern, x.view(), samples, n, learned);
            let th = theta(&pattern);
            let diagonal = loss.hessian_diagonal(&th);
            for f in [0, 5, th.len() - 1] {
                let mut unit = vec![0.0; th.len()];
                unit[f] = 1.0;
                let hv = loss.hessian_vector_product(&th, &unit);
                let mut column = vec![0.0; th.len() - f];
                loss.add_hessian_column(&th, f, &mut column);
                for (a, b) in column.iter().zip(&hv[f..]) {
                    assert!(
                        (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                        "learned {learned}, column {f}: {a} vs {b}"
                    );
                }
                assert!((diagonal[f] - hv[f]).abs() <= 1e-12 * (1.0 + hv[f].abs()));
            }
        }
    }

    /// The profiled c minimises J(θ, c) over c: J at c* ± δ is higher, by ½·δ²·Σ hₖ/N to O(δ³).
    #[test]
    fn the_profiled_normaliser_minimises_the_loss_in_c() {
        let (pattern, x) = rows();
        let samples = nce_samples();
        let loss = ContrastiveLoss::new(&pattern, x.view(), samples.clone(), 20, true);
        let th = theta(&pattern);
        let at = loss.at(&th);
        let j =
            |c: f64| samples.iter().zip(&at.y).map(|(s, y)| softplus(s.sign * (c + y))).sum::<f64>() / 20.0;
        let curvature = loss.curvatures(&at).iter().sum::<f64>() / 20.0;
        for delta in [1e-3, -1e-3] {
            let rise = j(at.c + delta) - j(at.c);
            assert!((rise - 0.5 * delta * delta * curvature).abs() <= 1e-3 * rise, "δ = {delta}: {rise:e}");
        }
        assert!((loss.value(&th) - j(at.c)).abs() <= 1e-15 * j(at.c));
    }
}
