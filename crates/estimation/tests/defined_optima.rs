//! NCE and cNCE as defined estimators (full-batch Newton): certified optima that do not depend
//! on the order of the training rows, the validation-chosen barrier point, NCE approaching the
//! masked MLE as ν grows, and cNCE tending to score matching as σ → 0.

mod common;

use common::{draws, relative_error, true_precision};
use gmrf_estimation::moments::{Reach, SecondMoments};
use gmrf_estimation::objective::ScoreMatching;
use gmrf_estimation::objective::cnce::cnce_gradient;
use gmrf_estimation::{
    CnceOptions, EstimationError, MleOptions, NceOptions, SIGMA_GRID, fit_cnce, fit_mle, fit_nce,
};
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The rows of `x` in a fixed shuffled order.
fn permuted(x: &Array2<f32>) -> Array2<f32> {
    let mut order: Vec<usize> = (0..x.nrows()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for i in (1..order.len()).rev() {
        order.swap(i, rand::Rng::random_range(&mut rng, 0..=i));
    }
    x.select(Axis(0), &order)
}

#[test]
fn nce_and_cnce_are_certified_optima_that_ignore_row_order() {
    let truth = true_precision(5, 5);
    let pattern = truth.pattern().clone();
    let x = draws(&truth, 3_000, 21);
    let shuffled = permuted(&x);
    let nce = |x: &Array2<f32>| fit_nce(x.view(), None, &pattern, &NceOptions::default(), None).unwrap();
    let cnce = |x: &Array2<f32>| fit_cnce(x.view(), None, &pattern, &CnceOptions::default(), None).unwrap();
    let (a, b) = (nce(&x), nce(&shuffled));
    let certificate = a.diagnostics.certificate.as_ref().unwrap();
    assert!(certificate.converged && certificate.barrier_t.is_none());
    assert!(certificate.max_gradient < 1e-8, "{certificate:?}");
    // Measured 1e-12 (the decrement rule 1e-16·|J|): the issue asks 1e-6.
    let moved = relative_error(&a.precision, &b.precision);
    assert!(moved < 1e-6, "nce: rows permuted moved Λ by {moved:e}");
    // An efficient estimator of the 65 free entries from 3,000 rows errs by ~√(65/3000) ≈ 0.15 of
    // the entries' spread, ~0.05 of ‖Λ‖; NCE with ν = 1 by somewhat more.
    assert!(relative_error(&a.precision, &truth) < 0.1);
    let (c, d) = (cnce(&x), cnce(&shuffled));
    let certificate = c.diagnostics.certificate.as_ref().unwrap();
    assert!(certificate.converged && certificate.max_gradient < 1e-8, "{certificate:?}");
    // The copies of a row are drawn from a hash of its values, not its position.
    let moved = relative_error(&c.precision, &d.precision);
    assert!(moved < 1e-6, "cnce: rows permuted moved Λ by {moved:e}");
    assert!(relative_error(&c.precision, &truth) < 0.2);
}

#[test]
fn a_validation_split_chooses_the_barrier_weight_and_then_all_rows_are_fitted() {
    let truth = true_precision(5, 5);
    let pattern = truth.pattern().clone();
    let (x, v) = (draws(&truth, 2_000, 22), draws(&truth, 400, 23));
    let fit = |x: &Array2<f32>, v: &Array2<f32>| {
        fit_nce(x.view(), Some(v.view()), &pattern, &NceOptions::default(), None).unwrap()
    };
    let a = fit(&x, &v);
    let certificate = a.diagnostics.certificate.as_ref().unwrap();
    let t = certificate.barrier_t.unwrap();
    let best = certificate
        .validation_path
        .iter()
        .min_by(|p, q| p.validation_nll.unwrap().total_cmp(&q.validation_nll.unwrap()))
        .unwrap();
    assert_eq!(best.t, t);
    assert!(certificate.converged && a.precision.is_positive_definite());
    // The refit's noise pool covers all 2,400 rows.
    assert_eq!(a.diagnostics.n_noise, 2_400);
    // A point chosen on a path: the issue asks 1e-4 under a permutation of the training rows.
    let b = fit(&permuted(&x), &v);
    assert_eq!(b.diagnostics.certificate.as_ref().unwrap().barrier_t, Some(t));
    let moved = relative_error(&a.precision, &b.precision);
    assert!(moved < 1e-4, "rows permuted moved Λ by {moved:e}");
}

#[test]
fn cnce_chooses_sigma_and_t_on_the_validation_rows_then_fits_all_rows_at_them() {
    let truth = true_precision(5, 5);
    let pattern = truth.pattern().clone();
    let (x, v) = (draws(&truth, 1_500, 24), draws(&truth, 300, 25));
    let grid = fit_cnce(x.view(), Some(v.view()), &pattern, &CnceOptions::default(), None).unwrap();
    let path = &grid.diagnostics.sigma_path;
    let default_sigma = 2.0 / 5.0;
    let tried: Vec<f64> = path.iter().map(|c| c.sigma).collect();
    assert_eq!(tried, SIGMA_GRID.map(|k| k * default_sigma).to_vec());
    // The chosen σ is the candidate whose validated stage scores best.
    let best = path
        .iter()
        .filter_map(|c| c.chosen.map(|(t, nll)| (c.sigma, t, nll)))
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .unwrap();
    assert_eq!(grid.diagnostics.sigma, best.0);
    let certificate = grid.diagnostics.certificate.as_ref().unwrap();
    assert_eq!(certificate.barrier_t, Some(best.1));
    assert!(certificate.converged);
    // The same as fitting with that σ given: the grid only chooses.
    let given = CnceOptions { sigma: Some(best.0), ..CnceOptions::default() };
    let fixed = fit_cnce(x.view(), Some(v.view()), &pattern, &given, None).unwrap();
    assert_eq!(fixed.diagnostics.sigma_path.iter().map(|c| c.sigma).collect::<Vec<_>>(), vec![best.0]);
    let moved = relative_error(&grid.precision, &fixed.precision);
    assert!(moved < 1e-8, "the grid's fit differs from the fit at its σ by {moved:e}");
}

/// 12 images of 25 pixels against 12 noise draws, 8 neighbours (97 free entries): a quadratic form
/// on the pattern separates them, the loss falls at every Newton step, and the validated path
/// refuses at its first stage instead of returning where Newton stopped.
#[test]
fn nce_refuses_a_barrier_stage_it_cannot_centre() {
    let truth = true_precision(5, 5);
    let pattern = gmrf_model::Pattern::new(5, 5, gmrf_model::Neighbourhood::Eight).unwrap();
    let (x, v) = (draws(&truth, 12, 26), draws(&truth, 10, 27));
    let error = fit_nce(x.view(), Some(v.view()), &pattern, &NceOptions::default(), None).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, EstimationError::NoProgress { method: "nce", .. })
            && message.contains("the barrier stage t = 1e-1 was not centred"),
        "{message}"
    );
}

