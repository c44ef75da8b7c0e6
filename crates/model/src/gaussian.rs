//! A zero-mean Gaussian N(0, Λ⁻¹), whatever holds it: a sparse Λ on a grid pattern (with its banded
//! Cholesky factor), a dense covariance Σ = LLᵀ, or independent coordinates. Each gives log|Λ|,
//! the quadratic forms xᵀΛx, and draws; the log-density of every kind comes from those through one
//! function, [`log_density_with`] (½ log|Λ| − ½·d·log 2π − ½ xᵀΛx), where the constant lives.
//!
//! Evaluation scores fitted models and its baselines (`diagonal`, `full`) with it, and NCE's noise
//! densities (`full`, `diagonal`, `isotropic`, `original`) are the same three kinds.

use faer::linalg::cholesky::llt::factor::LltError;
use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::{Mat, MatRef, Par, Side};
use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::{Cholesky, ModelError, Precision, SymmetricEigen, log_density_with};

/// Rows per block of the dense products: fixed, so results do not depend on the thread count.
const BLOCK: usize = 512;

/// x ~ N(0, Λ⁻¹) in d dimensions.
#[derive(Clone, Debug)]
pub enum Gaussian {
    /// A precision Λ on its pattern with its banded Cholesky factor Λ = LLᵀ:
    /// xᵀΛx by the sparse product, log|Λ| = 2 Σᵢ log Lᵢᵢ, draws L⁻ᵀz.
    Sparse { precision: Precision, factor: Cholesky },
    /// A dense covariance Σ = LLᵀ (L lower triangular, with its inverse): xᵀΛx = ‖L⁻¹x‖²,
    /// log|Λ| = −2 Σᵢ log Lᵢᵢ, draws Lz. Both products are dense row blocks times a d × d matrix
    /// (one level-3 product per block, faster than triangular solves row by row).
    Dense { covariance: Array2<f64>, lower: Mat<f64>, lower_inverse: Mat<f64> },
    /// Independent coordinates with variances σᵢ²: Λ = diag(σ⁻²).
    Diagonal { variances: Vec<f64> },
}

impl Gaussian {
    /// The Gaussian with precision `precision`; an error if Λ has no Cholesky factor.
    pub fn from_precision(precision: Precision) -> Result<Self, ModelError> {
        let factor = precision.try_factor()?;
        Ok(Gaussian::Sparse { precision, factor })
    }

