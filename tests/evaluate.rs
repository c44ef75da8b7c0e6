//! `gmrf evaluate` end to end on the MNIST fixture: the metrics agree with the per-image scores,
//! a user's polars group-by over `scores.parquet` gives the report's per-label numbers, the
//! figures are real images of the expected sizes, outputs are byte-identical on 1 and 2 threads,
//! and bad inputs are refused without output. On all of MNIST (where `data/mnist` exists), the
//! masked MLE fits rank between the diagonal and full-covariance baselines.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::{MnistFiles, fails, files_in, gmrf, gmrf_with_threads, ok};
use gmrf_table::{Metrics, Samples, Scores};
use polars::prelude::*;

/// The fixture prepared, and masked MLE fits with 4 and 8 neighbours, once per test binary.
fn fitted() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        MnistFiles::fixture().prepare(dir.path(), None, &[]);
        fit(dir.path(), &["4", "8"]);
        dir
    })
    .path()
}

/// Fits the masked MLE for each neighbourhood into `dir/mle-<n>/`.
fn fit(dir: &Path, neighbourhoods: &[&str]) {
    fit_method(dir, "mle", neighbourhoods);
}

/// Fits `method` for each neighbourhood into `dir/<method>-<n>/`.
fn fit_method(dir: &Path, method: &str, neighbourhoods: &[&str]) {
    for n in neighbourhoods {
        let train = dir.join("train-centred.parquet");
        let out = dir.join(format!("{method}-{n}"));
        let args: [&std::ffi::OsStr; 7] = [
            "estimate".as_ref(),
            method.as_ref(),
            "--neighbourhood".as_ref(),
            n.as_ref(),
            "--train".as_ref(),
            train.as_os_str(),
            "--out".as_ref(),
        ];
        let mut args: Vec<OsString> = args.iter().map(|a| a.to_os_string()).collect();
        args.push(out.into());
        ok(gmrf(args));
    }
}

/// `gmrf evaluate` of the fits in `dir` into `out`.
fn evaluate_args(dir: &Path, out: &Path, models: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["evaluate".into()];
    for (flag, name) in
        [("--train", "train-centred.parquet"), ("--test", "test-centred.parquet"), ("--mean", "mean.parquet")]
    {
        args.push(flag.into());
        args.push(dir.join(name).into());
    }
    for model in models {
        args.push("--model".into());
        args.push(model.replace("DIR", &dir.display().to_string()).into());
    }
    args.push("--out".into());
    args.push(out.into());
    args
}

/// Evaluates both fixture fits (one named explicitly, one by its metadata) into a new folder.
fn evaluated(threads: Option<usize>) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let mut args = evaluate_args(fitted(), out.path(), &["mle-4=DIR/mle-4", "DIR/mle-8"]);
    // The default title names the output folder, which differs between temporary folders.
    args.extend(["--title".into(), "fixture".into()]);
    ok(gmrf_with_threads(args, threads));
    out
}

