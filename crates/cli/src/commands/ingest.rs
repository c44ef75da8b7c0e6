//! `gmrf ingest mnist` and `gmrf ingest photos`.

use gmrf_ingest::{Corpus, PhotoOptions};
use gmrf_table::{Meta, Stage};

use super::file_name;
use crate::args::{IngestMnistArgs, IngestPhotosArgs};
use crate::config::resolve;
use crate::progress::{Stopwatch, bar, spinner};

pub fn mnist(args: IngestMnistArgs) -> anyhow::Result<()> {
    let clock = Stopwatch::start("ingest mnist");
    let split = args.split.clone().unwrap_or_else(|| infer_split(&file_name(&args.images)).into());
    gmrf_table::check_outputs(
        &[("--out", args.out.as_path())],
        &[("--images", args.images.as_path()), ("--labels", args.labels.as_path())],
    )?;
    let spin = spinner("reading IDX files");
    let images = gmrf_ingest::mnist(&args.images, &args.labels, &split)?;
    spin.set_message(format!("writing {}", args.out.display()));
    let meta = Meta::new(Stage::Images, images.height, images.width)
        .with("ingest", "mnist")
        .with("split", &split)
        .with("images_file", file_name(&args.images))
        .with("labels_file", file_name(&args.labels));
    let written = gmrf_table::write(&args.out, &images, &meta)?.commit()?;
    spin.finish_and_clear();
    clock.summary(&format!(
        "wrote {} ({} images of {}x{}, split `{split}`)",
        written.display(),
        images.len(),
        images.height,
        images.width
    ));
    Ok(())
}

pub fn photos(args: IngestPhotosArgs) -> anyhow::Result<()> {
    let clock = Stopwatch::start("ingest photos");
    let p = resolve(args.params, args.config.as_deref(), "ingest")?;
    let inputs: Vec<(&str, &std::path::Path)> =
        args.config.iter().map(|c| ("--config", c.as_path())).collect();
    gmrf_table::check_outputs(
        &[
            ("--train", args.train.as_path()),
            ("--test", args.test.as_path()),
            ("--skipped", args.skipped.as_path()),
        ],
        &inputs,
    )?;
    let defaults = PhotoOptions::default();
    let options = PhotoOptions {
        seed: p.seed.unwrap_or(defaults.seed),
        patch_size: p.patch_size.unwrap_or(defaults.patch_size),
        per_photo: p.per_photo.unwrap_or(defaults.per_photo),
        cap: p.cap.unwrap_or(defaults.cap),
        rate: p.rate.unwrap_or(defaults.rate),
        test_fraction: p.test_fraction.unwrap_or(defaults.test_fraction),
    };
    let spin = spinner(&format!("listing photos under {}", args.root.display()));
    let corpus = Corpus::open(&args.root)?;
    spin.finish_and_clear();
    let progress = bar(corpus.len() as u64, "photos");
    let patches = corpus.patches(&options, &|n| progress.inc(n as u64))?;
    progress.finish_and_clear();

    let size = options.patch_size;
    // Names, not full paths, so that the bytes do not depend on where the corpus lives.
    let run_meta = |stage| {
        Meta::new(stage, size, size)
            .with("ingest", "photos")
            .with("root", file_name(&args.root))
            .with("seed", options.seed)
            .with("patch_size", options.patch_size)
            .with("per_photo", options.per_photo)
            .with("cap", options.cap)
            .with("rate", options.rate)
            .with("test_fraction", options.test_fraction)
            .with("photos_found", patches.photos_found)
            .with("photos_used", patches.photos_used)
            .with("photos_skipped", patches.skipped.len())
    };
    let pending = vec![
        gmrf_table::write(&args.train, &patches.train, &run_meta(Stage::Images).with("split", "train"))?,
        gmrf_table::write(&args.test, &patches.test, &run_meta(Stage::Images).with("split", "test"))?,
        gmrf_table::write(&args.skipped, &patches.skipped_table(), &run_meta(Stage::Skipped))?,
    ];
    gmrf_table::commit_all(pending)?;

    let skipped = match patches.skipped_by_kind() {
        kinds if kinds.is_empty() => "0 skipped".to_string(),
        kinds => {
            let each: Vec<String> = kinds.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
            format!("{} skipped ({})", patches.skipped.len(), each.join(", "))
        }
    };
    let cap = if patches.photos_after_cap > 0 {
        format!("; cap of {} reached, {} photos not read", options.cap, patches.photos_after_cap)
    } else {
        String::new()
    };
    if patches.test.is_empty() && options.test_fraction > 0.0 {
        eprintln!(
            "ingest photos: warning: no photo fell in the test fraction {}; the test table is empty",
            options.test_fraction
        );
    }
    clock.summary(&format!(
        "{} photos, {} used, {skipped}; {} train + {} test patches of {size}x{size}{cap}; wrote {}, {}, {}",
        patches.photos_found,
        patches.photos_used,
        patches.train.len(),
        patches.test.len(),
        args.train.display(),
        args.test.display(),
        args.skipped.display()
    ));
    Ok(())
}

/// MNIST's test files are `t10k-*`; Fashion-MNIST's too; others often say `test`.
fn infer_split(images_file: &str) -> &'static str {
    let name = images_file.to_ascii_lowercase();
    if name.starts_with("t10k") || name.contains("test") { "test" } else { "train" }
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_is_inferred_from_mnist_file_names() {
        assert_eq!(super::infer_split("t10k-images-idx3-ubyte.gz"), "test");
        assert_eq!(super::infer_split("train-images-idx3-ubyte"), "train");
        assert_eq!(super::infer_split("my-Test-images"), "test");
    }
}
