//! A photo corpus (Flickr30k, BSDS500, any folder of JPEG and PNG files) as 8-bit grayscale
//! patches: walk → decode → grayscale → tile → pick a few tiles per photo → `images` tables.
//!
//! What each step does, and why:
//!
//! - **Walk.** Every file under the root whose extension is `jpg`, `jpeg` or `png` (any case) is a
//!   photo; everything else (`Thumbs.db`, captions, `.DS_Store`) is ignored. Photos are processed
//!   in *corpus order*: sorted by their path relative to the root, compared as UTF-8 strings with
//!   `/` separators, so the order is the same on every file system.
//! - **Decode** with the `image` crate (JPEG and PNG only), by content, falling back to the
//!   extension. Grey photos are used as they are; every other colour type is converted to 8-bit
//!   RGB first (alpha dropped, 16-bit scaled), as TensorFlow's `decode_*(channels=3)` does.
//! - **Grayscale** ([`luma`]): TensorFlow's `tf.image.rgb_to_grayscale`, which the original used,
//!   computed the same way: float32 `c/255`, weights (0.2989, 0.5870, 0.1140) — BT.601's
//!   (0.299, 0.587, 0.114) as TensorFlow writes them — and back to 8 bits by `convert_image_dtype`,
//!   which multiplies by 255.5 and *truncates*. So a grey pixel (v, v, v) stays v, and colours may
//!   land one level below `round(0.299 R + 0.587 G + 0.114 B)` (pure green: 149, not 150).
//! - **Tiles** ([`TileGrid`]): a patch of size `p` at dilation rate `r` takes every `r`-th pixel
//!   over a span of `(p − 1)·r + 1` pixels. Tiles are non-overlapping spans aligned at the top-left
//!   corner: ⌊H/span⌋ × ⌊W/span⌋ of them, the remainder on the right and bottom dropped. This is
//!   `tf.image.extract_patches(sizes = p, rates = r, strides = span, padding = "VALID")`, whose
//!   patch count per axis is ⌊(H − span)/stride⌋ + 1 = ⌊H/span⌋. At rate 1 the tiles are plain
//!   `p × p` blocks. The original used rate 6 (a 163-pixel span, so a 500×375 photo has 3×2 tiles).
//! - **Choice**: `per_photo` distinct tiles (all of them if the photo has fewer), drawn without
//!   replacement by an RNG (ChaCha8) seeded from a stable hash of (seed, relative path), so a
//!   photo's tiles depend on nothing else: not on thread count, not on which other photos exist.
//!   A photo's patches are written in the order they were drawn.
//! - **Split** by photo, never by patch: a photo goes to the test table when
//!   [`gmrf_table::in_holdout`]`(seed, relative path, 0, test_fraction)` says so, so the patches of
//!   one photo are always on the same side.
//! - **Cap**: at most `cap` patches are kept, counted over *both* tables together, in corpus order;
//!   the photo that reaches the cap contributes its first-drawn patches only, and later photos
//!   are not read. `id` numbers the kept patches 0, 1, 2, … in corpus order, across both tables,
//!   so an id names one patch of the corpus whichever table holds it.
//! - **Bad photos** (unreadable, corrupt, truncated, smaller than one tile) are skipped with a
//!   reason ([`Skip`]), never fatal; a corpus with no photo, or no usable photo, is an error.
//!
//! Photos are decoded in parallel (rayon) in batches of [`BATCH`], each photo reduced to its few
//! patches before the next is decoded, so memory stays flat however large the corpus.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use gmrf_table::{Images, Skipped, in_holdout, stable_hash};
use image::{DynamicImage, ImageError, ImageFormat, ImageReader};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::IngestError;

/// Photos decoded per parallel batch: enough to keep every core busy, few enough that the work
/// wasted past the cap stays small. Output does not depend on it.
pub const BATCH: usize = 256;

/// The parameters of a photo ingest; [`Default`] gives the original's choices.
#[derive(Clone, Debug, PartialEq)]
pub struct PhotoOptions {
    /// Seed of the tile choice and of the train/test split [default: 0].
    pub seed: u64,
    /// Patch side in pixels [default: 28].
    pub patch_size: usize,
    /// Patches drawn per photo [default: 2].
    pub per_photo: usize,
    /// Most patches kept, over both tables, in corpus order [default: 50,000].
    pub cap: usize,
    /// Dilation rate: a patch takes every `rate`-th pixel [default: 1].
    pub rate: usize,
    /// Fraction of photos whose patches go to the test table [default: 0.1].
    pub test_fraction: f64,
}

