//! The photo ingest on synthetic photos whose tiles are known, on the committed fixtures (real
//! photos and broken files), and on BSDS500 where `../shared/data` has it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gmrf_ingest::photos::{SkipKind, luma};
use gmrf_ingest::{IngestError, PhotoOptions, PhotoPatches, photos};
use gmrf_table::Images;
use image::{GrayImage, RgbImage};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/photos")
}

fn ingest(root: &Path, options: &PhotoOptions) -> PhotoPatches {
    photos(root, options, &|_| {}).unwrap()
}

/// Every patch of a table with its provenance: (source, top, left) → pixels.
fn by_position(images: &Images) -> BTreeMap<(String, u16, u16), Vec<u8>> {
    (0..images.len())
        .map(|r| {
            let key = (images.source[r].clone(), images.top[r].unwrap(), images.left[r].unwrap());
            (key, images.pixels.row(r).to_vec())
        })
        .collect()
}

/// The grey level of tile (i, j) in the synthetic photos: distinct for every tile.
fn level(i: usize, j: usize) -> u8 {
    (10 + 20 * (i * 4 + j)) as u8
}

/// A 3×4-tile grey photo (89×119: 5 and 7 pixels of remainder at the bottom and right, set to
/// 255) where tile (i, j) is the constant `level(i, j)`.
fn tiled_grey() -> GrayImage {
    GrayImage::from_fn(4 * 28 + 7, 3 * 28 + 5, |x, y| {
        let (i, j) = (y as usize / 28, x as usize / 28);
        if i < 3 && j < 4 { image::Luma([level(i, j)]) } else { image::Luma([255]) }
    })
}

#[test]
fn grey_tiles_come_out_constant_aligned_distinct_and_placed() {
    let dir = tempfile::tempdir().unwrap();
    for k in 0..6 {
        tiled_grey().save(dir.path().join(format!("photo-{k}.png"))).unwrap();
    }
    let out = ingest(dir.path(), &PhotoOptions { test_fraction: 0.0, ..PhotoOptions::default() });
    assert_eq!((out.train.len(), out.test.len(), out.photos_used), (12, 0, 6));
    assert_eq!((out.train.height, out.train.width), (28, 28));
    for r in 0..12 {
        let (top, left) = (out.train.top[r].unwrap() as usize, out.train.left[r].unwrap() as usize);
        // Aligned at the top-left corner, never in the 5- and 7-pixel remainder.
        assert_eq!((top % 28, left % 28), (0, 0), "row {r}");
        assert!(top < 3 * 28 && left < 4 * 28, "row {r}: ({top}, {left}) is in the remainder");
        // A whole tile: every pixel is that tile's grey level.
        let expected = level(top / 28, left / 28);
        assert!(out.train.pixels.row(r).iter().all(|&p| p == expected), "row {r}");
        assert_eq!(out.train.label[r], None);
    }
    // Two distinct tiles per photo, both from that photo, with ids in corpus order.
    for k in 0..6 {
        let rows: Vec<usize> = (0..12).filter(|&r| out.train.source[r] == format!("photo-{k}.png")).collect();
        assert_eq!(rows, vec![2 * k, 2 * k + 1]);
        assert_ne!(
            (out.train.top[rows[0]], out.train.left[rows[0]]),
            (out.train.top[rows[1]], out.train.left[rows[1]])
        );
    }
    assert_eq!(out.train.id, (0..12).collect::<Vec<u32>>());
    // Different paths, different draws: the six photos do not all give the same two tiles.
    let chosen: BTreeSet<_> = (0..12).map(|r| (out.train.top[r], out.train.left[r])).collect();
    assert!(chosen.len() > 2, "{chosen:?}");
}

#[test]
fn the_cap_counts_patches_over_both_tables_in_corpus_order() {
    let dir = tempfile::tempdir().unwrap();
    for k in 0..6 {
        tiled_grey().save(dir.path().join(format!("photo-{k}.png"))).unwrap();
    }
    let options = PhotoOptions { cap: 5, test_fraction: 0.5, ..PhotoOptions::default() };
    let out = ingest(dir.path(), &options);
    assert_eq!(out.train.len() + out.test.len(), 5);
    // Photos 0, 1 give two patches, photo 2 the first of its two, photos 3 to 5 are not read.
    let mut ids: Vec<(u32, String)> = out.train.id.iter().copied().zip(out.train.source.clone()).collect();
    ids.extend(out.test.id.iter().copied().zip(out.test.source.clone()));
    ids.sort();
    let sources: Vec<&str> = ids.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(sources, ["photo-0.png", "photo-0.png", "photo-1.png", "photo-1.png", "photo-2.png"]);
    assert_eq!((out.photos_used, out.photos_after_cap), (3, 3));
    // The partial photo's patch is its first-drawn one: the same as with no cap.
    let uncapped = ingest(dir.path(), &PhotoOptions { cap: 50_000, ..options });
    let all = [by_position(&uncapped.train), by_position(&uncapped.test)];
    for capped in [by_position(&out.train), by_position(&out.test)] {
        for (key, pixels) in capped {
            assert!(all.iter().any(|t| t.get(&key) == Some(&pixels)), "{key:?}");
        }
    }
}

