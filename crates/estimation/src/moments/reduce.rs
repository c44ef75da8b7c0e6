//! The one ordered reduction that every sum in this crate uses.
//!
//! Sums over rows run over fixed blocks of [`BLOCK_ROWS`] rows (never derived from the thread
//! count), in parallel, and the block partials are added in block order; dot products add in
//! eight fixed lanes. So every result is bit-identical on any number of threads and any machine.

use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

/// Rows per block of every parallel pass over rows. Fixed, because the block partition decides
/// the summation order.
pub const BLOCK_ROWS: usize = 512;

/// Σₖ uₖvₖ in eight independent partial sums, added in a fixed order. One running sum would be a
/// chain of dependent additions that the compiler may not reorder (nor vectorise). Rust never
/// fuses a multiply and an add, so the same inputs give the same bits on every instruction set.
#[inline(always)]
pub(crate) fn dot(u: &[f64], v: &[f64]) -> f64 {
    const LANES: usize = 8;
    debug_assert_eq!(u.len(), v.len());
    let mut lanes = [0.0; LANES];
    let (uc, vc) = (u.chunks_exact(LANES), v.chunks_exact(LANES));
    let tail: f64 = uc.remainder().iter().zip(vc.remainder()).map(|(u, v)| u * v).sum();
    for (u, v) in uc.zip(vc) {
        for k in 0..LANES {
            lanes[k] += u[k] * v[k];
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// ‖v‖₂, through [`dot`].
pub(crate) fn norm(v: &[f64]) -> f64 {
    dot(v, v).sqrt()
}

/// Maps every block of [`BLOCK_ROWS`] items of `items` (in parallel) to a partial sum of `len`
/// values with `f`, and adds the partials in block order.
pub(crate) fn sum_blocks<T, F>(items: &[T], len: usize, f: F) -> Vec<f64>
where
    T: Sync,
    F: Fn(&[T]) -> Vec<f64> + Sync + Send,
{
    let partials: Vec<Vec<f64>> = items.par_chunks(BLOCK_ROWS).map(f).collect();
    add_in_order(partials, len)
}

/// As [`sum_blocks`] over the row blocks of a matrix.
pub(crate) fn sum_row_blocks<F>(x: ArrayView2<'_, f32>, len: usize, f: F) -> Vec<f64>
where
    F: Fn(ArrayView2<'_, f32>) -> Vec<f64> + Sync + Send,
{
    let partials: Vec<Vec<f64>> = x.axis_chunks_iter(Axis(0), BLOCK_ROWS).into_par_iter().map(f).collect();
    add_in_order(partials, len)
}

fn add_in_order(partials: Vec<Vec<f64>>, len: usize) -> Vec<f64> {
    let mut total = vec![0.0; len];
    for p in &partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

/// (1/N) Σₙ xₙᵢ² for every column i, in f64 (f32 products are exact in f64).
pub(crate) fn column_mean_squares(x: ArrayView2<'_, f32>) -> Vec<f64> {
    let d = x.ncols();
    let total = sum_row_blocks(x, d, |block| {
        let mut acc = vec![0.0; d];
        for row in block.axis_iter(Axis(0)) {
            for (a, &v) in acc.iter_mut().zip(row.iter()) {
                *a += f64::from(v) * f64::from(v);
            }
        }
        acc
    });
    let n = x.nrows().max(1) as f64;
    total.iter().map(|s| s / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn dot_and_block_sums_agree_with_plain_sums_and_do_not_depend_on_threads() {
        let u: Vec<f64> = (0..37).map(|k| ((k * 13) % 7) as f64 / 3.0 - 1.0).collect();
        let v: Vec<f64> = (0..37).map(|k| ((k * 5) % 11) as f64 / 4.0 - 1.2).collect();
        let plain: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
        // Small integers over 3 and 4: every partial sum is exact well within 1e-12.
        assert!((dot(&u, &v) - plain).abs() < 1e-12);
        let x = Array2::from_shape_fn((3 * BLOCK_ROWS + 5, 3), |(n, p)| ((n * 7 + p) % 13) as f32 / 13.0);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| column_mean_squares(x.view()))
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(
            one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            two.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        for (p, m) in one.iter().enumerate() {
            let direct = x.column(p).iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.nrows() as f64;
            assert!((m - direct).abs() <= 1e-14 * direct.max(1.0));
        }
    }
}
