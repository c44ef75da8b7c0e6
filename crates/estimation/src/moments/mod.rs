//! Statistics of the centred rows: the one ordered reduction every sum uses, the second moments
//! S on a set of grid offsets, the per-pixel standardisation, and the dense products that dense
//! baselines and the `full` NCE noise need.
//!
//! Every function here is bit-identical on any number of threads (see [`BLOCK_ROWS`]).

mod dense;
mod reduce;
mod second;
mod standardise;

pub(crate) use dense::{dense_moments, rows_times_transpose, standard_normals};
pub use reduce::BLOCK_ROWS;
pub(crate) use reduce::{column_mean_squares, dot, norm, sum_blocks, sum_row_blocks};
pub use second::{Reach, SecondMoments, dense_second_moments};
pub use standardise::Standardisation;
