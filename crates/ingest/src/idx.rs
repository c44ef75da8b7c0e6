//! The IDX format (LeCun et al., the MNIST files): a 4-byte magic number `0x00 0x00 TYPE NDIMS`,
//! NDIMS big-endian u32 sizes, then the data, row-major. gmrf reads unsigned-byte data
//! (TYPE = 0x08): images with 3 dimensions (count, height, width) and labels with 1 (count).
//! Gzipped files (as Fashion-MNIST ships them) are recognised by their content, not their name.

use std::io::Read;
use std::path::Path;

use ndarray::Array2;

use crate::IngestError;

const UNSIGNED_BYTE: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The table contracts store row and column as u8.
const MAX_SIDE: usize = 256;

/// Images decoded from an IDX file: `count` images of `height × width` unsigned bytes.
#[derive(Debug)]
pub struct IdxImages {
    pub count: usize,
    pub height: usize,
    pub width: usize,
    /// All pixels, image after image, each row-major.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// The pixels as a matrix of one image per row.
    pub fn into_matrix(self) -> Array2<u8> {
        Array2::from_shape_vec((self.count, self.height * self.width), self.pixels)
            .expect("pixel count checked against the header")
    }
}

/// Reads an IDX image file (3 dimensions), refusing a file of 0 images.
pub fn read_images(path: &Path) -> Result<IdxImages, IngestError> {
    let (dims, pixels) = read_idx(path, 3, "an image file (count, height, width)")?;
    let [count, height, width] = dims[..] else { unreachable!("dimension count checked") };
    if height == 0 || width == 0 || height > MAX_SIDE || width > MAX_SIDE {
        return Err(invalid(
            path,
            format!("images of {height}x{width}: gmrf handles images from 1x1 to {MAX_SIDE}x{MAX_SIDE}"),
        ));
    }
    if count == 0 {
        return Err(invalid(
            path,
            format!("its header declares 0 images (of {height}x{width}): nothing to ingest"),
        ));
    }
    Ok(IdxImages { count, height, width, pixels })
}

/// Reads an IDX label file (1 dimension).
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IngestError> {
    let (_, labels) = read_idx(path, 1, "a label file (count)")?;
    Ok(labels)
}

fn invalid(path: &Path, problem: String) -> IngestError {
    IngestError::Idx { path: path.to_path_buf(), problem }
}

/// Reads a whole IDX file of unsigned bytes with `ndims` dimensions; returns the sizes and the
/// data with the header removed. The file must hold exactly the bytes its header promises.
fn read_idx(path: &Path, ndims: usize, what: &str) -> Result<(Vec<usize>, Vec<u8>), IngestError> {
    let io = |source| IngestError::Io { path: path.to_path_buf(), source };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&GZIP_MAGIC) {
        decode(path, flate2::read::MultiGzDecoder::new(&raw[..]), None, ndims, what)
    } else {
        let len = raw.len();
        decode(path, &raw[..], Some(len), ndims, what)
    }
}

