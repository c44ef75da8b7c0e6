//! Sufficient statistics: the entries of S = (1/N) Σₙ xₙxₙᵀ that an estimator needs.
//!
//! Only entries at a fixed set of grid offsets are computed: the pattern's own offsets for
//! maximum likelihood, and the offsets within two hops of the pattern for score matching
//! ((SΛ)ᵢⱼ on a pattern entry sums Sᵢₖ over neighbours k of j). One parallel pass over blocks of
//! rows; products of f32 values are exact in f64, partial sums of each block are accumulated in
//! f64 and reduced in block order, so the result is bit-identical on any number of threads.

use gmrf_model::Pattern;
use ndarray::{ArrayView2, Axis};

use super::sum_row_blocks;
use crate::EstimationError;

/// Which offsets of S to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The pattern's offsets (what maximum likelihood and held-out likelihood need).
    Pattern,
    /// Offsets that are a sum of two pattern offsets (what score matching needs).
    TwoHops,
}

/// Entries S_{i, i+δ} of the second-moment matrix for every pixel i and every offset δ of a
/// symmetric offset set (zero where i + δ falls off the grid).
#[derive(Clone, Debug, PartialEq)]
pub struct SecondMoments {
    height: usize,
    width: usize,
    n_samples: usize,
    /// The offset set, symmetric under negation, sorted.
    offsets: Vec<(i32, i32)>,
    reach: i32,
    /// `slot[(di + reach)·(2·reach + 1) + (dj + reach)]` = index into `offsets`, or `usize::MAX`.
    slot: Vec<usize>,
    /// `values[i·n_offsets + o]` = S_{i, i + offsets[o]}.
    values: Vec<f64>,
}

