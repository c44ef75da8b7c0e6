//! The NCE noise p_n: a Gaussian fitted to the training data, in standardised coordinates.
//!
//! Gutmann & Hyvärinen (2012) ask of p_n that it be easy to sample, have an analytic
//! log-density, and be close to the data (else discrimination is trivial and the estimate poor).
//! `full` N(0, S + ridge·I) is the natural choice for images; `diagonal` and `isotropic` are kept
//! to show what a poor noise does (on MNIST they separate perfectly from the data). `original` is
//! the homework's GMRF noise N(0, (M ⊙ S⁻¹)⁻¹), accepted only when M ⊙ S⁻¹ is positive definite.
//!
//! Each kind is a [`gmrf_model::Gaussian`]: one dense Gaussian, one log 2π, for the noise and for
//! evaluation alike.

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};
use gmrf_model::{Gaussian, Pattern, Precision};
use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;

use crate::EstimationError;
use crate::moments::{BLOCK_ROWS, column_mean_squares, dense_second_moments};

/// Rows per group of the noise's draws: the normals come in the same sequence as in one pass,
/// with memory bounded by the group (n × d f64 normals are 376 MB on MNIST).
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

/// A zero-mean Gaussian noise density on the standardised pixels.
#[derive(Clone, Debug)]
pub struct GaussianNoise {
    kind: NoiseKind,
    gaussian: Gaussian,
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
        let gaussian = match kind {
            NoiseKind::Full => {
                let mut covariance = dense_second_moments(z);
                covariance.diag_mut().iter_mut().for_each(|v| *v += ridge);
                Gaussian::from_covariance(covariance).map_err(|e| {
                    EstimationError::Noise(format!("noise `full`: the covariance has no Cholesky factor ({e})"))
                })?
            }
            NoiseKind::Diagonal => Gaussian::diagonal(column_mean_squares(z))?,
            // v̄ in the original units is the mean of sᵢ²; its variance in z is v̄ / sᵢ².
            NoiseKind::Isotropic => {
                let v_bar = scale.iter().map(|s| s * s).sum::<f64>() / d as f64;
                Gaussian::diagonal(scale.iter().map(|s| v_bar / (s * s)).collect())?
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
                Gaussian::from_precision(precision)?
            }
        };
        Ok(GaussianNoise { kind, gaussian })
    }

    /// Which noise this is.
    pub fn kind(&self) -> NoiseKind {
        self.kind
    }

    /// `n` draws as f32 rows; the normals come sequentially from `rng`, group by group.
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((n, self.gaussian.dim()));
        for mut group in out.axis_chunks_iter_mut(Axis(0), GROUP_ROWS) {
            group.assign(&self.gaussian.sample(group.nrows(), rng).mapv(|v| v as f32));
        }
        out
    }

    /// log p_n of every row of `y` (in f64).
    pub fn log_density(&self, y: ArrayView2<'_, f32>) -> Vec<f64> {
        self.gaussian.log_density(y)
    }
}
