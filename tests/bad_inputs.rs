//! Every bad input gives exit code 1, one line naming the file and the problem, and no output.

mod common;

use std::path::Path;

use common::{MnistFiles, fails, files_in, fixture, read_idx};

/// Raw IDX bytes: magic `00 00 08 ndims`, sizes, data.
fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

fn ingest(images: &Path, labels: &Path, out: &Path) -> std::process::Output {
    common::ingest_mnist(images, labels, out)
}

/// Runs an ingest that must fail; returns its message after checking that `out`'s folder is empty.
fn ingest_fails(images: &Path, labels: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs/train.parquet");
    let message = fails(ingest(images, labels, &out));
    assert!(!out.exists());
    assert!(
        files_in(&dir.path().join("runs")).is_empty(),
        "left behind: {:?}",
        files_in(&dir.path().join("runs"))
    );
    message
}

#[test]
fn wrong_magic_number_is_refused_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("zip-not-idx");
    std::fs::write(&bad, b"PK\x03\x04 definitely not IDX").unwrap();
    let message = ingest_fails(&bad, &fixture("mnist/train-labels-idx1-ubyte.gz"));
    assert!(message.contains(&bad.display().to_string()), "{message}");
    assert!(message.contains("magic number 0x504b0304"), "{message}");
}

#[test]
fn label_file_given_as_images_is_refused_by_its_dimension_count() {
    let labels = fixture("mnist/train-labels-idx1-ubyte.gz");
    let message = ingest_fails(&labels, &labels);
    assert!(message.contains("1 dimension(s) in the magic number, expected 3"), "{message}");
}

#[test]
fn truncated_image_file_is_refused_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (dims, data) = read_idx(&fixture("mnist/train-images-idx3-ubyte.gz"));
    let dims: Vec<u32> = dims.iter().map(|&d| d as u32).collect();
    let truncated = dir.path().join("train-images-idx3-ubyte");
    let bytes = idx_bytes(&dims, &data);
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let message = ingest_fails(&truncated, &fixture("mnist/train-labels-idx1-ubyte.gz"));
    assert!(message.contains(&truncated.display().to_string()), "{message}");
    assert!(
        message.contains(
            "truncated: the header promises 2000 x 28 x 28 = 1568000 bytes of data, the file holds 1567900"
        ),
        "{message}"
    );
}

#[test]
fn truncated_gzip_stream_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("mnist/train-images-idx3-ubyte.gz")).unwrap();
    let truncated = dir.path().join("train-images-idx3-ubyte.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let message = ingest_fails(&truncated, &fixture("mnist/train-labels-idx1-ubyte.gz"));
    assert!(message.contains("gzip stream is corrupt or truncated"), "{message}");
}

#[test]
fn label_count_different_from_image_count_is_refused() {
    let message = ingest_fails(
        &fixture("mnist/train-images-idx3-ubyte.gz"),
        &fixture("mnist/t10k-labels-idx1-ubyte.gz"),
    );
    assert!(message.contains("holds 2000 images but"), "{message}");
    assert!(message.contains("t10k-labels-idx1-ubyte.gz holds 500 labels"), "{message}");
}

#[test]
fn missing_file_is_named() {
    let missing = fixture("mnist/no-such-file");
    let message = ingest_fails(&missing, &fixture("mnist/train-labels-idx1-ubyte.gz"));
    assert!(message.contains(&missing.display().to_string()), "{message}");
    assert!(message.contains("No such file"), "{message}");
}

/// Centres with `--fit fit` and `--apply apply` into an empty folder; returns the message after
/// checking that nothing at all was written (not even the mean, written before the failure).
fn centre_fails(fit: &Path, apply: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    let o = |name: &str| out.path().join(name);
    let message = fails(common::gmrf([
        "centre".as_ref(),
        "--fit".as_ref(),
        fit.as_os_str(),
        "--mean".as_ref(),
        o("mean.parquet").as_os_str(),
        "--out".as_ref(),
        o("train-centred.parquet").as_os_str(),
        "--apply".as_ref(),
        apply.as_os_str(),
        "--apply-out".as_ref(),
        o("test-centred.parquet").as_os_str(),
    ] as [&std::ffi::OsStr; 11]));
    assert!(files_in(out.path()).is_empty(), "left behind: {:?}", files_in(out.path()));
    message
}

