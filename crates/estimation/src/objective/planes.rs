//! What the NCE and cNCE objectives share: Λ as offset planes (quadratic forms and weighted
//! second moments in O(nnz) per image, vectorised along grid rows) and the numerically safe
//! logistic functions. Reductions over images go through [`crate::moments`]' block order.

use gmrf_model::Pattern;
use ndarray::ArrayView2;

use crate::moments::{dot, sum_blocks};

/// softplus(t) = log(1 + eᵗ), written as max(t, 0) + log1p(e^{−|t|}) so that it never overflows
/// (G is a difference of log-densities of order ±10³ nats on MNIST, where eᴳ is infinite).
pub fn softplus(t: f64) -> f64 {
    t.max(0.0) + (-t.abs()).exp().ln_1p()
}

/// The logistic function σ(t) = 1/(1 + e^{−t}) = d softplus(t)/dt, evaluated on the side where
/// the exponential cannot overflow.
pub fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// Λ on a pattern stored as one plane per forward offset δ (the zero offset first):
/// `plane[f·d + i]` = mₑ Λ_{i, i+δ_f} (multiplicity folded in), zero where the pattern has no such
/// entry. With δ_f also read as a step in row-major order (di·w + dj > 0 for a forward offset),
/// xᵀΛx = Σ_f Σᵢ plane_f[i] xᵢ x_{i+δ_f} is one contiguous loop of d − δ_f terms per plane; pairs
/// that wrap around a grid row meet a zero coefficient. The same loops accumulate weighted second
/// moments Σₖ wₖ xₖᵢ xₖ,ᵢ₊δ, whose wrapped slots are never read.
#[derive(Clone, Debug)]
pub(crate) struct Planes {
    d: usize,
    /// Row-major step of each plane's offset.
    steps: Vec<usize>,
    /// For each pattern entry: its plane and first pixel.
    entry_slot: Vec<(usize, usize)>,
    /// The widest SIMD instruction set of this CPU, detected once (see [`Planes::quadratic_form`]).
    arch: pulp::Arch,
}

impl Planes {
    pub(crate) fn new(pattern: &Pattern) -> Self {
        let (h, w) = (pattern.height() as i32, pattern.width() as i32);
        let mut offsets = vec![(0i32, 0i32)];
        // Offsets at least as long as the grid pair no pixels (and may step backwards in
        // row-major order on a narrow grid): no entry of the pattern has them.
        offsets.extend(
            pattern.neighbourhood().forward_offsets().into_iter().filter(|&(di, dj)| di < h && dj.abs() < w),
        );
        let steps = offsets
            .iter()
            .map(|&(di, dj)| {
                usize::try_from(di * w + dj).expect("a forward offset steps forward in row-major order")
            })
            .collect();
        let entry_slot = pattern
            .entries()
            .iter()
            .map(|e| {
                let f = offsets
                    .iter()
                    .position(|&o| o == (i32::from(e.di), i32::from(e.dj)))
                    .expect("every entry's offset is a forward offset of its neighbourhood");
                (f, e.i as usize)
            })
            .collect();
        Planes { d: pattern.dim(), steps, entry_slot, arch: pulp::Arch::new() }
    }

    /// Length of a plane vector.
    pub(crate) fn len(&self) -> usize {
        self.steps.len() * self.d
    }

    /// The planes of Λ with stored values `theta`.
    pub(crate) fn of_values(&self, pattern: &Pattern, theta: &[f64]) -> Vec<f64> {
        let mut planes = vec![0.0; self.len()];
        for ((&(f, i), e), &v) in self.entry_slot.iter().zip(pattern.entries()).zip(theta) {
            planes[f * self.d + i] = e.multiplicity() * v;
        }
        planes
    }

    /// xᵀΛx from the planes of Λ, as Σᵢ xᵢ tᵢ with tᵢ = Σ_f plane_f[i] x_{i+δ_f} built in
    /// `scratch` (d values), one contiguous pass per plane: two flops per plane entry instead of
    /// three.
    ///
    /// The loops are compiled for the widest instruction set this CPU has (AVX2 where present;
    /// without it the compiler may only assume SSE2, two f64 per instruction) and chosen at run
    /// time. Rust never fuses a multiply and an add, and the lanes of `dot` are fixed, so every
    /// instruction set gives the same bits.
    pub(crate) fn quadratic_form(&self, planes: &[f64], x: &[f64], scratch: &mut [f64]) -> f64 {
        let t = &mut scratch[..self.d];
        self.arch.dispatch(QuadraticForm { steps: &self.steps, planes, x, t })
    }

    /// acc += w·x xᵀ on the pattern's offsets (plane layout, no multiplicity), with w·x formed
    /// once in `scratch` (d values); dispatched as [`Planes::quadratic_form`].
    pub(crate) fn accumulate(&self, acc: &mut [f64], weight: f64, x: &[f64], scratch: &mut [f64]) {
        let wx = &mut scratch[..self.d];
        self.arch.dispatch(Accumulate { steps: &self.steps, acc, weight, x, wx });
    }

    /// The accumulated moments read off in the pattern's canonical order.
    pub(crate) fn on_pattern(&self, acc: &[f64]) -> Vec<f64> {
        self.entry_slot.iter().map(|&(f, i)| acc[f * self.d + i]).collect()
    }
}

