//! `just flickr-sm` on BSDS500's 500 real photos, where `../shared/data` has them: ingest, centre,
//! score matching and evaluate, run as the recipe runs them, give a positive definite fit whose
//! samples have the photo patches' texture.

mod common;

use common::{bsds500, ok, root};
use gmrf_table::{Images, PrecisionEntries, Samples, Skipped, read};
use ndarray::{Array2, Axis, s};

#[test]
fn bsds500_patches_fit_a_positive_definite_sm_model_whose_samples_look_like_the_patches() {
    let Some(photos) = bsds500() else { return };
    let run = tempfile::tempdir().unwrap();
    let d = |name: &str| run.path().join(name).display().to_string();
    let config = root().join("pipelines/flickr-sm.toml").display().to_string();
    ok(common::ingest_photos(&photos, run.path(), None, &["--config", &config]));
    let (train, meta) = read::<Images>(run.path().join("train.parquet").as_ref()).unwrap();
    let (test, _) = read::<Images>(run.path().join("test.parquet").as_ref()).unwrap();
    let (skipped, _) = read::<Skipped>(run.path().join("skipped.parquet").as_ref()).unwrap();
    assert_eq!((train.len() + test.len(), skipped.len()), (1000, 0), "two patches from each of 500 photos");
    assert_eq!(meta.param("photos_used"), Some("500"));
    // No photo on both sides of the split.
    let train_photos: std::collections::BTreeSet<_> = train.source.iter().collect();
    assert!(test.source.iter().all(|s| !train_photos.contains(s)));

    ok(common::gmrf([
        "centre",
        "--config",
        &config,
        "--fit",
        &d("train.parquet"),
        "--mean",
        &d("mean.parquet"),
        "--out",
        &d("train-centred.parquet"),
        "--apply",
        &d("test.parquet"),
        "--apply-out",
        &d("test-centred.parquet"),
    ]));
    ok(common::gmrf([
        "estimate",
        "sm",
        "--config",
        &config,
        "--train",
        &d("train-centred.parquet"),
        "--out",
        &d(""),
    ]));
    let (_, meta) = read::<PrecisionEntries>(run.path().join("precision.parquet").as_ref()).unwrap();
    assert_eq!(meta.param("method"), Some("sm"));
    assert_eq!(meta.param("positive_definite"), Some("true"));
    let min_eigenvalue: f64 = meta.param("min_eigenvalue").unwrap().parse().unwrap();
    assert!(min_eigenvalue > 0.0, "{min_eigenvalue}");

    ok(common::gmrf([
        "evaluate",
        "--train",
        &d("train-centred.parquet"),
        "--test",
        &d("test-centred.parquet"),
        "--mean",
        &d("mean.parquet"),
        "--model",
        &format!("sm={}", d("")),
        "--out",
        &d("evaluation"),
    ]));
    let (samples, _) = read::<Samples>(run.path().join("evaluation/samples.parquet").as_ref()).unwrap();
    let exact: Vec<usize> =
        // The sm fit's own draws (evaluate adds the masked MLE reference and its samples too).
        (0..samples.sampler.len()).filter(|&i| samples.sampler[i] == "cholesky" && samples.model[i] == "sm").collect();
    let drawn = samples.pixels.select(Axis(0), &exact);
    assert_eq!(drawn.nrows(), 64);
    // A Gaussian spills past [0, 255] somewhat (the masked MLE's draws: 5% of pixels; the test
    // patches: 0.3%). The 4-neighbour SM fit, with ten times the MLE's variance on the mean
    // brightness, clipped 45% of its pixels to flat black or white patches.
    let clipped = drawn.iter().filter(|&&p| p == 0 || p == 255).count() as f64 / drawn.len() as f64;
    assert!(clipped < 0.15, "{:.1}% of the sampled pixels are clipped", 100.0 * clipped);
    // Texture: correlation of pixels 4 apart in a row, about each table's own mean image. Test
    // patches 0.874, sm-8 draws 0.83, mle-4 0.91; the clipping sm-4 fit 0.988.
    let (data_rho, sample_rho) = (row_correlation(&test.pixels, 28, 4), row_correlation(&drawn, 28, 4));
    assert!(
        (sample_rho - data_rho).abs() < 0.06,
        "lag-4 correlation: samples {sample_rho:.3}, test patches {data_rho:.3}"
    );
}

/// Pearson correlation of the pairs (x[r][c], x[r][c + lag]) over all images, rows and columns of
/// `width`-wide images, each pixel taken about its mean over the images.
fn row_correlation(images: &Array2<u8>, width: usize, lag: usize) -> f64 {
    let x = images.mapv(f64::from);
    let x = &x - &x.mean_axis(Axis(0)).unwrap();
    let x = x.to_shape((images.nrows(), images.ncols() / width, width)).unwrap();
    let (a, b) = (x.slice(s![.., .., ..width - lag]), x.slice(s![.., .., lag..]));
    let (ab, aa, bb) = ((&a * &b).sum(), (&a * &a).sum(), (&b * &b).sum());
    ab / (aa * bb).sqrt()
}
