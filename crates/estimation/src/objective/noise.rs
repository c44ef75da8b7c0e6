//! The NCE noise p_n: a Gaussian fitted to the training data, in standardised coordinates.
//!
//! Gutmann & Hyvärinen (2012) ask of p_n that it be easy to sample, have an analytic
//! log-density, and be close to the data (else discrimination is trivial and the estimate poor).
//! `full` N(0, S + ridge·I) is the natural choice for images; `diagonal` and `isotropic` are kept
//! to show what a poor noise does (on MNIST they separate perfectly from the data). `original` is
//! the homework's GMRF noise N(0, (M ⊙ S⁻¹)⁻¹), accepted only when M ⊙ S⁻¹ is positive definite.
//!
//! The model crate's `Gaussian` computes the same densities; this one keeps its own dense
//! products because today's minibatch NCE is not robust to their rounding (`docs/decisions.md`,
//! 2026-12-02), until NCE is a defined optimum (issue 15).

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};
use gmrf_model::{Pattern, Precision};
use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;
use rayon::prelude::*;

use super::half_d_log_2pi;
use crate::EstimationError;
use crate::moments::{
    BLOCK_ROWS, column_mean_squares, dense_second_moments, rows_times_transpose, standard_normals,
};

/// Rows per group of the dense noise's sampling and density: a multiple of [`BLOCK_ROWS`], so the
/// row blocks (and hence every bit) are those of a single pass, with memory bounded by the group.
const GROUP_ROWS: usize = 16 * BLOCK_ROWS;

/// Which Gaussian p_n is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NoiseKind {
    /// N(0, S + ridge·I), S the training covariance, sampled through its dense Cholesky factor.
    #[default]
    Full,
    /// N(0, diag S): independent pixels with the data's variances.
    Diagonal,
    /// N(0, v̄ I), v̄ the mean pixel variance.
    Isotropic,
    /// The original's N(0, (M ⊙ S⁻¹)⁻¹), M the pattern's mask; refused when M ⊙ S⁻¹ is not
    /// positive definite (then it has no density).
    Original,
}

impl NoiseKind {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            NoiseKind::Full => "full",
            NoiseKind::Diagonal => "diagonal",
            NoiseKind::Isotropic => "isotropic",
            NoiseKind::Original => "original",
        }
    }
}

#[derive(Clone, Debug)]
enum Repr {
    /// Covariance LLᵀ: y = Lε, log p(y) = −½‖L⁻¹y‖² − Σ log Lᵢᵢ − (d/2) log 2π.
    Dense { l: Mat<f64>, l_inv: Mat<f64>, log_det_l: f64 },
    /// Independent coordinates with these standard deviations.
    Diagonal { std: Vec<f64> },
    /// A GMRF with this precision.
    Gmrf { precision: Precision },
}

/// A zero-mean Gaussian noise density on the standardised pixels.
#[derive(Clone, Debug)]
pub struct GaussianNoise {
    kind: NoiseKind,
    d: usize,
    repr: Repr,
}

