//! Errors of the estimation crate.

use gmrf_model::ModelError;

/// What can go wrong in an estimator.
#[derive(Debug, thiserror::Error)]
pub enum EstimationError {
    /// An option's value that no fit can use, named by its `gmrf estimate` flag (`--learning-rate`)
    /// or, without one, as `Options::field`.
    #[error("{option} {value}: {reason}")]
    InvalidOption {
        /// The option, as its flag is spelled.
        option: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// Data and pattern disagree, or statistics lack offsets a method needs.
    #[error("{0}")]
    Shape(String),
    /// A model operation failed (e.g. the starting point is not positive definite).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The requested noise density does not exist for these data.
    #[error("{0}")]
    Noise(String),
    /// An optimiser could not make progress.
    #[error("{method}: {reason}")]
    NoProgress {
        /// Which estimator.
        method: &'static str,
        /// Why.
        reason: String,
    },
}