impl SecondMoments {
    /// S = (1/N) Σₙ xₙxₙᵀ at the offsets `reach` of `pattern` needs, from centred data `x`
    /// (N rows × d pixels, row-major pixels), in one parallel pass.
    pub fn compute(x: ArrayView2<'_, f32>, pattern: &Pattern, reach: Reach) -> Result<Self, EstimationError> {
        let (h, w) = (pattern.height(), pattern.width());
        let d = h * w;
        if x.ncols() != d {
            return Err(EstimationError::Shape(format!(
                "data has {} columns, the {h}x{w} grid {d} pixels",
                x.ncols()
            )));
        }
        if x.nrows() == 0 {
            return Err(EstimationError::Shape("no data rows".into()));
        }
        let mut sm = SecondMoments::empty(pattern, reach, x.nrows());
        // Only the forward half (and zero) is accumulated; the other half is its mirror image.
        let forward: Vec<(usize, (i32, i32))> = sm
            .offsets
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, (di, dj))| di > 0 || (di == 0 && dj >= 0))
            .collect();
        let total = sum_row_blocks(x, forward.len() * d, |block| accumulate_block(block, h, w, &forward));
        let inv_n = 1.0 / x.nrows() as f64;
        let n_off = sm.offsets.len();
        for (f, &(o, (di, dj))) in forward.iter().enumerate() {
            let neg = sm.slot_of(-di, -dj).expect("offset set is symmetric");
            for r in 0..h {
                for c in 0..w {
                    let (r2, c2) = (r as i32 + di, c as i32 + dj);
                    if r2 < 0 || r2 >= h as i32 || c2 < 0 || c2 >= w as i32 {
                        continue;
                    }
                    let (i, j) = (r * w + c, r2 as usize * w + c2 as usize);
                    let s = total[f * d + i] * inv_n;
                    sm.values[i * n_off + o] = s;
                    sm.values[j * n_off + neg] = s;
                }
            }
        }
        Ok(sm)
    }

    /// The same entries read off a dense S (d × d); for tests and dense baselines.
    pub fn from_dense(s: ArrayView2<'_, f64>, pattern: &Pattern, reach: Reach, n_samples: usize) -> Self {
        let mut sm = SecondMoments::empty(pattern, reach, n_samples);
        let (h, w) = (sm.height, sm.width);
        let n_off = sm.offsets.len();
        for r in 0..h {
            for c in 0..w {
                for (o, &(di, dj)) in sm.offsets.iter().enumerate() {
                    let (r2, c2) = (r as i32 + di, c as i32 + dj);
                    if r2 >= 0 && r2 < h as i32 && c2 >= 0 && c2 < w as i32 {
                        sm.values[(r * w + c) * n_off + o] = s[(r * w + c, r2 as usize * w + c2 as usize)];
                    }
                }
            }
        }
        sm
    }

    /// The offsets held for `reach` on `pattern`: symmetric under negation, sorted.
    pub fn offset_set(pattern: &Pattern, reach: Reach) -> Vec<(i32, i32)> {
        // Only offsets shorter than the grid pair pixels: a radius wider than the image adds
        // none beyond them (and would square the work of the two-hop sums).
        let (h, w) = (pattern.height() as i32, pattern.width() as i32);
        let on_grid = |&(di, dj): &(i32, i32)| di.abs() < h && dj.abs() < w;
        let mut base: Vec<(i32, i32)> = vec![(0, 0)];
        for (di, dj) in pattern.neighbourhood().forward_offsets().into_iter().filter(|o| on_grid(o)) {
            base.push((di, dj));
            base.push((-di, -dj));
        }
        let mut offsets: Vec<(i32, i32)> = match reach {
            Reach::Pattern => base,
            Reach::TwoHops => {
                // Marked on the grid of possible offsets, then read off in sorted order.
                let (rows, cols) = (2 * h - 1, 2 * w - 1);
                let mut hit = vec![false; (rows * cols) as usize];
                for &(a, b) in &base {
                    for &(c, e) in &base {
                        let o = (a + c, b + e);
                        if on_grid(&o) {
                            hit[((o.0 + h - 1) * cols + o.1 + w - 1) as usize] = true;
                        }
                    }
                }
                (0..rows)
                    .flat_map(|r| (0..cols).map(move |c| (r, c)))
                    .filter(|&(r, c)| hit[(r * cols + c) as usize])
                    .map(|(r, c)| (r - h + 1, c - w + 1))
                    .collect()
            }
        };
        offsets.sort_unstable();
        offsets.dedup();
        offsets
    }

    fn empty(pattern: &Pattern, reach: Reach, n_samples: usize) -> Self {
        let offsets = SecondMoments::offset_set(pattern, reach);
        let r = offsets.iter().map(|&(a, b)| a.abs().max(b.abs())).max().unwrap_or(0);
        let side = (2 * r + 1) as usize;
        let mut slot = vec![usize::MAX; side * side];
        for (o, &(di, dj)) in offsets.iter().enumerate() {
            slot[(di + r) as usize * side + (dj + r) as usize] = o;
        }
        let d = pattern.dim();
        SecondMoments {
            height: pattern.height(),
            width: pattern.width(),
            n_samples,
            values: vec![0.0; d * offsets.len()],
            offsets,
            reach: r,
            slot,
        }
    }

    fn slot_of(&self, di: i32, dj: i32) -> Option<usize> {
        if di.abs() > self.reach || dj.abs() > self.reach {
            return None;
        }
        let side = (2 * self.reach + 1) as usize;
        let o = self.slot[(di + self.reach) as usize * side + (dj + self.reach) as usize];
        (o != usize::MAX).then_some(o)
    }

    /// Number of rows N the moments were computed from.
    pub fn n_samples(&self) -> usize {
        self.n_samples
    }

    /// The offsets (di, dj) held, symmetric under negation.
    pub fn offsets(&self) -> &[(i32, i32)] {
        &self.offsets
    }

    /// Sᵢⱼ, or `None` when the offset of j from i is not held.
    pub fn get(&self, i: usize, j: usize) -> Option<f64> {
        let w = self.width as i32;
        let (ri, ci, rj, cj) = (i as i32 / w, i as i32 % w, j as i32 / w, j as i32 % w);
        self.slot_of(rj - ri, cj - ci).map(|o| self.values[i * self.offsets.len() + o])
    }

    /// Sᵢⱼ; panics when the offset is not held (a bug in the caller's choice of [`Reach`]).
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.get(i, j).unwrap_or_else(|| panic!("S({i}, {j}) is outside the computed offsets"))
    }

    /// The diagonal Sᵢᵢ.
    pub fn diagonal(&self) -> Vec<f64> {
        let o = self.slot_of(0, 0).expect("zero offset");
        (0..self.height * self.width).map(|i| self.values[i * self.offsets.len() + o]).collect()
    }

    /// S on the entries of `pattern` (canonical order).
    pub fn on_pattern(&self, pattern: &Pattern) -> Vec<f64> {
        pattern.entries().iter().map(|e| self.at(e.i as usize, e.j as usize)).collect()
    }
}

/// Σₙ xₙ,ᵢ xₙ,ᵢ₊δ over the rows of one block, for every forward offset δ, as
/// `out[f·d + i]`; the inner loop runs along a grid row, contiguous in both factors.
fn accumulate_block(
    block: ArrayView2<'_, f32>,
    h: usize,
    w: usize,
    forward: &[(usize, (i32, i32))],
) -> Vec<f64> {
    let d = h * w;
    let mut out = vec![0.0; forward.len() * d];
    let mut row = vec![0.0f64; d];
    for x in block.axis_iter(Axis(0)) {
        for (dst, &v) in row.iter_mut().zip(x.iter()) {
            *dst = f64::from(v);
        }
        for (f, &(_, (di, dj))) in forward.iter().enumerate() {
            // An offset at least as long as the grid pairs no pixels (a 1-pixel-high image, or a
            // radius wider than the image).
            if di as usize >= h || dj.unsigned_abs() as usize >= w {
                continue;
            }
            let acc = &mut out[f * d..(f + 1) * d];
            let (c0, c1) = ((-dj).max(0) as usize, (w as i32 - dj.max(0)) as usize);
            for r in 0..h - di as usize {
                let a = r * w;
                let b = ((r as i32 + di) * w as i32 + dj) as usize;
                let (acc, xa, xb) = (&mut acc[a + c0..a + c1], &row[a + c0..a + c1], &row[b + c0..b + c1]);
                for ((s, &p), &q) in acc.iter_mut().zip(xa).zip(xb) {
                    *s += p * q;
                }
            }
        }
    }
    out
}
