//! Held-out nll (nats/pixel) of fitted precision tables, and their distance to a reference.
//!
//! `cargo run --release -p gmrf-estimation --example heldout -- TRAIN-CENTRED TEST-CENTRED REF.parquet [OTHER.parquet …]`
//! prints, for each table, the test nll and ‖Λ − Λ_ref‖_F/‖Λ_ref‖_F in standardised units
//! (Λ_z = DΛD, D the training pixel standard deviations), with the first table the reference
//! (e.g. the masked MLE).

use gmrf_estimation::moments::{Reach, SecondMoments, Standardisation};
use gmrf_estimation::objective::heldout_nll;
use gmrf_model::{Pattern, Precision};
use gmrf_table::{Centred, PrecisionEntries};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (train, _) = gmrf_table::read::<Centred>(args[0].as_ref()).unwrap();
    let (test, _) = gmrf_table::read::<Centred>(args[1].as_ref()).unwrap();
    let standard = Standardisation::fit(train.x.view());
    let mut reference: Option<Precision> = None;
    for path in &args[2..] {
        let (p, meta) = gmrf_table::read::<PrecisionEntries>(path.as_ref()).unwrap();
        let neighbourhood = meta.param("neighbourhood").unwrap().parse().unwrap();
        let pattern = Pattern::new(p.height, p.width, neighbourhood).unwrap();
        let lam = Precision::new(pattern.clone(), p.value.clone()).unwrap();
        let moments = SecondMoments::compute(test.x.view(), &pattern, Reach::Pattern).unwrap();
        let nll = heldout_nll(&lam, &moments).unwrap();
        let z = standard.to_standardised(&lam).unwrap();
        let distance = match &reference {
            Some(r) if r.pattern() == z.pattern() => {
                let num: f64 =
                    z.to_dense().iter().zip(r.to_dense().iter()).map(|(a, b)| (a - b).powi(2)).sum();
                let den: f64 = r.to_dense().iter().map(|b| b * b).sum();
                format!("{:.4}", (num / den).sqrt())
            }
            _ => "-".into(),
        };
        if reference.is_none() {
            reference = Some(z);
        }
        println!(
            "{path}: test nll {nll:.4} nats/pixel, relative distance to reference (standardised) {distance}, min eig {:.3e}",
            lam.min_eigenvalue().unwrap()
        );
    }
}
