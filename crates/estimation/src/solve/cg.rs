//! Preconditioned conjugate gradients for the symmetric positive definite Newton systems.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::cholesky_in_place;
use faer::linalg::cholesky::llt::factor::cholesky_in_place_scratch;
use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::{MatMut, MatRef, Par};

/// A dense lower Cholesky factor in single or double precision, n × n column major in a
/// plain vector (entries above the diagonal are scratch).
pub(crate) enum DenseFactor {
    /// f32: half the memory traffic of the triangular solves, twice the SIMD width of the
    /// factorisation. Enough while the scaled Hessian's condition number is well below 1e7.
    Single(Vec<f32>),
    /// f64: the fallback once f32 no longer carries the conditioning (barrier weights ≲ 1e-2).
    Double(Vec<f64>),
}

/// The n × n buffers of earlier factors, kept for the next one (a fresh allocation per Newton
/// step costs page faults and zeroing of up to 113 MB).
#[derive(Default)]
pub(crate) struct FactorStorage {
    single: Vec<f32>,
    double: Vec<f64>,
}

/// M ≈ H, applied as z = M⁻¹r.
pub(crate) enum Preconditioner {
    /// M = diag(H).
    Jacobi(Vec<f64>),
    /// M = D^{1/2} LLᵀ D^{1/2}: LLᵀ a dense Cholesky factor of the Jacobi-scaled explicit Hessian
    /// C = D^{-1/2} H D^{-1/2} (unit diagonal), `scale` = D^{-1/2}. A fresh factor of the exact
    /// Hessian makes CG converge in 1–3 iterations.
    Cholesky {
        /// L (lower triangle).
        factor: DenseFactor,
        /// D^{-1/2}.
        scale: Vec<f64>,
    },
}

/// Rows and columns per block of [`factor_in_place`].
const CHOLESKY_BLOCK: usize = 192;

/// Right-looking blocked Cholesky of the lower triangle of `c`, in place; false if a pivot is
/// not positive. For each block column k: factor the diagonal block, solve the panel below it
/// (L_ik = A_ik L_kk⁻ᵀ, in parallel row chunks: sequential, it left one core idle for ~13% of
/// the factor at n = 3,754), then update every later block column j by A_{≥j, j} −= L_{≥j, k} L_jkᵀ.
/// The block columns j are updated in parallel; each is one sequential faer product whose
/// arithmetic does not depend on which thread runs it, so the factor is bit-identical on any
/// thread count (faer's own parallel kernels make no such promise).
fn factor_in_place<T: faer::traits::RealField>(mut c: MatMut<'_, T>) -> bool {
    use faer::linalg::matmul::matmul;
    use rayon::prelude::*;
    let n = c.nrows();
    let nb = CHOLESKY_BLOCK;
    let mut k0 = 0;
    while k0 < n {
        let kb = nb.min(n - k0);
        let (_, right) = c.as_mut().split_at_col_mut(k0);
        let (panel, trailing) = right.split_at_col_mut(kb);
        let (_, panel) = panel.split_at_row_mut(k0);
        let (mut diag, mut below) = panel.split_at_row_mut(kb);
        let mut mem = MemBuffer::new(cholesky_in_place_scratch::<T>(kb, Par::Seq, Default::default()));
        if cholesky_in_place(
            diag.as_mut(),
            Default::default(),
            Par::Seq,
            MemStack::new(&mut mem),
            Default::default(),
        )
        .is_err()
        {
            return false;
        }
        // L_ik L_kkᵀ = A_ik  ⇔  L_kk L_ikᵀ = A_ikᵀ. Rows are independent: solved in parallel
        // chunks of a fixed height, so the split does not depend on the thread count.
        let diag = diag.as_ref();
        let mut chunks = Vec::new();
        let mut rest = below.as_mut();
        while rest.nrows() > 0 {
            let height = nb.min(rest.nrows());
            let (chunk, tail) = rest.split_at_row_mut(height);
            chunks.push(chunk);
            rest = tail;
        }
        chunks.into_par_iter().for_each(|chunk| {
            solve_lower_triangular_in_place(diag, chunk.transpose_mut(), Par::Seq);
        });
        // Block columns of the trailing matrix, rows from the block's own diagonal down.
        let mut slabs = Vec::new();
        let mut rest = trailing;
        let mut j0 = k0 + kb;
        while j0 < n {
            let jb = nb.min(n - j0);
            let (slab, tail) = rest.split_at_col_mut(jb);
            slabs.push((j0, jb, slab));
            rest = tail;
            j0 += jb;
        }
        let below = below.as_ref();
        slabs.into_par_iter().for_each(|(j0, jb, slab)| {
            let (_, slab) = slab.split_at_row_mut(j0);
            let off = j0 - (k0 + kb);
            let l_rows = below.subrows(off, below.nrows() - off);
            let l_cols = below.subrows(off, jb);
            matmul(slab, faer::Accum::Add, l_rows, l_cols.transpose(), -T::one_impl(), Par::Seq);
        });
        k0 += kb;
    }
    true
}

