//! Cholesky factor Λ = LLᵀ of a precision on a pattern, in natural order.
//!
//! Row-major pixel order makes Λ banded with half bandwidth b (w or w + 1 for 4 or 8
//! neighbours), and without a fill-reducing permutation the fill of L stays inside that band.
//! So the factorisation costs O(d·b²), and L lives in dense band storage where the triangular
//! solves, the log-determinant and the Takahashi recursions read it without searching.

use ndarray::Array2;
use rayon::prelude::*;

use crate::{ModelError, Pattern};

/// Where each entry of a pattern goes in the band: shared by every numeric factorisation on it.
/// (The pattern's half bandwidth b is the largest j − i of its entries, so each fits.)
pub(crate) struct Symbolic {
    dim: usize,
    band: usize,
    /// `slot[k]`: for the k-th entry (i, j), i ≤ j, in canonical order, the position
    /// j·(b+1) + (j − i) of Λᵢⱼ in column j of the upper band.
    slot: Vec<usize>,
}

impl Symbolic {
    pub(crate) fn new(pattern: &Pattern) -> Self {
        let b = pattern.bandwidth();
        let slot = pattern
            .entries()
            .iter()
            .map(|e| {
                let (i, j) = (e.i as usize, e.j as usize);
                assert!(i <= j && j - i <= b, "entry ({i}, {j}) outside the band {b}");
                j * (b + 1) + (j - i)
            })
            .collect();
        Symbolic { dim: pattern.dim(), band: b, slot }
    }

    /// Numeric factorisation of the matrix with `values` on the pattern (canonical order).
    ///
    /// Up-looking, row by row (Davis 2006, §4.8): row k of L solves L₀ₖ₋₁ lₖ = a_{·k} by
    /// forward substitution over j = k − b, …, k − 1, and Lₖₖ = √(aₖₖ − lₖᵀlₖ). This is faer's
    /// simplicial LLᵀ (which this replaced) operation for operation, so the factor is
    /// bit-identical to it, but in band storage the update of the remaining right-hand side by
    /// column j of L is a contiguous multiply-subtract that vectorises, where faer's sparse
    /// version scatters through row indices. Band entries outside L's structure hold zeros and
    /// change no nonzero value.
    pub(crate) fn factor(&self, values: &[f64]) -> Result<Cholesky, ModelError> {
        if let Some(k) = values.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { position: k });
        }
        let (d, b) = (self.dim, self.band);
        let s = b + 1;
        // Column k of the upper band: a[k·(b+1) + (k − i)] = Λᵢₖ (0 + v, as faer accumulates it).
        let mut a = vec![0.0; d * s];
        for (&slot, &v) in self.slot.iter().zip(values) {
            a[slot] = 0.0 + v;
        }
        let mut l = vec![0.0f64; d * s];
        // 1/Lⱼⱼ, which faer recomputes for every row that reads it: the same value.
        let mut inverse_pivot = vec![0.0f64; d];
        let mut x = vec![0.0f64; b];
        for k in 0..d {
            let lo = k.saturating_sub(b);
            let m = k - lo;
            let column = &a[k * s..k * s + s];
            // x[i − lo] = Λᵢₖ for i = lo..k: the right-hand side of row k.
            let x = &mut x[..m];
            for (r, xi) in x.iter_mut().enumerate() {
                *xi = column[m - r];
            }
            let mut pivot = column[0];
            for (r, j) in (lo..k).enumerate() {
                let col = &mut l[j * s..j * s + (k - j) + 1];
                let lkj = x[r] * inverse_pivot[j];
                for (xi, lij) in x[r + 1..].iter_mut().zip(&col[1..k - j]) {
                    *xi -= lij * lkj;
                }
                pivot -= lkj * lkj;
                col[k - j] = lkj;
            }
            if pivot.is_nan() || pivot <= 0.0 {
                return Err(ModelError::NotPositiveDefinite { pivot: k });
            }
            l[k * s] = pivot.sqrt();
            inverse_pivot[k] = l[k * s].recip();
        }
        Ok(Cholesky { dim: d, band: b, l })
    }
}

