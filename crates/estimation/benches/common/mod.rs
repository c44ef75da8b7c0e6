//! What both estimation benches read: the 60,000 MNIST training digits, centred.

use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};

/// The training digits of `dir`'s raw IDX file, dequantised ((pixel + u)/256, u from ChaCha8
/// seeded 0) and centred on their mean image. Exits with a message if the file is unreadable.
pub fn load_centred_training_images(dir: &std::path::Path) -> Array2<f32> {
    let path = dir.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("cannot read {}: {e}", path.display());
        std::process::exit(1)
    });
    let n = 60_000;
    assert!(bytes.len() >= 16 + n * 784, "{} is too short", path.display());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x = Array2::from_shape_fn((n, 784), |(r, c)| {
        (f32::from(bytes[16 + r * 784 + c]) + rng.random::<f32>()) / 256.0
    });
    let mean = x.mean_axis(Axis(0)).expect("rows");
    x - &mean
}
