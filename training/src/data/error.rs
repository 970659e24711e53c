//! The error type of the data loaders.
//!
//! Every malformed-input case has its own variant, naming the file, where in
//! the file the problem is (line for CSV, byte offset for IDX and NPY, element
//! index for NPY data) and what was expected versus what was found, so a
//! caller can both match on the case and show a message a user can act on.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where in an input file a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A 1-based line of a text file (the line where the record starts).
    Line(u64),
    /// A 0-based byte offset; for gzip files, an offset into the decompressed data.
    Byte(u64),
    /// A 0-based element index in the data section of an array file.
    Element(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(line) => write!(f, "line {line}"),
            Position::Byte(offset) => write!(f, "byte {offset}"),
            Position::Element(index) => write!(f, "element {index}"),
        }
    }
}

/// Why a dataset could not be loaded, generated, written or built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The pieces of a dataset do not fit together (rows vs labels, class count,
    /// non-finite features, bad split fraction).
    #[error("invalid dataset: {0}")]
    Shape(String),

    /// A parameter of the synthetic generator is out of range.
    #[error("invalid synthetic dataset spec: `{field}` {message}")]
    InvalidSpec {
        /// The offending field of [`SyntheticSpec`](super::SyntheticSpec).
        field: &'static str,
        /// What is wrong with its value.
        message: String,
    },

    /// Opening, reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// The file holds no examples.
    #[error("{}: no examples (expected at least one data row or record)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },

    /// The CSV parser rejected the file, or the file's columns cannot be used.
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line of the record.
        line: u64,
        /// What is wrong.
        message: String,
    },

    /// A CSV row has a different number of fields than the first row.
    #[error("{}:{line}: expected {expected} fields, found {found}", path.display())]
    CsvRaggedRow {
        /// The file.
        path: PathBuf,
        /// 1-based line of the row.
        line: u64,
        /// Number of fields of the first row.
        expected: usize,
        /// Number of fields of this row.
        found: usize,
    },

    /// A CSV feature field is not a finite number.
    #[error("{}:{line}: column {column}: expected a finite number, found {text:?}", path.display())]
    CsvNotNumber {
        /// The file.
        path: PathBuf,
        /// 1-based line of the row.
        line: u64,
        /// 1-based column of the field.
        column: usize,
        /// The field's text.
        text: String,
    },

    /// A CSV label field is not a non-negative integer.
    #[error(
        "{}:{line}: column {column}: expected a non-negative integer label, found {text:?}",
        path.display()
    )]
    CsvBadLabel {
        /// The file.
        path: PathBuf,
        /// 1-based line of the row.
        line: u64,
        /// 1-based column of the field.
        column: usize,
        /// The field's text.
        text: String,
    },

    /// The first four bytes are not an IDX magic number (`00 00 <dtype> <ndims>`).
    #[error(
        "{}: byte 0: expected IDX magic 00 00 <dtype> <ndims>, found {:02x} {:02x} {:02x} {:02x}",
        path.display(), found[0], found[1], found[2], found[3]
    )]
    IdxMagic {
        /// The file (for gzip files, the magic of the decompressed data).
        path: PathBuf,
        /// The four bytes found.
        found: [u8; 4],
    },

    /// The IDX element type is not one the loader accepts for this file.
    #[error("{}: byte 2: expected IDX data type {expected}, found 0x{found:02x}", path.display())]
    IdxDtype {
        /// The file.
        path: PathBuf,
        /// The accepted type codes.
        expected: &'static str,
        /// The type code found.
        found: u8,
    },

    /// The IDX dimensions do not describe images or labels.
    #[error("{}: byte {offset}: {message}", path.display())]
    IdxDims {
        /// The file.
        path: PathBuf,
        /// Byte offset of the offending header field.
        offset: u64,
        /// What was expected and what was found.
        message: String,
    },

    /// Decompressing a gzip file failed (corrupt stream or checksum mismatch).
    #[error("{}: gzip data is corrupt after {offset} decompressed bytes: {source}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// Decompressed bytes read before the failure.
        offset: u64,
        /// The decoder's error.
        source: io::Error,
    },

    /// The file ends before its header says it should.
    #[error(
        "{}: data ended at byte {offset}{}, expected {expected} bytes",
        path.display(),
        if *decompressed { " of the decompressed stream" } else { "" }
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Byte offset where the data ended.
        offset: u64,
        /// Total number of bytes the header announces.
        expected: u64,
        /// True when the offsets count decompressed bytes of a gzip file.
        decompressed: bool,
    },

    /// The file goes on after the data its header announces.
    #[error("{}: expected end of data at byte {offset}, found more bytes", path.display())]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Byte offset where the data should have ended.
        offset: u64,
    },

    /// The NPY header is missing or malformed.
    #[error("{}: invalid NPY header: {message}", path.display())]
    NpyHeader {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        message: String,
    },

    /// The NPY element type is not supported for this array.
    #[error("{}: expected NPY dtype {expected}, found {found}", path.display())]
    NpyDtype {
        /// The file.
        path: PathBuf,
        /// The accepted dtypes.
        expected: &'static str,
        /// The dtype descriptor found.
        found: String,
    },

    /// The NPY array has the wrong number of dimensions.
    #[error("{}: expected a {expected} array, found shape {found:?}", path.display())]
    NpyShape {
        /// The file.
        path: PathBuf,
        /// The expected kind of array, e.g. "2-D".
        expected: &'static str,
        /// The shape found.
        found: Vec<u64>,
    },

    /// The features file and the labels file disagree on the number of examples.
    #[error(
        "{} holds {features} examples but {} holds {labels} labels",
        features_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The features (images) file.
        features_path: PathBuf,
        /// Number of examples in it.
        features: u64,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of labels in it.
        labels: u64,
    },

    /// A label is negative or too large to be a class index.
    #[error(
        "{}: {position}: label {value} is not a class index (expected 0..={})",
        path.display(),
        u32::MAX
    )]
    InvalidLabel {
        /// The file.
        path: PathBuf,
        /// Where the label is.
        position: Position,
        /// The label's value.
        value: i128,
    },

    /// A label is not below the number of classes requested.
    #[error("{}: {position}: label {label} is not below the class count {classes}", path.display())]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Where the label is.
        position: Position,
        /// The label.
        label: u32,
        /// The class count.
        classes: usize,
    },
}

impl DataError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
