//! Through the real binary: every image shape from 1×1 to 5×5 (and 28×28 from the fixture),
//! every neighbourhood and every method either fits or exits 1 with one line naming the problem;
//! nothing panics.

mod common;

use std::path::Path;
use std::process::Output;

use common::{fixture, gmrf, ok};

/// An IDX image file of `n` images of h × w pixels and its label file, deterministic pixels.
fn write_idx(dir: &Path, n: usize, h: usize, w: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut images = vec![0, 0, 8, 3];
    for dim in [n, h, w] {
        images.extend_from_slice(&(dim as u32).to_be_bytes());
    }
    images.extend((0..n * h * w).map(|k| ((k * 7919 + k / 3 * 104_729) % 256) as u8));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&(n as u32).to_be_bytes());
    labels.extend((0..n).map(|k| (k % 10) as u8));
    let (ip, lp) = (dir.join("images-idx3-ubyte"), dir.join("labels-idx1-ubyte"));
    std::fs::write(&ip, images).unwrap();
    std::fs::write(&lp, labels).unwrap();
    (ip, lp)
}

/// Ingest and centre IDX files into `dir/train-centred.parquet`.
fn prepare(dir: &Path, images: &Path, labels: &Path) {
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let table = dir.join("train.parquet");
    ok(gmrf([
        "ingest",
        "mnist",
        "--images",
        &s(images),
        "--labels",
        &s(labels),
        "--split",
        "train",
        "--out",
        &s(&table),
    ]));
    ok(gmrf([
        "centre",
        "--fit",
        &s(&table),
        "--mean",
        &s(&dir.join("mean.parquet")),
        "--out",
        &s(&dir.join("train-centred.parquet")),
    ]));
}

/// `gmrf estimate METHOD` with short runs of the minibatch methods.
fn estimate(dir: &Path, method: &str, neighbourhood: &str) -> Output {
    estimate_with(dir, method, neighbourhood, &[])
}

/// As [`estimate`], with extra flags.
fn estimate_with(dir: &Path, method: &str, neighbourhood: &str, extra: &[&str]) -> Output {
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let mut args = vec![
        "estimate".to_owned(),
        method.to_owned(),
        "--train".to_owned(),
        s(&dir.join("train-centred.parquet")),
        "--out".to_owned(),
        s(&dir.join(format!("{method}-{neighbourhood}"))),
        "--neighbourhood".to_owned(),
        neighbourhood.to_owned(),
    ];
    if matches!(method, "nce" | "cnce" | "sm-gd") {
        args.extend(["--steps".to_owned(), "5".to_owned()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    gmrf(args)
}

/// Exit 0, or exit 1 with one `error:` line; never a panic (exit 101) or a signal.
fn fits_or_refuses(output: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    match output.status.code() {
        Some(0) => {}
        Some(1) => {
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            assert!(lines.len() == 1 && lines[0].starts_with("error: "), "{what}: {stderr}");
        }
        other => panic!("{what}: exit {other:?}: {stderr}"),
    }
}

#[test]
fn every_shape_neighbourhood_and_method_fits_or_exits_1_without_panicking() {
    let methods = ["sm", "sm-gd", "mle", "nce", "cnce"];
    let neighbourhoods = ["4", "8", "r2", "r39"];
    for (h, w) in [(1, 1), (1, 5), (5, 1), (2, 2), (2, 3), (3, 4), (5, 5)] {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = write_idx(dir.path(), 40, h, w);
        prepare(dir.path(), &images, &labels);
        for method in methods {
            for n in neighbourhoods {
                fits_or_refuses(&estimate(dir.path(), method, n), &format!("{method} {n} on {h}x{w}"));
            }
        }
    }
    // 28 × 28 (the fixture): every method on 4 neighbours fits; with r39 every pair of pixels is a
    // free entry (307,720), whose dense Newton Hessian factor (~1 TiB) is refused before any work.
    let dir = tempfile::tempdir().unwrap();
    prepare(
        dir.path(),
        &fixture("mnist/train-images-idx3-ubyte.gz"),
        &fixture("mnist/train-labels-idx1-ubyte.gz"),
    );
    // (nce and cnce by their minibatch loop here: the full-batch estimates on 2,000 digits take
    // minutes, and the tiny grids above run them.)
    for method in methods {
        let minibatch: &[&str] =
            if matches!(method, "nce" | "cnce") { &["--solver", "minibatch"] } else { &[] };
        ok(estimate_with(dir.path(), method, "4", minibatch));
    }
    for method in ["sm", "mle"] {
        let output = estimate(dir.path(), method, "r39");
        fits_or_refuses(&output, &format!("{method} r39 on 28x28"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--neighbourhood r39") && stderr.contains("TiB"), "{stderr}");
    }
}

#[test]
fn one_row_is_refused_by_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = write_idx(dir.path(), 1, 4, 4);
    prepare(dir.path(), &images, &labels);
    for method in ["sm", "sm-gd", "mle", "nce", "cnce"] {
        let output = estimate(dir.path(), method, "4");
        assert_eq!(output.status.code(), Some(1), "{method}: {}", String::from_utf8_lossy(&output.stderr));
        let message = common::fails(output);
        // sm's validation split says it first ("leaves 1 fitting and 0 validation rows").
        assert!(
            message.contains("1 row(s)") || message.contains("1 fitting and 0 validation rows"),
            "{method}: {message}"
        );
    }
}
