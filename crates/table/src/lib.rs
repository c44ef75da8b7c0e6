//! The Parquet contracts between gmrf stages.
//!
//! # Brief overview
//!
//! Every stage of gmrf reads and writes Parquet files whose schemas are defined here, once
//! ([`schema`]). Each file carries key-value metadata ([`Meta`]): the [`Stage`] that wrote it, the
//! gmrf version, the image height and width, and the parameters of the run, so a file explains
//! itself. Typed tables ([`Images`], [`Centred`], [`MeanImage`], [`Skipped`], ...) are written with
//! [`write`] and read with [`read`], which checks the stage, every column's type and the metadata,
//! naming the file and the column in every [`TableError`]. Writes are atomic ([`PendingFile`]): a
//! stage that fails leaves no partial output, and a stage with several outputs commits them
//! together.
//!
//! ```no_run
//! use gmrf_table::{Images, Meta, Stage, read, write};
//! let (images, meta): (Images, Meta) = read("runs/mnist/train.parquet".as_ref())?;
//! println!("{} images of {}x{}", images.len(), images.height, images.width);
//! write("copy.parquet".as_ref(), &images, &meta)?.commit()?;
//! # Ok::<(), gmrf_table::TableError>(())
//! ```

mod atomic;
mod compat;
mod error;
mod evaluation_tables;
mod identity;
mod io;
mod meta;
pub mod schema;
mod tables;

pub use atomic::{PendingFile, check_outputs, commit_all, remove_temporaries_on_signals, write_bytes};
pub use error::TableError;
pub use evaluation_tables::{Metrics, MetricsRow, Samples, Scores};
pub use identity::{in_holdout, stable_hash};
pub use io::{Table, read, read_meta, write};
pub use meta::{Meta, Stage, Transform};
pub use tables::{
    Centred, Images, MeanImage, PrecisionEntries, Skipped, Trace, TraceRow, check_centred_with_mean,
};
