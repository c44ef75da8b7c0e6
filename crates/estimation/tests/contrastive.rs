//! NCE and cNCE: analytic gradients against finite differences, consistency on a known GMRF,
//! NCE's approach to the masked MLE as ν grows, and thread-count independence.

mod common;

use common::{draws, relative_error, true_precision};
use gmrf_estimation::objective::cnce::{cnce_gradient, cnce_objective};
use gmrf_estimation::objective::nce::{nce_gradient, nce_objective};
use gmrf_estimation::{
    CnceOptions, ContrastiveOptions, MleOptions, NceOptions, NoiseKind, Normaliser, Solver, fit_cnce,
    fit_mle, fit_nce,
};
use gmrf_model::{Neighbourhood, Pattern, Precision};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A positive definite Λ on the 4 × 4 grid away from the truth, so gradients are not ~0.
fn perturbed(truth: &Precision) -> Precision {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    truth
        .with_values(truth.values().iter().map(|v| v * (1.0 + 0.3 * (rng.random::<f64>() - 0.5))).collect())
        .unwrap()
}

/// Central differences (step h) of f at θ along every coordinate.
fn central_differences(theta: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    (0..theta.len())
        .map(|k| {
            let (mut a, mut b) = (theta.to_vec(), theta.to_vec());
            a[k] += h;
            b[k] -= h;
            (f(&a) - f(&b)) / (2.0 * h)
        })
        .collect()
}

/// max |analytic − numeric| relative to max |analytic|. Central differences with h = 1e-5 have
/// truncation error ~h²·|f'''| ≈ 1e-10 and rounding ~1e-16/h ≈ 1e-11 here, so 1e-6 leaves a
/// wide margin while any wrong factor (½, mₑ, a sign) shows as O(1).
fn assert_gradients_agree(what: &str, analytic: &[f64], numeric: &[f64]) {
    let scale = analytic.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = analytic.iter().zip(numeric).fold(0.0f64, |m, (a, n)| m.max((a - n).abs()));
    assert!(scale > 1e-3, "{what}: gradient too small to test ({scale:e})");
    assert!(err < 1e-6 * scale, "{what}: max |analytic − numeric| = {err:e}, max |g| = {scale:e}");
}

#[test]
fn nce_gradient_matches_finite_differences_with_both_normalisers() {
    let truth = true_precision(4, 4);
    let lam = perturbed(&truth);
    let data = draws(&truth, 60, 1);
    // Noise: N(0, 1.2² I), with its exact log-density.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let noise = Array2::from_shape_simple_fn((120, 16), || {
        (1.2 * rng.sample::<f64, _>(rand_distr::StandardNormal)) as f32
    });
    let log_pn = |x: &Array2<f32>| -> Vec<f64> {
        x.rows()
            .into_iter()
            .map(|r| {
                let q: f64 = r.iter().map(|&v| (f64::from(v) / 1.2).powi(2)).sum();
                -0.5 * q - 16.0 * 1.2f64.ln() - 8.0 * (2.0 * std::f64::consts::PI).ln()
            })
            .collect()
    };
    let (dl, nl) = (log_pn(&data), log_pn(&noise));
    let nu = 2.0;

    let g = nce_gradient(&lam, None, data.view(), &dl, noise.view(), &nl, nu).unwrap();
    let numeric = central_differences(lam.values(), 1e-5, |t| {
        nce_objective(&lam.with_values(t.to_vec()).unwrap(), None, data.view(), &dl, noise.view(), &nl, nu)
            .unwrap()
    });
    assert_gradients_agree("nce, exact normaliser", &g.precision, &numeric);
    assert!(g.normaliser.is_none());

    let c = -12.0;
    let g = nce_gradient(&lam, Some(c), data.view(), &dl, noise.view(), &nl, nu).unwrap();
    let mut theta = lam.values().to_vec();
    theta.push(c);
    let numeric = central_differences(&theta, 1e-5, |t| {
        let (v, c) = t.split_at(t.len() - 1);
        nce_objective(
            &lam.with_values(v.to_vec()).unwrap(),
            Some(c[0]),
            data.view(),
            &dl,
            noise.view(),
            &nl,
            nu,
        )
        .unwrap()
    });
    let mut analytic = g.precision.clone();
    analytic.push(g.normaliser.unwrap());
    assert_gradients_agree("nce, learned normaliser", &analytic, &numeric);
}

