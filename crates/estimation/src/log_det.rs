//! Derivatives of log|Λ| in the free entries θ, from Σ = Λ⁻¹.
//!
//! ∂ log|Λ| / ∂θₑ = tr(Σ Eₑ) = mₑ Σᵢⱼ, and −∂² log|Λ| / ∂θₑ∂θ𝒻 = tr(Σ Eₑ Σ E𝒻)
//! = (mₑm𝒻/2)(Σⱼₖ Σₗᵢ + Σⱼₗ Σₖᵢ) for e = (i, j), f = (k, l) (Boyd & Vandenberghe 2004, A.4.3).
//! The Hessian couples every pair of entries, so it needs the dense Σ; at d = 784 that is 5 MB.

use gmrf_model::Pattern;
use ndarray::Array2;
use rayon::prelude::*;

use crate::score_matching::Adjacency;

/// ∇ log|Λ| = m ∘ P(Σ), from the selected inverse (Σ on the pattern, canonical order).
pub fn log_det_gradient(pattern: &Pattern, selected_inverse: &[f64]) -> Vec<f64> {
    pattern.entries().iter().zip(selected_inverse).map(|(e, s)| e.multiplicity() * s).collect()
}

/// (−∇² log|Λ|) v = m ∘ P(ΣVΣ), V the symmetric matrix of v on the pattern. O(d²·k) for k
/// neighbours per pixel: U = ΣV row by row (Uⱼₗ = Σ_{q ~ l} Σⱼ_q V_ql, a gather along row j of
/// Σ), then (ΣVΣ)ᵢⱼ = Σₐ Σᵢₐ Uⱼₐ, a dot product of two contiguous rows per entry. Rows and entries
/// are independent, so the parallel split changes no bit.
pub(crate) fn neg_log_det_hessian_vector_product(
    pattern: &Pattern,
    adjacency: &Adjacency,
    sigma: &Array2<f64>,
    v: &[f64],
) -> Vec<f64> {
    let d = pattern.dim();
    let sig = sigma.as_slice().expect("standard layout");
    // Column l of V as (q, V_ql) pairs, laid out once so the gathers below touch only Σ.
    let mut ptr = Vec::with_capacity(d + 1);
    let mut cols: Vec<(usize, f64)> = Vec::new();
    ptr.push(0);
    for l in 0..d {
        cols.extend(adjacency.of(l).iter().map(|&(q, pos)| (q, v[pos])));
        ptr.push(cols.len());
    }
    let mut u = vec![0.0; d * d];
    u.par_chunks_mut(d).enumerate().for_each(|(j, row)| {
        let sj = &sig[j * d..(j + 1) * d];
        for (l, out) in row.iter_mut().enumerate() {
            *out = cols[ptr[l]..ptr[l + 1]].iter().map(|&(q, x)| x * sj[q]).sum();
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

/// Σ aₖbₖ with four interleaved partial sums (a fixed order, which lets the compiler vectorise).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
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
