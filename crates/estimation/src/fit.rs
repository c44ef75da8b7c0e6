//! What every estimator returns: the fitted Λ, a trace of the optimiser, and diagnostics.

use gmrf_model::Precision;

/// One optimiser step, a row of the `trace` table. `loss` is the objective being minimised
/// after the step: J(Λ) for `sm-gd` and the unconstrained `sm` solve, J(Λ) − t·log|Λ| inside a
/// barrier stage, tr(SΛ) − log|Λ| for `mle`; `grad_norm` is the Euclidean norm of its gradient in
/// the free entries θ where the step started; `elapsed_s` is wall-clock time (the only column that
/// differs between runs).
pub use gmrf_table::TraceRow;

/// A fitted precision with its trace and method-specific diagnostics `D`.
#[derive(Clone, Debug)]
pub struct Fit<D> {
    /// The estimate; positive definite for every method except a failed `sm-gd`.
    pub precision: Precision,
    /// One row per optimiser step.
    pub trace: Vec<TraceRow>,
    /// Method-specific diagnostics.
    pub diagnostics: D,
}

/// Progress callback: called after every step with (step, loss), e.g. to draw a bar.
pub type Progress<'a> = Option<&'a dyn Fn(u32, f64)>;
