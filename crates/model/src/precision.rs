//! The sparse symmetric precision Λ on a pattern, its products and quadratic forms.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::cholesky::{Cholesky, InverseBand};
use crate::{ModelError, Pattern};

/// A symmetric matrix Λ that is zero outside `pattern`: one value per stored entry (upper
/// triangle with diagonal), in the pattern's canonical order. A stored off-diagonal value sets
/// both Λᵢⱼ and Λⱼᵢ.
///
/// Nothing here requires positive definiteness; [`Precision::try_factor`] checks it.
#[derive(Clone, Debug, PartialEq)]
pub struct Precision {
    pattern: Pattern,
    values: Vec<f64>,
}

impl Precision {
    /// Λ with the given values in canonical order.
    pub fn new(pattern: Pattern, values: Vec<f64>) -> Result<Self, ModelError> {
        if values.len() != pattern.len() {
            return Err(ModelError::WrongLength {
                what: "precision values",
                expected: pattern.len(),
                got: values.len(),
            });
        }
        if let Some(position) = values.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { position });
        }
        Ok(Precision { pattern, values })
    }

    /// The diagonal matrix diag(`diagonal`) on `pattern` (off-diagonal entries zero).
    pub fn diagonal(pattern: Pattern, diagonal: &[f64]) -> Result<Self, ModelError> {
        if diagonal.len() != pattern.dim() {
            return Err(ModelError::WrongLength {
                what: "diagonal",
                expected: pattern.dim(),
                got: diagonal.len(),
            });
        }
        let values = pattern
            .entries()
            .iter()
            .map(|e| if e.is_diagonal() { diagonal[e.i as usize] } else { 0.0 })
            .collect();
        Precision::new(pattern, values)
    }

    /// The same pattern with other values (checked like [`Precision::new`]).
    pub fn with_values(&self, values: Vec<f64>) -> Result<Self, ModelError> {
        Precision::new(self.pattern.clone(), values)
    }

    /// The pattern.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// Stored values in canonical order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The stored values, consuming Λ.
    pub fn into_values(self) -> Vec<f64> {
        self.values
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.pattern.dim()
    }

    /// Λᵢⱼ (zero outside the pattern).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.pattern.position(i, j).map_or(0.0, |k| self.values[k])
    }

    /// The diagonal Λᵢᵢ.
    pub fn diagonal_values(&self) -> Vec<f64> {
        (0..self.dim()).map(|i| self.values[self.pattern.diagonal_position(i)]).collect()
    }

    /// tr Λ.
    pub fn trace(&self) -> f64 {
        (0..self.dim()).map(|i| self.values[self.pattern.diagonal_position(i)]).sum()
    }

    /// Λ as a dense d × d matrix (for tests, small grids and dense baselines).
    pub fn to_dense(&self) -> Array2<f64> {
        let d = self.dim();
        let mut out = Array2::zeros((d, d));
        for (e, &v) in self.pattern.entries().iter().zip(&self.values) {
            out[(e.i as usize, e.j as usize)] = v;
            out[(e.j as usize, e.i as usize)] = v;
        }
        out
    }

    /// y = Λx, O(nnz).
    pub fn mul_vec(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(x.len(), self.dim(), "vector length");
        let mut y = vec![0.0; self.dim()];
        for (e, &v) in self.pattern.entries().iter().zip(&self.values) {
            let (i, j) = (e.i as usize, e.j as usize);
            y[i] += v * x[j];
            if i != j {
                y[j] += v * x[i];
            }
        }
        y
    }

    /// Y = XΛ for a block X of N row vectors (N × d), i.e. yₙ = Λxₙ for every row; rows in
    /// parallel, each computed exactly as [`Precision::mul_vec`].
    pub fn mul_rows<T: Copy + Into<f64> + Sync>(&self, x: ArrayView2<'_, T>) -> Array2<f64> {
        assert_eq!(x.ncols(), self.dim(), "block width");
        let rows: Vec<Vec<f64>> = x
            .axis_iter(Axis(0))
            .into_par_iter()
            .map(|row| self.mul_vec(&row.iter().map(|&v| v.into()).collect::<Vec<f64>>()))
            .collect();
        let mut out = Array2::zeros((x.nrows(), self.dim()));
        for (mut dst, src) in out.axis_iter_mut(Axis(0)).zip(rows) {
            dst.assign(&ndarray::ArrayView1::from(&src));
        }
        out
    }

    /// xᵀΛx = Σᵢ Λᵢᵢ xᵢ² + 2 Σ_{i<j} Λᵢⱼ xᵢ xⱼ, accumulated in f64.
    pub fn quadratic_form<T: Copy + Into<f64>>(&self, x: &[T]) -> f64 {
        assert_eq!(x.len(), self.dim(), "vector length");
        let mut acc = 0.0;
        for (e, &v) in self.pattern.entries().iter().zip(&self.values) {
            let xi: f64 = x[e.i as usize].into();
            let xj: f64 = x[e.j as usize].into();
            acc += e.multiplicity() * v * xi * xj;
        }
        acc
    }

    /// xₙᵀΛxₙ for every row of an N × d block; rows in parallel, each summed in a fixed order,
    /// so the result does not depend on the number of threads.
    pub fn quadratic_forms<T: Copy + Into<f64> + Sync>(&self, x: ArrayView2<'_, T>) -> Vec<f64> {
        assert_eq!(x.ncols(), self.dim(), "block width");
        x.axis_iter(Axis(0))
            .into_par_iter()
            .map(|row| match row.as_slice() {
                Some(s) => self.quadratic_form(s),
                None => self.quadratic_form(&row.to_vec()),
            })
            .collect()
    }

    /// The Cholesky factor Λ = LLᵀ, or [`ModelError::NotPositiveDefinite`] when Λ is not
    /// (numerically) positive definite. Reuses the pattern's symbolic analysis; O(d·b²).
    pub fn try_factor(&self) -> Result<Cholesky, ModelError> {
        self.pattern.symbolic().factor(&self.values)
    }

    /// True when Λ has a Cholesky factor.
    pub fn is_positive_definite(&self) -> bool {
        self.try_factor().is_ok()
    }

    /// log|Λ| = 2 Σᵢ log Lᵢᵢ.
    pub fn log_det(&self) -> Result<f64, ModelError> {
        Ok(self.try_factor()?.log_det())
    }

    /// log p(xₙ) = ½ log|Λ| − (d/2) log 2π − ½ xₙᵀΛxₙ for every row of an N × d block of
    /// centred data (design.md, "model log-density").
    pub fn log_density<T: Copy + Into<f64> + Sync>(
        &self,
        x: ArrayView2<'_, T>,
    ) -> Result<Vec<f64>, ModelError> {
        let log_det = self.log_det()?;
        Ok(log_density_with(log_det, self.dim(), &self.quadratic_forms(x)))
    }

    /// The entries of Σ = Λ⁻¹ on the pattern (canonical order), by Takahashi recursions on the
    /// Cholesky factor: O(d·b²), never a dense inverse.
    pub fn selected_inverse(&self) -> Result<Vec<f64>, ModelError> {
        Ok(self.try_factor()?.inverse_band().on_pattern(&self.pattern))
    }

    /// The band |i − j| ≤ b of Σ = Λ⁻¹.
    pub fn inverse_band(&self) -> Result<InverseBand, ModelError> {
        Ok(self.try_factor()?.inverse_band())
    }
}

/// ½·d·log 2π, the constant of the Gaussian normaliser in d dimensions.
pub fn half_d_log_2pi(dim: usize) -> f64 {
    0.5 * dim as f64 * (2.0 * std::f64::consts::PI).ln()
}

/// log Z⁻¹ = ½ log|Λ| − (d/2) log 2π, the log-normaliser of N(0, Λ⁻¹) from log|Λ|.
pub fn log_normaliser(log_det: f64, dim: usize) -> f64 {
    0.5 * log_det - half_d_log_2pi(dim)
}

/// log p = ½ log|Λ| − (d/2) log 2π − ½ q for each quadratic form q = xᵀΛx, summed as
/// (−½ q + ½ log|Λ|) − (d/2) log 2π for every kind of [`Gaussian`](crate::Gaussian).
pub fn log_density_with(log_det: f64, dim: usize, quadratic_forms: &[f64]) -> Vec<f64> {
    let (half_log_det, constant) = (0.5 * log_det, half_d_log_2pi(dim));
    quadratic_forms.iter().map(|q| -0.5 * q + half_log_det - constant).collect()
}
