//! `just flickr-sm` on BSDS500's 500 real photos, where `../shared/data` has them: ingest, centre
//! and score matching, run as the recipe runs them, give a positive definite fit.

mod common;

use common::{bsds500, ok, root};
use gmrf_table::{Images, PrecisionEntries, Skipped, read};

#[test]
fn bsds500_patches_centre_and_fit_a_positive_definite_sm_model() {
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
}
