//! Outputs are all or nothing: a stage checks every output path before any work, and a refused
//! run exits 1 with one line naming the path, leaves no file, temporary file or folder behind, and
//! changes no existing output.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::{MnistFiles, fails, files_in, fixture, ok};

/// A prepared fixture run (train, test, mean, both centred tables) and the bytes of every file.
struct Run {
    dir: tempfile::TempDir,
    before: Vec<(String, Vec<u8>)>,
}

impl Run {
    fn new() -> Run {
        let dir = tempfile::tempdir().unwrap();
        MnistFiles::fixture().prepare(dir.path(), None, &[]);
        let before = snapshot(dir.path());
        Run { dir, before }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `gmrf centre` of the run's tables, with `outputs` (`--mean`, `--out`, `--apply-out`) given.
    fn centre(&self, mean: &Path, out: &Path, apply_out: &Path) -> std::process::Output {
        let args: Vec<OsString> = vec![
            "centre".into(),
            "--fit".into(),
            self.path("train.parquet").into(),
            "--mean".into(),
            mean.into(),
            "--out".into(),
            out.into(),
            "--apply".into(),
            self.path("test.parquet").into(),
            "--apply-out".into(),
            apply_out.into(),
        ];
        common::gmrf(args)
    }

    /// Every file of the run, hidden temporaries included, is as it was after `prepare`.
    fn assert_unchanged(&self) {
        assert!(
            snapshot(self.dir.path()) == self.before,
            "the run's files changed: {:?}",
            files_in(self.dir.path())
        );
    }
}

/// Names and bytes of the regular files directly in `dir` (folders listed by name only).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_in(dir)
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).unwrap_or_default();
            (name, bytes)
        })
        .collect()
}

#[test]
fn apply_out_naming_a_folder_is_refused_before_any_output_is_replaced() {
    let run = Run::new();
    let folder = run.path("figures");
    std::fs::create_dir(&folder).unwrap();
    let before = snapshot(run.dir.path());
    let message = fails(run.centre(&run.path("mean.parquet"), &run.path("train-centred.parquet"), &folder));
    assert!(
        message.contains(&format!("{}: --apply-out is a folder, not a file", folder.display())),
        "{message}"
    );
    assert!(snapshot(run.dir.path()) == before, "outputs changed: {:?}", files_in(run.dir.path()));
}

#[test]
fn device_fifo_and_symbolic_link_are_never_replaced() {
    let run = Run::new();
    let (mean, out) = (run.path("mean.parquet"), run.path("train-centred.parquet"));

    let message = fails(run.centre(&mean, &out, Path::new("/dev/null")));
    assert!(
        message.contains("/dev/null: --apply-out is not a regular file (a device, fifo or socket)"),
        "{message}"
    );
    {
        use std::os::unix::fs::FileTypeExt;
        assert!(
            std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(),
            "/dev/null is still a device"
        );
    }
    run.assert_unchanged();

    let fifo = tempfile::tempdir().unwrap();
    let fifo = fifo.path().join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let message = fails(run.centre(&mean, &fifo, &run.path("test-centred.parquet")));
    assert!(message.contains(&format!("{}: --out is not a regular file", fifo.display())), "{message}");
    run.assert_unchanged();

    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("precious.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = elsewhere.path().join("link.parquet");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let message = fails(run.centre(&link, &out, &run.path("test-centred.parquet")));
    assert!(message.contains(&format!("{}: --mean is a symbolic link", link.display())), "{message}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    run.assert_unchanged();
}

#[test]
fn one_file_given_to_two_outputs_or_as_an_input_is_refused() {
    let run = Run::new();
    let out = run.path("train-centred.parquet");
    // The same file, spelled differently.
    let again = run.dir.path().join(".").join("train-centred.parquet");
    let message = fails(run.centre(&run.path("mean.parquet"), &out, &again));
    assert!(
        message.contains("is given to both --out and --apply-out; each output needs its own file"),
        "{message}"
    );
    run.assert_unchanged();

    let input = run.path("train.parquet");
    let message = fails(run.centre(&run.path("mean.parquet"), &input, &run.path("test-centred.parquet")));
    assert!(message.contains(&format!("{}: --out names the input of --fit", input.display())), "{message}");
    run.assert_unchanged();

    let images = fixture("mnist/train-images-idx3-ubyte.gz");
    let copy = run.path("images.gz");
    std::fs::copy(&images, &copy).unwrap();
    let labels = fixture("mnist/train-labels-idx1-ubyte.gz");
    let message = fails(common::ingest_mnist(&copy, &labels, &copy));
    assert!(message.contains("--out names the input of --images"), "{message}");
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&images).unwrap());
}