#[test]
fn cnce_gradient_matches_finite_differences() {
    let truth = true_precision(4, 4);
    let lam = perturbed(&truth);
    let (n, kappa) = (60, 3);
    let data = draws(&truth, n, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let noisy = Array2::from_shape_fn((n * kappa, 16), |(r, c)| {
        data[(r / kappa, c)] + (0.3 * rng.sample::<f64, _>(rand_distr::StandardNormal)) as f32
    });
    // Plain cNCE, and with the log-barrier whose gradient needs Λ⁻¹ on the pattern.
    for barrier in [0.0, 0.5] {
        let (_, g) = cnce_gradient(&lam, data.view(), noisy.view(), kappa, barrier).unwrap();
        let numeric = central_differences(lam.values(), 1e-5, |t| {
            cnce_objective(&lam.with_values(t.to_vec()).unwrap(), data.view(), noisy.view(), kappa, barrier)
                .unwrap()
        });
        assert_gradients_agree(&format!("cnce, barrier t = {barrier}"), &g, &numeric);
    }
    // The barrier's own contribution, −(t/d) log|Λ|, against a dense log-determinant.
    let plain = cnce_objective(&lam, data.view(), noisy.view(), kappa, 0.0).unwrap();
    let barred = cnce_objective(&lam, data.view(), noisy.view(), kappa, 0.5).unwrap();
    let dense_log_det = common::dense_log_det(&lam);
    assert!(
        ((plain - barred) - 0.5 / 16.0 * dense_log_det).abs() < 1e-12 * dense_log_det.abs().max(1.0),
        "barrier term {} against (t/d) log|Λ| = {}",
        plain - barred,
        0.5 / 16.0 * dense_log_det
    );
}

/// Full-batch Adam, long enough to reach the optimum of the empirical objective on 36 pixels.
fn full_batch(seed: u64) -> ContrastiveOptions {
    ContrastiveOptions {
        batch_size: 0,
        steps: 400,
        learning_rate: 0.1,
        seed,
        trace_every: 0,
        ..Default::default()
    }
}

#[test]
fn nce_and_cnce_recover_a_known_gmrf_with_error_falling_as_n_grows() {
    let truth = true_precision(6, 6);
    let pattern = truth.pattern().clone();
    let mut errors = Vec::new();
    for n in [1_000, 8_000] {
        let x = draws(&truth, n, 5);
        let nce = fit_nce(
            x.view(),
            None,
            &pattern,
            &NceOptions { solver: Solver::Minibatch, run: full_batch(1), ..Default::default() },
            None,
        )
        .unwrap();
        let cnce = fit_cnce(
            x.view(),
            None,
            &pattern,
            &CnceOptions { solver: Solver::Minibatch, run: full_batch(1), ..Default::default() },
            None,
        )
        .unwrap();
        errors.push((n, relative_error(&nce.precision, &truth), relative_error(&cnce.precision, &truth)));
    }
    eprintln!("(N, ‖Λ_nce − Λ‖/‖Λ‖, ‖Λ_cnce − Λ‖/‖Λ‖): {errors:?}");
    // Relative Frobenius error of an efficient estimator of the 96 free entries scales like
    // ~√(96/N)·(entry spread)/‖Λ‖: about 0.07 at N = 1,000 and 0.025 at 8,000. NCE with ν = 1
    // loses a factor ≲ 1.5 of that (measured 0.093, 0.033), cNCE with κ = 4 about 3.5 (measured
    // 0.25, 0.075), hence these bounds; both must fall by about √8 ≈ 2.8 (at least 2).
    let (_, nce_small, cnce_small) = errors[0];
    let (_, nce_large, cnce_large) = errors[1];
    assert!(nce_small < 0.15 && cnce_small < 0.35, "{errors:?}");
    assert!(nce_large < 0.05 && cnce_large < 0.1, "{errors:?}");
    assert!(nce_large < 0.5 * nce_small && cnce_large < 0.5 * cnce_small, "{errors:?}");
}

#[test]
fn nce_with_more_noise_comes_closer_to_the_masked_mle() {
    let truth = true_precision(6, 6);
    let pattern = truth.pattern().clone();
    let x = draws(&truth, 1_000, 6);
    let mle = fit_mle(x.view(), &pattern, &MleOptions::default(), None).unwrap().precision;
    let distance = |nu: f64| {
        let options = NceOptions {
            solver: Solver::Minibatch,
            nu,
            normaliser: Normaliser::Exact,
            run: full_batch(2),
            ..Default::default()
        };
        relative_error(&fit_nce(x.view(), None, &pattern, &options, None).unwrap().precision, &mle)
    };
    let (d1, d10) = (distance(1.0), distance(10.0));
    eprintln!("‖Λ_nce − Λ_mle‖/‖Λ_mle‖: ν = 1 {d1:.4}, ν = 10 {d10:.4}");
    // NCE's excess asymptotic variance over the MLE falls like 1/ν (Gutmann & Hyvärinen 2012,
    // Thm 3, for noise close to the data): ν = 10 must at least halve the distance.
    assert!(d10 < 0.5 * d1, "ν = 1: {d1}, ν = 10: {d10}");
}

#[test]
fn learned_normaliser_ends_near_the_exact_one() {
    let truth = true_precision(6, 6);
    let x = draws(&truth, 4_000, 7);
    let options = NceOptions {
        solver: Solver::Minibatch,
        normaliser: Normaliser::Learned,
        run: full_batch(3),
        ..Default::default()
    };
    let fit = fit_nce(x.view(), None, truth.pattern(), &options, None).unwrap();
    let d = &fit.diagnostics;
    let (learned, exact) = (d.learned_log_normaliser.unwrap(), d.exact_log_normaliser);
    eprintln!("learned c {learned:.4}, exact {exact:.4}");
    // NCE is consistent for c as well (Gutmann & Hyvärinen 2012, Thm 2); at N = 8,000 the
    // sampling error of c is ~√(d/N)·O(1) ≈ 0.07.
    assert!((learned - exact).abs() < 0.2, "learned {learned}, exact {exact}");
    assert!(relative_error(&fit.precision, &truth) < 0.06);
}

#[test]
fn original_noise_is_refused_with_the_count_of_nonpositive_eigenvalues() {
    // Strongly correlated 8-neighbour-like data fitted with a 4-neighbour mask: M ⊙ S⁻¹ need not
    // be PD. We build such S directly: an AR field with long-range couplings.
    let pattern = Pattern::new(5, 5, Neighbourhood::Eight).unwrap();
    let values = pattern
        .entries()
        .iter()
        .map(|e| {
            if e.is_diagonal() {
                1.0
            } else if e.di != 0 && e.dj != 0 {
                0.24
            } else {
                -0.24
            }
        })
        .collect();
    let dense_pd = Precision::new(pattern, values).unwrap();
    let x = draws(&dense_pd, 4_000, 8);
    let four = Pattern::new(5, 5, Neighbourhood::Four).unwrap();
    let options = NceOptions {
        solver: Solver::Minibatch,
        noise: NoiseKind::Original,
        run: full_batch(1),
        ..Default::default()
    };
    match fit_nce(x.view(), None, &four, &options, None) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("eigenvalues ≤ 0") && msg.contains("has no density"), "{msg}");
        }
        // When M ⊙ S⁻¹ happens to be PD the noise is valid and the fit must succeed.
        Ok(fit) => assert!(fit.precision.is_positive_definite()),
    }
}

#[test]
fn fits_are_bit_identical_on_one_and_two_threads() {
    let truth = true_precision(6, 6);
    let x = draws(&truth, 3_000, 9);
    let run = ContrastiveOptions { batch_size: 700, steps: 40, seed: 4, ..Default::default() };
    let fit = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let nce = fit_nce(
                x.view(),
                Some(x.view()),
                truth.pattern(),
                &NceOptions { solver: Solver::Minibatch, run, ..Default::default() },
                None,
            )
            .unwrap();
            let cnce = fit_cnce(
                x.view(),
                None,
                truth.pattern(),
                &CnceOptions { solver: Solver::Minibatch, run, ..Default::default() },
                None,
            )
            .unwrap();
            (nce.precision.into_values(), cnce.precision.into_values())
        })
    };
    let (a, b) = (fit(1), fit(2));
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.0), bits(&b.0), "nce differs across thread counts");
    assert_eq!(bits(&a.1), bits(&b.1), "cnce differs across thread counts");
}