/// The lower-triangular Cholesky factor L of Λ = LLᵀ, in band storage.
#[derive(Clone, Debug)]
pub struct Cholesky {
    dim: usize,
    band: usize,
    /// `l[j·(b+1) + (i − j)] = Lᵢⱼ` for j ≤ i ≤ j + b.
    l: Vec<f64>,
}

impl Cholesky {
    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Half bandwidth b of L.
    pub fn bandwidth(&self) -> usize {
        self.band
    }

    /// Lᵢⱼ for i ≥ j (zero outside the band).
    pub fn l(&self, i: usize, j: usize) -> f64 {
        assert!(i < self.dim && j <= i);
        if i - j > self.band { 0.0 } else { self.l[j * (self.band + 1) + (i - j)] }
    }

    /// log|Λ| = 2 Σᵢ log Lᵢᵢ.
    pub fn log_det(&self) -> f64 {
        2.0 * (0..self.dim).map(|j| self.l[j * (self.band + 1)].ln()).sum::<f64>()
    }

    /// Column range of band entries below the diagonal of column j: rows j+1 ..= min(j+b, d−1).
    fn below(&self, j: usize) -> std::ops::Range<usize> {
        j + 1..(j + self.band + 1).min(self.dim)
    }

    /// Solves L y = x in place (forward substitution), O(d·b).
    pub fn solve_lower_in_place(&self, x: &mut [f64]) {
        self.solve_lower_from(x, 0);
    }

    /// Forward substitution skipping the leading zeros of x (x[..start] = 0).
    fn solve_lower_from(&self, x: &mut [f64], start: usize) {
        assert_eq!(x.len(), self.dim);
        let s = self.band + 1;
        for j in start..self.dim {
            let col = &self.l[j * s..j * s + s];
            let xj = x[j] / col[0];
            x[j] = xj;
            for i in self.below(j) {
                x[i] -= col[i - j] * xj;
            }
        }
    }

    /// Solves Lᵀ x = y in place (back substitution), O(d·b).
    pub fn solve_upper_in_place(&self, x: &mut [f64]) {
        assert_eq!(x.len(), self.dim);
        let s = self.band + 1;
        for j in (0..self.dim).rev() {
            let col = &self.l[j * s..j * s + s];
            let mut acc = x[j];
            for i in self.below(j) {
                acc -= col[i - j] * x[i];
            }
            x[j] = acc / col[0];
        }
    }

    /// Solves Λ x = b in place: L y = b, then Lᵀ x = y.
    pub fn solve_in_place(&self, x: &mut [f64]) {
        self.solve_lower_in_place(x);
        self.solve_upper_in_place(x);
    }

    /// The band of Σ = Λ⁻¹ (all Σᵢⱼ with |i − j| ≤ b) by the Takahashi recursions, O(d·b²).
    ///
    /// From ΣL = L⁻ᵀ (upper triangular with diagonal 1/Lⱼⱼ), for i ≥ j:
    /// Σᵢⱼ = (δᵢⱼ/Lⱼⱼ − Σ_{k=j+1}^{j+b} Lₖⱼ Σᵢₖ) / Lⱼⱼ, computed for j = d−1, …, 0 and i > j
    /// before i = j; every Σᵢₖ it reads has i, k > j and |i − k| < b, so it is already known
    /// (Takahashi, Fagan & Chen 1973; Rue & Held 2005, §2.4).
    ///
    /// The sums for all i of a column j advance together, k in the outer loop: each still adds
    /// its terms in ascending k (the same rounding as one sum at a time), but the inner loop is
    /// then a contiguous axpy over a row of the symmetric band, which vectorises. The L-BFGS
    /// iterations of `sm` and `mle` compute this band once each.
    pub fn inverse_band(&self) -> InverseBand {
        let (d, b) = (self.dim, self.band);
        let s = b + 1;
        let w = 2 * b + 1;
        let mut rows = vec![0.0; d * w];
        let mut sums = vec![0.0; b];
        for j in (0..d).rev() {
            let col = &self.l[j * s..j * s + s];
            let ljj = col[0];
            let m = self.below(j).len();
            let sums = &mut sums[..m];
            sums.fill(0.0);
            for (k, &lkj) in (j + 1..).zip(&col[1..=m]) {
                // Σᵢₖ for i = j+1 ..= j+m: row k of the band from column j+1.
                let from = k * w + (j + 1 + b - k);
                for (acc, sik) in sums.iter_mut().zip(&rows[from..from + m]) {
                    *acc += lkj * sik;
                }
            }
            for (i, acc) in (j + 1..).zip(sums.iter()) {
                let v = -acc / ljj;
                rows[j * w + b + (i - j)] = v;
                rows[i * w + b - (i - j)] = v;
            }
            let mut acc = 0.0;
            for (&lkj, skj) in col[1..=m].iter().zip(&rows[j * w + b + 1..]) {
                acc += lkj * skj;
            }
            rows[j * w + b] = (1.0 / ljj - acc) / ljj;
        }
        InverseBand { dim: d, band: b, rows }
    }

