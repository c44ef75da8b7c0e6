//! Objectives on the free entries θ of Λ (one value per stored entry of the pattern's upper
//! triangle with diagonal): each gives its value, gradient and, where a solver needs it, its
//! Hessian-vector product and Hessian diagonal.
//!
//! - [`ScoreMatching`]: J(Λ) = ½ tr(ΛSΛ) − tr Λ, a convex quadratic (Hyvärinen 2005).
//! - [`log_det`]: the derivatives of log|Λ| from the selected inverse and the band of Σ = Λ⁻¹.
//! - [`BarrierObjective`]: F(θ) = q(θ) − t·log|Λ(θ)| for a quadratic or linear q, what Newton,
//!   L-BFGS and the barrier path minimise (score matching's barrier stages; the masked
//!   likelihood tr(SΛ) − log|Λ| at t = 1).
//! - [`ContrastiveLoss`]: the NCE and cNCE losses over the whole training set as a convex
//!   [`Smooth`] objective (full batch, learned normaliser profiled out), for the shared solvers.
//! - [`nce`] and [`cnce`]: the contrastive losses on minibatches, sums over rows of softplus of quadratic forms,
//!   evaluated on Λ stored as offset planes ([`Planes`]), against a [`GaussianNoise`] for NCE.

use gmrf_model::{Precision, log_normaliser};

use crate::EstimationError;

mod barrier;
pub mod cnce;
mod contrast;
mod entries;
pub mod log_det;
pub mod nce;
mod noise;
mod planes;
mod score_matching;

pub use barrier::Smooth;
pub(crate) use barrier::{BarrierObjective, Quadratic, scaled_hessian_column};
pub(crate) use contrast::{ContrastiveLoss, Sample};
pub(crate) use entries::{Adjacency, max_entry_gradient};
pub use log_det::log_det_gradient;
pub use noise::{GaussianNoise, NoiseKind};
pub(crate) use planes::Planes;
pub use planes::{sigmoid, softplus};
pub use score_matching::ScoreMatching;


/// Held-out negative log-likelihood in nats per pixel from the held-out second moments on the
/// pattern: −(1/d)·(½ log|Λ| − (d/2) log 2π − ½ tr(S Λ)), the mean of −log p(x)/d over the rows.
pub fn heldout_nll(
    precision: &Precision,
    moments: &crate::moments::SecondMoments,
) -> Result<f64, EstimationError> {
    let d = precision.dim();
    let log_det = precision.log_det()?;
    let tr: f64 = precision
        .pattern()
        .entries()
        .iter()
        .zip(precision.values())
        .map(|(e, v)| e.multiplicity() * v * moments.at(e.i as usize, e.j as usize))
        .sum();
    Ok(-(log_normaliser(log_det, d) - 0.5 * tr) / d as f64)
}