#[test]
fn centred_table_given_where_images_are_expected_is_refused() {
    let run = tempfile::tempdir().unwrap();
    MnistFiles::fixture().prepare(run.path(), None, &[]);
    let centred = run.path().join("train-centred.parquet");
    let message = centre_fails(&centred, &run.path().join("test.parquet"));
    assert!(message.contains(&centred.display().to_string()), "{message}");
    assert!(
        message.contains("is a `centred` table (written by `gmrf centre`), expected a `images` table (written by `gmrf ingest`)"),
        "{message}"
    );
    // A bad --apply table is found before the good --fit table's outputs are written.
    let message = centre_fails(&run.path().join("train.parquet"), &run.path().join("mean.parquet"));
    assert!(message.contains("is a `mean` table"), "{message}");
}

#[test]
fn file_that_is_not_parquet_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("train.parquet");
    std::fs::write(&text, "id,label\n1,2\n").unwrap();
    let message = centre_fails(&text, &text);
    assert!(message.contains(&text.display().to_string()), "{message}");
    assert!(message.contains("not a readable Parquet file"), "{message}");
}

#[test]
fn mismatched_apply_outputs_are_refused() {
    let message = fails(common::gmrf(["centre", "--fit", "a", "--mean", "m", "--out", "o", "--apply", "b"]));
    assert!(message.contains("1 --apply table(s) but 0 --apply-out file(s)"), "{message}");
}

#[test]
fn unknown_pipeline_parameter_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("typo.toml");
    std::fs::write(&config, "[centre]\nseeed = 3\n").unwrap();
    let message = fails(common::gmrf([
        "centre".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--fit".as_ref(),
        "x".as_ref(),
        "--mean".as_ref(),
        "m".as_ref(),
        "--out".as_ref(),
        "o".as_ref(),
    ] as [&std::ffi::OsStr; 9]));
    assert!(message.contains("typo.toml: section [centre]"), "{message}");
    assert!(message.contains("seeed"), "{message}");
}

#[test]
fn photo_folder_without_photos_is_refused_and_leaves_no_file() {
    let corpus = tempfile::tempdir().unwrap();
    std::fs::write(corpus.path().join("Thumbs.db"), b"not a photo").unwrap();
    let out = tempfile::tempdir().unwrap();
    let message = fails(common::ingest_photos(corpus.path(), out.path(), None, &[]));
    assert!(message.contains(&corpus.path().display().to_string()), "{message}");
    assert!(message.contains("no JPEG or PNG photo"), "{message}");
    assert!(files_in(out.path()).is_empty(), "left behind: {:?}", files_in(out.path()));

    // Only broken photos: an error too, naming the folder, and still no output at all.
    for name in ["truncated.jpg", "not-a-photo.jpg", "tiny.png"] {
        std::fs::copy(fixture("photos").join(name), corpus.path().join(name)).unwrap();
    }
    let message = fails(common::ingest_photos(corpus.path(), out.path(), None, &[]));
    assert!(message.contains("none of the 3 photo files could be used"), "{message}");
    assert!(files_in(out.path()).is_empty(), "left behind: {:?}", files_in(out.path()));
}

#[test]
fn broken_photos_are_skipped_and_listed_with_their_reasons() {
    let out = tempfile::tempdir().unwrap();
    let run =
        common::ok(common::ingest_photos(&fixture("photos"), out.path(), None, &["--test-fraction", "0.5"]));
    let summary = String::from_utf8_lossy(&run.stderr);
    assert!(
        summary.contains("7 photos, 4 used, 3 skipped (1 corrupt, 1 truncated, 1 too small); 4 train + 4 test patches of 28x28"),
        "{summary}"
    );
    let (skipped, meta) =
        gmrf_table::read::<gmrf_table::Skipped>(&out.path().join("skipped.parquet")).unwrap();
    assert_eq!(skipped.path, ["not-a-photo.jpg", "tiny.png", "truncated.jpg"]);
    assert!(skipped.reason[0].starts_with("corrupt: not a JPEG or PNG file"), "{}", skipped.reason[0]);
    assert!(skipped.reason[1].starts_with("too small: 20x20 pixels"), "{}", skipped.reason[1]);
    assert!(skipped.reason[2].starts_with("truncated: "), "{}", skipped.reason[2]);
    assert_eq!(meta.param("root"), Some("photos"));
    assert_eq!(files_in(out.path()), ["skipped.parquet", "test.parquet", "train.parquet"]);
}

