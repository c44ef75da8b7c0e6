//! Denoising: the posterior mean of a centred image x ~ N(0, Λ⁻¹) observed as y = x + sε,
//! ε ~ N(0, I): x | y ~ N((Λ + I/s²)⁻¹ y/s², (Λ + I/s²)⁻¹) (Rue & Held 2005, §2.3). Λ + I/s² keeps
//! Λ's pattern, so a sparse model solves with its banded factor; the dense baselines form
//! K = (Λ + I/s²)⁻¹/s² once and apply it to every image.

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use gmrf_model::Gaussian;
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::EvaluationError;

/// E[x | y] = (Λ + I/s²)⁻¹ y/s² for every row y of `noisy` (centred, N × d).
pub fn posterior_means(
    gaussian: &Gaussian,
    noisy: ArrayView2<'_, f64>,
    s: f64,
) -> Result<Array2<f64>, EvaluationError> {
    let inv_s2 = 1.0 / (s * s);
    let mut out = noisy.mapv(|v| v * inv_s2);
    match gaussian {
        Gaussian::Sparse { precision, .. } => {
            let pattern = precision.pattern();
            let mut values = precision.values().to_vec();
            (0..pattern.dim()).for_each(|i| values[pattern.diagonal_position(i)] += inv_s2);
            let factor = precision.with_values(values)?.try_factor()?;
            out.axis_iter_mut(Axis(0)).into_par_iter().for_each(|mut row| {
                factor.solve_in_place(
                    row.as_slice_mut().expect("rows of a standard-layout array are contiguous"),
                );
            });
        }
        Gaussian::Dense { .. } | Gaussian::Diagonal { .. } => {
            let lambda = gaussian.precision_dense();
            let d = lambda.nrows();
            let posterior =
                Mat::<f64>::from_fn(d, d, |i, j| lambda[(i, j)] + if i == j { inv_s2 } else { 0.0 });
            let llt = posterior.llt(Side::Lower).map_err(|_| EvaluationError::NotPositiveDefinite)?;
            let inverse = llt.solve(Mat::<f64>::identity(d, d));
            // K is symmetric: rows times K.
            let gain = Array2::from_shape_fn((d, d), |(i, j)| 0.5 * (inverse[(i, j)] + inverse[(j, i)]));
            out = out.dot(&gain);
        }
    }
    Ok(out)
}

/// Peak signal-to-noise ratio of `estimate` against `clean` for a pixel range of 1:
/// 10·log₁₀(1/MSE) in dB, the mean squared error over every pixel of every image.
pub fn psnr(estimate: ArrayView2<'_, f64>, clean: ArrayView2<'_, f32>) -> f64 {
    let n = estimate.len().max(1) as f64;
    let mse = estimate.iter().zip(clean.iter()).map(|(&e, &c)| (e - f64::from(c)).powi(2)).sum::<f64>() / n;
    -10.0 * mse.log10()
}
