//! IDX loader and writer (the MNIST / Fashion-MNIST format).
//!
//! An IDX file is a big-endian header `00 00 <dtype> <ndims>` followed by
//! `ndims` `u32` dimension sizes and the data. Image files hold `u8` pixels
//! (`0x08`, kept as their raw values 0..=255; the task spec's
//! `data.feature_scale` rescales them) or big-endian `f32` values (`0x0D`, taken as
//! is) with at least two dimensions (count, then pixels); label files hold one
//! `u8` per example. Either file may be gzip-compressed, which is detected from
//! its first bytes, not its name. Each file is read once, sequentially.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use ndarray::{Array1, Array2, ArrayView2};

use super::Dataset;
use super::error::{DataError, Position};
use super::input::{InputFile, check_label, class_count, initial_capacity};

/// IDX type code of unsigned bytes.
const DTYPE_U8: u8 = 0x08;
/// IDX type code of big-endian 32-bit floats.
const DTYPE_F32: u8 = 0x0D;
/// Size of the fixed part of the header (magic, type code, dimension count).
const MAGIC_LEN: u64 = 4;
/// Labels read per chunk.
const LABEL_CHUNK: usize = 1 << 16;

/// A parsed IDX header.
struct IdxHeader {
    dtype: u8,
    dims: Vec<u32>,
}

impl IdxHeader {
    /// Header length in bytes.
    fn len(&self) -> u64 {
        MAGIC_LEN + 4 * self.dims.len() as u64
    }
}

/// Loads an image file and a label file in IDX format (plain or gzip).
///
/// Pixels of type `u8` keep their raw values (0..=255), like every other
/// loader; `f32` images are kept as they are. Each image is flattened to one feature row. With `classes` set, every
/// label must be below it; otherwise the class count is the largest label plus
/// one.
pub fn load_idx(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
    classes: Option<usize>,
) -> Result<Dataset, DataError> {
    let mut images = InputFile::open(images_path.as_ref())?;
    let image_header = read_header(
        &mut images,
        &[DTYPE_U8, DTYPE_F32],
        "0x08 (unsigned byte) or 0x0d (float32) for images",
    )?;
    if image_header.dims.len() < 2 {
        return Err(DataError::IdxDims {
            path: images.path.clone(),
            offset: 3,
            message: format!(
                "expected at least 2 dimensions for images (count, pixels...), found {}",
                image_header.dims.len()
            ),
        });
    }
    let dim = feature_count(&images, &image_header.dims[1..])?;

    let mut labels = InputFile::open(labels_path.as_ref())?;
    let label_header = read_header(&mut labels, &[DTYPE_U8], "0x08 (unsigned byte) for labels")?;
    if label_header.dims.len() != 1 {
        return Err(DataError::IdxDims {
            path: labels.path.clone(),
            offset: 3,
            message: format!(
                "expected 1 dimension for labels, found {}",
                label_header.dims.len()
            ),
        });
    }

    let examples = image_header.dims[0];
    if examples != label_header.dims[0] {
        return Err(DataError::CountMismatch {
            features_path: images.path.clone(),
            features: u64::from(examples),
            labels_path: labels.path.clone(),
            labels: u64::from(label_header.dims[0]),
        });
    }
    if examples == 0 {
        return Err(DataError::Empty {
            path: images.path.clone(),
        });
    }
    let examples = examples as usize;

    let features = read_images(&mut images, &image_header, examples, dim)?;
    let labels = read_labels(&mut labels, &label_header, examples, classes)?;
    let classes = class_count(&labels, classes);
    let features = Array2::from_shape_vec((examples, dim), features)
        .map_err(|e| DataError::Shape(e.to_string()))?;
    Dataset::new(features, Array1::from(labels), classes)
}

/// Reads the header, checking the magic number and that the type code is one
/// of `dtypes` (described by `expected`).
fn read_header(
    file: &mut InputFile,
    dtypes: &[u8],
    expected: &'static str,
) -> Result<IdxHeader, DataError> {
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic, MAGIC_LEN)?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(DataError::IdxMagic {
            path: file.path.clone(),
            found: magic,
        });
    }
    if !dtypes.contains(&magic[2]) {
        return Err(DataError::IdxDtype {
            path: file.path.clone(),
            expected,
            found: magic[2],
        });
    }
    let ndims = magic[3];
    if ndims == 0 {
        return Err(DataError::IdxDims {
            path: file.path.clone(),
            offset: 3,
            message: "expected at least 1 dimension, found 0".to_string(),
        });
    }
    let mut raw = vec![0u8; 4 * usize::from(ndims)];
    let header_len = MAGIC_LEN + raw.len() as u64;
    file.read_exact(&mut raw, header_len)?;
    let dims = raw
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(IdxHeader {
        dtype: magic[2],
        dims,
    })
}