#[test]
fn output_under_a_file_is_refused_and_creates_no_folder() {
    let run = Run::new();
    let under = run.path("train.parquet").join("new/mean.parquet");
    let message =
        fails(run.centre(&under, &run.path("train-centred.parquet"), &run.path("test-centred.parquet")));
    assert!(message.contains("cannot be created:"), "{message}");
    assert!(message.contains("train.parquet is a file, not a folder"), "{message}");
    run.assert_unchanged();
}

#[test]
fn photo_ingest_with_skipped_naming_a_folder_replaces_neither_table() {
    let out = tempfile::tempdir().unwrap();
    ok(common::ingest_photos(&fixture("photos"), out.path(), None, &["--test-fraction", "0.5"]));
    let before = snapshot(out.path());
    std::fs::remove_file(out.path().join("skipped.parquet")).unwrap();
    std::fs::create_dir(out.path().join("skipped.parquet")).unwrap();
    let message = fails(common::ingest_photos(&fixture("photos"), out.path(), None, &["--seed", "9"]));
    assert!(message.contains("skipped.parquet: --skipped is a folder, not a file"), "{message}");
    let after = snapshot(out.path());
    assert_eq!(after.len(), before.len());
    for ((name, bytes), (before_name, before_bytes)) in after.iter().zip(&before) {
        assert_eq!(name, before_name);
        if name != "skipped.parquet" {
            assert!(bytes == before_bytes, "{name} was replaced");
        }
    }
}

#[test]
fn temporary_files_of_dead_processes_are_removed_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    // A process that has ended, and one that is alive (this test).
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = dir.path().join(format!(".train.parquet.{dead}.partial"));
    let live = dir.path().join(format!(".train.parquet.{}.partial", std::process::id()));
    let other = dir.path().join(format!(".test.parquet.{dead}.partial"));
    for path in [&stale, &live, &other] {
        std::fs::write(path, vec![0u8; 1000]).unwrap();
    }
    let out = dir.path().join("train.parquet");
    ok(common::ingest_fixture(&out));
    assert!(!stale.exists(), "the dead process's temporary file of this output is removed");
    assert!(live.exists(), "a live process's temporary file is left alone");
    assert!(other.exists(), "temporary files of other outputs are left alone");
}

#[test]
fn estimate_and_evaluate_refuse_an_output_folder_in_the_way_before_any_work() {
    let run = Run::new();
    // A folder where the fit's precision table (or the report) would go.
    let model = run.path("model");
    std::fs::create_dir_all(model.join("precision.parquet")).unwrap();
    let train = run.path("train-centred.parquet");
    let message = fails(common::gmrf([
        "estimate".as_ref(),
        "sm".as_ref(),
        "--train".as_ref(),
        train.as_os_str(),
        "--out".as_ref(),
        model.as_os_str(),
    ]));
    let blocked = model.join("precision.parquet");
    assert!(message.contains(&format!("{}: --out is a folder, not a file", blocked.display())), "{message}");
    assert_eq!(files_in(&model), vec!["precision.parquet".to_string()], "the refused fit wrote a file");

    let report = run.path("report");
    std::fs::create_dir_all(report.join("report.md")).unwrap();
    let mut args: Vec<OsString> = vec!["evaluate".into(), "--train".into(), train.into_os_string()];
    for (flag, file) in [("--test", "test-centred.parquet"), ("--mean", "mean.parquet")] {
        args.extend([flag.into(), run.path(file).into_os_string()]);
    }
    args.extend(["--out".into(), report.clone().into_os_string()]);
    let message = fails(common::gmrf(args));
    let blocked = report.join("report.md");
    assert!(message.contains(&format!("{}: --out is a folder, not a file", blocked.display())), "{message}");
    assert_eq!(files_in(&report), vec!["report.md".to_string()], "the refused evaluation wrote a file");
}
