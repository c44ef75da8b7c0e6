//! The barrier objective F(θ) = q(θ) − t·log|Λ(θ)| over the free entries of Λ, with
//! q(θ) = ½θᵀH_qθ + cᵀθ a convex quadratic (score matching) or linear (likelihood) term: its
//! value, gradient, Hessian-vector product, Hessian diagonal and the columns of its Hessian.

use gmrf_model::{InverseBand, Pattern, Precision};
use ndarray::Array2;

use super::entries::{Adjacency, SparseSymmetric};
use super::log_det::{neg_log_det_hessian_diagonal, neg_log_det_hessian_vector_product};

/// The objective F(θ) = ½θᵀH_qθ + cᵀθ − t·log|Λ(θ)|.
pub(crate) struct BarrierObjective<'a> {
    pub(crate) pattern: &'a Pattern,
    pub(crate) adjacency: &'a Adjacency,
    pub(crate) quadratic: Option<&'a SparseSymmetric>,
    pub(crate) linear: &'a [f64],
}

impl BarrierObjective<'_> {
    pub(crate) fn quadratic_gradient(&self, theta: &[f64]) -> Vec<f64> {
        let mut g = match self.quadratic {
            Some(h) => h.mul_vec(theta),
            None => vec![0.0; theta.len()],
        };
        for (g, c) in g.iter_mut().zip(self.linear) {
            *g += c;
        }
        g
    }

    /// q(θ) = ½θᵀH_qθ + cᵀθ.
    pub(crate) fn quadratic_value(&self, theta: &[f64]) -> f64 {
        let hq = match self.quadratic {
            Some(h) => h.mul_vec(theta),
            None => vec![0.0; theta.len()],
        };
        theta.iter().zip(&hq).zip(self.linear).map(|((x, h), c)| 0.5 * x * h + c * x).sum()
    }

    /// ∇F = ∇q − t·m ∘ P(Σ), from ∇q and the selected inverse `sel` (Σ on the pattern).
    pub(crate) fn gradient(&self, quadratic_gradient: &[f64], sel: &[f64], t: f64) -> Vec<f64> {
        quadratic_gradient
            .iter()
            .zip(sel)
            .zip(self.pattern.entries())
            .map(|((q, s), e)| q - t * e.multiplicity() * s)
            .collect()
    }

    /// ∇²F v = H_q v + t·m ∘ P(ΣVΣ).
    pub(crate) fn hessian_vector_product(&self, sigma: &Array2<f64>, t: f64, v: &[f64]) -> Vec<f64> {
        let mut out = neg_log_det_hessian_vector_product(self.pattern, self.adjacency, sigma, v);
        for o in &mut out {
            *o *= t;
        }
        if let Some(h) = self.quadratic {
            for (o, x) in out.iter_mut().zip(h.mul_vec(v)) {
                *o += x;
            }
        }
        out
    }

    /// diag ∇²F = diag H_q + t·diag(−∇² log|Λ|), from the band of Σ.
    pub(crate) fn hessian_diagonal(&self, band: &InverseBand, t: f64) -> Vec<f64> {
        let mut diagonal = neg_log_det_hessian_diagonal(self.pattern, band);
        for j in &mut diagonal {
            *j *= t;
        }
        if let Some(h) = self.quadratic {
            for (j, x) in diagonal.iter_mut().zip(h.diagonal()) {
                *j += x;
            }
        }
        diagonal
    }

    /// F at Λ for weight t; `None` if Λ is not positive definite.
    pub(crate) fn value(&self, lam: &Precision, t: f64) -> Option<f64> {
        let chol = lam.try_factor().ok()?;
        Some(self.quadratic_value(lam.values()) - t * chol.log_det())
    }

    /// ∇F at Λ for weight t; `None` if Λ is not positive definite.
    pub(crate) fn gradient_at(&self, lam: &Precision, t: f64) -> Option<Vec<f64>> {
        let sel = lam.try_factor().ok()?.inverse_band().on_pattern(self.pattern);
        Some(self.gradient(&self.quadratic_gradient(lam.values()), &sel, t))
    }
}

/// Rows f..n of column f of C = D^{-1/2} (H_q + t·H_ld) D^{-1/2} (n × n), D^{-1/2} = diag(`scale`),
/// with H_ld[e, f] = tr(Σ Eₑ Σ E𝒻) = (mₑm𝒻/2)(Σⱼₖ Σₗᵢ + Σⱼₗ Σₖᵢ) for e = (i, j), f = (k, l)
/// (Boyd & Vandenberghe 2004, A.4.3) and H_q the score-matching Hessian (absent for the
/// likelihood).
pub(crate) fn scaled_hessian_column(
    pattern: &Pattern,
    sigma: &Array2<f64>,
    t: f64,
    quadratic: Option<&SparseSymmetric>,
    scale: &[f64],
    f: usize,
    out: &mut [f64],
) {
    let entries = pattern.entries();
    let d = pattern.dim();
    let sig = sigma.as_slice().expect("standard layout");
    let ef = entries[f];
    let (k, l) = (ef.i as usize, ef.j as usize);
    let (sk, sl) = (&sig[k * d..(k + 1) * d], &sig[l * d..(l + 1) * d]);
    let tmf = 0.5 * t * ef.multiplicity();
    for (slot, ee) in out.iter_mut().zip(&entries[f..]) {
        let (i, j) = (ee.i as usize, ee.j as usize);
        *slot = tmf * ee.multiplicity() * (sk[j] * sl[i] + sl[j] * sk[i]);
    }
    // H_q is symmetric: its row f holds column f.
    if let Some(q) = quadratic {
        for p in q.ptr[f]..q.ptr[f + 1] {
            if q.cols[p] >= f {
                out[q.cols[p] - f] += q.vals[p];
            }
        }
    }
    // (v·s_f)·s_e, left to right: the rounding that the stored snapshots were fitted with.
    for (v, s) in out.iter_mut().zip(&scale[f..]) {
        *v = *v * scale[f] * s;
    }
}