#[test]
fn nce_approaches_the_masked_mle_as_nu_grows() {
    let truth = true_precision(5, 5);
    let pattern = truth.pattern().clone();
    let x = draws(&truth, 2_000, 24);
    let mle = fit_mle(x.view(), &pattern, &MleOptions::default(), None).unwrap().precision;
    let distance = |nu: f64| {
        let options = NceOptions { nu, ..NceOptions::default() };
        relative_error(&fit_nce(x.view(), None, &pattern, &options, None).unwrap().precision, &mle)
    };
    let (d1, d10) = (distance(1.0), distance(10.0));
    eprintln!("‖Λ_nce − Λ_mle‖/‖Λ_mle‖: ν = 1 {d1:.4}, ν = 10 {d10:.4}");
    // NCE's excess asymptotic variance over the MLE falls like 1/ν (Gutmann & Hyvärinen 2012,
    // Thm 3): ν = 10 must at least halve the distance.
    assert!(d10 < 0.5 * d1, "ν = 1: {d1}, ν = 10: {d10}");
}

/// For small σ, softplus(−G) = log 2 − G/2 + G²/8 + O(G⁴) with G = σεᵀΛx + ½σ²εᵀΛε, so
/// the cNCE loss averaged over ε is log 2 + (σ²/4)·J_SM(Λ) + O(σ⁴) (Ceylan & Gutmann 2018, §4),
/// and its gradient tends to (σ²/4)·∇J_SM. Antithetic copies (ε, −ε) cancel the odd terms of
/// every pair exactly, leaving the sampling error of the average of εεᵀ.
#[test]
fn the_cnce_gradient_tends_to_a_quarter_sigma_squared_times_the_score_matching_gradient() {
    let truth = true_precision(4, 4);
    let pattern = truth.pattern().clone();
    let x = draws(&truth, 4_000, 25);
    // Λ far from the optimum of either objective, so both gradients stand well above sampling
    // noise.
    let lam = truth.with_values(truth.values().iter().map(|v| 2.5 * v).collect()).unwrap();
    let sm =
        ScoreMatching::new(&pattern, &SecondMoments::compute(x.view(), &pattern, Reach::TwoHops).unwrap())
            .unwrap();
    let target = sm.sm_gradient(lam.values());
    let kappa = 64;
    let mut rng = ChaCha8Rng::seed_from_u64(26);
    let eps: Array2<f64> = Array2::from_shape_fn((x.nrows() * kappa / 2, 16), |_| {
        rand::Rng::sample(&mut rng, rand_distr::StandardNormal)
    });
    let mut errors = Vec::new();
    for sigma in [1e-1, 1e-2] {
        let noisy = Array2::from_shape_fn((x.nrows() * kappa, 16), |(r, c)| {
            let (row, k) = (r / kappa, r % kappa);
            let e = eps[(row * kappa / 2 + k / 2, c)];
            (f64::from(x[(row, c)]) + if k % 2 == 0 { sigma * e } else { -sigma * e }) as f32
        });
        let (_, g) = cnce_gradient(&lam, x.view(), noisy.view(), kappa, 0.0).unwrap();
        let scaled: Vec<f64> = g.iter().map(|g| g * 4.0 / (sigma * sigma)).collect();
        let err = scaled.iter().zip(&target).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt()
            / target.iter().map(|b| b * b).sum::<f64>().sqrt();
        errors.push(err);
    }
    eprintln!("‖(4/σ²)∇J_cNCE − ∇J_SM‖/‖∇J_SM‖ at σ = 0.1, 0.01: {errors:?}");
    // Measured 0.26 at σ = 0.1 (the O(σ²) relative terms) and 0.048 at σ = 0.01, where what
    // remains is the sampling error of 128,000 antithetic pairs (each entry's average of
    // (εᵀΛx)·εᵢxⱼ has a standard error of ~1% of its size).
    assert!(errors[1] < 0.06, "{errors:?}");
    assert!(errors[1] < 0.25 * errors[0], "{errors:?}");
}