/// The loops of [`Planes::quadratic_form`], as a `pulp` operation so that they are compiled
/// (inlined) once per instruction set.
struct QuadraticForm<'a> {
    steps: &'a [usize],
    planes: &'a [f64],
    x: &'a [f64],
    t: &'a mut [f64],
}

impl pulp::WithSimd for QuadraticForm<'_> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> f64 {
        let QuadraticForm { steps, planes, x, t } = self;
        let n = t.len();
        t.fill(0.0);
        // An offset that steps past the last pixel (an image one pixel high) pairs nothing.
        for (f, &step) in steps.iter().enumerate().filter(|&(_, &step)| step < n) {
            for ((t, &p), &v) in t.iter_mut().zip(&planes[f * n..f * n + n - step]).zip(&x[step..]) {
                *t += p * v;
            }
        }
        dot(x, t)
    }
}

/// The loops of [`Planes::accumulate`], as [`QuadraticForm`].
struct Accumulate<'a> {
    steps: &'a [usize],
    acc: &'a mut [f64],
    weight: f64,
    x: &'a [f64],
    wx: &'a mut [f64],
}

impl pulp::WithSimd for Accumulate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Accumulate { steps, acc, weight, x, wx } = self;
        let n = wx.len();
        for (s, &u) in wx.iter_mut().zip(x) {
            *s = weight * u;
        }
        for (f, &step) in steps.iter().enumerate().filter(|&(_, &step)| step < n) {
            let m = &mut acc[f * n..f * n + n - step];
            for ((s, &u), &v) in m.iter_mut().zip(wx.iter()).zip(&x[step..]) {
                *s += u * v;
            }
        }
    }
}

/// Row `r` of `x` as f64 in `buf`, for a per-row kernel. A contiguous row converts as one slice
/// (vectorised: the strided iterator converted one value at a time and was a third of a
/// full-batch NCE fit's time); the conversion is exact either way.
pub(crate) fn row_f64(x: ArrayView2<'_, f32>, r: usize, buf: &mut [f64]) {
    let row = x.row(r);
    match row.as_slice() {
        Some(values) => pulp::Arch::new().dispatch(Widen { values, buf }),
        None => {
            for (dst, &v) in buf.iter_mut().zip(row.iter()) {
                *dst = f64::from(v);
            }
        }
    }
}

/// The loop of [`row_f64`], compiled per instruction set as [`QuadraticForm`].
struct Widen<'a> {
    values: &'a [f32],
    buf: &'a mut [f64],
}

impl pulp::WithSimd for Widen<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        for (dst, &v) in self.buf.iter_mut().zip(self.values) {
            *dst = f64::from(v);
        }
    }
}

/// Sum over the data rows at positions `rows` in the crate's block order: `f` maps a block of
/// row positions to a partial (loss, weight sum, plane accumulator).
pub(crate) fn reduce_blocks<F>(rows: &[usize], planes_len: usize, f: F) -> (f64, f64, Vec<f64>)
where
    F: Fn(&[usize]) -> (f64, f64, Vec<f64>) + Sync + Send,
{
    let mut total = sum_blocks(rows, planes_len + 2, |block| {
        let (loss, weight, acc) = f(block);
        let mut packed = Vec::with_capacity(planes_len + 2);
        packed.extend([loss, weight]);
        packed.extend(acc);
        packed
    });
    let acc = total.split_off(2);
    (total[0], total[1], acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmrf_model::{Neighbourhood, Precision};

    #[test]
    fn softplus_and_sigmoid_never_overflow() {
        assert_eq!(softplus(1e4), 1e4);
        assert_eq!(softplus(-1e4), 0.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(sigmoid(1e4), 1.0);
        assert_eq!(sigmoid(-1e4), 0.0);
        assert!((sigmoid(0.3) + sigmoid(-0.3) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn planes_give_the_quadratic_form_and_moments_of_the_precision() {
        // Radius 2 has offsets (1, −2) and (2, −1), whose pairs wrap around a grid row.
        for n in [Neighbourhood::Four, Neighbourhood::Eight, Neighbourhood::Radius(2.0)] {
            let pattern = Pattern::new(4, 5, n).unwrap();
            let theta: Vec<f64> = (0..pattern.len()).map(|k| ((k * 37) % 11) as f64 / 7.0 - 0.6).collect();
            let lam = Precision::new(pattern.clone(), theta.clone()).unwrap();
            let planes = Planes::new(&pattern);
            let x: Vec<f64> = (0..20).map(|k| ((k * 13) % 7) as f64 / 3.0 - 1.0).collect();
            let p = planes.of_values(&pattern, &theta);
            let mut scratch = vec![0.0; 20];
            assert!((planes.quadratic_form(&p, &x, &mut scratch) - lam.quadratic_form(&x)).abs() < 1e-12);
            let mut acc = vec![0.0; planes.len()];
            planes.accumulate(&mut acc, 2.0, &x, &mut scratch);
            let m = planes.on_pattern(&acc);
            for (e, v) in pattern.entries().iter().zip(m) {
                assert_eq!(v, 2.0 * x[e.i as usize] * x[e.j as usize]);
            }
        }
    }
}