/// Number of features per image: the product of the per-image dimensions.
fn feature_count(file: &InputFile, dims: &[u32]) -> Result<usize, DataError> {
    let mut count: usize = 1;
    for (axis, &size) in dims.iter().enumerate() {
        let offset = MAGIC_LEN + 4 * (axis as u64 + 1);
        if size == 0 {
            return Err(DataError::IdxDims {
                path: file.path.clone(),
                offset,
                message: format!(
                    "expected a non-zero size for dimension {}, found 0",
                    axis + 1
                ),
            });
        }
        count = count
            .checked_mul(size as usize)
            .ok_or_else(|| DataError::IdxDims {
                path: file.path.clone(),
                offset,
                message: "image dimensions overflow the address space".to_string(),
            })?;
    }
    Ok(count)
}

/// Reads `examples` images of `dim` values each, as `f32` features.
fn read_images(
    file: &mut InputFile,
    header: &IdxHeader,
    examples: usize,
    dim: usize,
) -> Result<Vec<f32>, DataError> {
    let item_size: u64 = if header.dtype == DTYPE_U8 { 1 } else { 4 };
    let values = (examples as u64).saturating_mul(dim as u64);
    let expected = header
        .len()
        .saturating_add(values.saturating_mul(item_size));
    let mut features = Vec::with_capacity(initial_capacity(values));
    let mut row = vec![0u8; dim * item_size as usize];
    for _ in 0..examples {
        file.read_exact(&mut row, expected)?;
        if header.dtype == DTYPE_U8 {
            features.extend(row.iter().map(|&pixel| f32::from(pixel)));
        } else {
            features.extend(
                row.chunks_exact(4)
                    .map(|b| f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
    }
    file.expect_end()?;
    Ok(features)
}

/// Reads `examples` `u8` labels, checking them against `classes`.
fn read_labels(
    file: &mut InputFile,
    header: &IdxHeader,
    examples: usize,
    classes: Option<usize>,
) -> Result<Vec<u32>, DataError> {
    let expected = header.len() + examples as u64;
    let mut labels = Vec::with_capacity(examples);
    let mut chunk = vec![0u8; LABEL_CHUNK.min(examples)];
    while labels.len() < examples {
        let take = (examples - labels.len()).min(LABEL_CHUNK);
        let buf = &mut chunk[..take];
        file.read_exact(buf, expected)?;
        for &label in buf.iter() {
            let offset = header.len() + labels.len() as u64;
            check_label(
                &file.path,
                Position::Byte(offset),
                u32::from(label),
                classes,
            )?;
            labels.push(u32::from(label));
        }
    }
    file.expect_end()?;
    Ok(labels)
}

/// Writes `images` (one flattened `rows x cols` image per row) and `labels` as
/// an IDX image file and an IDX label file, gzip-compressed if `gzip`.
pub fn write_idx(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
    images: ArrayView2<u8>,
    rows: usize,
    cols: usize,
    labels: &[u8],
    gzip: bool,
) -> Result<(), DataError> {
    if rows.checked_mul(cols) != Some(images.ncols()) {
        return Err(DataError::Shape(format!(
            "images have {} values per row but {rows} x {cols} images were announced",
            images.ncols()
        )));
    }
    if labels.len() != images.nrows() {
        return Err(DataError::Shape(format!(
            "{} images but {} labels",
            images.nrows(),
            labels.len()
        )));
    }
    let to_u32 = |value: usize, what: &str| {
        u32::try_from(value).map_err(|_| {
            DataError::Shape(format!(
                "{what} {value} does not fit an IDX dimension (u32)"
            ))
        })
    };
    let count = to_u32(images.nrows(), "image count")?;
    let image_dims = [
        count,
        to_u32(rows, "image rows")?,
        to_u32(cols, "image columns")?,
    ];

    write_file(images_path.as_ref(), gzip, |out| {
        write_header(out, &image_dims)?;
        match images.as_slice() {
            Some(data) => out.write_all(data),
            None => images
                .rows()
                .into_iter()
                .try_for_each(|row| out.write_all(&row.to_vec())),
        }
    })?;
    write_file(labels_path.as_ref(), gzip, |out| {
        write_header(out, &[count])?;
        out.write_all(labels)
    })
}

/// Writes a `u8` IDX header with dimensions `dims` (at most 255 of them).
fn write_header(out: &mut dyn Write, dims: &[u32]) -> io::Result<()> {
    let ndims = u8::try_from(dims.len()).map_err(io::Error::other)?;
    out.write_all(&[0, 0, DTYPE_U8, ndims])?;
    dims.iter()
        .try_for_each(|dim| out.write_all(&dim.to_be_bytes()))
}

/// Creates `path` and writes it with `body`, through gzip if `gzip`.
fn write_file(
    path: &Path,
    gzip: bool,
    body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), DataError> {
    let result = (|| {
        let file = BufWriter::new(File::create(path)?);
        if gzip {
            let mut encoder = GzEncoder::new(file, Compression::default());
            body(&mut encoder)?;
            encoder.finish()?.flush()
        } else {
            let mut file = file;
            body(&mut file)?;
            file.flush()
        }
    })();
    result.map_err(|e| DataError::io(path, e))
}
