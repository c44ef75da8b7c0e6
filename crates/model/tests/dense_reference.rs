//! The sparse model against independent dense computations on small grids.
//!
//! The dense reference is a naive Gauss–Jordan elimination with partial pivoting written here,
//! sharing no code with the crate. The matrices are diagonally dominant (condition number < 10),
//! so both sides agree to a few ulps times d; tolerances of 1e-10 relative leave a wide margin.

use gmrf_model::{ModelError, Neighbourhood, Pattern, Precision};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random diagonally dominant (hence positive definite) Λ: off-diagonals in ±0.24, so the
/// absolute row sum off the diagonal is < 8·0.24 < 2 ≤ the diagonal.
fn random_precision(h: usize, w: usize, n: Neighbourhood, seed: u64) -> Precision {
    let pattern = Pattern::new(h, w, n).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values = pattern
        .entries()
        .iter()
        .map(|e| if e.is_diagonal() { rng.random_range(2.0..3.0) } else { rng.random_range(-0.24..0.24) })
        .collect();
    Precision::new(pattern, values).unwrap()
}

/// Dense inverse and log|det| by Gauss–Jordan elimination with partial pivoting.
fn dense_inverse_and_log_det(a: &Array2<f64>) -> (Array2<f64>, f64) {
    let d = a.nrows();
    let mut m = a.clone();
    let mut inv = Array2::<f64>::eye(d);
    let mut log_det = 0.0;
    for c in 0..d {
        let p = (c..d).max_by(|&x, &y| m[(x, c)].abs().total_cmp(&m[(y, c)].abs())).unwrap();
        for k in 0..d {
            m.swap((c, k), (p, k));
            inv.swap((c, k), (p, k));
        }
        let piv = m[(c, c)];
        log_det += piv.abs().ln();
        for k in 0..d {
            m[(c, k)] /= piv;
            inv[(c, k)] /= piv;
        }
        for r in 0..d {
            if r != c {
                let f = m[(r, c)];
                for k in 0..d {
                    m[(r, k)] -= f * m[(c, k)];
                    inv[(r, k)] -= f * inv[(c, k)];
                }
            }
        }
    }
    (inv, log_det)
}

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn cholesky_factor_reproduces_lambda() {
    for n in [Neighbourhood::Four, Neighbourhood::Eight, Neighbourhood::Radius(2.0)] {
        let p = random_precision(4, 5, n, 1);
        let chol = p.try_factor().unwrap();
        let d = p.dim();
        let l = Array2::from_shape_fn((d, d), |(i, j)| if j <= i { chol.l(i, j) } else { 0.0 });
        let lam = p.to_dense();
        // Entries of Λ are O(1): 1e-12 absolute is ~1e4 ulps.
        assert!(max_abs_diff(&l.dot(&l.t()), &lam) < 1e-12, "{n}");
        assert_eq!(chol.bandwidth(), p.pattern().bandwidth());
    }
}

#[test]
fn log_det_matches_dense_elimination() {
    for (h, w, n) in
        [(4, 5, Neighbourhood::Four), (6, 6, Neighbourhood::Eight), (5, 4, Neighbourhood::Radius(2.0))]
    {
        let p = random_precision(h, w, n, 2);
        let (_, dense) = dense_inverse_and_log_det(&p.to_dense());
        let sparse = p.log_det().unwrap();
        assert!((sparse - dense).abs() < 1e-10 * dense.abs(), "{n}: {sparse} vs {dense}");
    }
}

#[test]
fn selected_and_dense_inverse_match_dense_elimination() {
    for (h, w, n) in
        [(4, 5, Neighbourhood::Four), (6, 6, Neighbourhood::Eight), (5, 4, Neighbourhood::Radius(2.0))]
    {
        let p = random_precision(h, w, n, 3);
        let (inv, _) = dense_inverse_and_log_det(&p.to_dense());
        let selected = p.selected_inverse().unwrap();
        for (e, &s) in p.pattern().entries().iter().zip(&selected) {
            // Σ entries are O(0.5): 1e-12 absolute.
            assert!((s - inv[(e.i as usize, e.j as usize)]).abs() < 1e-12, "{n} entry {e:?}");
        }
        let band = p.inverse_band().unwrap();
        let b = p.pattern().bandwidth();
        for i in 0..p.dim() {
            for j in i..(i + b + 1).min(p.dim()) {
                assert!((band.get(i, j) - inv[(i, j)]).abs() < 1e-12);
                assert_eq!(band.get(j, i), band.get(i, j), "both triangles of the band");
            }
        }
        let dense = p.try_factor().unwrap().inverse_dense();
        assert!(max_abs_diff(&dense, &inv) < 1e-12, "{n}");
    }
}

