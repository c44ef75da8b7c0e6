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
    /// A pixel does not vary in the training data: no estimator here is defined for it (its
    /// standardisation divides by 0, its likelihood is unbounded).
    #[error("pixel {pixel} has variance {variance} in the training data: dequantise so every pixel varies")]
    ConstantPixel {
        /// The pixel's row-major index.
        pixel: usize,
        /// Its variance (0, or NaN from non-finite data).
        variance: f64,
    },
    /// The method chooses a setting on validation rows and was given none.
    #[error(
        "{method}: {what} is chosen on validation rows, and none were given (pass a fixed value, or validation data)"
    )]
    NoValidationRows {
        /// Which estimator.
        method: &'static str,
        /// What the validation rows would choose.
        what: &'static str,
    },
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
