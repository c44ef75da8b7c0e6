//! The Gaussian Markov random field on the pixel grid: x − μ ~ N(0, Λ⁻¹) with Λ sparse.
//!
//! # Brief overview
//!
//! A [`Neighbourhood`] (4-, 8-connected or radius r) on an h × w grid gives a [`Pattern`]: the
//! stored entries of Λ (upper triangle with diagonal, canonical order, each an [`Entry`] with its
//! pixel pair and grid offset). A [`Precision`] holds one value per entry; it multiplies vectors
//! and blocks, evaluates quadratic forms and log-densities, and factorises itself
//! ([`Precision::try_factor`], an error rather than a panic when Λ is not positive definite) into a
//! banded [`Cholesky`] factor, which gives log|Λ|, solves, the selected inverse (Λ⁻¹ on the
//! pattern, [`InverseBand`]) and the L⁻ᵀz sampler. [`SymmetricEigen`] gives the spectrum and the
//! Λ^{-1/2}ε sampler. A [`Gaussian`] is N(0, Λ⁻¹) held by a sparse Λ, a dense covariance or
//! independent coordinates, scored and sampled by one set of methods. Pixels are row-major, so Λ is banded (b = w or w + 1) and everything but the
//! eigendecomposition costs O(d·b²) or less.
//!
//! ```
//! use gmrf_model::{Neighbourhood, Pattern, Precision};
//! use rand::SeedableRng;
//!
//! let pattern = Pattern::new(6, 6, Neighbourhood::Four)?;
//! // Λ = 4I − A (A the adjacency matrix): diagonally dominant, so positive definite.
//! let values = pattern.entries().iter().map(|e| if e.is_diagonal() { 4.0 } else { -0.9 }).collect();
//! let precision = Precision::new(pattern, values)?;
//! let log_det = precision.log_det()?;
//! let sigma_on_pattern = precision.selected_inverse()?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let x = precision.sample_cholesky(10, None, &mut rng)?;
//! let log_p = precision.log_density(x.view())?;
//! assert_eq!(log_p.len(), 10);
//! # let _ = (log_det, sigma_on_pattern);
//! # Ok::<(), gmrf_model::ModelError>(())
//! ```

mod cholesky;
mod eigen;
mod error;
mod gaussian;
mod pattern;
mod precision;
mod sampling;
mod table;

pub use cholesky::{Cholesky, InverseBand};
pub use eigen::SymmetricEigen;
pub use error::ModelError;
pub use gaussian::{Gaussian, nll_per_pixel, second_moments};
pub use pattern::{Entry, Neighbourhood, Pattern};
pub use precision::{Precision, half_d_log_2pi, log_density_with, log_normaliser};