impl Default for PhotoOptions {
    fn default() -> Self {
        PhotoOptions { seed: 0, patch_size: 28, per_photo: 2, cap: 50_000, rate: 1, test_fraction: 0.1 }
    }
}

impl PhotoOptions {
    fn check(&self) -> Result<(), IngestError> {
        let bad = |problem: String| Err(IngestError::Options(problem));
        if !(1..=255).contains(&self.patch_size) {
            return bad(format!("patch size must be 1 to 255 pixels, got {}", self.patch_size));
        }
        if self.per_photo == 0 {
            return bad("patches per photo must be at least 1".into());
        }
        if self.cap == 0 || self.cap > u32::MAX as usize {
            return bad(format!("the cap must be 1 to {}, got {}", u32::MAX, self.cap));
        }
        if self.rate == 0 {
            return bad("the dilation rate must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.test_fraction) {
            return bad(format!("the test fraction must be in [0, 1), got {}", self.test_fraction));
        }
        Ok(())
    }

    /// The tile grid of a `height × width` photo under these options.
    pub fn grid(&self, height: usize, width: usize) -> TileGrid {
        TileGrid::new(height, width, self.patch_size, self.rate)
    }
}

/// The non-overlapping tiles of a photo (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileGrid {
    /// Tiles down and across.
    pub rows: usize,
    pub cols: usize,
    /// Pixels a tile spans along each axis, `(size − 1)·rate + 1`, also the stride between tiles.
    pub span: usize,
    pub size: usize,
    pub rate: usize,
}

impl TileGrid {
    pub fn new(height: usize, width: usize, size: usize, rate: usize) -> Self {
        let span = (size - 1) * rate + 1;
        TileGrid { rows: height / span, cols: width / span, span, size, rate }
    }

    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (top, left) of tile `k`, tiles numbered row-major.
    pub fn position(&self, k: usize) -> (usize, usize) {
        ((k / self.cols) * self.span, (k % self.cols) * self.span)
    }
}

/// The 8-bit grey level of an RGB pixel, exactly as TensorFlow's `rgb_to_grayscale` on `uint8`
/// computes it: float32 `c · (1/255)`, the weighted sum with (0.2989, 0.5870, 0.1140), then
/// `convert_image_dtype` back to `uint8`, which multiplies by 255.5 and truncates.
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    const TO_FLOAT: f32 = 1.0 / 255.0;
    let y = (r as f32 * TO_FLOAT) * 0.2989 + (g as f32 * TO_FLOAT) * 0.5870 + (b as f32 * TO_FLOAT) * 0.1140;
    // `as` saturates: y·255.5 < 255.5 for y ≤ 0.9999, so this is TensorFlow's plain cast.
    (y * 255.5) as u8
}

/// A decoded photo, grey or RGB, from which tiles are read.
pub enum Photo {
    Grey(image::GrayImage),
    Rgb(image::RgbImage),
}

impl Photo {
    pub fn from_image(image: DynamicImage) -> Photo {
        match image {
            DynamicImage::ImageLuma8(grey) => Photo::Grey(grey),
            DynamicImage::ImageRgb8(rgb) => Photo::Rgb(rgb),
            other => Photo::Rgb(other.to_rgb8()),
        }
    }

    /// (height, width).
    pub fn size(&self) -> (usize, usize) {
        let (w, h) = match self {
            Photo::Grey(g) => g.dimensions(),
            Photo::Rgb(c) => c.dimensions(),
        };
        (h as usize, w as usize)
    }

    /// The grey level at (row, col).
    pub fn grey(&self, row: usize, col: usize) -> u8 {
        match self {
            Photo::Grey(g) => g.get_pixel(col as u32, row as u32).0[0],
            Photo::Rgb(c) => {
                let [r, g, b] = c.get_pixel(col as u32, row as u32).0;
                luma(r, g, b)
            }
        }
    }

    /// Appends the `size²` grey pixels of the tile at (top, left), row-major, to `out`.
    pub fn tile(&self, grid: &TileGrid, top: usize, left: usize, out: &mut Vec<u8>) {
        for a in 0..grid.size {
            for b in 0..grid.size {
                out.push(self.grey(top + a * grid.rate, left + b * grid.rate));
            }
        }
    }
}

/// Why a photo was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipKind {
    /// The file (or a folder on the way) could not be read.
    Unreadable,
    /// Not a decodable JPEG or PNG.
    Corrupt,
    /// The data stops before the image is complete.
    Truncated,
    /// Smaller than one tile.
    TooSmall,
    /// Larger than the table's `top`/`left` (u16) can address.
    TooLarge,
}