/// The cells of the first table after `heading` in the report (header and separator included).
fn table_after(report: &str, heading: &str) -> Vec<Vec<String>> {
    let section = report.split(heading).nth(1).unwrap_or_else(|| panic!("the report has {heading}"));
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

/// A table of the report as model → column → value.
fn report_table(report: &str, heading: &str) -> BTreeMap<String, BTreeMap<String, f64>> {
    let rows = table_after(report, heading);
    let columns = &rows[0][1..];
    let cells = |row: &Vec<String>| {
        columns.iter().cloned().zip(row[1..].iter().map(|v| v.parse().unwrap())).collect()
    };
    rows[2..].iter().map(|row| (row[0].clone(), cells(row))).collect()
}

/// The report's per-label table: label → model → value.
fn report_by_label(report: &str) -> BTreeMap<u8, BTreeMap<String, f64>> {
    let rows = table_after(report, "## Test nll by label");
    let models = &rows[0][2..];
    let mut out = BTreeMap::new();
    for row in &rows[2..] {
        let cells = models.iter().zip(&row[2..]).map(|(m, v)| (m.clone(), v.parse::<f64>().unwrap()));
        out.insert(row[0].parse().unwrap(), cells.collect());
    }
    out
}

#[test]
fn metrics_scores_and_report_agree_and_polars_reproduces_the_per_label_breakdown() {
    let out = evaluated(None);
    let (metrics, _) = gmrf_table::read::<Metrics>(&out.path().join("metrics.parquet")).unwrap();
    let names: Vec<&str> = metrics.rows.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(names, ["diagonal", "full", "mle-4", "mle-8"]);
    let (scores, _) = gmrf_table::read::<Scores>(&out.path().join("scores.parquet")).unwrap();
    for row in &metrics.rows {
        assert_eq!((row.n_train, row.n_test), (2000, 500));
        // The metric is the mean of the per-image scores (same numbers, summed in another order).
        for (split, want) in [("train", row.train_nll), ("test", row.test_nll)] {
            let nll: Vec<f64> = (0..scores.nll.len())
                .filter(|&k| scores.model[k] == row.model && scores.split[k] == split)
                .map(|k| scores.nll[k])
                .collect();
            assert_eq!(nll.len(), if split == "train" { 2000 } else { 500 });
            let mean = nll.iter().sum::<f64>() / nll.len() as f64;
            assert!((mean - want).abs() < 1e-12 * want.abs(), "{} {split}: {mean} vs {want}", row.model);
        }
        // bits/pixel = nll/ln 2 + 8 for (pixel + u)/256.
        assert!((row.test_bpd - (row.test_nll / std::f64::consts::LN_2 + 8.0)).abs() < 1e-12);
        assert!(row.min_eigenvalue > 0.0 && row.condition_number >= 1.0);
    }
    let fitted: Vec<_> = metrics.rows.iter().filter(|r| r.method == "mle").collect();
    assert!(fitted.iter().all(|r| r.fit_seconds.is_some_and(|s| s >= 0.0)));

    // Every table of the run opens in polars with the contract's dtypes.
    let open = |name: &str| {
        ParquetReader::new(std::fs::File::open(out.path().join(name)).unwrap()).finish().unwrap()
    };
    let dtype = |df: &DataFrame, name: &str| df.column(name).unwrap().dtype().clone();
    let metrics_df = open("metrics.parquet");
    assert_eq!((metrics_df.height(), dtype(&metrics_df, "test_nll")), (4, DataType::Float64));
    let samples_df = open("samples.parquet");
    assert_eq!(dtype(&samples_df, "pixels"), DataType::Array(Box::new(DataType::UInt8), 784));

    // What a user would do: group the per-image scores by label in polars.
    let df =
        ParquetReader::new(std::fs::File::open(out.path().join("scores.parquet")).unwrap()).finish().unwrap();
    let mask = df.column("split").unwrap().as_materialized_series().equal("test").unwrap();
    #[allow(deprecated)] // the eager group-by: the lazy engine is too heavy to build for a test
    let by_label =
        df.filter(&mask).unwrap().group_by(["model", "label"]).unwrap().select(["nll"]).mean().unwrap();
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let reported = report_by_label(&report);
    assert_eq!(reported.len(), 10, "ten digits");
    assert_eq!(by_label.height(), 10 * 4);
    let (model, label, nll) = (
        by_label.column("model").unwrap().str().unwrap(),
        by_label.column("label").unwrap().u8().unwrap(),
        by_label.column("nll_mean").unwrap().f64().unwrap(),
    );
    for k in 0..by_label.height() {
        let shown = reported[&label.get(k).unwrap()][model.get(k).unwrap()];
        // The report prints 4 decimals.
        assert!(
            (shown - nll.get(k).unwrap()).abs() <= 5e-5 + 1e-12,
            "{:?}: {shown} vs {:?}",
            model.get(k),
            nll.get(k)
        );
    }
    // The report's headline numbers are the metrics table's.
    for row in &metrics.rows {
        let cells = format!("| {:.4} | {:.4} | {:.4} |", row.train_nll, row.test_nll, row.test_bpd);
        assert!(report.contains(&cells), "{}: {cells}", row.model);
    }
}

#[test]
fn a_run_without_an_mle_model_gets_the_masked_mle_of_its_pattern_as_reference() {
    let dir = tempfile::tempdir().unwrap();
    MnistFiles::fixture().prepare(dir.path(), None, &[]);
    fit_method(dir.path(), "sm", &["4"]);
    let out = dir.path().join("run");
    ok(gmrf(evaluate_args(dir.path(), &out, &["DIR/sm-4"])));
    let (metrics, _) = gmrf_table::read::<Metrics>(&out.join("metrics.parquet")).unwrap();
    let names: Vec<&str> = metrics.rows.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(names, ["diagonal", "full", "sm-4", "mle-4"]);
    let reference = &metrics.rows[3];
    assert_eq!((reference.method.as_str(), reference.neighbourhood.as_str()), ("mle", "4"));
    assert!(reference.fit_seconds.is_some());
    // The same fit as `gmrf estimate mle` on the same table: the same test nll, bit for bit.
    let (given, _) = gmrf_table::read::<Metrics>(&evaluated(None).path().join("metrics.parquet")).unwrap();
    let estimated = given.rows.iter().find(|r| r.model == "mle-4").unwrap();
    assert_eq!(reference.test_nll, estimated.test_nll);
    // The comparison's "vs masked MLE" cell of sm-4 is filled with the difference.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let sm = &metrics.rows[2];
    let cell = format!("| {:+.4} |", sm.test_nll - reference.test_nll);
    let row = report.lines().find(|l| l.starts_with("| sm-4 | ") && l.matches('|').count() == 6).unwrap();
    assert!(row.contains(&cell), "{row} lacks {cell}");
    // A run that has the masked MLE fits none.
    let (with_mle, _) = gmrf_table::read::<Metrics>(&evaluated(None).path().join("metrics.parquet")).unwrap();
    assert_eq!(with_mle.rows.len(), 4);
}

#[test]
fn completion_and_denoising_with_the_masked_mle_beat_the_diagonal_and_the_noisy_input() {
    let out = evaluated(None);
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let nats = report_table(&report, "## Completion");
    let models: Vec<&str> = nats.keys().map(String::as_str).collect();
    assert_eq!(models, ["diagonal", "full", "mle-4", "mle-8"]);
    for mle in ["mle-4", "mle-8"] {
        assert!(nats[mle]["bottom-half"] < nats["diagonal"]["bottom-half"], "{nats:?}");
    }
    let psnr = report_table(&report, "## Denoising");
    for level in ["s = 0.1", "s = 0.2", "s = 0.4"] {
        for mle in ["mle-4", "mle-8"] {
            assert!(psnr[mle][level] > psnr["noisy input"][level], "{level}: {psnr:?}");
        }
    }
    // Each hidden pixel's bits are its nats in base 2 plus log₂ 256 (4-decimal rounding twice).
    let bits = report_table(&report, "The same in bits per hidden pixel");
    for (model, cells) in &nats {
        for (mask, value) in cells {
            let want = value / std::f64::consts::LN_2 + 8.0;
            assert!((bits[model][mask] - want).abs() < 2e-4, "{model} {mask}");
        }
    }
    for name in ["mle-4/completion-bottom-half.png", "mle-8/completion-random-half.png", "denoising-s0.2.png"]
    {
        assert!(report.contains(&format!("](figures/{name})")), "the report shows {name}");
        image::open(out.path().join("figures").join(name)).unwrap();
    }
}

#[test]
fn a_logit_space_run_records_the_transform_and_counts_the_jacobian_in_bits_per_pixel() {
    let dir = tempfile::tempdir().unwrap();
    MnistFiles::fixture().prepare(dir.path(), None, &["--transform", "logit", "--fit-rows", "0..1500"]);
    let (train, meta) =
        gmrf_table::read::<gmrf_table::Centred>(&dir.path().join("train-centred.parquet")).unwrap();
    assert_eq!(train.len(), 1500);
    for (key, value) in
        [("transform", "logit"), ("alpha", "0.000001"), ("fit_rows", "0..1500"), ("fit_rows_of", "2000")]
    {
        assert_eq!(meta.param(key), Some(value), "{key}");
    }
    fit(dir.path(), &["4"]);
    let out = dir.path().join("run");
    ok(gmrf(evaluate_args(dir.path(), &out, &["DIR/mle-4"])));
    let (metrics, _) = gmrf_table::read::<Metrics>(&out.join("metrics.parquet")).unwrap();
    // J, the mean log|dy/dx| over the test pixels, from y = x + μ by log((1 − 2α)/(z(1 − z))), z = σ(y).
    let (test, _) =
        gmrf_table::read::<gmrf_table::Centred>(&dir.path().join("test-centred.parquet")).unwrap();
    let (mean, _) = gmrf_table::read::<gmrf_table::MeanImage>(&dir.path().join("mean.parquet")).unwrap();
    let alpha = 1e-6;
    let log_jacobian = |y: f64| {
        let z = 1.0 / (1.0 + (-y).exp());
        ((1.0 - 2.0 * alpha) / (z * (1.0 - z))).ln()
    };
    let total: f64 =
        test.x.indexed_iter().map(|((_, k), &v)| log_jacobian(f64::from(v) + mean.mean[k])).sum();
    let jacobian = total / test.x.len() as f64;
    assert!(jacobian > 1.0, "the logit stretches (0, 1): {jacobian}");
    for row in &metrics.rows {
        let want = (row.test_nll - jacobian) / std::f64::consts::LN_2 + 8.0;
        assert!((row.test_bpd - want).abs() < 1e-9, "{}: {} vs {want}", row.model, row.test_bpd);
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let per_image = table_after(&report, "## Test log-likelihood per image");
    let models: Vec<&str> = per_image[2..].iter().map(|row| row[0].as_str()).collect();
    assert_eq!(models, ["diagonal", "full", "mle-4"]);
    assert!(report.contains("No denoising section") && report.contains("## Completion"));
}

#[test]
fn bad_transform_options_are_refused_naming_the_option_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    MnistFiles::fixture().prepare(dir.path(), None, &[]);
    let centre = |extra: &[&str]| {
        let mut args: Vec<OsString> = vec!["centre".into()];
        for (flag, name) in [("--fit", "train.parquet"), ("--mean", "m.parquet"), ("--out", "c.parquet")] {
            args.push(flag.into());
            args.push(dir.path().join(name).into());
        }
        args.extend(extra.iter().map(OsString::from));
        fails(gmrf(args))
    };
    assert!(centre(&["--alpha", "0.1"]).contains("--alpha"));
    assert!(centre(&["--transform", "logit", "--alpha", "0.7"]).contains("--alpha"));
    assert!(centre(&["--transform", "logit", "--noise", "gaussian"]).contains("--transform logit"));
    let error = centre(&["--fit-rows", "0..5000"]);
    assert!(error.contains("--fit-rows") && error.contains("train.parquet"), "{error}");
    assert!(centre(&["--fit-rows", "10..2"]).contains("START..END"));
    assert!(!dir.path().join("m.parquet").exists() && !dir.path().join("c.parquet").exists());
}

#[test]
fn figures_are_images_of_the_expected_sizes_and_not_blank() {
    let out = evaluated(None);
    let figures = out.path().join("figures");
    // (file, width, height): grids of 28×28 images upscaled with 2-pixel borders; plots by layout.
    let expected = [
        ("mean.png", 228, 228),
        ("mle-4/samples-cholesky.png", 690, 690),
        ("mle-4/samples-inverse-sqrt.png", 690, 690),
        ("mle-4/precision-maps.png", 1110, 340),
        ("mle-8/precision-maps.png", 1110, 640),
        ("mle-4/covariance-row.png", 740, 340),
        ("mle-4/loss.png", 720, 420),
        // 8 digits × (original, observed, mean, 3 samples); 6 digits × (clean, noisy, 4 models).
        ("mle-4/completion-bottom-half.png", 6 * 86 + 2, 8 * 86 + 2),
        ("denoising-s0.1.png", 6 * 86 + 2, 6 * 86 + 2),
    ];
    for (name, width, height) in expected {
        let image = image::open(figures.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")).to_luma8();
        assert_eq!(image.dimensions(), (width, height), "{name}");
        let (lo, hi) = image.pixels().fold((255u8, 0u8), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
        let distinct: std::collections::BTreeSet<u8> = image.pixels().map(|p| p[0]).collect();
        assert!(
            hi - lo > 100 && distinct.len() > 20,
            "{name} looks blank: range {lo}..{hi}, {} levels",
            distinct.len()
        );
        let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
        assert!(report.contains(&format!("](figures/{name})")), "the report shows {name}");
    }
    // The samples table holds the grids' images: 64 per model and sampler.
    let (samples, _) = gmrf_table::read::<Samples>(&out.path().join("samples.parquet")).unwrap();
    assert_eq!(samples.pixels.nrows(), 2 * 2 * 64);
    let grid = image::open(figures.join("mle-4/samples-cholesky.png")).unwrap().to_luma8();
    // Pixel (r, c) of the first sample sits at (2 + 3r, 2 + 3c) in the grid, upscaled ×3.
    for (r, c) in [(5, 5), (14, 14), (20, 9)] {
        assert_eq!(grid.get_pixel(2 + 3 * c as u32, 2 + 3 * r as u32)[0], samples.pixels[(0, r * 28 + c)]);
    }
}

#[test]
fn outputs_are_byte_identical_on_one_and_two_threads() {
    let (one, two) = (evaluated(Some(1)), evaluated(Some(2)));
    let names = files_in(one.path());
    assert_eq!(names, files_in(two.path()));
    let mut all: Vec<PathBuf> = vec![];
    for name in &names {
        all.push(PathBuf::from(name));
    }
    for sub in ["figures", "figures/mle-4", "figures/mle-8"] {
        assert!(!files_in(&one.path().join(sub)).is_empty(), "{sub}");
        for name in files_in(&one.path().join(sub)) {
            all.push(Path::new(sub).join(name));
        }
    }
    for path in all.iter().filter(|p| one.path().join(p).is_file()) {
        assert!(
            std::fs::read(one.path().join(path)).unwrap() == std::fs::read(two.path().join(path)).unwrap(),
            "{path:?} differs"
        );
    }
}

#[test]
fn bad_inputs_are_refused_naming_the_file_and_leave_no_output() {
    let dir = fitted();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("run");
    // A centred table where a precision table belongs.
    let wrong = dir.join("train-centred.parquet");
    let error = fails(gmrf(evaluate_args(dir, &target, &[&format!("bad={}", wrong.display())])));
    assert!(error.contains("train-centred.parquet") && error.contains("precision"), "{error}");
    // A model folder without a precision table.
    let error = fails(gmrf(evaluate_args(dir, &target, &[&out.path().display().to_string()])));
    assert!(error.contains("precision.parquet"), "{error}");
    // A model name that cannot name a folder of figures.
    let error = fails(gmrf(evaluate_args(dir, &target, &["../up=DIR/mle-4"])));
    assert!(error.contains("model name"), "{error}");
    // More samples than memory holds, and a τ that is no standard deviation: refused before any
    // work, naming the option.
    for (flag, value, expected) in [
        ("--samples", "100000000000", "--samples 100000000000: the samples would take"),
        ("--tau", "-1", "--tau -1.0: must be a finite number > 0"),
    ] {
        let mut args = evaluate_args(dir, &target, &["DIR/mle-4"]);
        args.extend([flag.into(), value.into()]);
        let error = fails(gmrf(args));
        assert!(error.contains(expected), "{error}");
    }
    // The test table tied to another mean (by content, whatever the file is called).
    let other = tempfile::tempdir().unwrap();
    MnistFiles::fixture().prepare(other.path(), None, &["--fit-rows", "0..1000"]);
    let mut args = evaluate_args(dir, &target, &["DIR/mle-4"]);
    let at = args.iter().position(|a| a == "--mean").unwrap() + 1;
    args[at] = other.path().join("mean.parquet").into();
    let error = fails(gmrf(args));
    assert!(error.contains("gmrf.mean_hash"), "{error}");
    assert!(!target.exists(), "no output folder: {:?}", files_in(out.path()));
}

/// All of MNIST ingested and centred (with `extra` centring flags) in a new folder, or `None` (and
/// a note) where `data/mnist` is absent.
fn full_mnist_prepared(extra: &[&str]) -> Option<tempfile::TempDir> {
    let Some(files) = MnistFiles::full() else {
        eprintln!("skipped: data/mnist is absent (`just mnist-data` fetches it)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    files.prepare(dir.path(), None, extra);
    Some(dir)
}

#[test]
fn mle_fits_rank_between_the_baselines_on_all_of_mnist() {
    let Some(dir) = full_mnist_prepared(&[]) else { return };
    fit(dir.path(), &["4", "8"]);
    let out = dir.path().join("run");
    ok(gmrf(evaluate_args(dir.path(), &out, &["DIR/mle-4", "DIR/mle-8"])));
    let (metrics, _) = gmrf_table::read::<Metrics>(&out.join("metrics.parquet")).unwrap();
    let test_nll: BTreeMap<&str, f64> = metrics.rows.iter().map(|r| (r.model.as_str(), r.test_nll)).collect();
    // Lower nll is better: diagonal < masked (4) ≤ masked (8) ≤ full in held-out likelihood.
    assert!(test_nll["diagonal"] > test_nll["mle-4"], "{test_nll:?}");
    assert!(test_nll["mle-4"] >= test_nll["mle-8"], "{test_nll:?}");
    assert!(test_nll["mle-8"] >= test_nll["full"], "{test_nll:?}");
    // The prototype: masked MLE −1.733 (4) and −1.817 (8), diagonal −1.303 nats/pixel.
    for (model, want) in [("diagonal", -1.303), ("mle-4", -1.733), ("mle-8", -1.817)] {
        assert!((test_nll[model] - want).abs() < 0.01, "{model}: {} vs {want}", test_nll[model]);
    }
    // Issue 17: completion of the bottom half and denoising with the masked MLE.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let nats = report_table(&report, "## Completion");
    assert!(nats["mle-4"]["bottom-half"] < nats["diagonal"]["bottom-half"], "{nats:?}");
    let psnr = report_table(&report, "## Denoising");
    for level in ["s = 0.1", "s = 0.2", "s = 0.4"] {
        assert!(psnr["mle-4"][level] > psnr["noisy input"][level], "{level}: {psnr:?}");
    }
}

/// MAF's anchor (Papamakarios et al. 2017, Table 2): a full-covariance Gaussian fitted to the first
/// 50,000 training digits in logit space (α = 1e-6) scores −1366.9 ± 1.4 nats per test digit.
#[test]
fn the_full_gaussian_in_logit_space_reproduces_the_maf_papers_row_on_all_of_mnist() {
    let Some(dir) = full_mnist_prepared(&["--transform", "logit", "--fit-rows", "0..50000"]) else { return };
    let out = dir.path().join("run");
    ok(gmrf(evaluate_args(dir.path(), &out, &[])));
    let (metrics, _) = gmrf_table::read::<Metrics>(&out.join("metrics.parquet")).unwrap();
    let full = metrics.rows.iter().find(|r| r.model == "full").unwrap();
    let per_image = -784.0 * full.test_nll;
    assert!((per_image - -1366.9).abs() < 2.0, "full Gaussian: {per_image} nats per test digit");
}