    /// The Gaussian with covariance `covariance` (dense, symmetric positive definite; its lower
    /// triangle is read); an error if it has no Cholesky factor.
    pub fn from_covariance(covariance: Array2<f64>) -> Result<Self, ModelError> {
        let d = covariance.nrows();
        if covariance.ncols() != d {
            return Err(ModelError::WrongLength {
                what: "covariance columns",
                expected: d,
                got: covariance.ncols(),
            });
        }
        if let Some(position) = covariance.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { position });
        }
        let m = Mat::<f64>::from_fn(d, d, |i, j| covariance[(i, j)]);
        let llt = m.llt(Side::Lower).map_err(|e| match e {
            LltError::NonPositivePivot { index } => ModelError::NotPositiveDefinite { pivot: index },
        })?;
        let lower = llt.L().to_owned();
        let mut lower_inverse = Mat::<f64>::zeros(d, d);
        faer::linalg::triangular_inverse::invert_lower_triangular(
            lower_inverse.as_mut(),
            lower.as_ref(),
            Par::Seq,
        );
        Ok(Gaussian::Dense { covariance, lower, lower_inverse })
    }

    /// Independent coordinates with these variances (each finite and > 0).
    pub fn diagonal(variances: Vec<f64>) -> Result<Self, ModelError> {
        if let Some(position) = variances.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { position });
        }
        if let Some(pivot) = variances.iter().position(|&v| v <= 0.0) {
            return Err(ModelError::NotPositiveDefinite { pivot });
        }
        Ok(Gaussian::Diagonal { variances })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        match self {
            Gaussian::Sparse { precision, .. } => precision.dim(),
            Gaussian::Dense { lower, .. } => lower.nrows(),
            Gaussian::Diagonal { variances } => variances.len(),
        }
    }

    /// log|Λ|.
    pub fn log_det_precision(&self) -> f64 {
        match self {
            Gaussian::Sparse { factor, .. } => factor.log_det(),
            Gaussian::Dense { lower, .. } => {
                -2.0 * (0..lower.nrows()).map(|i| lower[(i, i)].ln()).sum::<f64>()
            }
            Gaussian::Diagonal { variances } => -variances.iter().map(|v| v.ln()).sum::<f64>(),
        }
    }

    /// xₙᵀΛxₙ for every row xₙ of `x` (N × d), accumulated in f64; independent of the thread count.
    pub fn quadratic_forms<T: Copy + Into<f64> + Sync>(&self, x: ArrayView2<'_, T>) -> Vec<f64> {
        assert_eq!(x.ncols(), self.dim(), "block width");
        match self {
            Gaussian::Sparse { precision, .. } => precision.quadratic_forms(x),
            Gaussian::Dense { lower_inverse, .. } => {
                let blocks: Vec<Vec<f64>> = x
                    .axis_chunks_iter(Axis(0), BLOCK)
                    .into_par_iter()
                    .map(|block| {
                        let u = block_times_transpose(block, lower_inverse.as_ref());
                        (0..u.nrows()).map(|n| (0..u.ncols()).map(|i| u[(n, i)] * u[(n, i)]).sum()).collect()
                    })
                    .collect();
                blocks.concat()
            }
            Gaussian::Diagonal { variances } => x
                .axis_iter(Axis(0))
                .into_par_iter()
                .map(|row| row.iter().zip(variances).map(|(&v, s2)| v.into() * v.into() / s2).sum())
                .collect(),
        }
    }

    /// log p(xₙ) = ½ log|Λ| − ½·d·log 2π − ½ xₙᵀΛxₙ for every row of `x`.
    pub fn log_density<T: Copy + Into<f64> + Sync>(&self, x: ArrayView2<'_, T>) -> Vec<f64> {
        log_density_with(self.log_det_precision(), self.dim(), &self.quadratic_forms(x))
    }

    /// −log p(xₙ)/d, the negative log-likelihood of every row in nats per coordinate.
    pub fn nll_per_pixel<T: Copy + Into<f64> + Sync>(&self, x: ArrayView2<'_, T>) -> Vec<f64> {
        let d = self.dim() as f64;
        self.log_density(x).into_iter().map(|l| -l / d).collect()
    }

    /// Rows of standard normals z (N × d) turned into draws from N(0, Λ⁻¹), row by row: L⁻ᵀz
    /// (sparse), Lz (dense), σ ⊙ z (diagonal). The caller owns the stream of normals.
    pub fn colour(&self, z: ArrayView2<'_, f64>) -> Array2<f64> {
        assert_eq!(z.ncols(), self.dim(), "block width");
        let mut x = z.to_owned();
        match self {
            Gaussian::Sparse { factor, .. } => {
                x.axis_iter_mut(Axis(0)).into_par_iter().for_each(|mut row| {
                    let s = row.as_slice_mut().expect("rows of a standard-layout array are contiguous");
                    factor.solve_upper_in_place(s);
                });
            }
            Gaussian::Dense { lower, .. } => {
                x.axis_chunks_iter_mut(Axis(0), BLOCK).into_par_iter().for_each(|mut block| {
                    let coloured = block_times_transpose(block.view(), lower.as_ref());
                    block.indexed_iter_mut().for_each(|((n, i), v)| *v = coloured[(n, i)]);
                });
            }
            Gaussian::Diagonal { variances } => {
                for mut row in x.axis_iter_mut(Axis(0)) {
                    row.iter_mut().zip(variances).for_each(|(v, s2)| *v *= s2.sqrt());
                }
            }
        }
        x
    }

    /// `n` draws from N(0, Λ⁻¹) as rows, the normals drawn sequentially from `rng` (row by row),
    /// so a seeded generator gives the same draws on every machine and thread count.
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Array2<f64> {
        let z = Array2::from_shape_simple_fn((n, self.dim()), || rng.sample::<f64, _>(StandardNormal));
        self.colour(z.view())
    }

    /// Λ as a dense d × d matrix: the sparse values, Σ⁻¹ = L⁻ᵀL⁻¹ by triangular solves, or
    /// diag(σ⁻²).
    pub fn precision_dense(&self) -> Array2<f64> {
        match self {
            Gaussian::Sparse { precision, .. } => precision.to_dense(),
            Gaussian::Dense { lower, .. } => {
                let d = lower.nrows();
                let mut inverse = Mat::<f64>::identity(d, d);
                solve_lower_triangular_in_place(lower.as_ref(), inverse.as_mut(), Par::Seq);
                solve_upper_triangular_in_place(lower.transpose(), inverse.as_mut(), Par::Seq);
                Array2::from_shape_fn((d, d), |(i, j)| 0.5 * (inverse[(i, j)] + inverse[(j, i)]))
            }
            Gaussian::Diagonal { variances } => {
                Array2::from_diag(&ndarray::Array1::from_iter(variances.iter().map(|v| 1.0 / v)))
            }
        }
    }

    /// The eigenvalues of Λ, ascending.
    pub fn precision_eigenvalues(&self) -> Result<Vec<f64>, ModelError> {
        let mut values: Vec<f64> = match self {
            Gaussian::Sparse { precision, .. } => return precision.eigenvalues(),
            // Λ = Σ⁻¹ has the reciprocal spectrum.
            Gaussian::Dense { covariance, .. } => {
                SymmetricEigen::of_dense(covariance.view())?.values.iter().map(|v| 1.0 / v).collect()
            }
            Gaussian::Diagonal { variances } => variances.iter().map(|v| 1.0 / v).collect(),
        };
        values.sort_by(f64::total_cmp);
        Ok(values)
    }
}

