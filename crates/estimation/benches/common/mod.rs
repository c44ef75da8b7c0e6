//! What both estimation benches read: the 60,000 MNIST training digits, centred.

use gmrf_centring::Centring;
use ndarray::Array2;

/// The training digits of `dir`'s raw IDX files, through the ingest and centring stages with
/// their defaults (dequantised (pixel + u)/256, centred on the training mean): the table that
/// `gmrf ingest` and `gmrf centre` write with their default seed. Exits with the stage's message
/// if a file is missing or malformed.
pub fn load_centred_training_images(dir: &std::path::Path) -> Array2<f32> {
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("{e}");
        std::process::exit(1)
    };
    let images = gmrf_ingest::mnist(
        &dir.join("train-images-idx3-ubyte"),
        &dir.join("train-labels-idx1-ubyte"),
        "train",
    )
    .unwrap_or_else(|e| fail(&e));
    let centring = Centring::default();
    let mean = centring.fit_mean(&images).unwrap_or_else(|e| fail(&e));
    centring.centre(&images, &mean, &|_| {}).unwrap_or_else(|e| fail(&e)).x
}
