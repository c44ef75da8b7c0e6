//! Statistics of the centred rows: the one ordered reduction every sum uses, the second moments
//! S on a set of grid offsets, the per-pixel standardisation, and (from the model crate, shared
//! with evaluation) the dense S of the dense baselines and the `full` NCE noise.
//!
//! Every function here is bit-identical on any number of threads (see [`BLOCK_ROWS`]).

mod reduce;
mod second;
mod standardise;

pub use gmrf_model::second_moments as dense_second_moments;
pub use reduce::BLOCK_ROWS;
pub(crate) use reduce::{column_mean_squares, dot, norm, sum_blocks, sum_row_blocks};
pub use second::{Reach, SecondMoments};
pub use standardise::Standardisation;