#[test]
fn solves_products_and_quadratic_forms_match_dense() {
    let p = random_precision(6, 6, Neighbourhood::Eight, 4);
    let lam = p.to_dense();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = Array2::from_shape_simple_fn((7, 36), || rng.random_range(-1.0f32..1.0));
    let xd = x.mapv(f64::from);
    let y = p.mul_rows(x.view());
    assert!(max_abs_diff(&y, &xd.dot(&lam)) < 1e-12);
    let q = p.quadratic_forms(x.view());
    for (n, row) in xd.rows().into_iter().enumerate() {
        let dense = row.dot(&lam.dot(&row));
        assert!((q[n] - dense).abs() < 1e-12 * dense.abs().max(1.0));
        let mut s = p.mul_vec(row.as_slice().unwrap());
        p.try_factor().unwrap().solve_in_place(&mut s);
        assert!(s.iter().zip(row).all(|(a, b)| (a - b).abs() < 1e-12));
    }
}

#[test]
fn log_density_matches_dense_formula() {
    let p = random_precision(4, 5, Neighbourhood::Four, 6);
    let lam = p.to_dense();
    let (_, log_det) = dense_inverse_and_log_det(&lam);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = Array2::from_shape_simple_fn((5, 20), || rng.random_range(-2.0..2.0));
    let lp = p.log_density(x.view()).unwrap();
    for (n, row) in x.rows().into_iter().enumerate() {
        let dense = 0.5 * log_det - 10.0 * (2.0 * std::f64::consts::PI).ln() - 0.5 * row.dot(&lam.dot(&row));
        assert!((lp[n] - dense).abs() < 1e-10 * dense.abs(), "{} vs {dense}", lp[n]);
    }
}

#[test]
fn non_positive_definite_lambda_is_refused_not_panicked() {
    // Diagonal 1, all eight neighbours −0.3: the constant vector gives xᵀΛx < 0 in the interior.
    let pattern = Pattern::new(5, 5, Neighbourhood::Eight).unwrap();
    let values = pattern.entries().iter().map(|e| if e.is_diagonal() { 1.0 } else { -0.3 }).collect();
    let p = Precision::new(pattern.clone(), values).unwrap();
    assert!(matches!(p.try_factor(), Err(ModelError::NotPositiveDefinite { .. })));
    assert!(p.log_det().is_err() && p.selected_inverse().is_err());
    assert!(!p.is_positive_definite());
    assert!(p.min_eigenvalue().unwrap() < 0.0);
    assert_eq!(p.condition_number().unwrap(), f64::INFINITY);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert!(p.sample_cholesky(3, None, &mut rng).is_err());
    assert!(p.sample_inverse_sqrt(3, 0.1, None, &mut rng).is_err());
    // A negative diagonal and a NaN are refused too.
    let neg = Precision::diagonal(pattern.clone(), &[-1.0; 25]).unwrap();
    assert!(matches!(neg.try_factor(), Err(ModelError::NotPositiveDefinite { pivot: 0 })));
    assert!(Precision::new(pattern.clone(), vec![f64::NAN; pattern.len()]).is_err());
    assert!(Precision::new(pattern, vec![1.0; 3]).is_err());
}

#[test]
fn eigendecomposition_reconstructs_lambda_and_reports_spectrum() {
    let p = random_precision(4, 5, Neighbourhood::Eight, 8);
    let eig = p.eigen().unwrap();
    let recon = (&eig.vectors * &Array1::from(eig.values.clone())).dot(&eig.vectors.t());
    assert!(max_abs_diff(&recon, &p.to_dense()) < 1e-12);
    assert!(eig.values.windows(2).all(|v| v[0] <= v[1]));
    assert_eq!(p.min_eigenvalue().unwrap(), eig.min());
    // Gershgorin: diag ∈ [2, 3], off-row sums < 8·0.24, so λ ∈ (0.08, 4.92).
    assert!(eig.min() > 0.08 && eig.max() < 4.92);
    assert!((p.condition_number().unwrap() - eig.max() / eig.min()).abs() < 1e-12 * eig.condition_number());
}

/// Checks an empirical covariance of `n` rows against `sigma`, entry by entry, within 5 standard
/// errors: Var(x̂ᵢx̂ⱼ) = (ΣᵢᵢΣⱼⱼ + Σᵢⱼ²)/n for a Gaussian.
fn assert_covariance_close(x: &Array2<f64>, mean: &Array1<f64>, sigma: &Array2<f64>) {
    let n = x.nrows() as f64;
    let c = x - mean;
    let cov = c.t().dot(&c) / n;
    for ((i, j), &s) in sigma.indexed_iter() {
        let se = ((sigma[(i, i)] * sigma[(j, j)] + s * s) / n).sqrt();
        assert!((cov[(i, j)] - s).abs() < 5.0 * se, "({i}, {j}): {} vs {s} (se {se})", cov[(i, j)]);
    }
}