impl GaussianNoise {
    /// Fits p_n of `kind` to standardised training data `z` (N × d). `scale` holds the pixel
    /// scales sᵢ of the standardisation (an isotropic noise in the original units is diagonal
    /// in z), `ridge` is added to the diagonal of the `full` covariance (in z, where its diagonal
    /// is 1).
    pub fn fit(
        kind: NoiseKind,
        z: ArrayView2<'_, f32>,
        pattern: &Pattern,
        scale: &[f64],
        ridge: f64,
    ) -> Result<Self, EstimationError> {
        let d = z.ncols();
        let repr = match kind {
            NoiseKind::Full => {
                let s = dense_second_moments(z);
                let mut c = Mat::<f64>::from_fn(d, d, |i, j| s[(i, j)]);
                for i in 0..d {
                    c[(i, i)] += ridge;
                }
                let llt = c.llt(Side::Lower).map_err(|e| {
                    EstimationError::Noise(format!(
                        "noise `full`: the covariance has no Cholesky factor ({e:?})"
                    ))
                })?;
                let l = llt.L().to_owned();
                let mut l_inv = Mat::<f64>::zeros(d, d);
                faer::linalg::triangular_inverse::invert_lower_triangular(
                    l_inv.as_mut(),
                    l.as_ref(),
                    faer::Par::Seq,
                );
                let log_det_l = (0..d).map(|i| l[(i, i)].ln()).sum();
                Repr::Dense { l, l_inv, log_det_l }
            }
            NoiseKind::Diagonal => {
                Repr::Diagonal { std: column_mean_squares(z).iter().map(|v| v.sqrt()).collect() }
            }
            NoiseKind::Isotropic => {
                // v̄ in the original units is the mean of sᵢ²; its std in z is √v̄ / sᵢ.
                let v_bar = scale.iter().map(|s| s * s).sum::<f64>() / d as f64;
                Repr::Diagonal { std: scale.iter().map(|s| v_bar.sqrt() / s).collect() }
            }
            NoiseKind::Original => {
                let s = dense_second_moments(z);
                let c = Mat::<f64>::from_fn(d, d, |i, j| s[(i, j)]);
                let c_inv = c.llt(Side::Lower).map_err(|e| {
                    EstimationError::Noise(format!("noise `original`: S is singular ({e:?})"))
                })?;
                let s_inv = c_inv.inverse();
                let values = pattern.entries().iter().map(|e| s_inv[(e.i as usize, e.j as usize)]).collect();
                let precision = Precision::new(pattern.clone(), values)?;
                // Congruence by D (z = D⁻¹x) keeps the signs of the eigenvalues (Sylvester), so
                // this count is that of M ⊙ S⁻¹ in the original units.
                let eig = precision.eigenvalues()?;
                let bad = eig.iter().filter(|&&v| v <= 0.0).count();
                if bad > 0 {
                    return Err(EstimationError::Noise(format!(
                        "noise `original` N(0, (M ⊙ S⁻¹)⁻¹) has no density: M ⊙ S⁻¹ (the inverse \
                         covariance masked to the {} pattern) has {bad} eigenvalues ≤ 0 of {d} \
                         (smallest {:.3e}), so it is not a covariance; this is why the original's \
                         NCE never trained. Use --noise full",
                        pattern.neighbourhood(),
                        eig[0]
                    )));
                }
                Repr::Gmrf { precision }
            }
        };
        Ok(GaussianNoise { kind, d, repr })
    }

    /// Which noise this is.
    pub fn kind(&self) -> NoiseKind {
        self.kind
    }

    /// `n` draws as f32 rows; the normals come sequentially from `rng`.
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Result<Array2<f32>, EstimationError> {
        Ok(match &self.repr {
            Repr::Dense { l, .. } => {
                // Group by group: the normals come in the same sequence and the products over the
                // same row blocks as in one pass, without n × d f64 intermediates (376 MB each on
                // MNIST).
                let mut out = Array2::<f32>::zeros((n, self.d));
                for mut group in out.axis_chunks_iter_mut(Axis(0), GROUP_ROWS) {
                    let eps = standard_normals(group.nrows(), self.d, rng);
                    group.assign(&rows_times_transpose(&eps, l.as_ref()).mapv(|v| v as f32));
                }
                out
            }
            Repr::Diagonal { std } => {
                let mut eps = standard_normals(n, self.d, rng);
                for mut row in eps.axis_iter_mut(Axis(0)) {
                    for (v, s) in row.iter_mut().zip(std) {
                        *v *= s;
                    }
                }
                eps.mapv(|v| v as f32)
            }
            Repr::Gmrf { precision } => precision.sample_cholesky(n, None, rng)?.mapv(|v| v as f32),
        })
    }

    /// log p_n of every row of `y` (in f64).
    pub fn log_density(&self, y: ArrayView2<'_, f32>) -> Result<Vec<f64>, EstimationError> {
        let half_log_2pi = half_d_log_2pi(self.d);
        Ok(match &self.repr {
            Repr::Dense { l_inv, log_det_l, .. } => {
                let mut out = Vec::with_capacity(y.nrows());
                for group in y.axis_chunks_iter(Axis(0), GROUP_ROWS) {
                    let u = rows_times_transpose(&group.mapv(f64::from), l_inv.as_ref());
                    out.extend(
                        u.axis_iter(Axis(0))
                            .map(|r| -0.5 * r.iter().map(|v| v * v).sum::<f64>() - log_det_l - half_log_2pi),
                    );
                }
                out
            }
            Repr::Diagonal { std } => {
                let log_det: f64 = std.iter().map(|s| s.ln()).sum();
                y.axis_iter(Axis(0))
                    .into_par_iter()
                    .map(|r| {
                        let q: f64 = r.iter().zip(std).map(|(&v, s)| (f64::from(v) / s).powi(2)).sum();
                        -0.5 * q - log_det - half_log_2pi
                    })
                    .collect()
            }
            Repr::Gmrf { precision } => precision.log_density(y)?,
        })
    }
}
