//! Every method on every small image shape and neighbourhood either fits or returns an error:
//! none panics (1-pixel-high or -wide images, and radii wider than the image, once indexed out of
//! range).

use gmrf_estimation::{
    BarrierWeight, CnceOptions, ContrastiveOptions, EstimationError, MleOptions, NceOptions, SmGdOptions,
    SmOptions, Solver, fit_cnce, fit_mle, fit_nce, fit_sm, fit_sm_gd,
};
use gmrf_model::{Neighbourhood, Pattern};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Dequantised-looking centred rows: every pixel varies.
fn rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| rng.random_range(-0.5f32..0.5))
}

#[test]
fn every_method_fits_or_refuses_every_small_shape_without_panicking() {
    let short = ContrastiveOptions { steps: 3, batch_size: 0, ..ContrastiveOptions::default() };
    let neighbourhoods =
        [Neighbourhood::Four, Neighbourhood::Eight, Neighbourhood::Radius(2.0), Neighbourhood::Radius(39.0)];
    for h in 1..=5 {
        for w in 1..=5 {
            for n in neighbourhoods {
                let pattern = match Pattern::new(h, w, n) {
                    Ok(p) => p,
                    Err(_) => continue,
                };
                let (train, validation) = (rows(60, h * w, 1), rows(20, h * w, 2));
                let sm_fixed = SmOptions { weight: BarrierWeight::Fixed(0.1), ..SmOptions::default() };
                let gd = SmGdOptions { steps: 5, ..SmGdOptions::default() };
                let nce = NceOptions { run: short, solver: Solver::Minibatch, ..NceOptions::default() };
                let cnce = CnceOptions { run: short, solver: Solver::Minibatch, ..CnceOptions::default() };
                let (x, v) = (train.view(), validation.view());
                let fits: [(&str, &dyn Fn() -> bool); 6] = [
                    ("sm", &|| fit_sm(x, Some(v), &pattern, &SmOptions::default(), None).is_ok()),
                    ("sm fixed t", &|| fit_sm(x, None, &pattern, &sm_fixed, None).is_ok()),
                    ("sm-gd", &|| fit_sm_gd(x, &pattern, &gd, None).is_ok()),
                    ("mle", &|| fit_mle(x, &pattern, &MleOptions::default(), None).is_ok()),
                    ("nce", &|| fit_nce(x, None, &pattern, &nce, None).is_ok()),
                    ("cnce", &|| fit_cnce(x, None, &pattern, &cnce, None).is_ok()),
                ];
                // Well-posed data on these tiny grids: every method fits.
                for (method, fit) in fits {
                    assert!(fit(), "{method} failed on {h}x{w}, {n}");
                }
                // The full-batch losses have no minimiser where a quadratic form on the pattern
                // separates 60 rows from their noise: then the fit is refused, by name, and never
                // panics. (4 and 8 neighbours only: on the wider patterns the separable fits run
                // their Newton steps out before refusing, minutes in all.)
                if matches!(n, Neighbourhood::Radius(_)) {
                    continue;
                }
                for (method, result) in [
                    ("nce", fit_nce(x, Some(v), &pattern, &NceOptions::default(), None).map(|f| f.precision)),
                    (
                        "cnce",
                        fit_cnce(x, Some(v), &pattern, &CnceOptions::default(), None).map(|f| f.precision),
                    ),
                ] {
                    match result {
                        Ok(lam) => assert!(lam.is_positive_definite(), "{method} on {h}x{w}, {n}"),
                        Err(e) => assert!(
                            matches!(
                                e,
                                EstimationError::NoEstimate { .. } | EstimationError::NoProgress { .. }
                            ),
                            "{method} on {h}x{w}, {n}: {e}"
                        ),
                    }
                }
            }
        }
    }
    // One row is refused by every method, with an error rather than a panic or a long run.
    let pattern = Pattern::new(3, 3, Neighbourhood::Eight).unwrap();
    let one = rows(1, 9, 3);
    assert!(fit_sm(one.view(), None, &pattern, &SmOptions::default(), None).is_err());
    assert!(fit_sm_gd(one.view(), &pattern, &SmGdOptions::default(), None).is_err());
    assert!(fit_mle(one.view(), &pattern, &MleOptions::default(), None).is_err());
    assert!(fit_nce(one.view(), None, &pattern, &NceOptions::default(), None).is_err());
    assert!(fit_cnce(one.view(), None, &pattern, &CnceOptions::default(), None).is_err());
}

#[test]
fn mle_without_a_maximum_is_refused_quickly() {
    // Two rows on 8 neighbours: every 2 × 2 block of pixels (a clique of the pattern) has a
    // rank-2 covariance, so the likelihood grows without bound. Refused, not run for minutes.
    // Two rows on 4 neighbours (a grid has 4-cycles, whose maximum likelihood threshold is 3): the
    // same, where Newton had chased the unbounded likelihood for minutes on 28 × 28.
    for n in [Neighbourhood::Eight, Neighbourhood::Four] {
        let pattern = Pattern::new(5, 5, n).unwrap();
        let x = rows(2, 25, 4);
        let err = fit_mle(x.view(), &pattern, &MleOptions::default(), None).unwrap_err().to_string();
        assert!(err.contains("no estimate exists"), "{n}: {err}");
    }
    // A path (one row of pixels, 4 neighbours) has no cycle: two rows do give an estimate.
    let path = Pattern::new(1, 5, Neighbourhood::Four).unwrap();
    assert!(fit_mle(rows(2, 5, 5).view(), &path, &MleOptions::default(), None).is_ok());
}
