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
    /// The training table has fewer rows than the method needs.
    #[error("{method}: the training table has {rows} row(s); {method} needs at least {needed}")]
    TooFewRows {
        /// Which estimator.
        method: &'static str,
        /// Rows given.
        rows: usize,
        /// Rows needed.
        needed: usize,
    },
    /// The estimator's objective has no minimiser on the positive definite cone for these data.
    #[error("{method}: no estimate exists for these data: {reason}")]
    NoEstimate {
        /// Which estimator.
        method: &'static str,
        /// Why, with the evidence.
        reason: String,
    },
    /// An optimiser could not make progress.
    #[error("{method}: {reason}")]
    NoProgress {
        /// Which estimator.
        method: &'static str,
        /// Why.
        reason: String,
    },
}