fn solve_in_place<T: faer::traits::RealField>(l: &[T], z: &mut [T]) {
    let n = z.len();
    let l = MatRef::from_column_major_slice(l, n, n);
    let mut zm = MatMut::from_column_major_slice_mut(z, n, 1);
    solve_lower_triangular_in_place(l, zm.as_mut(), Par::Seq);
    solve_upper_triangular_in_place(l.transpose(), zm.as_mut(), Par::Seq);
}

/// Writes the lower triangle of an n × n column-major matrix: `column(f, out)` gives rows f..n of
/// column f in f64, `cast` rounds them to T. Columns are independent, so the parallel fill is
/// bit-identical on any thread count.
fn fill_lower<T: Copy + Send + Sync>(
    buf: &mut Vec<T>,
    n: usize,
    column: &(dyn Fn(usize, &mut [f64]) + Sync),
    cast: fn(f64) -> T,
) {
    use rayon::prelude::*;
    // Reuse the allocation; its stale contents are overwritten below (and above the diagonal
    // never read).
    buf.resize(n * n, cast(0.0));
    buf.par_chunks_mut(n).enumerate().for_each_init(
        || vec![0.0f64; n],
        |out, (f, col)| {
            let out = &mut out[..n - f];
            column(f, out);
            for (c, &v) in col[f..].iter_mut().zip(out.iter()) {
                *c = cast(v);
            }
        },
    );
}

/// [`fill_lower`] into the buffer taken from `slot`, then [`factor_in_place`]: the factor, or
/// `None` (the buffer back in `slot`) if a pivot is not positive.
fn fill_and_factor<T: faer::traits::RealField + Copy>(
    slot: &mut Vec<T>,
    n: usize,
    column: &(dyn Fn(usize, &mut [f64]) + Sync),
    cast: fn(f64) -> T,
) -> Option<Vec<T>> {
    let mut m = std::mem::take(slot);
    fill_lower(&mut m, n, column, cast);
    if factor_in_place(MatMut::from_column_major_slice_mut(&mut m, n, n)) {
        Some(m)
    } else {
        *slot = m;
        None
    }
}

impl Preconditioner {
    /// Builds the lower triangle of the scaled Hessian C (n × n) column by column with
    /// `column` (see [`fill_lower`]) in the chosen precision, reusing `storage`, and factorises
    /// it; `None` if it is not numerically positive definite. Sequential: faer's parallel
    /// kernels are not promised to round the same on every thread count.
    pub(crate) fn cholesky(
        n: usize,
        column: &(dyn Fn(usize, &mut [f64]) + Sync),
        scale: &[f64],
        single: bool,
        storage: &mut FactorStorage,
    ) -> Option<Self> {
        let factor = if single {
            DenseFactor::Single(fill_and_factor(&mut storage.single, n, column, |v| v as f32)?)
        } else {
            DenseFactor::Double(fill_and_factor(&mut storage.double, n, column, |v| v)?)
        };
        Some(Preconditioner::Cholesky { factor, scale: scale.to_vec() })
    }

    /// Hands this preconditioner's matrix back to `storage` for the next factor.
    pub(crate) fn recycle(self, storage: &mut FactorStorage) {
        match self {
            Preconditioner::Cholesky { factor: DenseFactor::Single(m), .. } => storage.single = m,
            Preconditioner::Cholesky { factor: DenseFactor::Double(m), .. } => storage.double = m,
            Preconditioner::Jacobi(_) => {}
        }
    }

    /// True for an f32 Cholesky factor.
    pub(crate) fn is_single_precision(&self) -> bool {
        matches!(self, Preconditioner::Cholesky { factor: DenseFactor::Single(_), .. })
    }