impl SkipKind {
    pub fn name(self) -> &'static str {
        match self {
            SkipKind::Unreadable => "unreadable",
            SkipKind::Corrupt => "corrupt",
            SkipKind::Truncated => "truncated",
            SkipKind::TooSmall => "too small",
            SkipKind::TooLarge => "too large",
        }
    }
}

impl fmt::Display for SkipKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A skipped photo: its path relative to the root, the kind of problem and the details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub path: String,
    pub kind: SkipKind,
    pub detail: String,
}

impl Skip {
    /// `kind: detail`, as the `reason` column holds it.
    pub fn reason(&self) -> String {
        format!("{}: {}", self.kind, self.detail)
    }
}

/// The patches cut from a corpus, split by photo, and what was skipped.
#[derive(Clone, Debug)]
pub struct PhotoPatches {
    pub train: Images,
    pub test: Images,
    /// Skipped photos, in corpus order (only those before the cap was reached).
    pub skipped: Vec<Skip>,
    /// JPEG and PNG files found under the root.
    pub photos_found: usize,
    /// Photos that gave at least one patch.
    pub photos_used: usize,
    /// Photos never looked at because the cap was reached before them.
    pub photos_after_cap: usize,
}

impl PhotoPatches {
    /// The `skipped` table.
    pub fn skipped_table(&self) -> Skipped {
        Skipped {
            path: self.skipped.iter().map(|s| s.path.clone()).collect(),
            reason: self.skipped.iter().map(Skip::reason).collect(),
        }
    }

    /// How many photos were skipped for each kind of reason, in [`SkipKind`] order.
    pub fn skipped_by_kind(&self) -> Vec<(SkipKind, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for s in &self.skipped {
            *counts.entry(s.kind).or_insert(0) += 1;
        }
        counts.into_iter().collect()
    }
}

/// One entry of the corpus: a photo file, or a path the walk could not read.
struct Entry {
    relative: String,
    file: Result<PathBuf, String>,
}

/// Whether `path` names a photo by its extension (`jpg`, `jpeg`, `png`, any case).
pub fn is_photo(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["jpg", "jpeg", "png"].iter().any(|p| e.eq_ignore_ascii_case(p)))
}

/// `path` relative to `root`, with `/` separators.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    parts.join("/")
}

/// The photo files under `root` in corpus order, as (relative path, absolute path). Paths the
/// walk cannot enter are returned as `Err` with the reason.
fn walk(root: &Path) -> Result<Vec<Entry>, IngestError> {
    let meta =
        std::fs::metadata(root).map_err(|source| IngestError::Io { path: root.to_path_buf(), source })?;
    if !meta.is_dir() {
        return Err(IngestError::NotAFolder { path: root.to_path_buf() });
    }
    let mut entries = Vec::new();
    for item in walkdir::WalkDir::new(root).follow_links(true) {
        match item {
            Ok(e) if e.file_type().is_file() && is_photo(e.path()) => {
                entries.push(Entry { relative: relative(root, e.path()), file: Ok(e.path().to_path_buf()) })
            }
            Ok(_) => {}
            Err(e) => {
                let path = e.path().map(|p| relative(root, p)).unwrap_or_default();
                entries.push(Entry { relative: path, file: Err(e.to_string()) });
            }
        }
    }
    entries.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(entries)
}

/// Decodes a photo from its bytes, whose content decides the format (a PNG named `.jpg` is
/// read as the PNG it is; a file whose first bytes are no image format's is corrupt).
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, (SkipKind, String)> {
    let reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().expect("reading from memory cannot fail");
    let Some(format) = reader.format() else {
        return Err((
            SkipKind::Corrupt,
            "not a JPEG or PNG file: its first bytes match no image format".into(),
        ));
    };
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        // The JPEG decoder pads a truncated scan with grey rather than failing: catch it here.
        return Err((
            SkipKind::Truncated,
            format!("the JPEG data stops after {} bytes, before its end-of-image marker", bytes.len()),
        ));
    }
    reader.decode().map_err(|e| classify(&e))
}

/// Whether a JPEG stream has an end-of-image marker (FF D9) after its last start-of-scan marker
/// (FF DA). Entropy-coded data never holds FF D9 (a data byte FF is always followed by 00), and an
/// embedded EXIF thumbnail's markers all come before the main image's scans, so a file cut short
/// anywhere in its scans fails this test, and a complete one (even with trailing bytes) passes.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w[0] == 0xFF && w[1] == marker);
    match (last(0xDA), last(0xD9)) {
        (Some(scan), Some(end)) => end > scan,
        _ => false,
    }
}

