//! Bits per pixel of the discrete data, and the dense second moments the baselines are fitted to.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Images per block in the parallel loops: fixed, so results do not depend on the thread count.
const BLOCK: usize = 256;

/// Bits per pixel of the discrete 8-bit data, from the density's nll in nats per pixel of the
/// dequantised data x = (pixel + u)/scale: a pixel bin has width 1/scale, so
/// −log₂ P(pixel) ≤ nll/ln 2 + log₂ scale (= nll/ln 2 + 8 for scale 256).
pub fn bits_per_pixel(nll_nats_per_pixel: f64, scale: f64) -> f64 {
    nll_nats_per_pixel / std::f64::consts::LN_2 + scale.log2()
}

/// S = XᵀX/N, the second moments of centred rows, dense (d × d). Blocks of rows are reduced in a
/// fixed order, so the result is the same on any thread count.
pub fn second_moments_dense(x: ArrayView2<'_, f32>) -> Array2<f64> {
    let d = x.ncols();
    let partials: Vec<Array2<f64>> = x
        .axis_chunks_iter(Axis(0), 4 * BLOCK)
        .into_par_iter()
        .map(|block| {
            let block = block.mapv(f64::from);
            block.t().dot(&block)
        })
        .collect();
    let mut s = partials.into_iter().fold(Array2::zeros((d, d)), |acc, p| acc + p);
    s /= x.nrows().max(1) as f64;
    s
}
