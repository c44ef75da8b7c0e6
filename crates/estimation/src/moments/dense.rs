//! Dense row products for the NCE noise (each block of rows a sequential faer product, the
//! blocks in parallel, so every bit is the same on any number of threads) and seeded normals.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use ndarray::Array2;
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use super::BLOCK_ROWS;

/// Y = X Aᵀ for the f64 rows of X: blocks of [`BLOCK_ROWS`] rows in parallel, each a sequential
/// faer product, so every output row is computed the same way on any number of threads.
pub(crate) fn rows_times_transpose(x: &Array2<f64>, a: MatRef<'_, f64>) -> Array2<f64> {
    let (n, k) = (x.nrows(), a.nrows());
    let blocks: Vec<Mat<f64>> = (0..n.div_ceil(BLOCK_ROWS))
        .into_par_iter()
        .map(|b| {
            let r0 = b * BLOCK_ROWS;
            let r1 = (r0 + BLOCK_ROWS).min(n);
            let xb = Mat::<f64>::from_fn(r1 - r0, x.ncols(), |i, j| x[(r0 + i, j)]);
            let mut y = Mat::<f64>::zeros(r1 - r0, k);
            matmul(y.as_mut(), Accum::Replace, xb.as_ref(), a.transpose(), 1.0, Par::Seq);
            y
        })
        .collect();
    let mut out = Array2::zeros((n, k));
    for (b, y) in blocks.iter().enumerate() {
        for i in 0..y.nrows() {
            for j in 0..k {
                out[(b * BLOCK_ROWS + i, j)] = y[(i, j)];
            }
        }
    }
    out
}

/// n × d standard normals drawn sequentially from `rng` (row by row), so a seeded ChaCha8 gives
/// the same values on every machine and thread count.
pub(crate) fn standard_normals<R: Rng + ?Sized>(n: usize, d: usize, rng: &mut R) -> Array2<f64> {
    Array2::from_shape_simple_fn((n, d), || rng.sample::<f64, _>(StandardNormal))
}
