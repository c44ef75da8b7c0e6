//! Solvers on the positive definite cone: every iterate keeps a Cholesky factor of Λ.
//!
//! - [`line_search`]: the one positive-definite step rule (halve until Λ factorises and the
//!   step is acceptable), used by every solver below.
//! - [`cg`]: preconditioned conjugate gradients, with the dense Cholesky factor of the Hessian
//!   in the free entries as preconditioner.
//! - [`newton`]: damped Newton-CG on a [`crate::objective`] barrier objective, with its state
//!   (trace, the reusable Hessian factor).
//! - [`lbfgs`]: limited-memory BFGS on the same objective, to bring Newton near the optimum
//!   cheaply.
//! - [`barrier_path`]: a decreasing sequence of barrier weights, the choice of the weight on
//!   validation data, and the final centring.
//! - [`first_order`]: the minibatch loop (GD, RMSprop, Adam) of the contrastive estimators.

pub(crate) mod barrier_path;
pub(crate) mod cg;
pub(crate) mod first_order;
pub(crate) mod lbfgs;
pub(crate) mod line_search;
pub(crate) mod newton;

pub use barrier_path::BarrierStage;
pub(crate) use barrier_path::{PathOptions, Uncentred, follow_barrier_path};
pub(crate) use cg::{Preconditioner, conjugate_gradient};
pub use first_order::{ContrastiveOptions, OptimiserKind, RunSummary, Schedule};
pub(crate) use first_order::{Minibatched, optimise, permutation};
pub use lbfgs::LbfgsOptions;
pub(crate) use line_search::halve_until;
pub(crate) use newton::NewtonState;
pub use newton::{NewtonOptions, NewtonPreconditioner};
