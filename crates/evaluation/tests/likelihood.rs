//! The likelihood against independent dense computations, and the bits/pixel conversion on cases
//! with known answers.

use gmrf_evaluation::{Gaussian, bits_per_pixel, second_moments_dense, to_pixel};
use gmrf_model::{Neighbourhood, Pattern, Precision};
use ndarray::{Array2, ArrayView2, Axis, concatenate, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Textbook dense Cholesky A = LLᵀ.
fn cholesky(a: &Array2<f64>) -> Array2<f64> {
    let d = a.nrows();
    let mut l = Array2::<f64>::zeros((d, d));
    for j in 0..d {
        let pivot = a[(j, j)] - (0..j).map(|k| l[(j, k)] * l[(j, k)]).sum::<f64>();
        assert!(pivot > 0.0, "the test matrix is positive definite");
        l[(j, j)] = pivot.sqrt();
        for i in j + 1..d {
            l[(i, j)] = (a[(i, j)] - (0..j).map(|k| l[(i, k)] * l[(j, k)]).sum::<f64>()) / l[(j, j)];
        }
    }
    l
}

/// −log N(x; 0, Λ⁻¹)/d from a dense Λ: log|Λ| = 2 Σ log Lᵢᵢ, xᵀΛx by dense products.
fn dense_nll(lambda: &Array2<f64>, x: ArrayView2<'_, f32>) -> Vec<f64> {
    let d = lambda.nrows() as f64;
    let log_det: f64 = 2.0 * cholesky(lambda).diag().iter().map(|v| v.ln()).sum::<f64>();
    x.outer_iter()
        .map(|row| {
            let row = row.mapv(f64::from);
            let q = row.dot(&lambda.dot(&row));
            (0.5 * q + 0.5 * d * (2.0 * std::f64::consts::PI).ln() - 0.5 * log_det) / d
        })
        .collect()
}

/// Gauss–Jordan elimination with partial pivoting: (A⁻¹, det A).
fn inverse_and_determinant(a: &Array2<f64>) -> (Array2<f64>, f64) {
    let d = a.nrows();
    let mut m = concatenate![Axis(1), a.view(), Array2::<f64>::eye(d).view()];
    let mut det = 1.0;
    for c in 0..d {
        let p = (c..d).max_by(|&i, &j| m[(i, c)].abs().total_cmp(&m[(j, c)].abs())).unwrap();
        if p != c {
            for k in 0..2 * d {
                m.swap((c, k), (p, k));
            }
            det = -det;
        }
        let pivot = m[(c, c)];
        det *= pivot;
        m.row_mut(c).mapv_inplace(|v| v / pivot);
        for r in (0..d).filter(|&r| r != c) {
            let f = m[(r, c)];
            for k in 0..2 * d {
                m[(r, k)] -= f * m[(c, k)];
            }
        }
    }
    (m.slice(s![.., d..]).to_owned(), det)
}

fn random_rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((n, d), || rng.random_range(-0.5f32..0.5))
}

/// A positive definite 8-neighbour precision on a 6×6 grid with unequal entries.
fn precision_6x6() -> Precision {
    let pattern = Pattern::new(6, 6, Neighbourhood::Eight).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let values = pattern
        .entries()
        .iter()
        .map(|e| if e.is_diagonal() { rng.random_range(6.0..9.0) } else { rng.random_range(-0.7..0.7) })
        .collect();
    Precision::new(pattern, values).unwrap()
}

fn assert_relative(got: &[f64], want: &[f64], tolerance: f64) {
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tolerance * w.abs(), "image {k}: {g} vs dense {w}");
    }
}

// Tolerance 1e-10 relative (the issue's): both sides sum a few hundred O(1) products in f64 and
// agree to ~1e-14; the bound allows for the different summation orders and nothing more.
#[test]
fn sparse_nll_equals_a_dense_computation() {
    let precision = precision_6x6();
    let x = random_rows(40, 36, 11);
    let got = Gaussian::sparse(precision.clone()).unwrap().nll_per_pixel(x.view());
    assert_relative(&got, &dense_nll(&precision.to_dense(), x.view()), 1e-10);
}

#[test]
fn baselines_equal_a_dense_computation() {
    let (train, test) = (random_rows(300, 36, 5), random_rows(25, 36, 6));
    let s = second_moments_dense(train.view());
    let mut direct = Array2::<f64>::zeros((36, 36));
    for row in train.outer_iter() {
        let row = row.mapv(f64::from);
        for i in 0..36 {
            for j in 0..36 {
                direct[(i, j)] += row[i] * row[j] / 300.0;
            }
        }
    }
    assert!((&s - &direct).iter().all(|v| v.abs() < 1e-14), "S = XᵀX/N");

    let full = Gaussian::from_covariance(s.clone()).unwrap().nll_per_pixel(test.view());
    assert_relative(&full, &dense_nll(&inverse_and_determinant(&s).0, test.view()), 1e-10);
    let diagonal = Array2::from_diag(&s.diag());
    let got = Gaussian::from_covariance(diagonal.clone()).unwrap().nll_per_pixel(test.view());
    assert_relative(&got, &dense_nll(&inverse_and_determinant(&diagonal).0, test.view()), 1e-10);
}

/// Each reported eigenvalue λ of Λ = S⁻¹ makes det(S⁻¹ − λI) change sign across λ(1 ± 1e-8).
#[test]
fn eigenvalues_of_a_baseline_are_those_of_its_precision() {
    let s = second_moments_dense(random_rows(200, 9, 1).view());
    let got = Gaussian::from_covariance(s.clone()).unwrap().precision_eigenvalues().unwrap();
    let lambda = inverse_and_determinant(&s).0;
    assert_eq!(got.len(), 9);
    for &value in &got {
        let [below, above] = [1.0 - 1e-8, 1.0 + 1e-8].map(|f: f64| {
            let shifted = &lambda - &(Array2::<f64>::eye(9) * (value * f));
            inverse_and_determinant(&shifted).1
        });
        assert!(below * above <= 0.0, "{value} is not an eigenvalue of S⁻¹");
    }
}

#[test]
fn bits_per_pixel_has_the_known_answers() {
    // A density of 1 (nll 0) on bins of width 1/256: each pixel costs log₂ 256 = 8 bits.
    assert!((bits_per_pixel(0.0, 256.0) - 8.0).abs() < 1e-12);
    // A density of 256 puts all the mass of a pixel in one bin: 0 bits.
    assert!(bits_per_pixel(-(256f64.ln()), 256.0).abs() < 1e-12);
    // One nat is log₂ e bits.
    assert!((bits_per_pixel(1.0, 256.0) - (8.0 + std::f64::consts::LOG2_E)).abs() < 1e-12);
}

#[test]
fn values_map_to_the_pixel_whose_dequantisation_bin_holds_them() {
    // x = (pixel + u)/256 with u ∈ [0, 1): pixel 10 covers [10/256, 11/256).
    assert_eq!(to_pixel(10.0 / 256.0, 256.0), 10);
    assert_eq!(to_pixel(10.999 / 256.0, 256.0), 10);
    assert_eq!(to_pixel(-0.3, 256.0), 0);
    assert_eq!(to_pixel(1.7, 256.0), 255);
}
