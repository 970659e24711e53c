//! NPY loader and writers (NumPy's `.npy` format, via `npyz`).
//!
//! Features are a 2-D array `[examples, features]` of `float32`, `float64` or
//! `uint8` (taken as raw values, not rescaled), in C or Fortran order; labels a
//! 1-D array of any integer type. Both files are streamed element by element
//! and read once; either may be gzip-compressed (detected from its first
//! bytes). Offsets in errors count bytes from the start of the file.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use ndarray::{Array1, Array2, ArrayView2, ShapeBuilder};
use npyz::{DType, Deserialize, NpyFile, NpyHeader, Order, TypeChar, WriteOptions, WriterBuilder};

use super::Dataset;
use super::error::{DataError, Position};
use super::input::{InputFile, class_count, initial_capacity, to_label};

/// Feature dtypes accepted, for error messages.
const FEATURE_DTYPES: &str = "float32, float64 or uint8 for features";
/// Label dtypes accepted, for error messages.
const LABEL_DTYPES: &str = "a signed or unsigned integer type for labels";

/// Loads a 2-D feature array and a 1-D label array from NPY files.
///
/// Feature values are converted to `f32` as they are (`uint8` is not scaled).
/// Labels must be non-negative; with `classes` set, every label must be below
/// it, otherwise the class count is the largest label plus one.
pub fn load_npy(
    features_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
    classes: Option<usize>,
) -> Result<Dataset, DataError> {
    let mut features_file = InputFile::open(features_path.as_ref())?;
    let features_header = read_header(&mut features_file)?;
    let shape = features_header.shape().to_vec();
    let [examples, dim] = shape[..] else {
        return Err(npy_shape(
            &features_file,
            "2-D (examples x features)",
            &shape,
        ));
    };
    if dim == 0 {
        return Err(npy_shape(
            &features_file,
            "2-D with at least one feature column",
            &shape,
        ));
    }
    let feature_type = plain_type(&features_header)
        .filter(|&(kind, size)| {
            matches!((kind, size), (TypeChar::Float, 4 | 8) | (TypeChar::Uint, 1))
        })
        .ok_or_else(|| npy_dtype(&features_file, &features_header, FEATURE_DTYPES))?;

    let mut labels_file = InputFile::open(labels_path.as_ref())?;
    let labels_header = read_header(&mut labels_file)?;
    let label_shape = labels_header.shape().to_vec();
    let [label_count] = label_shape[..] else {
        return Err(npy_shape(&labels_file, "1-D", &label_shape));
    };
    let label_type = plain_type(&labels_header)
        .filter(|&(kind, size)| {
            matches!(kind, TypeChar::Int | TypeChar::Uint) && matches!(size, 1 | 2 | 4 | 8)
        })
        .ok_or_else(|| npy_dtype(&labels_file, &labels_header, LABEL_DTYPES))?;

    if examples != label_count {
        return Err(DataError::CountMismatch {
            features_path: features_file.path.clone(),
            features: examples,
            labels_path: labels_file.path.clone(),
            labels: label_count,
        });
    }
    if examples == 0 {
        return Err(DataError::Empty {
            path: features_file.path.clone(),
        });
    }
    let too_large = |file: &InputFile| npy_shape(file, "array that fits in memory", &shape);
    let rows = usize::try_from(examples).map_err(|_| too_large(&features_file))?;
    let cols = usize::try_from(dim).map_err(|_| too_large(&features_file))?;

    let order = features_header.order();
    let values =
        match feature_type {
            (TypeChar::Float, 4) => {
                read_elements(&mut features_file, features_header, |_, v: f32| Ok(v))
            }
            (TypeChar::Float, _) => read_elements(
                &mut features_file,
                features_header,
                |_, v: f64| Ok(v as f32),
            ),
            _ => read_elements(&mut features_file, features_header, |_, v: u8| {
                Ok(f32::from(v))
            }),
        }?;
    let features = match order {
        Order::C => Array2::from_shape_vec((rows, cols), values),
        Order::Fortran => Array2::from_shape_vec((rows, cols).f(), values)
            .map(|array| array.as_standard_layout().into_owned()),
    }
    .map_err(|e| DataError::Shape(e.to_string()))?;

    let labels = read_labels(&mut labels_file, labels_header, label_type, classes)?;
    let classes = class_count(&labels, classes);
    Dataset::new(features, Array1::from(labels), classes)
}

