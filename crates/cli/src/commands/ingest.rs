//! `gmrf ingest mnist`.

use gmrf_table::{Meta, Stage};

use super::file_name;
use crate::args::IngestMnistArgs;
use crate::progress::{Stopwatch, spinner};

pub fn mnist(args: IngestMnistArgs) -> anyhow::Result<()> {
    let clock = Stopwatch::start("ingest mnist");
    let split = args.split.clone().unwrap_or_else(|| infer_split(&file_name(&args.images)).into());
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
