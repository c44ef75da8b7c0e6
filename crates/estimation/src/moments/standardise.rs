//! Per-pixel standardisation of the centred rows.

use gmrf_model::Precision;
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::column_mean_squares;

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
    /// sᵢ = √((1/N) Σₙ xₙᵢ²), summed in f64 in the crate's block order.
    pub fn fit(x: ArrayView2<'_, f32>) -> Self {
        Standardisation { scale: column_mean_squares(x).iter().map(|s| s.sqrt()).collect() }
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
