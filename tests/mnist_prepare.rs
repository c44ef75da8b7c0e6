//! `gmrf ingest mnist` + `gmrf centre` end to end, checked against an independent decoding of the
//! IDX files: row counts, labels, pixels, the mean image and the dequantised values.

mod common;

use common::{MnistFiles, read_idx};
use gmrf_table::{Centred, Images, MeanImage, Stage};

/// Checks a prepared run folder against the IDX files it came from.
fn check_prepared(files: &MnistFiles, dir: &std::path::Path, n_train: usize, n_test: usize) {
    let (train, train_meta) = gmrf_table::read::<Images>(&dir.join("train.parquet")).unwrap();
    let (test, _) = gmrf_table::read::<Images>(&dir.join("test.parquet")).unwrap();
    assert_eq!((train.len(), test.len()), (n_train, n_test));
    assert_eq!((train_meta.height, train_meta.width, train_meta.stage), (28, 28, Stage::Images));

    for (images, image_file, label_file, split) in [
        (&train, &files.train_images, &files.train_labels, "train"),
        (&test, &files.test_images, &files.test_labels, "test"),
    ] {
        let (dims, pixels) = read_idx(image_file);
        let (_, labels) = read_idx(label_file);
        assert_eq!(dims, vec![images.len(), 28, 28]);
        assert_eq!(images.pixels.as_slice().unwrap(), &pixels[..], "pixels of {split}");
        let table_labels: Vec<u8> =
            images.label.iter().map(|l| l.expect("MNIST rows have a label")).collect();
        assert_eq!(table_labels, labels, "labels of {split}");
        assert!(images.source.iter().all(|s| s == split));
        assert!(images.top.iter().chain(&images.left).all(Option::is_none));
        assert_eq!(images.id, (0..images.len() as u32).collect::<Vec<_>>());
    }

    // The mean image, computed directly from the IDX bytes: μ = (mean pixel + E[u])/256, E[u] = 1/2.
    let (mean, mean_meta) = gmrf_table::read::<MeanImage>(&dir.join("mean.parquet")).unwrap();
    assert_eq!(mean_meta.param("noise"), Some("uniform"));
    let (_, pixels) = read_idx(&files.train_images);
    for j in 0..784 {
        let sum: u64 = (0..n_train).map(|i| pixels[i * 784 + j] as u64).sum();
        let direct = (sum as f64 / n_train as f64 + 0.5) / 256.0;
        // Both are one division of the same exact integer sum: equal to the last bit or two.
        assert!((mean.mean[j] - direct).abs() <= 1e-15, "pixel {j}: {} vs {direct}", mean.mean[j]);
    }

    // Centred values: x + μ = (pixel + u)/256 with u in [0, 1). Tolerance: x is f32 with |x| < 1,
    // so its rounding error is below 2^-24 ≈ 6e-8 (1.5e-5 in pixel units).
    for (name, images) in [("train-centred.parquet", &train), ("test-centred.parquet", &test)] {
        let (centred, meta) = gmrf_table::read::<Centred>(&dir.join(name)).unwrap();
        assert_eq!(meta.param("mean"), Some("mean.parquet"));
        assert_eq!(centred.id, images.id);
        assert_eq!(centred.label, images.label);
        let mut u_sum = 0.0;
        for ((x, p), mu) in centred.x.iter().zip(images.pixels.iter()).zip(mean.mean.iter().cycle()) {
            let u = (*x as f64 + mu) * 256.0 - *p as f64;
            assert!((-1.6e-5..1.0 + 1.6e-5).contains(&u), "{name}: u = {u}");
            u_sum += u;
        }
        // u ~ U(0,1): its mean over n·784 draws is 1/2 within a few standard errors.
        let n = centred.x.len() as f64;
        let u_mean = u_sum / n;
        assert!((u_mean - 0.5).abs() < 5.0 * (1.0 / 12.0 / n).sqrt(), "{name}: mean u = {u_mean}");
    }
}

#[test]
fn fixture_pipeline_writes_every_table_and_matches_the_idx_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = MnistFiles::fixture();
    files.prepare(dir.path(), None, &[]);
    check_prepared(&files, dir.path(), 2000, 500);
    assert_eq!(
        common::files_in(dir.path()),
        ["mean.parquet", "test-centred.parquet", "test.parquet", "train-centred.parquet", "train.parquet"]
    );
}

/// The real 70,000 digits, where `just mnist-data` has fetched them (CI does); skipped otherwise.
#[test]
fn full_mnist_gives_60000_and_10000_rows_with_their_labels_and_mean() {
    let Some(files) = MnistFiles::full() else {
        eprintln!("skipped: data/mnist is absent (run `just mnist-data` to fetch the real MNIST)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    files.prepare(dir.path(), None, &[]);
    check_prepared(&files, dir.path(), 60_000, 10_000);
}

#[test]
fn flags_override_the_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    MnistFiles::fixture().prepare(dir.path(), None, &["--noise", "gaussian", "--noise-std", "0.02"]);
    let (mean, meta) = gmrf_table::read::<MeanImage>(&dir.path().join("mean.parquet")).unwrap();
    assert_eq!(meta.param("noise"), Some("gaussian(std=0.02)"));
    // The seed still comes from pipelines/mnist.toml.
    assert_eq!(meta.param("seed"), Some("1"));
    // Gaussian noise has mean zero: no 1/2 offset in μ.
    let (train, _) = gmrf_table::read::<Images>(&dir.path().join("train.parquet")).unwrap();
    let direct = train.pixels.column(400).iter().map(|&p| p as f64).sum::<f64>() / 2000.0 / 256.0;
    assert!((mean.mean[400] - direct).abs() < 1e-15);
}