#[test]
fn samples_have_covariance_lambda_inverse_and_the_requested_mean() {
    let p = random_precision(4, 5, Neighbourhood::Four, 9);
    let (inv, _) = dense_inverse_and_log_det(&p.to_dense());
    let mean = Array1::from_shape_fn(20, |i| i as f64);
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let x = p.sample_cholesky(20_000, Some(mean.view()), &mut rng).unwrap();
    assert_covariance_close(&x, &mean, &inv);
    // The Λ^{-1/2} sampler: covariance τ²Λ⁻¹.
    let tau = 0.1;
    let x = p.sample_inverse_sqrt(20_000, tau, Some(mean.view()), &mut rng).unwrap();
    assert_covariance_close(&x, &mean, &(inv * tau * tau));
}

#[test]
fn samplers_are_reproducible_from_the_seed() {
    let p = random_precision(4, 5, Neighbourhood::Eight, 11);
    let draw = |seed| p.sample_cholesky(50, None, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
    assert_eq!(draw(1), draw(1));
    assert_ne!(draw(1), draw(2));
}

/// L of Λ = LLᵀ by faer's simplicial LLᵀ in natural order (the factor the band kernel replaced),
/// as (row, column, value) triples.
fn faer_simplicial_factor(p: &Precision) -> Vec<(usize, usize, f64)> {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::sparse::linalg::SupernodalThreshold;
    use faer::sparse::linalg::cholesky::{
        CholeskySymbolicParams, SymbolicCholeskyRaw, SymmetricOrdering, factorize_symbolic_cholesky,
    };
    use faer::sparse::{SparseColMatRef, SymbolicSparseColMat};
    let d = p.dim();
    // Upper triangle in compressed columns, rows sorted.
    let mut order: Vec<(usize, usize, f64)> =
        p.pattern().entries().iter().zip(p.values()).map(|(e, &v)| (e.j as usize, e.i as usize, v)).collect();
    order.sort_by_key(|a| (a.0, a.1));
    let mut col_ptr = vec![0usize; d + 1];
    for &(j, _, _) in &order {
        col_ptr[j + 1] += 1;
    }
    for j in 0..d {
        col_ptr[j + 1] += col_ptr[j];
    }
    let rows = order.iter().map(|&(_, i, _)| i).collect();
    let values: Vec<f64> = order.iter().map(|&(_, _, v)| v).collect();
    let upper = SymbolicSparseColMat::new_checked(d, d, col_ptr, None, rows);
    let params = CholeskySymbolicParams {
        supernodal_flop_ratio_threshold: SupernodalThreshold::FORCE_SIMPLICIAL,
        ..Default::default()
    };
    let symbolic =
        factorize_symbolic_cholesky(upper.as_ref(), faer::Side::Upper, SymmetricOrdering::Identity, params)
            .unwrap();
    let mut l = vec![0.0; symbolic.len_val()];
    let mut mem =
        MemBuffer::new(symbolic.factorize_numeric_llt_scratch::<f64>(faer::Par::Seq, Default::default()));
    symbolic
        .factorize_numeric_llt(
            &mut l,
            SparseColMatRef::new(upper.as_ref(), &values),
            faer::Side::Upper,
            Default::default(),
            faer::Par::Seq,
            MemStack::new(&mut mem),
            Default::default(),
        )
        .unwrap();
    let SymbolicCholeskyRaw::Simplicial(s) = symbolic.raw() else { panic!("simplicial") };
    (0..d)
        .flat_map(|j| {
            let range = s.col_ptr()[j]..s.col_ptr()[j + 1];
            s.row_idx()[range.clone()]
                .iter()
                .zip(&l[range])
                .map(move |(&i, &v)| (i, j, v))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn band_factor_is_bit_identical_to_faers_simplicial_llt() {
    for (h, w, n, seed) in [
        (6, 7, Neighbourhood::Four, 11),
        (5, 6, Neighbourhood::Eight, 12),
        (5, 5, Neighbourhood::Radius(2.0), 13),
        (28, 28, Neighbourhood::Eight, 14),
    ] {
        let p = random_precision(h, w, n, seed);
        let ours = p.try_factor().unwrap();
        let reference = faer_simplicial_factor(&p);
        let b = ours.bandwidth();
        let mut seen = vec![false; p.dim() * (b + 1)];
        for (i, j, v) in reference {
            assert_eq!(ours.l(i, j).to_bits(), v.to_bits(), "{n} {h}x{w}: L[{i}, {j}]");
            seen[j * (b + 1) + (i - j)] = true;
        }
        // Band entries outside faer's structure of L are zeros.
        for j in 0..p.dim() {
            for i in j..(j + b + 1).min(p.dim()) {
                assert!(
                    seen[j * (b + 1) + (i - j)] || ours.l(i, j) == 0.0,
                    "{n}: L[{i}, {j}] = {}",
                    ours.l(i, j)
                );
            }
        }
    }
}
