//! The score-matching objective J(Λ) = ½ tr(ΛSΛ) − tr Λ in the free entries of Λ.
//!
//! Parametrisation: θ holds one value per stored entry of the pattern (upper triangle with
//! diagonal, canonical order) and Λ = Σₑ θₑ Eₑ with E = eᵢeⱼᵀ + eⱼeᵢᵀ off the diagonal (an
//! off-diagonal θₑ sets both Λᵢⱼ and Λⱼᵢ) and E = eᵢeᵢᵀ on it. Then J is exactly quadratic,
//! J(θ) = ½ θᵀHθ − bᵀθ, with bₑ = 1 on diagonal entries and 0 elsewhere, and
//! Hₑ𝒻 = tr(Eₑ S E𝒻) = (mₑm𝒻/4)(Sⱼₖδₗᵢ + Sⱼₗδₖᵢ + Sᵢₖδₗⱼ + Sᵢₗδₖⱼ) for e = (i, j), f = (k, l), where
//! m = 2 off the diagonal and 1 on it. H is sparse (e and f must share a pixel) and only needs S
//! within two hops of the pattern. The gradient is ∇J = Hθ − b = m ∘ P(½(SΛ + ΛS) − I), P the
//! restriction to the pattern (Hyvärinen 2005, §3 for the Gaussian score-matching objective).

use gmrf_model::Pattern;

use super::entries::{Adjacency, SparseSymmetric};
use crate::EstimationError;
use crate::moments::{Reach, SecondMoments};

/// The score-matching problem on a pattern for fixed statistics S: its quadratic form H and
/// linear term b, built once, O(nnz(H)).
#[derive(Clone, Debug)]
pub struct ScoreMatching {
    pattern: Pattern,
    pub(crate) adjacency: Adjacency,
    pub(crate) hessian: SparseSymmetric,
    pub(crate) linear: Vec<f64>,
    /// (ΛS)ᵢⱼ needs S at these entries: kept for the original's gradient.
    moments: SecondMoments,
}

impl ScoreMatching {
    /// Prepares J for `pattern` from second moments holding at least the two-hop offsets
    /// ([`Reach::TwoHops`]).
    pub fn new(pattern: &Pattern, moments: &SecondMoments) -> Result<Self, EstimationError> {
        if SecondMoments::offset_set(pattern, Reach::TwoHops).iter().any(|o| !moments.offsets().contains(o)) {
            return Err(EstimationError::Shape(
                "score matching needs S within two hops of the pattern".into(),
            ));
        }
        let adjacency = Adjacency::new(pattern);
        let entries = pattern.entries();
        let m: Vec<f64> = entries.iter().map(|e| e.multiplicity()).collect();
        let mut ptr = vec![0];
        let mut cols = Vec::new();
        let mut vals = Vec::new();
        for (ke, e) in entries.iter().enumerate() {
            let (i, j) = (e.i as usize, e.j as usize);
            let mut fs: Vec<usize> = adjacency.of(i).iter().chain(adjacency.of(j)).map(|&(_, k)| k).collect();
            fs.sort_unstable();
            fs.dedup();
            for kf in fs {
                let f = entries[kf];
                let (k, l) = (f.i as usize, f.j as usize);
                let mut v = 0.0;
                if l == i {
                    v += moments.at(j, k);
                }
                if k == i {
                    v += moments.at(j, l);
                }
                if l == j {
                    v += moments.at(i, k);
                }
                if k == j {
                    v += moments.at(i, l);
                }
                cols.push(kf);
                vals.push(0.25 * m[ke] * m[kf] * v);
            }
            ptr.push(cols.len());
        }
        let linear = entries.iter().map(|e| if e.is_diagonal() { 1.0 } else { 0.0 }).collect();
        Ok(ScoreMatching {
            pattern: pattern.clone(),
            adjacency,
            hessian: SparseSymmetric { ptr, cols, vals },
            linear,
            moments: moments.clone(),
        })
    }

    /// The pattern.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// J(θ) = ½ tr(ΛSΛ) − tr Λ = ½ θᵀHθ − bᵀθ.
    pub fn sm_objective(&self, theta: &[f64]) -> f64 {
        let h = self.hessian.mul_vec(theta);
        theta.iter().zip(&h).zip(&self.linear).map(|((t, h), b)| 0.5 * t * h - b * t).sum()
    }

    /// ∇J(θ) = Hθ − b, i.e. ∂J/∂θₑ = mₑ (½(SΛ + ΛS) − I)ᵢⱼ for e = (i, j).
    pub fn sm_gradient(&self, theta: &[f64]) -> Vec<f64> {
        let mut g = self.hessian.mul_vec(theta);
        for (g, b) in g.iter_mut().zip(&self.linear) {
            *g -= b;
        }
        g
    }

    /// H v = m ∘ P(½(SV + VS)) with V the symmetric matrix of v on the pattern.
    pub fn sm_hessian_vector_product(&self, v: &[f64]) -> Vec<f64> {
        self.hessian.mul_vec(v)
    }

    /// The matrix gradient ½(SΛ + ΛS) − I on the pattern entries (= ∇J / m).
    pub fn sm_matrix_gradient(&self, theta: &[f64]) -> Vec<f64> {
        let g = self.sm_gradient(theta);
        g.iter().zip(self.pattern.entries()).map(|(g, e)| g / e.multiplicity()).collect()
    }

    /// The original homework's gradient: (ΛS − I)ᵢⱼ on the upper-triangle entries i ≤ j, its
    /// upper triangle copied to the lower. Not symmetric in general, so its fixed point differs
    /// from that of J (design.md); kept to reproduce the original.
    pub fn original_upper_triangle_gradient(&self, theta: &[f64]) -> Vec<f64> {
        self.pattern
            .entries()
            .iter()
            .map(|e| {
                let (i, j) = (e.i as usize, e.j as usize);
                let ls: f64 =
                    self.adjacency.of(i).iter().map(|&(k, pos)| theta[pos] * self.moments.at(k, j)).sum();
                ls - if i == j { 1.0 } else { 0.0 }
            })
            .collect()
    }

    /// Diagonal of H (the Jacobi preconditioner).
    pub(crate) fn hessian_diagonal(&self) -> Vec<f64> {
        self.hessian.diagonal()
    }
}
