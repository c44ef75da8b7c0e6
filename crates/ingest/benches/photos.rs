//! Photo ingest against its practical limit, measured in the same run: a decode-only loop (read
//! each photo's bytes and decode it with the `image` crate, in parallel with rayon over every
//! core), and the ingest itself (walk, read, decode, grayscale, tile choice, split) over the same
//! files. Reports medians of interleaved repetitions as photos per second and the ingest's rate as
//! a fraction of decode-only's (target: at least 70%).
//!
//! `cargo bench -p gmrf-ingest --bench photos -- PHOTO_DIR` (e.g. ../shared/data/photos/bsds500).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use gmrf_ingest::{Corpus, PhotoOptions};
use rayon::prelude::*;

const REPEATS: usize = 7;

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let Some(root) = std::env::args().skip(1).find(|a| !a.starts_with('-')).map(PathBuf::from) else {
        eprintln!("bench photos: give a folder of photos, e.g. ../shared/data/photos/bsds500; skipping");
        return;
    };
    if !root.is_dir() {
        eprintln!("bench photos: {} is absent; skipping", root.display());
        return;
    }
    let corpus = Corpus::open(&root).expect("a readable folder");
    let files: Vec<PathBuf> = corpus.files().map(PathBuf::from).collect();
    let options = PhotoOptions::default();
    let decode_only = || {
        files
            .par_iter()
            .map(|path| {
                let bytes = std::fs::read(path).expect("readable");
                image::load_from_memory(&bytes).map(|image| image.width() as usize).unwrap_or(0)
            })
            .sum::<usize>()
    };
    let ingest = || gmrf_ingest::photos(&root, &options, &|_| {}).expect("usable photos");
    // One untimed pass of each: the page cache holds the files from here on.
    black_box(decode_only());
    let patches = ingest();

    let (mut decode, mut full) = (Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let t = Instant::now();
        black_box(decode_only());
        decode.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        black_box(ingest());
        full.push(t.elapsed().as_secs_f64());
    }
    let n = files.len() as f64;
    let (decode, full) = (median(decode), median(full));
    println!(
        "photo ingest of {} ({} photos, {} patches; {REPEATS} repetitions, medians, {} threads)",
        root.display(),
        files.len(),
        patches.train.len() + patches.test.len(),
        rayon::current_num_threads()
    );
    println!("  decode only (baseline)      {:>8.1} ms  {:>7.0} photos/s", decode * 1e3, n / decode);
    println!(
        "  ingest                      {:>8.1} ms  {:>7.0} photos/s  {:.0}% of decode-only",
        full * 1e3,
        n / full,
        100.0 * decode / full
    );
}
