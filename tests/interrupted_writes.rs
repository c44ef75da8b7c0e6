//! A write interrupted by SIGTERM or SIGINT leaves no temporary file and the previous output as
//! it was; one killed outright (SIGKILL) leaves its temporary file, which the next run writing the
//! same output removes. The writes are made long by a large generated input (150,000 images of
//! noise, which compress badly), and each signal is sent once the temporary file exists.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{files_in, ok};

/// A large IDX image file of noise and its label file, in `dir`.
fn large_input(dir: &Path) -> (PathBuf, PathBuf) {
    let count: u32 = 150_000;
    let mut images = vec![0, 0, 8, 3];
    for d in [count, 28, 28] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    // xorshift64: cheap noise, so that the compressed table stays large and slow to write.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    images.extend((0..count as usize * 784).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 56) as u8
    }));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&count.to_be_bytes());
    labels.extend((0..count).map(|i| (i % 10) as u8));
    let (i, l) = (dir.join("large-images-idx3-ubyte"), dir.join("large-labels-idx1-ubyte"));
    std::fs::write(&i, images).unwrap();
    std::fs::write(&l, labels).unwrap();
    (i, l)
}

fn ingest(images: &Path, labels: &Path, out: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gmrf"));
    command.arg("ingest").arg("mnist").arg("--images").arg(images).arg("--labels").arg(labels);
    command.arg("--out").arg(out).stdout(Stdio::null()).stderr(Stdio::piped());
    command
}

/// Starts the ingest of the large input into `out` and waits until its temporary file exists.
fn start_writing(images: &Path, labels: &Path, out: &Path) -> Child {
    let child = ingest(images, labels, out).spawn().unwrap();
    let folder = out.parent().unwrap();
    let start = Instant::now();
    while !files_in(folder).iter().any(|f| f.ends_with(".partial")) {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no temporary file appeared in {}",
            folder.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

fn partials(folder: &Path) -> Vec<String> {
    files_in(folder).into_iter().filter(|f| f.ends_with(".partial")).collect()
}

#[test]
fn sigterm_and_sigint_leave_no_temporary_file_and_the_previous_output_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = large_input(dir.path());
    let runs = dir.path().join("runs");
    let out = runs.join("train.parquet");
    // A previous output, from the fixture.
    ok(common::ingest_fixture(&out));
    let previous = std::fs::read(&out).unwrap();

    for (name, code) in [("TERM", 143), ("INT", 130)] {
        let child = start_writing(&images, &labels, &out);
        signal(&child, name);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "SIG{name}: {stderr}");
        assert!(stderr.contains(&format!("interrupted by SIG{name}")), "{stderr}");
        assert_eq!(partials(&runs), Vec::<String>::new(), "SIG{name} left temporary files");
        assert!(std::fs::read(&out).unwrap() == previous, "SIG{name}: the previous output changed");
        assert_eq!(files_in(&runs), ["train.parquet"]);
    }

    // Into a folder that does not exist yet: the interrupted run removes the folder it created.
    let fresh = dir.path().join("new/deeper");
    let child = start_writing(&images, &labels, &fresh.join("train.parquet"));
    signal(&child, "TERM");
    child.wait_with_output().unwrap();
    assert!(
        !dir.path().join("new").exists(),
        "the interrupted run left {:?}",
        files_in(&dir.path().join("new"))
    );
}

#[test]
fn a_killed_write_leaves_a_temporary_file_the_next_run_removes() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = large_input(dir.path());
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let out = runs.join("train.parquet");
    let child = start_writing(&images, &labels, &out);
    signal(&child, "KILL");
    child.wait_with_output().unwrap();
    assert_eq!(partials(&runs).len(), 1, "SIGKILL cannot be caught: its temporary file stays");

    ok(common::ingest_fixture(&out));
    assert_eq!(files_in(&runs), ["train.parquet"], "the dead run's temporary file is removed");
}