/// The kind of a decoding error, with its message.
fn classify(error: &ImageError) -> (SkipKind, String) {
    let message = error.to_string();
    let lower = message.to_ascii_lowercase();
    let truncated = matches!(error, ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
        || ["end of file", "eof", "truncated", "no more bytes", "exhausted"]
            .iter()
            .any(|w| lower.contains(w));
    (if truncated { SkipKind::Truncated } else { SkipKind::Corrupt }, message)
}

/// The patches of one photo, in the order drawn: (top, left, pixels).
type Cut = Vec<(u16, u16, Vec<u8>)>;

/// Reads, decodes and cuts one photo.
fn cut(entry: &Entry, options: &PhotoOptions) -> Result<Cut, (SkipKind, String)> {
    let path = entry.file.as_ref().map_err(|e| (SkipKind::Unreadable, e.clone()))?;
    let bytes = std::fs::read(path).map_err(|e| (SkipKind::Unreadable, e.to_string()))?;
    if bytes.is_empty() {
        return Err((SkipKind::Truncated, "the file is empty".into()));
    }
    let photo = Photo::from_image(decode(&bytes)?);
    cut_photo(&photo, &entry.relative, options)
}

/// The tiles of a decoded photo chosen for `relative` (see the module documentation).
pub fn cut_photo(photo: &Photo, relative: &str, options: &PhotoOptions) -> Result<Cut, (SkipKind, String)> {
    let (height, width) = photo.size();
    let grid = options.grid(height, width);
    if grid.is_empty() {
        return Err((
            SkipKind::TooSmall,
            format!(
                "{width}x{height} pixels, a tile needs {span}x{span} (patch size {}, rate {})",
                options.patch_size,
                options.rate,
                span = grid.span
            ),
        ));
    }
    if height.max(width) > u16::MAX as usize + 1 {
        return Err((
            SkipKind::TooLarge,
            format!("{width}x{height} pixels, tile positions must fit 16 bits"),
        ));
    }
    let chosen = choose_tiles(options.seed, relative, grid.len(), options.per_photo);
    let d = options.patch_size * options.patch_size;
    Ok(chosen
        .into_iter()
        .map(|k| {
            let (top, left) = grid.position(k);
            let mut pixels = Vec::with_capacity(d);
            photo.tile(&grid, top, left, &mut pixels);
            (top as u16, left as u16, pixels)
        })
        .collect())
}

/// `min(k, n)` distinct tile numbers out of `n`, in the order drawn, by a partial Fisher–Yates
/// shuffle driven by ChaCha8 seeded from a stable hash of (seed, relative path).
pub fn choose_tiles(seed: u64, relative: &str, n: usize, k: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(stable_hash(format!("{seed}\u{1f}{relative}").as_bytes()));
    let n = u32::try_from(n).expect("tile count fits u32");
    let mut tiles: Vec<u32> = (0..n).collect();
    let k = k.min(tiles.len());
    for i in 0..k {
        // u32 draws: the same numbers on 32- and 64-bit platforms.
        let j = rng.random_range(i as u32..n) as usize;
        tiles.swap(i, j);
    }
    tiles[..k].iter().map(|&t| t as usize).collect()
}

/// Table columns being filled.
#[derive(Default)]
struct Columns {
    id: Vec<u32>,
    source: Vec<String>,
    top: Vec<Option<u16>>,
    left: Vec<Option<u16>>,
    pixels: Vec<u8>,
}

impl Columns {
    fn into_images(self, size: usize) -> Images {
        let rows = self.id.len();
        Images {
            height: size,
            width: size,
            label: vec![None; rows],
            pixels: Array2::from_shape_vec((rows, size * size), self.pixels).expect("whole patches"),
            id: self.id,
            source: self.source,
            top: self.top,
            left: self.left,
        }
    }
}

/// A photo corpus: the JPEG and PNG files under a root folder, in corpus order.
pub struct Corpus {
    root: PathBuf,
    entries: Vec<Entry>,
}

impl Corpus {
    /// Walks `root` (an error if it is missing or not a folder).
    pub fn open(root: &Path) -> Result<Corpus, IngestError> {
        Ok(Corpus { root: root.to_path_buf(), entries: walk(root)? })
    }

    /// Number of photo files (and unreadable paths) found.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The photo files, in corpus order.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.entries.iter().filter_map(|e| e.file.as_deref().ok())
    }

    /// Cuts the photos into patches (see the module documentation). `progress` is called with 1
    /// after each photo is read, from any thread.
    pub fn patches(
        &self,
        options: &PhotoOptions,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<PhotoPatches, IngestError> {
        photos_from(&self.root, &self.entries, options, progress)
    }
}

/// Cuts the photos under `root` into patches: [`Corpus::open`] then [`Corpus::patches`].
pub fn photos(
    root: &Path,
    options: &PhotoOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<PhotoPatches, IngestError> {
    Corpus::open(root)?.patches(options, progress)
}

fn photos_from(
    root: &Path,
    entries: &[Entry],
    options: &PhotoOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<PhotoPatches, IngestError> {
    options.check()?;
    if entries.is_empty() {
        return Err(IngestError::NoPhotos { root: root.to_path_buf() });
    }
    let (mut train, mut test) = (Columns::default(), Columns::default());
    let mut skipped = Vec::new();
    let (mut kept, mut used, mut looked_at) = (0usize, 0usize, 0usize);
    'batches: for batch in entries.chunks(BATCH) {
        let cuts: Vec<_> = batch
            .par_iter()
            .map(|entry| {
                let cut = cut(entry, options);
                progress(1);
                cut
            })
            .collect();
        for (entry, result) in batch.iter().zip(cuts) {
            if kept == options.cap {
                break 'batches;
            }
            looked_at += 1;
            match result {
                Err((kind, detail)) => skipped.push(Skip { path: entry.relative.clone(), kind, detail }),
                Ok(patches) => {
                    let to = if in_holdout(options.seed, &entry.relative, 0, options.test_fraction) {
                        &mut test
                    } else {
                        &mut train
                    };
                    let take = patches.len().min(options.cap - kept);
                    used += usize::from(take > 0);
                    for (top, left, pixels) in patches.into_iter().take(take) {
                        to.id.push(kept as u32);
                        to.source.push(entry.relative.clone());
                        to.top.push(Some(top));
                        to.left.push(Some(left));
                        to.pixels.extend_from_slice(&pixels);
                        kept += 1;
                    }
                }
            }
        }
    }
    if kept == 0 {
        return Err(IngestError::NoUsablePhoto {
            root: root.to_path_buf(),
            found: entries.len(),
            first: skipped.first().map(|s| format!("{}: {}", s.path, s.reason())).unwrap_or_default(),
        });
    }
    Ok(PhotoPatches {
        train: train.into_images(options.patch_size),
        test: test.into_images(options.patch_size),
        skipped,
        photos_found: entries.len(),
        photos_used: used,
        photos_after_cap: entries.len() - looked_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_levels_survive_the_conversion() {
        for v in 0..=255u8 {
            assert_eq!(luma(v, v, v), v);
        }
    }

    #[test]
    fn primaries_follow_tensorflow_rounding() {
        // 0.2989·255.5 = 76.37, 0.5870·255.5 = 149.98, 0.1140·255.5 = 29.13, truncated.
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 149);
        assert_eq!(luma(0, 0, 255), 29);
    }

    #[test]
    fn tiles_with_a_rate_span_its_dilated_size() {
        let g = TileGrid::new(375, 500, 28, 6);
        assert_eq!((g.span, g.rows, g.cols), (163, 2, 3));
        assert_eq!(g.position(4), (163, 163));
        let g = TileGrid::new(321, 481, 28, 1);
        assert_eq!((g.span, g.rows, g.cols), (28, 11, 17));
        assert_eq!(TileGrid::new(27, 500, 28, 1).len(), 0);
    }

    #[test]
    fn chosen_tiles_are_distinct_and_depend_only_on_seed_and_path() {
        let a = choose_tiles(1, "a/b.jpg", 187, 2);
        assert_eq!(a.len(), 2);
        assert_ne!(a[0], a[1]);
        assert_eq!(a, choose_tiles(1, "a/b.jpg", 187, 2));
        assert_ne!(
            (0..20).map(|s| choose_tiles(s, "a/b.jpg", 187, 2)).collect::<Vec<_>>(),
            (0..20).map(|s| choose_tiles(s, "a/c.jpg", 187, 2)).collect::<Vec<_>>()
        );
        let mut all = choose_tiles(3, "x.png", 5, 9);
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4], "a photo with fewer tiles than asked gives all of them");
    }

    #[test]
    fn photo_extensions_are_case_insensitive() {
        for yes in ["a.jpg", "b.JPG", "c.Jpeg", "d/e.png", "f.PNG"] {
            assert!(is_photo(Path::new(yes)), "{yes}");
        }
        for no in ["Thumbs.db", "a.txt", "jpg", "a.jpg.bak", "a.gif"] {
            assert!(!is_photo(Path::new(no)), "{no}");
        }
    }
}
