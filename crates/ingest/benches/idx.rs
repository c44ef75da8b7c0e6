//! MNIST ingest against its practical limit, measured in the same run:
//! reading the training file's bytes (the baseline), decoding it into an `images` table, and
//! decoding and writing the Parquet table, as `gmrf ingest mnist` does. Reports medians of
//! interleaved repetitions and each as a ratio to the baseline.
//!
//! `cargo bench -p gmrf-ingest --bench idx -- DATA_DIR` (DATA_DIR holds the raw MNIST files).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use gmrf_table::{Meta, Stage};

const REPEATS: usize = 9;

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data/mnist"));
    let images = dir.join("train-images-idx3-ubyte");
    let labels = dir.join("train-labels-idx1-ubyte");
    if !images.exists() {
        eprintln!("bench idx: {} is absent; run `just mnist-data` first", images.display());
        std::process::exit(1);
    }
    let out = tempfile::tempdir().expect("temporary folder");
    let (mut read, mut decode, mut ingest) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let t = Instant::now();
        black_box(
            std::fs::read(&images).expect("readable").len() + std::fs::read(&labels).expect("readable").len(),
        );
        read.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        black_box(gmrf_ingest::mnist(&images, &labels, "train").expect("valid MNIST"));
        decode.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let table = gmrf_ingest::mnist(&images, &labels, "train").expect("valid MNIST");
        let meta = Meta::new(Stage::Images, table.height, table.width);
        let pending = gmrf_table::write(&out.path().join("train.parquet"), &table, &meta).expect("writable");
        ingest.push(t.elapsed().as_secs_f64());
        drop(pending);
    }
    let base = median(read);
    println!("MNIST train ingest ({REPEATS} repetitions, medians; ratio = time / time to read the bytes)");
    println!("  read the IDX bytes (baseline)      {:>8.1} ms   1.00x", base * 1e3);
    for (name, times) in [("decode into an images table", decode), ("decode + write Parquet (zstd)", ingest)]
    {
        let m = median(times);
        println!("  {name:<34} {:>8.1} ms   {:.2}x", m * 1e3, m / base);
    }
}
