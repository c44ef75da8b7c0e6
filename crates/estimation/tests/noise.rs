//! The NCE noise densities against an independent dense computation.

use faer::linalg::solvers::Solve;
use gmrf_estimation::objective::{GaussianNoise, NoiseKind};
use gmrf_model::{Neighbourhood, Pattern};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn full_noise_log_density_and_draws_match_the_dense_gaussian_it_was_fitted_to() {
    let (n, d, ridge) = (400, 9, 1e-4);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // Correlated rows: each pixel plus half its left neighbour.
    let raw = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0));
    let z =
        Array2::from_shape_fn((n, d), |(r, p)| raw[(r, p)] + if p > 0 { 0.5 * raw[(r, p - 1)] } else { 0.0 });
    let pattern = Pattern::new(3, 3, Neighbourhood::Four).unwrap();
    let noise = GaussianNoise::fit(NoiseKind::Full, z.view(), &pattern, &[1.0; 9], ridge).unwrap();
    // C = (1/N) ZᵀZ + ridge·I, by plain sums.
    let c = faer::Mat::<f64>::from_fn(d, d, |i, j| {
        (0..n).map(|r| f64::from(z[(r, i)]) * f64::from(z[(r, j)])).sum::<f64>() / n as f64
            + if i == j { ridge } else { 0.0 }
    });
    let llt = c.llt(faer::Side::Lower).unwrap();
    let log_det_c: f64 = 2.0 * (0..d).map(|i| llt.L()[(i, i)].ln()).sum::<f64>();
    let y = Array2::from_shape_fn((5, d), |(r, p)| ((r * 7 + p * 3) % 5) as f32 / 5.0 - 0.4);
    let got = noise.log_density(y.view());
    for (r, got) in got.iter().enumerate() {
        let rhs = faer::Mat::<f64>::from_fn(d, 1, |i, _| f64::from(y[(r, i)]));
        let sol = llt.solve(&rhs);
        let q: f64 = (0..d).map(|i| rhs[(i, 0)] * sol[(i, 0)]).sum();
        let want = -0.5 * q - 0.5 * log_det_c - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
        assert!((got - want).abs() < 1e-10 * want.abs().max(1.0), "row {r}: {got} vs {want}");
    }
    // 40,000 draws: their second moments match C to a few standard errors (entries of C are
    // O(1), the standard error of a second moment ~√(2/40000) ≈ 0.007).
    let draws = noise.sample(40_000, &mut ChaCha8Rng::seed_from_u64(9));
    for i in 0..d {
        for j in 0..d {
            let m = draws
                .column(i)
                .iter()
                .zip(draws.column(j))
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
                / 40_000.0;
            assert!((m - c[(i, j)]).abs() < 0.04, "({i}, {j}): {m} vs {}", c[(i, j)]);
        }
    }
}
