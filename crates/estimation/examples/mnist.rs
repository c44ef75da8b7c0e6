//! Fits `sm` and `mle` on all of MNIST and prints held-out nll, spectra and timings.
//!
//! `cargo run --release -p gmrf-estimation --example mnist -- data/mnist [4|8] [all|mle|sm] [newton decrement tolerance]`
//! Reads the raw IDX files, dequantises ((pixel + u)/256, u ~ U(0,1), seed 0), removes the
//! training mean, holds out the last 10,000 training images for choosing t, and evaluates on
//! the 10,000 test images.

use std::time::Instant;

use gmrf_estimation::moments::{Reach, SecondMoments, dense_second_moments};
use gmrf_estimation::objective::heldout_nll;
use gmrf_estimation::{MleOptions, SmOptions, fit_mle, fit_sm};
use gmrf_model::{Neighbourhood, Pattern, Precision};
use ndarray::{Array2, Axis, s};
use rand::{Rng, SeedableRng};

fn read_idx(path: &std::path::Path) -> Array2<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
    Array2::from_shape_vec((n, 784), bytes[16..16 + n * 784].to_vec()).unwrap()
}

fn dequantise(x: &Array2<u8>, seed: u64) -> Array2<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    x.mapv(|p| (f32::from(p) + rng.random::<f32>()) / 256.0)
}

fn report(name: &str, lam: &Precision, val: &SecondMoments, test: &SecondMoments, secs: f64) {
    println!(
        "{name:>10}: val nll {:.4}  test nll {:.4}  min eig {:.3e}  fit {secs:.2} s",
        heldout_nll(lam, val).unwrap(),
        heldout_nll(lam, test).unwrap(),
        lam.min_eigenvalue().unwrap()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).map_or("data/mnist", String::as_str));
    let neighbourhood: Neighbourhood = args.get(2).map_or("4", String::as_str).parse().unwrap();
    let train_all = dequantise(&read_idx(&dir.join("train-images-idx3-ubyte")), 0);
    let test = dequantise(&read_idx(&dir.join("t10k-images-idx3-ubyte")), 1);
    let mean = train_all.mean_axis(Axis(0)).unwrap();
    let train_all = &train_all - &mean;
    let test = &test - &mean;
    let (train, val) = (train_all.slice(s![..50_000, ..]), train_all.slice(s![50_000.., ..]));
    let pattern = Pattern::new(28, 28, neighbourhood).unwrap();

    let t0 = Instant::now();
    let full = SecondMoments::compute(train_all.view(), &pattern, Reach::TwoHops).unwrap();
    println!("statistics (two hops, all 60,000): {:.3} s", t0.elapsed().as_secs_f64());
    let t0 = Instant::now();
    let dense = dense_second_moments(train_all.view());
    println!("dense S baseline: {:.3} s", t0.elapsed().as_secs_f64());
    let max_diff = (0..784)
        .flat_map(|i| (0..784).map(move |j| (i, j)))
        .filter_map(|(i, j)| full.get(i, j).map(|v| (v - dense[(i, j)]).abs()))
        .fold(0.0, f64::max);
    println!("max |S_offsets − S_dense| = {max_diff:.2e}");

    let val_m = SecondMoments::compute(val, &pattern, Reach::Pattern).unwrap();
    let test_m = SecondMoments::compute(test.view(), &pattern, Reach::Pattern).unwrap();
    let diag =
        Precision::diagonal(pattern.clone(), &full.diagonal().iter().map(|s| 1.0 / s).collect::<Vec<_>>())
            .unwrap();
    report("diagonal", &diag, &val_m, &test_m, 0.0);

    let which = args.get(3).map_or("all", String::as_str);
    if which != "sm" {
        let t0 = Instant::now();
        let mle = fit_mle(train.view(), &pattern, &MleOptions::default(), None).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "mle: {} Newton steps, {} CG iterations, converged {}, gap {:.2e}",
            mle.diagnostics.newton_steps,
            mle.diagnostics.cg_iterations,
            mle.diagnostics.converged,
            mle.diagnostics.relative_optimality_gap
        );
        report("mle", &mle.precision, &val_m, &test_m, secs);
    }
    if which == "mle" {
        return;
    }

    let t0 = Instant::now();
    let mut options = SmOptions::default();
    if let Some(tol) = args.get(4) {
        options.newton.decrement_tol = tol.parse().unwrap();
    }
    let sm = fit_sm(train.view(), Some(val), &pattern, &options, None).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let d = &sm.diagnostics;
    println!(
        "sm: unconstrained CG {} its (converged {}), PD {}, {} eigenvalues <= 0 (min {:.3e}), J {:.6e}",
        d.unconstrained_cg_iterations,
        d.unconstrained_converged,
        d.unconstrained_pd,
        d.unconstrained_nonpositive_eigenvalues,
        d.unconstrained_min_eigenvalue,
        d.unconstrained_objective
    );
    for st in &d.barrier_path {
        println!(
            "  t {:>8.0e}: {:>2} Newton, {:>4} CG, conv {}, J {:.6e}, val nll {:.4}",
            st.t,
            st.newton_steps,
            st.cg_iterations,
            st.converged,
            st.objective,
            st.validation_nll.unwrap_or(f64::NAN)
        );
    }
    println!("  chosen t = {:?}", d.chosen_t);
    report("sm", &sm.precision, &val_m, &test_m, secs);
}