#[test]
fn colour_photo_is_converted_with_tensorflows_luma() {
    // 2×2 tiles of distinct colours; every tile drawn (per_photo = 4).
    let colours = [[255u8, 0, 0], [0, 255, 0], [30, 144, 255], [200, 120, 40]];
    let photo =
        RgbImage::from_fn(56, 56, |x, y| image::Rgb(colours[(y as usize / 28) * 2 + x as usize / 28]));
    let dir = tempfile::tempdir().unwrap();
    photo.save(dir.path().join("colour.png")).unwrap();
    let out =
        ingest(dir.path(), &PhotoOptions { per_photo: 4, test_fraction: 0.0, ..PhotoOptions::default() });
    assert_eq!(out.train.len(), 4);
    for r in 0..4 {
        let (top, left) = (out.train.top[r].unwrap() as usize, out.train.left[r].unwrap() as usize);
        let [cr, cg, cb] = colours[(top / 28) * 2 + left / 28];
        // TensorFlow's rgb_to_grayscale, recomputed here in f64: weights (0.2989, 0.5870, 0.1140)
        // on c/255, times 255.5, truncated. None of these colours is within f32 rounding of a
        // level boundary, so f32 and f64 agree.
        let y = (0.2989 * cr as f64 + 0.5870 * cg as f64 + 0.1140 * cb as f64) / 255.0;
        let expected = (y * 255.5).floor() as u8;
        // BT.601 rounded to nearest: TensorFlow's truncation is at most one level below it.
        let rounded = (0.299 * cr as f64 + 0.587 * cg as f64 + 0.114 * cb as f64).round() as u8;
        assert!(expected <= rounded && rounded - expected <= 1, "{expected} vs {rounded}");
        assert_eq!(luma(cr, cg, cb), expected);
        assert!(out.train.pixels.row(r).iter().all(|&p| p == expected), "tile at ({top}, {left})");
    }
    assert_eq!(luma(0, 255, 0), 149, "pure green: 0.587·255.5 = 149.98, truncated");
}

#[test]
fn a_dilated_patch_takes_every_rate_th_pixel_of_its_span() {
    // Pixel (y, x) holds (3y + 5x) mod 256, so every pixel of a patch tells where it came from.
    let f = |y: usize, x: usize| ((3 * y + 5 * x) % 256) as u8;
    let photo = GrayImage::from_fn(130, 120, |x, y| image::Luma([f(y as usize, x as usize)]));
    let dir = tempfile::tempdir().unwrap();
    photo.save(dir.path().join("ramp.png")).unwrap();
    // Rate 2: span 55, so 2×2 tiles at 0 and 55; the 20 and 10 remaining pixels are dropped.
    let options = PhotoOptions { rate: 2, per_photo: 10, test_fraction: 0.0, ..PhotoOptions::default() };
    let out = ingest(dir.path(), &options);
    let mut positions: Vec<(u16, u16)> =
        (0..out.train.len()).map(|r| (out.train.top[r].unwrap(), out.train.left[r].unwrap())).collect();
    positions.sort();
    assert_eq!(positions, [(0, 0), (0, 55), (55, 0), (55, 55)]);
    for r in 0..4 {
        let (top, left) = (out.train.top[r].unwrap() as usize, out.train.left[r].unwrap() as usize);
        let row = out.train.pixels.row(r);
        for a in 0..28 {
            for b in 0..28 {
                assert_eq!(row[a * 28 + b], f(top + 2 * a, left + 2 * b), "({top}, {left}) + 2·({a}, {b})");
            }
        }
    }
}

#[test]
fn output_is_the_same_on_one_and_two_threads() {
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| ingest(&fixtures(), &PhotoOptions { test_fraction: 0.5, ..PhotoOptions::default() }))
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one.train, two.train);
    assert_eq!(one.test, two.test);
    assert_eq!(one.skipped, two.skipped);
}

