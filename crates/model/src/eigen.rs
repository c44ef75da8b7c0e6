//! Dense symmetric eigendecomposition of Λ: spectrum diagnostics and Λ^{-1/2}.
//!
//! At d = 784 a dense self-adjoint eigensolver (faer, sequential, so bit-reproducible) takes a
//! fraction of a second; it is used for reporting and for the Λ^{-1/2} sampler, never inside an
//! optimiser loop.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{ComputeEigenvectors, self_adjoint_evd, self_adjoint_evd_scratch};
use faer::{Mat, Par};
use ndarray::{Array2, ArrayView2};

use crate::{ModelError, Precision};

/// Λ = U diag(λ) Uᵀ with eigenvalues ascending and orthonormal eigenvectors in the columns of U.
#[derive(Clone, Debug)]
pub struct SymmetricEigen {
    /// Eigenvalues λ₁ ≤ … ≤ λ_d.
    pub values: Vec<f64>,
    /// Eigenvectors, column k for λₖ (d × d).
    pub vectors: Array2<f64>,
}

impl SymmetricEigen {
    /// Eigendecomposition of a dense symmetric matrix (only its lower triangle is read).
    pub fn of_dense(a: ArrayView2<'_, f64>) -> Result<Self, ModelError> {
        let d = a.nrows();
        if a.ncols() != d {
            return Err(ModelError::WrongLength { what: "matrix columns", expected: d, got: a.ncols() });
        }
        let m = Mat::<f64>::from_fn(d, d, |i, j| a[(i, j)]);
        let mut s = faer::diag::Diag::<f64>::zeros(d);
        let mut u = Mat::<f64>::zeros(d, d);
        let mut mem = MemBuffer::new(self_adjoint_evd_scratch::<f64>(
            d,
            ComputeEigenvectors::Yes,
            Par::Seq,
            Default::default(),
        ));
        self_adjoint_evd(
            m.as_ref(),
            s.as_mut(),
            Some(u.as_mut()),
            Par::Seq,
            MemStack::new(&mut mem),
            Default::default(),
        )
        .map_err(|e| ModelError::Faer(format!("{e:?}")))?;
        let values: Vec<f64> = (0..d).map(|k| s.column_vector()[k]).collect();
        // faer returns them ascending; sort defensively (stable, so ties keep their vectors).
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&x, &y| values[x].total_cmp(&values[y]));
        let vectors = Array2::from_shape_fn((d, d), |(i, k)| u[(i, order[k])]);
        Ok(SymmetricEigen { values: order.iter().map(|&k| values[k]).collect(), vectors })
    }

    /// Smallest eigenvalue λ₁.
    pub fn min(&self) -> f64 {
        self.values[0]
    }

    /// Largest eigenvalue λ_d.
    pub fn max(&self) -> f64 {
        self.values[self.values.len() - 1]
    }

    /// Condition number λ_d / λ₁ (infinite when λ₁ ≤ 0).
    pub fn condition_number(&self) -> f64 {
        if self.min() <= 0.0 { f64::INFINITY } else { self.max() / self.min() }
    }

    /// How many eigenvalues are ≤ 0.
    pub fn count_nonpositive(&self) -> usize {
        self.values.iter().filter(|&&v| v <= 0.0).count()
    }

    /// Λ^{-1/2} = U diag(λ^{-1/2}) Uᵀ, or an error when some λ ≤ 0.
    pub fn inverse_sqrt(&self) -> Result<Array2<f64>, ModelError> {
        if let Some(k) = self.values.iter().position(|&v| v <= 0.0) {
            return Err(ModelError::NotPositiveDefinite { pivot: k });
        }
        let scaled = Array2::from_shape_fn(self.vectors.raw_dim(), |(i, k)| {
            self.vectors[(i, k)] / self.values[k].sqrt()
        });
        Ok(scaled.dot(&self.vectors.t()))
    }
}

impl Precision {
    /// Dense eigendecomposition of Λ.
    pub fn eigen(&self) -> Result<SymmetricEigen, ModelError> {
        SymmetricEigen::of_dense(self.to_dense().view())
    }

    /// Eigenvalues of Λ, ascending.
    pub fn eigenvalues(&self) -> Result<Vec<f64>, ModelError> {
        let d = self.dim();
        let dense = self.to_dense();
        let m = Mat::<f64>::from_fn(d, d, |i, j| dense[(i, j)]);
        let mut s = faer::diag::Diag::<f64>::zeros(d);
        let mut mem = MemBuffer::new(self_adjoint_evd_scratch::<f64>(
            d,
            ComputeEigenvectors::No,
            Par::Seq,
            Default::default(),
        ));
        self_adjoint_evd(m.as_ref(), s.as_mut(), None, Par::Seq, MemStack::new(&mut mem), Default::default())
            .map_err(|e| ModelError::Faer(format!("{e:?}")))?;
        let mut values: Vec<f64> = (0..d).map(|k| s.column_vector()[k]).collect();
        values.sort_by(f64::total_cmp);
        Ok(values)
    }

    /// Smallest eigenvalue of Λ (positive iff Λ is positive definite).
    pub fn min_eigenvalue(&self) -> Result<f64, ModelError> {
        Ok(self.eigenvalues()?[0])
    }

    /// Condition number λ_max / λ_min of Λ (infinite when λ_min ≤ 0).
    pub fn condition_number(&self) -> Result<f64, ModelError> {
        let v = self.eigenvalues()?;
        let (lo, hi) = (v[0], v[v.len() - 1]);
        Ok(if lo <= 0.0 { f64::INFINITY } else { hi / lo })
    }
}
