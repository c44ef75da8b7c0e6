//! Derivatives of log|Λ| in the free entries θ, from Σ = Λ⁻¹.
//!
//! ∂ log|Λ| / ∂θₑ = tr(Σ Eₑ) = mₑ Σᵢⱼ, and −∂² log|Λ| / ∂θₑ∂θ𝒻 = tr(Σ Eₑ Σ E𝒻)
//! = (mₑm𝒻/2)(Σⱼₖ Σₗᵢ + Σⱼₗ Σₖᵢ) for e = (i, j), f = (k, l) (Boyd & Vandenberghe 2004, A.4.3).
//! The Hessian couples every pair of entries, so it needs the dense Σ; at d = 784 that is 5 MB.

use gmrf_model::Pattern;
use ndarray::Array2;
use rayon::prelude::*;

use super::entries::Adjacency;
use crate::moments::dot;

/// ∇ log|Λ| = m ∘ P(Σ), from the selected inverse (Σ on the pattern, canonical order).
pub fn log_det_gradient(pattern: &Pattern, selected_inverse: &[f64]) -> Vec<f64> {
    pattern.entries().iter().zip(selected_inverse).map(|(e, s)| e.multiplicity() * s).collect()
}

/// (−∇² log|Λ|) v = m ∘ P(ΣVΣ), V the symmetric matrix of v on the pattern. O(d²·k) for k
/// neighbours per pixel: U = ΣV row by row, then (ΣVΣ)ᵢⱼ = Σₐ Σᵢₐ Uⱼₐ, a dot product of two
/// contiguous rows per entry. Rows and entries are independent, so the parallel split changes no
/// bit.
///
/// Uⱼₐ = Σ_{q ~ a} Σⱼ_q V_qa, with q = a + δ for the pattern's offsets δ. Summed one offset at a
/// time over all a, row j of U is k contiguous multiply-adds of a diagonal of V with a shifted
/// row of Σ (vectorised) rather than a gather per (j, a). Each Uⱼₐ still adds its terms in
/// ascending q, as a sum over the neighbours of a would; offsets that are not neighbours of a
/// (at the grid's edges) add 0.
pub(crate) fn neg_log_det_hessian_vector_product(
    pattern: &Pattern,
    adjacency: &Adjacency,
    sigma: &Array2<f64>,
    v: &[f64],
) -> Vec<f64> {
    let d = pattern.dim();
    let sig = sigma.as_slice().expect("standard layout");
    let (offsets, diagonals) = diagonals_of(adjacency, d, v);
    let mut u = vec![0.0; d * d];
    u.par_chunks_mut(d).enumerate().for_each(|(j, row)| {
        let sj = &sig[j * d..(j + 1) * d];
        // −0.0: where f64's `sum` starts.
        row.fill(-0.0);
        for (&delta, diagonal) in offsets.iter().zip(diagonals.chunks_exact(d)) {
            // a with 0 ≤ a + δ < d.
            let (lo, hi) = (delta.min(0).unsigned_abs(), d - delta.max(0) as usize);
            let shifted = &sj[lo.wrapping_add_signed(delta)..hi.wrapping_add_signed(delta)];
            for ((u, x), s) in row[lo..hi].iter_mut().zip(&diagonal[lo..hi]).zip(shifted) {
                *u += x * s;
            }
        }
    });
    pattern
        .entries()
        .par_iter()
        .map(|e| {
            let (i, j) = (e.i as usize, e.j as usize);
            e.multiplicity() * dot(&sig[i * d..(i + 1) * d], &u[j * d..(j + 1) * d])
        })
        .collect()
}

/// The offsets δ = q − a of the pattern, ascending, and for each the diagonal V_{a+δ, a}
/// (a = 0..d, zero where a + δ is not a neighbour of a), of V the symmetric matrix of v.
fn diagonals_of(adjacency: &Adjacency, d: usize, v: &[f64]) -> (Vec<isize>, Vec<f64>) {
    let offset = |a: usize, q: usize| q as isize - a as isize;
    let mut offsets: Vec<isize> =
        (0..d).flat_map(|a| adjacency.of(a).iter().map(move |&(q, _)| offset(a, q))).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let mut diagonals = vec![0.0; offsets.len() * d];
    for a in 0..d {
        for &(q, pos) in adjacency.of(a) {
            let k = offsets.binary_search(&offset(a, q)).expect("collected above");
            diagonals[k * d + a] = v[pos];
        }
    }
    (offsets, diagonals)
}

/// Diagonal of −∇² log|Λ|: (mₑ²/2)(Σᵢⱼ² + ΣᵢᵢΣⱼⱼ), from the band of Σ.
pub(crate) fn neg_log_det_hessian_diagonal(pattern: &Pattern, band: &gmrf_model::InverseBand) -> Vec<f64> {
    pattern
        .entries()
        .iter()
        .map(|e| {
            let (i, j) = (e.i as usize, e.j as usize);
            let m = e.multiplicity();
            0.5 * m * m * (band.get(i, j).powi(2) + band.get(i, i) * band.get(j, j))
        })
        .collect()
}
