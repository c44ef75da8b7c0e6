//! Dense products over blocks of rows, for the dense baselines and the `full` NCE noise: each
//! block a sequential faer product, the blocks in parallel and added in block order, so every
//! bit is the same on any number of threads.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use ndarray::{Array2, ArrayView2};
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

/// The dense second moments (1/N) XᵀX of f32 rows, in f64: block products (sequential faer)
/// added in block order, in groups so that at most a few d × d partials are alive at once.
pub(crate) fn dense_moments(x: ArrayView2<'_, f32>) -> Mat<f64> {
    let (n, d) = (x.nrows(), x.ncols());
    let n_blocks = n.div_ceil(BLOCK_ROWS);
    let mut total = Mat::<f64>::zeros(d, d);
    let group = 8;
    for g0 in (0..n_blocks).step_by(group) {
        let partials: Vec<Mat<f64>> = (g0..(g0 + group).min(n_blocks))
            .into_par_iter()
            .map(|b| {
                let r0 = b * BLOCK_ROWS;
                let r1 = (r0 + BLOCK_ROWS).min(n);
                let xb = Mat::<f64>::from_fn(r1 - r0, d, |i, j| f64::from(x[(r0 + i, j)]));
                let mut p = Mat::<f64>::zeros(d, d);
                matmul(p.as_mut(), Accum::Replace, xb.transpose(), xb.as_ref(), 1.0, Par::Seq);
                p
            })
            .collect();
        for p in &partials {
            total += p;
        }
    }
    total * faer::Scale(1.0 / n.max(1) as f64)
}

/// n × d standard normals drawn sequentially from `rng` (row by row), so a seeded ChaCha8 gives
/// the same values on every machine and thread count.
pub(crate) fn standard_normals<R: Rng + ?Sized>(n: usize, d: usize, rng: &mut R) -> Array2<f64> {
    Array2::from_shape_simple_fn((n, d), || rng.sample::<f64, _>(StandardNormal))
}
