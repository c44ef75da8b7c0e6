//! The known GMRF both estimator test files recover, and how they measure the recovery.
#![allow(dead_code)]

use gmrf_model::{Neighbourhood, Pattern, Precision};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The known 4-neighbour GMRF: Λᵢᵢ = 1, horizontal couplings −0.2, vertical −0.15. Diagonally
/// dominant (off-row sum ≤ 0.7), so eigenvalues lie in [0.3, 1.7].
pub fn true_precision(h: usize, w: usize) -> Precision {
    let pattern = Pattern::new(h, w, Neighbourhood::Four).unwrap();
    let values = pattern
        .entries()
        .iter()
        .map(|e| {
            if e.is_diagonal() {
                1.0
            } else if e.di == 0 {
                -0.2
            } else {
                -0.15
            }
        })
        .collect();
    Precision::new(pattern, values).unwrap()
}

/// N draws from the true GMRF with our own sampler, as f32 rows (zero mean by construction).
pub fn draws(truth: &Precision, n: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    truth.sample_cholesky(n, None, &mut rng).unwrap().mapv(|v| v as f32)
}

/// ‖A − B‖_F / ‖B‖_F of the dense matrices.
pub fn relative_error(a: &Precision, b: &Precision) -> f64 {
    let (a, b) = (a.to_dense(), b.to_dense());
    (&a - &b).mapv(|v| v * v).sum().sqrt() / b.mapv(|v| v * v).sum().sqrt()
}

/// log|Λ| by a textbook dense Cholesky (Λ = LLᵀ, log|Λ| = 2 Σ log Lᵢᵢ), independent of faer.
pub fn dense_log_det(lam: &Precision) -> f64 {
    let a = lam.to_dense();
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        let diagonal = a[(j, j)] - (0..j).map(|k| l[(j, k)] * l[(j, k)]).sum::<f64>();
        assert!(diagonal > 0.0, "not positive definite");
        l[(j, j)] = diagonal.sqrt();
        for i in j + 1..n {
            l[(i, j)] = (a[(i, j)] - (0..j).map(|k| l[(i, k)] * l[(j, k)]).sum::<f64>()) / l[(j, j)];
        }
    }
    2.0 * (0..n).map(|i| l[(i, i)].ln()).sum::<f64>()
}