/// Rows per block of [`second_moments`]: fixed, so its sums do not depend on the thread count.
const MOMENT_BLOCK: usize = 512;

/// S = (1/N) Σₙ xₙxₙᵀ (d × d) of N centred rows, in f64: the covariance that the `full` baselines
/// and NCE's `full` noise are fitted to. Blocks of rows are sequential faer products computed in
/// parallel and added in block order (a few at a time, to bound the d × d partials alive), so the
/// result is bit-identical on any number of threads.
pub fn second_moments(x: ArrayView2<'_, f32>) -> Array2<f64> {
    use faer::Accum;
    use faer::linalg::matmul::matmul;
    let (n, d) = (x.nrows(), x.ncols());
    let n_blocks = n.div_ceil(MOMENT_BLOCK);
    let mut total = Mat::<f64>::zeros(d, d);
    let group = 8;
    for g0 in (0..n_blocks).step_by(group) {
        let partials: Vec<Mat<f64>> = (g0..(g0 + group).min(n_blocks))
            .into_par_iter()
            .map(|b| {
                let r0 = b * MOMENT_BLOCK;
                let r1 = (r0 + MOMENT_BLOCK).min(n);
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
    let inv_n = 1.0 / n.max(1) as f64;
    Array2::from_shape_fn((d, d), |(i, j)| total[(i, j)] * inv_n)
}

/// −log p(x)/d for x ~ N(0, Λ⁻¹) in d dimensions, from log|Λ| and q = xᵀΛx:
/// (q + d·log 2π − log|Λ|) / (2d).
pub fn nll_per_pixel(log_det_precision: f64, d: usize, quadratic_form: f64) -> f64 {
    -log_density_with(log_det_precision, d, &[quadratic_form])[0] / d as f64
}

/// X Aᵀ for a block of rows X (read as f64): one sequential faer product, so each row's bits do
/// not depend on the thread count (the blocks are cut at fixed rows).
fn block_times_transpose<T: Copy + Into<f64>>(x: ArrayView2<'_, T>, a: MatRef<'_, f64>) -> Mat<f64> {
    let xb = Mat::<f64>::from_fn(x.nrows(), x.ncols(), |n, i| x[(n, i)].into());
    let mut out = Mat::<f64>::zeros(x.nrows(), a.nrows());
    faer::linalg::matmul::matmul(
        out.as_mut(),
        faer::Accum::Replace,
        xb.as_ref(),
        a.transpose(),
        1.0,
        Par::Seq,
    );
    out
}