    /// The dense inverse Σ = Λ⁻¹ (d × d) by band solves LLᵀX = I, O(d²·b).
    ///
    /// Columns go in blocks of 8 whose right-hand sides are interleaved, so the inner loops run
    /// over 8 contiguous values (vectorised). A block starting at column c₀ needs only rows ≥ c₀:
    /// the forward solve starts at c₀ (the identity is zero above), the back solve stops at c₀,
    /// and the rows above are filled by symmetry. Blocks are independent, so the rayon split does
    /// not change a single bit.
    pub fn inverse_dense(&self) -> Array2<f64> {
        const B: usize = 8;
        let d = self.dim;
        let s = self.band + 1;
        let blocks: Vec<(usize, Vec<[f64; B]>)> = (0..d.div_ceil(B))
            .into_par_iter()
            .map(|blk| {
                let c0 = blk * B;
                let mut x = vec![[0.0; B]; d - c0];
                for (k, row) in x.iter_mut().take(B.min(d - c0)).enumerate() {
                    row[k] = 1.0;
                }
                for j in c0..d {
                    let col = &self.l[j * s..j * s + s];
                    let mut xj = x[j - c0];
                    for v in &mut xj {
                        *v /= col[0];
                    }
                    x[j - c0] = xj;
                    for i in self.below(j) {
                        let lij = col[i - j];
                        let xi = &mut x[i - c0];
                        for k in 0..B {
                            xi[k] -= lij * xj[k];
                        }
                    }
                }
                for j in (c0..d).rev() {
                    let col = &self.l[j * s..j * s + s];
                    let mut acc = x[j - c0];
                    for i in self.below(j) {
                        let lij = col[i - j];
                        let xi = &x[i - c0];
                        for k in 0..B {
                            acc[k] -= lij * xi[k];
                        }
                    }
                    for v in &mut acc {
                        *v /= col[0];
                    }
                    x[j - c0] = acc;
                }
                (c0, x)
            })
            .collect();
        let mut out = Array2::zeros((d, d));
        for (c0, x) in blocks {
            for (r, row) in x.iter().enumerate() {
                for (k, &v) in row.iter().enumerate().take(B.min(d - c0)) {
                    out[(c0 + r, c0 + k)] = v;
                    out[(c0 + k, c0 + r)] = v;
                }
            }
        }
        out
    }
}

/// The entries of Σ = Λ⁻¹ within the band |i − j| ≤ b, from [`Cholesky::inverse_band`].
#[derive(Clone, Debug)]
pub struct InverseBand {
    dim: usize,
    band: usize,
    /// `rows[i·(2b+1) + b + (j − i)] = Σᵢⱼ` for |i − j| ≤ b (both triangles).
    rows: Vec<f64>,
}

impl InverseBand {
    /// Σᵢⱼ; panics when |i − j| > b.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        let b = self.band;
        assert!(i < self.dim && j < self.dim && i.abs_diff(j) <= b, "({i}, {j}) is outside the band");
        self.rows[i * (2 * b + 1) + b + j - i]
    }

    /// Σ on the entries of `pattern`, in canonical order (the selected inverse).
    pub fn on_pattern(&self, pattern: &Pattern) -> Vec<f64> {
        pattern.entries().iter().map(|e| self.get(e.i as usize, e.j as usize)).collect()
    }
}
