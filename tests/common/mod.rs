//! Helpers shared by the end-to-end tests: run the real `gmrf` binary, find fixtures, and decode
//! IDX files independently of `gmrf-ingest` so that checks do not trust the code they check.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(relative: &str) -> PathBuf {
    root().join("fixtures").join(relative)
}

/// Runs `gmrf` with `args`, and `RAYON_NUM_THREADS=threads` when given.
pub fn gmrf_with_threads<I, S>(args: I, threads: Option<usize>) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(env!("CARGO_BIN_EXE_gmrf"));
    command.args(args);
    if let Some(n) = threads {
        command.env("RAYON_NUM_THREADS", n.to_string());
    }
    command.output().expect("gmrf runs")
}

pub fn gmrf<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    gmrf_with_threads(args, None)
}

/// Asserts success, showing stderr otherwise.
pub fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "gmrf failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Asserts failure with exit code 1 and returns stderr, which must be one `error:` line.
pub fn fails(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "expected exit code 1, stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    stderr
}

/// Every file in `dir`, hidden temporaries included, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// An IDX file's dimensions and data, decoded here by hand (gzip detected by its magic bytes).
pub fn read_idx(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let raw = std::fs::read(path).unwrap();
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
        out
    } else {
        raw
    };
    let ndims = bytes[3] as usize;
    let dims: Vec<usize> = (0..ndims)
        .map(|k| u32::from_be_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().unwrap()) as usize)
        .collect();
    (dims, bytes[4 + 4 * ndims..].to_vec())
}

/// The four files of an MNIST folder: (train images, train labels, test images, test labels).
pub struct MnistFiles {
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test_images: PathBuf,
    pub test_labels: PathBuf,
}

impl MnistFiles {
    pub fn fixture() -> Self {
        MnistFiles {
            train_images: fixture("mnist/train-images-idx3-ubyte.gz"),
            train_labels: fixture("mnist/train-labels-idx1-ubyte.gz"),
            test_images: fixture("mnist/t10k-images-idx3-ubyte.gz"),
            test_labels: fixture("mnist/t10k-labels-idx1-ubyte.gz"),
        }
    }

    /// The full MNIST that `just mnist-data` fetches, if it is there.
    pub fn full() -> Option<Self> {
        let dir = root().join("data/mnist");
        let files = MnistFiles {
            train_images: dir.join("train-images-idx3-ubyte"),
            train_labels: dir.join("train-labels-idx1-ubyte"),
            test_images: dir.join("t10k-images-idx3-ubyte"),
            test_labels: dir.join("t10k-labels-idx1-ubyte"),
        };
        [&files.train_images, &files.train_labels, &files.test_images, &files.test_labels]
            .iter()
            .all(|p| p.exists())
            .then_some(files)
    }

    /// `gmrf ingest` of both splits and `gmrf centre` into `dir`, as `just mnist-prepare` runs them.
    pub fn prepare(&self, dir: &Path, threads: Option<usize>, extra: &[&str]) {
        let d = |name: &str| dir.join(name);
        for (images, labels, split) in [
            (&self.train_images, &self.train_labels, "train"),
            (&self.test_images, &self.test_labels, "test"),
        ] {
            let out = d(&format!("{split}.parquet"));
            let mut args = ingest_args(images, labels, &out);
            args.extend(["--split".into(), split.into()]);
            ok(gmrf_with_threads(args, threads));
        }
        let mut centre: Vec<std::ffi::OsString> =
            vec!["centre".into(), "--config".into(), root().join("pipelines/mnist.toml").into()];
        for (flag, name) in [
            ("--fit", "train.parquet"),
            ("--mean", "mean.parquet"),
            ("--out", "train-centred.parquet"),
            ("--apply", "test.parquet"),
            ("--apply-out", "test-centred.parquet"),
        ] {
            centre.push(flag.into());
            centre.push(d(name).into());
        }
        centre.extend(extra.iter().map(Into::into));
        ok(gmrf_with_threads(centre, threads));
    }
}

/// The arguments of `gmrf ingest mnist` of one pair of IDX files into `out`.
fn ingest_args(images: &Path, labels: &Path, out: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["ingest".into(), "mnist".into()];
    for (flag, path) in [("--images", images), ("--labels", labels), ("--out", out)] {
        args.extend([flag.into(), path.into()]);
    }
    args
}

/// `gmrf ingest mnist` of one pair of IDX files into `out`.
pub fn ingest_mnist(images: &Path, labels: &Path, out: &Path) -> Output {
    gmrf(ingest_args(images, labels, out))
}

/// `gmrf ingest mnist` of the fixture's training split into `out`.
pub fn ingest_fixture(out: &Path) -> Output {
    ingest_mnist(
        &fixture("mnist/train-images-idx3-ubyte.gz"),
        &fixture("mnist/train-labels-idx1-ubyte.gz"),
        out,
    )
}

/// `gmrf ingest photos` of `root` into `dir/{train,test,skipped}.parquet`, with `extra` flags.
pub fn ingest_photos(root: &Path, dir: &Path, threads: Option<usize>, extra: &[&str]) -> Output {
    let mut args: Vec<std::ffi::OsString> =
        vec!["ingest".into(), "photos".into(), "--root".into(), root.into()];
    for (flag, name) in
        [("--train", "train.parquet"), ("--test", "test.parquet"), ("--skipped", "skipped.parquet")]
    {
        args.push(flag.into());
        args.push(dir.join(name).into());
    }
    args.extend(extra.iter().map(Into::into));
    gmrf_with_threads(args, threads)
}

/// BSDS500's 500 photos, where `../shared/data` has them (only on the project's build machine).
pub fn bsds500() -> Option<PathBuf> {
    let dir = root().join("../shared/data/photos/bsds500");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: {} is absent", dir.display());
        None
    }
}
