//! Errors of the model crate.

/// What can go wrong when building or factorising a precision.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The grid has no pixels, or too many for u32 indices.
    #[error("a {height} x {width} grid is not supported")]
    BadShape {
        /// Grid height.
        height: usize,
        /// Grid width.
        width: usize,
    },
    /// Not a neighbourhood we know (`4`, `8`, or `r<radius>` with radius ≥ 1 and offsets ≤ 127).
    #[error("unknown neighbourhood {0:?}: expected 4, 8 or r<radius>")]
    BadNeighbourhood(String),
    /// A vector or matrix has the wrong length or shape.
    #[error("{what}: expected length {expected}, got {got}")]
    WrongLength {
        /// Which argument.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// A value is NaN or infinite.
    #[error("value at position {position} is not finite")]
    NonFinite {
        /// Position in canonical order.
        position: usize,
    },
    /// Λ has no Cholesky factor: the pivot of pixel `pivot` is not positive.
    #[error("the precision is not positive definite (non-positive pivot at pixel {pivot})")]
    NotPositiveDefinite {
        /// Row-major pixel index of the failing pivot (or of the first non-positive eigenvalue).
        pivot: usize,
    },
    /// A `precision` table does not hold the entries of its pattern.
    #[error("{}: {problem}", path.display())]
    BadTable {
        /// The file read.
        path: std::path::PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// faer reported an error (out of memory, or no convergence of an eigen solver).
    #[error("linear algebra failure: {0}")]
    Faer(String),
}