/// Copies the fixtures' good photos into a new folder.
fn good_photos() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    for name in ["astronaut.jpg", "chelsea.png", "coffee.jpg", "nested/rocket.JPG"] {
        std::fs::copy(fixtures().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

#[test]
fn adding_a_photo_does_not_change_the_tiles_chosen_from_the_others() {
    let dir = good_photos();
    let options = PhotoOptions { test_fraction: 0.3, seed: 7, ..PhotoOptions::default() };
    let before = ingest(dir.path(), &options);
    // A new photo that sorts first, shifting every later photo's ids and position in the corpus.
    std::fs::copy(fixtures().join("coffee.jpg"), dir.path().join("aaa-new.jpg")).unwrap();
    let after = ingest(dir.path(), &options);
    assert_eq!(after.photos_used, before.photos_used + 1);
    for (old, new) in [(&before.train, &after.train), (&before.test, &after.test)] {
        let (old, new) = (by_position(old), by_position(new));
        for (key, pixels) in &old {
            assert_eq!(new.get(key), Some(pixels), "{key:?} changed or moved to the other table");
        }
        assert!(new.keys().filter(|k| !old.contains_key(*k)).all(|(source, _, _)| source == "aaa-new.jpg"));
    }
}

#[test]
fn the_split_is_by_photo() {
    let dir = good_photos();
    for seed in 0..8 {
        let out = ingest(dir.path(), &PhotoOptions { seed, test_fraction: 0.5, ..PhotoOptions::default() });
        let train: BTreeSet<_> = out.train.source.iter().collect();
        let test: BTreeSet<_> = out.test.source.iter().collect();
        assert!(train.is_disjoint(&test), "seed {seed}: {train:?} / {test:?}");
        assert_eq!(train.len() + test.len(), 4);
    }
}

#[test]
fn broken_photos_are_skipped_with_their_reason_and_other_files_ignored() {
    let out = ingest(&fixtures(), &PhotoOptions { test_fraction: 0.5, ..PhotoOptions::default() });
    let skipped: Vec<(&str, SkipKind)> = out.skipped.iter().map(|s| (s.path.as_str(), s.kind)).collect();
    assert_eq!(
        skipped,
        [
            ("not-a-photo.jpg", SkipKind::Corrupt),
            ("tiny.png", SkipKind::TooSmall),
            ("truncated.jpg", SkipKind::Truncated),
        ]
    );
    assert_eq!(
        out.skipped[1].reason(),
        "too small: 20x20 pixels, a tile needs 28x28 (patch size 28, rate 1)"
    );
    // Thumbs.db is neither a photo nor skipped; the upper-case .JPG in a subfolder is a photo.
    assert_eq!((out.photos_found, out.photos_used), (7, 4));
    let sources: BTreeSet<&str> =
        out.train.source.iter().chain(&out.test.source).map(String::as_str).collect();
    assert_eq!(sources, BTreeSet::from(["astronaut.jpg", "chelsea.png", "coffee.jpg", "nested/rocket.JPG"]));
    let table = out.skipped_table();
    assert_eq!(table.path, ["not-a-photo.jpg", "tiny.png", "truncated.jpg"]);
    assert!(table.reason[0].starts_with("corrupt: "), "{}", table.reason[0]);
    assert!(table.reason[2].starts_with("truncated: "), "{}", table.reason[2]);
}

#[test]
fn a_corpus_without_a_usable_photo_is_an_error_naming_the_folder() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("Thumbs.db"), empty.path().join("Thumbs.db")).unwrap();
    let error = photos(empty.path(), &PhotoOptions::default(), &|_| {}).unwrap_err();
    assert!(matches!(error, IngestError::NoPhotos { .. }), "{error}");
    assert!(error.to_string().contains(&empty.path().display().to_string()), "{error}");

    let broken = tempfile::tempdir().unwrap();
    for name in ["tiny.png", "truncated.jpg"] {
        std::fs::copy(fixtures().join(name), broken.path().join(name)).unwrap();
    }
    let error = photos(broken.path(), &PhotoOptions::default(), &|_| {}).unwrap_err().to_string();
    assert!(error.contains(&broken.path().display().to_string()), "{error}");
    assert!(error.contains("none of the 2 photo files could be used"), "{error}");

    let missing = empty.path().join("no-such-folder");
    let error = photos(&missing, &PhotoOptions::default(), &|_| {}).unwrap_err().to_string();
    assert!(error.contains("no-such-folder"), "{error}");
}

/// BSDS500 (../shared/data/photos/bsds500): 500 real photos, 481×321 or 321×481.
fn bsds500() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/photos/bsds500");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: {} is absent (BSDS500 is only on the project's build machine)", dir.display());
        None
    }
}

#[test]
fn bsds500_gives_two_patches_from_every_photo() {
    let Some(root) = bsds500() else { return };
    let out = ingest(&root, &PhotoOptions::default());
    assert_eq!((out.photos_found, out.photos_used, out.skipped.len()), (500, 500, 0));
    assert_eq!(out.train.len() + out.test.len(), 1000);
    // About 10% of the photos held out: Binomial(500, 0.1) has standard deviation 6.7; allow 4.
    let test_photos = out.test.len() / 2;
    assert!((50usize.abs_diff(test_photos)) < 27, "{test_photos} test photos");
    for images in [&out.train, &out.test] {
        for r in 0..images.len() {
            assert!(images.source[r].ends_with(".jpg") && images.source[r].contains('/'));
            let (top, left) = (images.top[r].unwrap() as usize, images.left[r].unwrap() as usize);
            assert!(top % 28 == 0 && left % 28 == 0 && top + 28 <= 481 && left + 28 <= 481);
        }
    }
    // Natural photos: patches vary, unlike a decoding that fell back to grey.
    let flat = (0..out.train.len())
        .filter(|&r| out.train.pixels.row(r).iter().all(|&p| p == out.train.pixels[[r, 0]]))
        .count();
    assert!(flat < out.train.len() / 20, "{flat} constant patches");
}