    fn apply(&self, r: &[f64]) -> Vec<f64> {
        match self {
            Preconditioner::Jacobi(diag) => r.iter().zip(diag).map(|(r, d)| r / d).collect(),
            Preconditioner::Cholesky { factor: DenseFactor::Single(l), scale } => {
                let mut z: Vec<f32> = r.iter().zip(scale).map(|(r, s)| (r * s) as f32).collect();
                solve_in_place(l, &mut z);
                z.iter().zip(scale).map(|(z, s)| f64::from(*z) * s).collect()
            }
            Preconditioner::Cholesky { factor: DenseFactor::Double(l), scale } => {
                let mut z: Vec<f64> = r.iter().zip(scale).map(|(r, s)| r * s).collect();
                solve_in_place(l, &mut z);
                z.iter().zip(scale).map(|(z, s)| z * s).collect()
            }
        }
    }
}

/// Result of [`conjugate_gradient`].
pub(crate) struct CgOutcome {
    pub(crate) x: Vec<f64>,
    pub(crate) iterations: usize,
    pub(crate) converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves H x = rhs from x = 0 by preconditioned CG, until ‖r‖ ≤ `rel_tol`·‖rhs‖ or
/// `max_iter` iterations (Nocedal & Wright 2006, Alg. 5.3).
pub(crate) fn conjugate_gradient(
    hvp: &dyn Fn(&[f64]) -> Vec<f64>,
    rhs: &[f64],
    precond: &Preconditioner,
    rel_tol: f64,
    max_iter: usize,
) -> CgOutcome {
    let n = rhs.len();
    let mut x = vec![0.0; n];
    let mut r = rhs.to_vec();
    let target = rel_tol * dot(rhs, rhs).sqrt();
    if dot(&r, &r).sqrt() <= target {
        return CgOutcome { x, iterations: 0, converged: true };
    }
    let mut z = precond.apply(&r);
    let mut p = z.clone();
    let mut rz = dot(&r, &z);
    for it in 1..=max_iter {
        let hp = hvp(&p);
        let php = dot(&p, &hp);
        if php <= 0.0 || !php.is_finite() {
            return CgOutcome { x, iterations: it, converged: false };
        }
        let alpha = rz / php;
        for k in 0..n {
            x[k] += alpha * p[k];
            r[k] -= alpha * hp[k];
        }
        if dot(&r, &r).sqrt() <= target {
            return CgOutcome { x, iterations: it, converged: true };
        }
        z = precond.apply(&r);
        let rz_new = dot(&r, &z);
        let beta = rz_new / rz;
        rz = rz_new;
        for k in 0..n {
            p[k] = z[k] + beta * p[k];
        }
    }
    CgOutcome { x, iterations: max_iter, converged: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    /// An SPD test matrix: A = BBᵀ/n + I with B of deterministic pseudo-random entries.
    fn spd(n: usize) -> Mat<f64> {
        let b = Mat::from_fn(n, n, |i, j| (((i * 7919 + j * 104_729) % 1000) as f64 / 1000.0) - 0.5);
        let mut a = &b * b.transpose() * (1.0 / n as f64);
        for i in 0..n {
            a[(i, i)] += 1.0;
        }
        a
    }

    #[test]
    fn blocked_cholesky_matches_llt_and_is_bit_identical_on_one_and_two_threads() {
        // Several blocks, and a last one that is not full.
        let n = 2 * CHOLESKY_BLOCK + 37;
        let a = spd(n);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
                let mut c = a.clone();
                assert!(factor_in_place(c.as_mut()));
                c
            })
        };
        let (one, two) = (run(1), run(2));
        for j in 0..n {
            for i in j..n {
                assert_eq!(one[(i, j)].to_bits(), two[(i, j)].to_bits());
            }
        }
        // L Lᵀ reproduces A.
        let l = Mat::from_fn(n, n, |i, j| if i >= j { one[(i, j)] } else { 0.0 });
        let diff = &l * l.transpose() - &a;
        let max = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| diff[(i, j)].abs())
            .fold(0.0, f64::max);
        assert!(max < 1e-12, "max |LLᵀ − A| = {max}");
        // A matrix that is not positive definite is refused.
        let mut bad = a.clone();
        bad[(n - 1, n - 1)] = -1.0;
        assert!(!factor_in_place(bad.as_mut()));
    }
}
