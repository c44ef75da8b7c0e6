//! Estimators of a GMRF precision Λ from centred images: score matching (exact, and the original's
//! gradient descent), masked maximum likelihood, noise-contrastive and conditional
//! noise-contrastive estimation.
//!
//! # Brief overview
//!
//! Each estimator is a `fit_*` function with an options struct (documented defaults) that returns
//! a [`Fit`]: the fitted [`Precision`], a trace of [`TraceRow`]s and its diagnostics. Inside, the
//! crate is four layers, each depending only on the ones below it:
//!
//! - `method`: the estimators ([`fit_sm`], [`fit_sm_gd`], [`fit_mle`], [`fit_nce`],
//!   [`fit_cnce`]), each a short composition of an objective and a solver. **A new estimator
//!   goes here**, as one file: see `src/method/mod.rs`.
//! - `solve`: solvers that keep Λ positive definite at every iterate (one positive-definite
//!   line search, CG with a dense Hessian factor, Newton-CG, L-BFGS, the barrier path with its
//!   choice of weight on validation data, the minibatch first-order loop). A new solver goes here.
//! - `objective`: value, gradient and Hessian products in the free entries of Λ (score
//!   matching, log-determinant, the barrier objective, NCE, cNCE, the NCE noise).
//! - `moments`: statistics of the rows (second moments on grid offsets, standardisation) and
//!   the one ordered reduction every sum uses, so every result is bit-identical on any number of
//!   threads.
//!
//! The crate's API is what this page lists: the `fit_*` functions, their options and diagnostics,
//! [`Fit`] and [`EstimationError`]. The layers themselves are public modules only with the
//! `internals` feature, which the crate's own tests, benches and examples enable to check and time
//! kernels against independent computations.
//!
//! ```
//! use gmrf_estimation::{MleOptions, fit_mle};
//! use gmrf_model::{Neighbourhood, Pattern};
//! use ndarray::Array2;
//!
//! let pattern = Pattern::new(3, 3, Neighbourhood::Four)?;
//! // Centred data: N × d rows (here a deterministic toy set).
//! let x = Array2::from_shape_fn((200, 9), |(n, p)| ((n * 7 + p * 3) % 11) as f32 / 11.0 - 0.45);
//! let fit = fit_mle(x.view(), &pattern, &MleOptions::default(), None)?;
//! assert!(fit.diagnostics.converged);
//! assert!(fit.precision.is_positive_definite());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Precision`]: gmrf_model::Precision

mod checks;
mod error;
mod fit;

/// Declares the layers: public modules with the `internals` feature, which the crate's own tests,
/// benches and examples enable; private otherwise, since they are not an API (the methods'
/// `fit_*`, options and diagnostics are re-exported below).
macro_rules! layers {
    ($($layer:ident),*) => {$(
        #[cfg(feature = "internals")]
        pub mod $layer;
        #[cfg(not(feature = "internals"))]
        #[allow(dead_code, unused_imports)]
        mod $layer;
    )*};
}
layers!(method, moments, objective, solve);

pub use checks::{Named, UnknownName};
pub use error::EstimationError;
pub use fit::{Fit, Progress, TraceRow};
pub use method::Certificate;
pub use method::cnce::{CnceDiagnostics, CnceOptions, SIGMA_GRID, SigmaCandidate, fit_cnce};
pub use method::mle::{MleDiagnostics, MleOptions, fit_mle};
pub use method::nce::{NceDiagnostics, NceOptions, Normaliser, Solver, fit_nce};
pub use method::sm::{BarrierWeight, SmDiagnostics, SmOptions, fit_sm};
pub use method::sm_gd::{GdGradient, SmGdDiagnostics, SmGdOptions, fit_sm_gd};
pub use objective::NoiseKind;
pub use solve::{
    BarrierStage, ContrastiveOptions, LbfgsOptions, NewtonOptions, NewtonPreconditioner, OptimiserKind,
    RunSummary, Schedule,
};
