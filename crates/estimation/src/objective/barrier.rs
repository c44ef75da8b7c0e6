//! The barrier objective F(θ) = q(θ) − t·log|Λ(θ)| over the free entries θ of Λ, where q is any
//! smooth convex function of θ ([`Smooth`]): its value, gradient, Hessian-vector product, Hessian
//! diagonal and the columns of its Hessian. [`Quadratic`] is q for score matching
//! (½θᵀH_qθ + cᵀθ) and for the masked likelihood (cᵀθ, no H_q).

use gmrf_model::{InverseBand, Pattern, Precision};
use ndarray::Array2;

use super::entries::{Adjacency, SparseSymmetric};
use super::log_det::{neg_log_det_hessian_diagonal, neg_log_det_hessian_vector_product};
use crate::moments::dot;

/// A smooth convex function q(θ) of the free entries of Λ: what Newton, L-BFGS and the barrier
/// path minimise, with the barrier −t·log|Λ| added, as [`BarrierObjective`]. An objective that
/// implements it gets every solver in [`crate::solve`].
pub trait Smooth: Sync {
    /// q(θ).
    fn value(&self, theta: &[f64]) -> f64;
    /// ∇q(θ).
    fn gradient(&self, theta: &[f64]) -> Vec<f64>;
    /// ∇²q(θ) v.
    fn hessian_vector_product(&self, theta: &[f64], v: &[f64]) -> Vec<f64>;
    /// diag ∇²q(θ).
    fn hessian_diagonal(&self, theta: &[f64]) -> Vec<f64>;
    /// Adds rows f..n of column f of ∇²q(θ) to `out` (n − f values).
    fn add_hessian_column(&self, theta: &[f64], f: usize, out: &mut [f64]);
    /// α ↦ q(θ + αd) − q(θ), given ∇q(θ) = `gradient`, for a line search: an exact expansion
    /// where there is one, never a difference of two values near |q| (≈ 4e7 for score matching
    /// on MNIST) when it can be avoided.
    fn change_along(&self, theta: &[f64], gradient: &[f64], dir: &[f64]) -> Box<dyn Fn(f64) -> f64 + '_>;
    /// Whether q is quadratic (or linear): then F/t is self-concordant, and Newton may stop on the
    /// bound that a full step gives its next decrement. Default false.
    fn is_quadratic(&self) -> bool {
        false
    }
}

/// q(θ) = ½θᵀH_qθ + cᵀθ, H_q sparse positive semidefinite (score matching), or cᵀθ without H_q
/// (the masked likelihood's tr(SΛ)).
pub(crate) struct Quadratic<'a> {
    pub(crate) hessian: Option<&'a SparseSymmetric>,
    pub(crate) linear: &'a [f64],
}

impl Quadratic<'_> {
    fn h_times(&self, v: &[f64]) -> Vec<f64> {
        match self.hessian {
            Some(h) => h.mul_vec(v),
            None => vec![0.0; v.len()],
        }
    }
}

impl Smooth for Quadratic<'_> {
    fn value(&self, theta: &[f64]) -> f64 {
        let hq = self.h_times(theta);
        theta.iter().zip(&hq).zip(self.linear).map(|((x, h), c)| 0.5 * x * h + c * x).sum()
    }

    fn gradient(&self, theta: &[f64]) -> Vec<f64> {
        let mut g = self.h_times(theta);
        for (g, c) in g.iter_mut().zip(self.linear) {
            *g += c;
        }
        g
    }

    fn hessian_vector_product(&self, _theta: &[f64], v: &[f64]) -> Vec<f64> {
        self.h_times(v)
    }

    fn hessian_diagonal(&self, theta: &[f64]) -> Vec<f64> {
        self.hessian.map_or_else(|| vec![0.0; theta.len()], |h| h.diagonal())
    }

    fn add_hessian_column(&self, _theta: &[f64], f: usize, out: &mut [f64]) {
        if let Some(q) = self.hessian {
            q.add_column_below(f, out);
        }
    }

    fn is_quadratic(&self) -> bool {
        true
    }

    /// α(∇q·d) + ½α²(dᵀH_q d), exact.
    fn change_along(&self, _theta: &[f64], gradient: &[f64], dir: &[f64]) -> Box<dyn Fn(f64) -> f64 + '_> {
        let qd = dot(gradient, dir);
        let dhd = self.hessian.map_or(0.0, |h| dot(dir, &h.mul_vec(dir)));
        Box::new(move |alpha| alpha * qd + 0.5 * alpha * alpha * dhd)
    }
}

/// The objective F(θ) = q(θ) − t·log|Λ(θ)|.
pub(crate) struct BarrierObjective<'a> {
    pub(crate) pattern: &'a Pattern,
    pub(crate) adjacency: &'a Adjacency,
    pub(crate) smooth: &'a dyn Smooth,
}

impl BarrierObjective<'_> {
    /// ∇q(θ).
    pub(crate) fn quadratic_gradient(&self, theta: &[f64]) -> Vec<f64> {
        self.smooth.gradient(theta)
    }

    /// q(θ).
    pub(crate) fn quadratic_value(&self, theta: &[f64]) -> f64 {
        self.smooth.value(theta)
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

    /// ∇²F v = ∇²q v + t·m ∘ P(ΣVΣ) at θ, Σ = Λ(θ)⁻¹.
    pub(crate) fn hessian_vector_product(
        &self,
        theta: &[f64],
        sigma: &Array2<f64>,
        t: f64,
        v: &[f64],
    ) -> Vec<f64> {
        let mut out = neg_log_det_hessian_vector_product(self.pattern, self.adjacency, sigma, v);
        for o in &mut out {
            *o *= t;
        }
        for (o, x) in out.iter_mut().zip(self.smooth.hessian_vector_product(theta, v)) {
            *o += x;
        }
        out
    }

    /// diag ∇²F = diag ∇²q + t·diag(−∇² log|Λ|) at θ, from the band of Σ.
    pub(crate) fn hessian_diagonal(&self, theta: &[f64], band: &InverseBand, t: f64) -> Vec<f64> {
        let mut diagonal = neg_log_det_hessian_diagonal(self.pattern, band);
        for j in &mut diagonal {
            *j *= t;
        }
        for (j, x) in diagonal.iter_mut().zip(self.smooth.hessian_diagonal(theta)) {
            *j += x;
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
/// (Boyd & Vandenberghe 2004, A.4.3) and H_q = ∇²q(θ).
#[allow(clippy::too_many_arguments)]
pub(crate) fn scaled_hessian_column(
    pattern: &Pattern,
    sigma: &Array2<f64>,
    t: f64,
    smooth: &dyn Smooth,
    theta: &[f64],
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
    smooth.add_hessian_column(theta, f, out);
    // (v·s_f)·s_e, left to right: the rounding that the stored snapshots were fitted with.
    for (v, s) in out.iter_mut().zip(&scale[f..]) {
        *v = *v * scale[f] * s;
    }
}