/// Reads the labels, whatever their integer type, as class indices.
fn read_labels(
    file: &mut InputFile,
    header: NpyHeader,
    (kind, size): (TypeChar, u64),
    classes: Option<usize>,
) -> Result<Vec<u32>, DataError> {
    let path = file.path.clone();
    let label = |index: u64, value: i128| to_label(&path, Position::Element(index), value, classes);
    match (kind, size) {
        (TypeChar::Int, 1) => read_elements(file, header, |i, v: i8| label(i, v.into())),
        (TypeChar::Int, 2) => read_elements(file, header, |i, v: i16| label(i, v.into())),
        (TypeChar::Int, 4) => read_elements(file, header, |i, v: i32| label(i, v.into())),
        (TypeChar::Int, _) => read_elements(file, header, |i, v: i64| label(i, v.into())),
        (_, 1) => read_elements(file, header, |i, v: u8| label(i, v.into())),
        (_, 2) => read_elements(file, header, |i, v: u16| label(i, v.into())),
        (_, 4) => read_elements(file, header, |i, v: u32| label(i, v.into())),
        _ => read_elements(file, header, |i, v: u64| label(i, v.into())),
    }
}

/// Parses the NPY header, leaving the reader at the start of the data.
fn read_header(file: &mut InputFile) -> Result<NpyHeader, DataError> {
    NpyHeader::from_reader(&mut file.reader).map_err(|e| DataError::NpyHeader {
        path: file.path.clone(),
        message: e.to_string(),
    })
}

/// Streams every element of the array through `convert(index, value)`, then
/// checks that the file ends with the data.
fn read_elements<T: Deserialize, U>(
    file: &mut InputFile,
    header: NpyHeader,
    mut convert: impl FnMut(u64, T) -> Result<U, DataError>,
) -> Result<Vec<U>, DataError> {
    let item_size = header.dtype().num_bytes().unwrap_or(0) as u64;
    let total = header.len();
    let expected = file
        .reader
        .count()
        .saturating_add(total.saturating_mul(item_size));
    let descr = header.dtype().descr();
    let reader = NpyFile::with_header(header, &mut file.reader)
        .data::<T>()
        .map_err(|_| DataError::NpyDtype {
            path: file.path.clone(),
            expected: "a dtype matching its declared type",
            found: descr,
        })?;
    let mut values = Vec::with_capacity(initial_capacity(total));
    let mut failure = None;
    for (index, item) in (0..).zip(reader) {
        match item {
            Ok(value) => values.push(convert(index, value)?),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    if let Some(error) = failure {
        return Err(file.error(error, expected));
    }
    file.expect_end()?;
    Ok(values)
}

/// The type character and size of a plain (non-record) dtype.
fn plain_type(header: &NpyHeader) -> Option<(TypeChar, u64)> {
    match header.dtype() {
        DType::Plain(ty) => Some((ty.type_char(), ty.size_field())),
        _ => None,
    }
}

fn npy_shape(file: &InputFile, expected: &'static str, found: &[u64]) -> DataError {
    DataError::NpyShape {
        path: file.path.clone(),
        expected,
        found: found.to_vec(),
    }
}

fn npy_dtype(file: &InputFile, header: &NpyHeader, expected: &'static str) -> DataError {
    DataError::NpyDtype {
        path: file.path.clone(),
        expected,
        found: header.dtype().descr(),
    }
}

/// Writes `features` as a C-order 2-D `float32` NPY file.
pub fn write_npy_f32(path: impl AsRef<Path>, features: ArrayView2<f32>) -> Result<(), DataError> {
    let shape = [features.nrows() as u64, features.ncols() as u64];
    write_array(path.as_ref(), &shape, features.iter().copied())
}

/// Writes `labels` as a 1-D `uint32` NPY file.
pub fn write_npy_labels(path: impl AsRef<Path>, labels: &[u32]) -> Result<(), DataError> {
    write_array(
        path.as_ref(),
        &[labels.len() as u64],
        labels.iter().copied(),
    )
}

/// Writes a C-order array of `shape` from `values` in row-major order.
fn write_array<T: npyz::AutoSerialize>(
    path: &Path,
    shape: &[u64],
    values: impl IntoIterator<Item = T>,
) -> Result<(), DataError> {
    let result = (|| {
        let file = BufWriter::new(File::create(path)?);
        let mut writer = WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(file)
            .begin_nd()?;
        writer.extend(values)?;
        writer.finish()
    })();
    result.map_err(|e| DataError::io(path, e))
}