#[test]
fn photo_parameters_come_from_the_pipeline_file_and_flags_override_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("photos.toml");
    std::fs::write(&config, "[ingest]\nper_photo = 3\ncap = 7\ntest_fraction = 0.0\n").unwrap();
    let config = config.display().to_string();
    common::ok(common::ingest_photos(
        &fixture("photos"),
        dir.path(),
        None,
        &["--config", &config, "--cap", "5"],
    ));
    let (train, meta) = gmrf_table::read::<gmrf_table::Images>(&dir.path().join("train.parquet")).unwrap();
    assert_eq!(train.len(), 5, "the flag's cap, not the file's");
    assert_eq!((meta.param("per_photo"), meta.param("cap")), (Some("3"), Some("5")));
    assert_eq!(train.source[..3], ["astronaut.jpg"; 3]);

    std::fs::write(dir.path().join("typo.toml"), "[ingest]\nper_foto = 3\n").unwrap();
    let typo = dir.path().join("typo.toml").display().to_string();
    let message = fails(common::ingest_photos(&fixture("photos"), dir.path(), None, &["--config", &typo]));
    assert!(message.contains("section [ingest]") && message.contains("per_foto"), "{message}");
}

#[test]
fn idx_of_zero_images_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-images-idx3-ubyte");
    std::fs::write(&empty, idx_bytes(&[0, 28, 28], &[])).unwrap();
    let message = ingest_fails(&empty, &fixture("mnist/train-labels-idx1-ubyte.gz"));
    assert!(message.contains(&empty.display().to_string()), "{message}");
    assert!(message.contains("its header declares 0 images (of 28x28): nothing to ingest"), "{message}");
}

#[test]
fn gzip_stream_unpacking_beyond_its_header_is_refused() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    // One promised image, then 30 MB more: the decoder stops one byte past the promise.
    let mut bytes = idx_bytes(&[1, 28, 28], &[0; 784]);
    bytes.resize(30_000_000, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let bomb = dir.path().join("bomb-images-idx3-ubyte.gz");
    std::fs::write(&bomb, gz.finish().unwrap()).unwrap();
    let message = ingest_fails(&bomb, &fixture("mnist/train-labels-idx1-ubyte.gz"));
    assert!(message.contains(&bomb.display().to_string()), "{message}");
    assert!(message.contains("unpacks to more than the 1 x 28 x 28 = 784 bytes of data"), "{message}");
}

/// No part of a `a: b: c` message is repeated (an OS or Parquet error printed twice).
fn assert_no_repeated_part(message: &str) {
    let parts: Vec<&str> = message.trim().split(": ").collect();
    for (k, part) in parts.iter().enumerate() {
        assert!(!parts[k + 1..].contains(part), "`{part}` is repeated in: {message}");
    }
}

#[test]
fn os_and_parquet_errors_are_printed_once_and_an_output_folder_is_named_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("runs");
    std::fs::create_dir(&folder).unwrap();

    // A folder given as a table to read: the OS error once.
    let message = centre_fails(&folder, &folder);
    assert!(message.contains(&folder.display().to_string()), "{message}");
    assert_eq!(message.matches("os error 21").count(), 1, "{message}");
    assert_no_repeated_part(&message);

    // A file that is not Parquet: the Parquet error once.
    let text = dir.path().join("train.parquet");
    std::fs::write(&text, "id,label\n1,2\n").unwrap();
    let message = centre_fails(&text, &text);
    assert!(message.contains("not a readable Parquet file"), "{message}");
    assert_no_repeated_part(&message);

    // A missing input: named, with the OS error once.
    let missing = dir.path().join("no-such-images");
    let message = ingest_fails(&missing, &fixture("mnist/train-labels-idx1-ubyte.gz"));
    assert_eq!(message.matches("No such file or directory").count(), 1, "{message}");

    // --out naming an existing folder, and a path under a file, said in words.
    let message = fails(common::ingest_fixture(&folder));
    assert!(message.contains(&format!("{}: --out is a folder, not a file", folder.display())), "{message}");
    assert!(!message.contains("os error"), "{message}");
    let message = fails(common::ingest_fixture(&text.join("train.parquet")));
    assert!(
        message.contains(&format!("cannot be created: {} is a file, not a folder", text.display())),
        "{message}"
    );
    assert_eq!(files_in(&folder), Vec::<String>::new());
}
