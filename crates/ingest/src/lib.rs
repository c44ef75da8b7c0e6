//! Turns raw image data into gmrf `images` tables.
//!
//! # Brief overview
//!
//! [`idx`] decodes the IDX format of MNIST and Fashion-MNIST (raw or gzipped, detected by content):
//! [`idx::read_images`] returns an [`idx::IdxImages`] (count × height × width unsigned bytes),
//! [`idx::read_labels`] a label vector, each checked against its header. [`mnist`] pairs the two
//! into an [`Images`](gmrf_table::Images) table with `label` and `source` set, ready for
//! [`gmrf_table::write`].
//!
//! [`photos`](mod@photos) cuts a folder of photos (Flickr30k, BSDS500) into 8-bit grayscale patches: a
//! [`Corpus`] is the sorted list of JPEG and PNG files under a root; [`Corpus::patches`] decodes
//! them in parallel, converts them to grey as TensorFlow did, draws a few tiles from each with an
//! RNG seeded by the photo's path, and returns a [`PhotoPatches`]: train and test
//! [`Images`](gmrf_table::Images) tables split by photo, and the photos it skipped, with reasons.
//!
//! ```no_run
//! let images = gmrf_ingest::mnist(
//!     "data/mnist/train-images-idx3-ubyte".as_ref(),
//!     "data/mnist/train-labels-idx1-ubyte".as_ref(),
//!     "train",
//! )?;
//! assert_eq!(images.pixels.ncols(), 28 * 28);
//! # Ok::<(), gmrf_ingest::IngestError>(())
//! ```
//!
//! ```no_run
//! let options = gmrf_ingest::PhotoOptions { seed: 1, ..Default::default() };
//! let patches = gmrf_ingest::photos("data/flickr30k-images".as_ref(), &options, &|_| {})?;
//! println!("{} train, {} test, {} skipped", patches.train.len(), patches.test.len(), patches.skipped.len());
//! # Ok::<(), gmrf_ingest::IngestError>(())
//! ```

pub mod idx;
pub mod photos;

use std::path::{Path, PathBuf};

use gmrf_table::Images;
pub use photos::{Corpus, PhotoOptions, PhotoPatches, photos};

/// Why an input could not be ingested; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{}: not a valid IDX file: {problem}", path.display())]
    Idx { path: PathBuf, problem: String },

    #[error(
        "{} holds {images} images but {} holds {labels} labels: they must be from the same split",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch { images_path: PathBuf, images: usize, labels_path: PathBuf, labels: usize },

    #[error("{}: not a folder (give the folder that holds the photos)", path.display())]
    NotAFolder { path: PathBuf },

    #[error("{}: no JPEG or PNG photo in this folder or below it", root.display())]
    NoPhotos { root: PathBuf },

    #[error("{}: none of the {found} photo files could be used (first skipped: {first})", root.display())]
    NoUsablePhoto { root: PathBuf, found: usize, first: String },

    #[error("{0}")]
    Options(String),
}

/// Reads an MNIST-style pair of IDX files (images and labels of one split) as an `images` table:
/// `id` is the index in the file, `source` is `split`, `top`/`left` are null.
pub fn mnist(images_path: &Path, labels_path: &Path, split: &str) -> Result<Images, IngestError> {
    let images = idx::read_images(images_path)?;
    let labels = idx::read_labels(labels_path)?;
    if labels.len() != images.count {
        return Err(IngestError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: images.count,
            labels_path: labels_path.to_path_buf(),
            labels: labels.len(),
        });
    }
    let count = images.count;
    let id = (0..count).map(|i| u32::try_from(i).expect("an IDX count is a u32")).collect();
    Ok(Images {
        height: images.height,
        width: images.width,
        id,
        label: labels.into_iter().map(Some).collect(),
        source: vec![split.to_string(); count],
        top: vec![None; count],
        left: vec![None; count],
        pixels: images.into_matrix(),
    })
}