/// Decodes an IDX stream: header, then exactly the data the header promises. Reading stops one
/// byte past the promised size, so a gzip stream that unpacks far beyond it (a "zip bomb") costs
/// no more memory than an honest file. `len` is the stream's length when known (a raw file), to
/// count the excess bytes in the message.
fn decode(
    path: &Path,
    stream: impl Read,
    len: Option<usize>,
    ndims: usize,
    what: &str,
) -> Result<(Vec<usize>, Vec<u8>), IngestError> {
    let gzip = len.is_none();
    let mut stream = std::io::BufReader::new(stream);
    let read_error = |e: std::io::Error| {
        if gzip {
            invalid(path, format!("gzip stream is corrupt or truncated ({e})"))
        } else {
            IngestError::Io { path: path.to_path_buf(), source: e }
        }
    };
    let mut take = |n: u64, into: &mut Vec<u8>| (&mut stream).take(n).read_to_end(into).map_err(read_error);

    let mut magic = Vec::with_capacity(4);
    take(4, &mut magic)?;
    if magic.len() < 4 {
        return Err(invalid(path, format!("{} bytes, too short for the 4-byte magic number", magic.len())));
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(invalid(
            path,
            format!(
                "magic number 0x{:02x}{:02x}{:02x}{:02x} does not start with two zero bytes",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    if magic[2] != UNSIGNED_BYTE {
        return Err(invalid(
            path,
            format!("element type 0x{:02x} in the magic number; gmrf reads unsigned bytes (0x08)", magic[2]),
        ));
    }
    let found = magic[3] as usize;
    if found != ndims {
        return Err(invalid(
            path,
            format!("{found} dimension(s) in the magic number, expected {ndims} for {what}"),
        ));
    }
    let header = 4 + 4 * ndims;
    let mut sizes = Vec::with_capacity(4 * ndims);
    take(4 * ndims as u64, &mut sizes)?;
    if sizes.len() < 4 * ndims {
        return Err(invalid(
            path,
            format!("truncated: {} bytes, shorter than its {header}-byte header", 4 + sizes.len()),
        ));
    }
    let dims: Vec<usize> =
        sizes.chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let shape = dims.iter().map(usize::to_string).collect::<Vec<_>>().join(" x ");
    let Some(promised) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        return Err(invalid(path, format!("header sizes {shape} overflow")));
    };
    // Not the promised size up front: a lying header must not allocate what the file lacks.
    let mut data = Vec::with_capacity(promised.min(len.unwrap_or(1 << 26)));
    take(promised as u64 + 1, &mut data)?;
    let held = data.len();
    if held < promised {
        return Err(invalid(
            path,
            format!(
                "truncated: the header promises {shape} = {promised} bytes of data, the file holds {held}"
            ),
        ));
    }
    if held > promised {
        return Err(invalid(
            path,
            match len {
                Some(len) => format!(
                    "{} bytes after the {shape} = {promised} bytes the header promises",
                    len - header - promised
                ),
                None => format!(
                    "the gzip stream unpacks to more than the {shape} = {promised} bytes of data the header promises (reading stopped there)"
                ),
            },
        ));
    }
    Ok((dims, data))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, UNSIGNED_BYTE, dims.len() as u8];
        dims.iter().for_each(|d| bytes.extend_from_slice(&d.to_be_bytes()));
        bytes.extend_from_slice(data);
        bytes
    }

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn gzipped(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn raw_and_gzipped_files_decode_alike_with_any_image_shape() {
        let data: Vec<u8> = (0..2 * 3 * 5).map(|v| v as u8).collect();
        let raw = file(&idx(&[2, 3, 5], &data));
        let gz = file(&gzipped(&idx(&[2, 3, 5], &data)));
        for f in [&raw, &gz] {
            let images = read_images(f.path()).unwrap();
            assert_eq!((images.count, images.height, images.width), (2, 3, 5));
            let m = images.into_matrix();
            assert_eq!(m.row(1).to_vec(), (15..30).map(|v| v as u8).collect::<Vec<_>>());
        }
    }

    #[test]
    fn bytes_beyond_the_promised_data_are_refused() {
        let f = file(&idx(&[3], &[1, 2, 3, 4]));
        let message = read_labels(f.path()).unwrap_err().to_string();
        assert!(message.ends_with("1 bytes after the 3 = 3 bytes the header promises"), "{message}");
    }

    #[test]
    fn non_byte_element_type_and_empty_images_are_refused() {
        let mut floats = idx(&[1], &[0, 0, 0, 0]);
        floats[2] = 0x0d;
        let message = read_labels(file(&floats).path()).unwrap_err().to_string();
        assert!(message.contains("element type 0x0d"), "{message}");
        let message = read_images(file(&idx(&[4, 0, 28], &[])).path()).unwrap_err().to_string();
        assert!(message.contains("images of 0x28"), "{message}");
        let message = read_images(file(&idx(&[1, 300, 1], &[0; 300])).path()).unwrap_err().to_string();
        assert!(message.contains("images of 300x1: gmrf handles images from 1x1 to 256x256"), "{message}");
    }

    /// A reader that counts the bytes taken from it.
    struct Counted<R> {
        inner: R,
        count: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.count.set(self.count.get() + n as u64);
            Ok(n)
        }
    }

    #[test]
    fn a_stream_longer_than_its_header_promises_is_read_only_past_the_promise() {
        // A header promising 3 labels, then an endless stream of zeros: without the bound on
        // reading, this would never return.
        let header = std::io::Cursor::new(idx(&[3], &[]));
        let count = std::rc::Rc::new(std::cell::Cell::new(0));
        let endless = Counted { inner: header.chain(std::io::repeat(0)), count: count.clone() };
        let message = decode(Path::new("bomb.gz"), endless, None, 1, "labels").unwrap_err().to_string();
        assert!(
            message.contains("unpacks to more than the 3 = 3 bytes of data the header promises"),
            "{message}"
        );
        // Header, data, one byte more, and at most one buffer (8 KiB) read ahead.
        assert!(count.get() <= 8 + 4 + 8192, "{} bytes read", count.get());

        // The same through a real gzip file: 1 label promised, 20 MB of zeros unpacked.
        let mut bytes = idx(&[1], &[7]);
        bytes.resize(20_000_000, 0);
        let message = read_labels(file(&gzipped(&bytes)).path()).unwrap_err().to_string();
        assert!(message.contains("unpacks to more than the 1 = 1 bytes"), "{message}");
    }

    #[test]
    fn image_file_of_zero_images_is_refused() {
        let message = read_images(file(&idx(&[0, 28, 28], &[])).path()).unwrap_err().to_string();
        assert!(message.contains("its header declares 0 images (of 28x28): nothing to ingest"), "{message}");
    }

    #[test]
    fn file_shorter_than_its_header_is_refused() {
        let message = read_images(file(&[0, 0, 8, 3, 0, 0]).path()).unwrap_err().to_string();
        assert!(message.contains("truncated: 6 bytes, shorter than its 16-byte header"), "{message}");
        let message = read_images(file(&[0, 0]).path()).unwrap_err().to_string();
        assert!(message.contains("2 bytes, too short for the 4-byte magic number"), "{message}");
    }
}
