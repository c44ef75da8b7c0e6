//! The two samplers of design.md: x = μ + L⁻ᵀz, and x = μ + Λ^{-1/2}ε.
//!
//! Normals are drawn sequentially from the caller's RNG, sample by sample and pixel by pixel,
//! so a seeded `rand_chacha::ChaCha8Rng` gives the same images on every machine and thread count.

use ndarray::{Array2, ArrayView1, Axis};
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::{Cholesky, ModelError, Precision};

fn check_mean(mean: Option<ArrayView1<'_, f64>>, d: usize) -> Result<(), ModelError> {
    match mean {
        Some(m) if m.len() != d => Err(ModelError::WrongLength { what: "mean", expected: d, got: m.len() }),
        _ => Ok(()),
    }
}

fn standard_normals<R: Rng + ?Sized>(n: usize, d: usize, scale: f64, rng: &mut R) -> Array2<f64> {
    Array2::from_shape_simple_fn((n, d), || scale * rng.sample::<f64, _>(StandardNormal))
}

impl Cholesky {
    /// `n` draws x = L⁻ᵀz, z ~ N(0, I), as rows of an n × d matrix: Cov x = L⁻ᵀL⁻¹ = Λ⁻¹.
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Array2<f64> {
        let mut x = standard_normals(n, self.dim(), 1.0, rng);
        // Each row is solved independently, so the rayon split changes no bit.
        x.axis_iter_mut(Axis(0)).into_par_iter().for_each(|mut row| {
            let s = row.as_slice_mut().expect("rows of a standard-layout array are contiguous");
            self.solve_upper_in_place(s);
        });
        x
    }
}

impl Precision {
    /// `n` draws of x = μ + L⁻ᵀz with z ~ N(0, I) and Λ = LLᵀ, i.e. x ~ N(μ, Λ⁻¹), as rows
    /// (μ = 0 when `mean` is `None`). O(n·d·b). Fails when Λ is not positive definite.
    pub fn sample_cholesky<R: Rng + ?Sized>(
        &self,
        n: usize,
        mean: Option<ArrayView1<'_, f64>>,
        rng: &mut R,
    ) -> Result<Array2<f64>, ModelError> {
        check_mean(mean, self.dim())?;
        let mut x = self.try_factor()?.sample(n, rng);
        if let Some(m) = mean {
            x += &m;
        }
        Ok(x)
    }

    /// `n` draws of x = μ + Λ^{-1/2}ε with ε ~ N(0, τ²I), i.e. x ~ N(μ, τ²Λ⁻¹), as rows, by the
    /// eigendecomposition Λ^{-1/2} = U diag(λ^{-1/2}) Uᵀ (τ = 0.1 reproduces the original's
    /// 1/100 variance). Fails when an eigenvalue is ≤ 0.
    pub fn sample_inverse_sqrt<R: Rng + ?Sized>(
        &self,
        n: usize,
        tau: f64,
        mean: Option<ArrayView1<'_, f64>>,
        rng: &mut R,
    ) -> Result<Array2<f64>, ModelError> {
        check_mean(mean, self.dim())?;
        let root = self.eigen()?.inverse_sqrt()?;
        let eps = standard_normals(n, self.dim(), tau, rng);
        // Rows of ε times the symmetric Λ^{-1/2}.
        let mut x = eps.dot(&root);
        if let Some(m) = mean {
            x += &m;
        }
        Ok(x)
    }
}
