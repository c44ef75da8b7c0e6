//! A zero-mean Gaussian N(0, Λ⁻¹) as the evaluation sees it: the fitted sparse Λθ, or a dense
//! covariance for the baselines. Both give log|Λ| and the quadratic forms xᵀΛx, and the
//! likelihood is computed from those two by one function, so every model is scored by one formula.

use faer::{Mat, Par, Side};
use gmrf_model::{Cholesky, Precision, SymmetricEigen};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::EvaluationError;

/// Images per block in the parallel loops: fixed, so results do not depend on the thread count.
const BLOCK: usize = 256;

pub enum Gaussian {
    /// A fitted Λθ on its pattern with its banded Cholesky factor.
    Sparse { precision: Precision, factor: Cholesky },
    /// A dense covariance Σ = LLᵀ (the baselines): log|Λ| = −2 Σᵢ log Lᵢᵢ and xᵀΛx = ‖L⁻¹x‖².
    Dense { covariance: Array2<f64>, lower: Mat<f64> },
}

impl Gaussian {
    /// A fitted precision; an error if Λ has no Cholesky factor.
    pub fn sparse(precision: Precision) -> Result<Self, EvaluationError> {
        let factor = precision.try_factor()?;
        Ok(Gaussian::Sparse { precision, factor })
    }

    /// The Gaussian with covariance `covariance` (dense, symmetric positive definite).
    pub fn from_covariance(covariance: Array2<f64>) -> Result<Self, EvaluationError> {
        let d = covariance.nrows();
        let m = Mat::<f64>::from_fn(d, d, |i, j| covariance[(i, j)]);
        let llt = m.llt(Side::Lower).map_err(|_| EvaluationError::NotPositiveDefinite)?;
        Ok(Gaussian::Dense { covariance, lower: llt.L().to_owned() })
    }

    pub fn dim(&self) -> usize {
        match self {
            Gaussian::Sparse { precision, .. } => precision.dim(),
            Gaussian::Dense { lower, .. } => lower.nrows(),
        }
    }

    /// log|Λ|.
    pub fn log_det_precision(&self) -> f64 {
        match self {
            Gaussian::Sparse { factor, .. } => factor.log_det(),
            Gaussian::Dense { lower, .. } => {
                -2.0 * (0..lower.nrows()).map(|i| lower[(i, i)].ln()).sum::<f64>()
            }
        }
    }

    /// xₙᵀΛxₙ for every row xₙ of `x`.
    pub fn quadratic_forms(&self, x: ArrayView2<'_, f32>) -> Vec<f64> {
        match self {
            Gaussian::Sparse { precision, .. } => precision.quadratic_forms(x),
            Gaussian::Dense { lower, .. } => {
                let blocks: Vec<Vec<f64>> = x
                    .axis_chunks_iter(Axis(0), BLOCK)
                    .into_par_iter()
                    .map(|block| {
                        // One column per image: L⁻¹X in a single triangular solve.
                        let mut rhs =
                            Mat::<f64>::from_fn(block.ncols(), block.nrows(), |i, n| block[(n, i)] as f64);
                        faer::linalg::triangular_solve::solve_lower_triangular_in_place(
                            lower.as_ref(),
                            rhs.as_mut(),
                            Par::Seq,
                        );
                        (0..rhs.ncols()).map(|n| rhs.col(n).iter().map(|v| v * v).sum()).collect()
                    })
                    .collect();
                blocks.concat()
            }
        }
    }

    /// The mean negative log-likelihood of each row of `x`, in nats per pixel.
    pub fn nll_per_pixel(&self, x: ArrayView2<'_, f32>) -> Vec<f64> {
        let (log_det, d) = (self.log_det_precision(), self.dim());
        self.quadratic_forms(x).into_iter().map(|q| nll_per_pixel(log_det, d, q)).collect()
    }

    /// The eigenvalues of Λ, ascending.
    pub fn precision_eigenvalues(&self) -> Result<Vec<f64>, EvaluationError> {
        Ok(match self {
            Gaussian::Sparse { precision, .. } => precision.eigenvalues()?,
            Gaussian::Dense { covariance, .. } => {
                // Λ = Σ⁻¹ has the reciprocal spectrum.
                let mut values: Vec<f64> =
                    SymmetricEigen::of_dense(covariance.view())?.values.iter().map(|v| 1.0 / v).collect();
                values.sort_by(f64::total_cmp);
                values
            }
        })
    }
}

/// −log p(x)/d for x ~ N(0, Λ⁻¹) in d dimensions, from log|Λ| and q = xᵀΛx:
/// (q + d·log 2π − log|Λ|) / (2d).
pub fn nll_per_pixel(log_det_precision: f64, d: usize, quadratic_form: f64) -> f64 {
    let d = d as f64;
    (quadratic_form + d * (2.0 * std::f64::consts::PI).ln() - log_det_precision) / (2.0 * d)
}

/// Bits per pixel of the discrete 8-bit data, from the density's nll in nats per pixel of the
/// dequantised data x = (pixel + u)/scale: a pixel bin has width 1/scale, so
/// −log₂ P(pixel) ≤ nll/ln 2 + log₂ scale (= nll/ln 2 + 8 for scale 256).
pub fn bits_per_pixel(nll_nats_per_pixel: f64, scale: f64) -> f64 {
    nll_nats_per_pixel / std::f64::consts::LN_2 + scale.log2()
}

/// S = XᵀX/N, the second moments of centred rows, dense (d × d). Blocks of rows are reduced in a
/// fixed order, so the result is the same on any thread count.
pub fn second_moments_dense(x: ArrayView2<'_, f32>) -> Array2<f64> {
    let d = x.ncols();
    let partials: Vec<Array2<f64>> = x
        .axis_chunks_iter(Axis(0), 4 * BLOCK)
        .into_par_iter()
        .map(|block| {
            let block = block.mapv(f64::from);
            block.t().dot(&block)
        })
        .collect();
    let mut s = partials.into_iter().fold(Array2::zeros((d, d)), |acc, p| acc + p);
    s /= x.nrows().max(1) as f64;
    s
}
