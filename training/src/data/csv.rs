//! CSV loader: one example per row, numeric feature columns and one integer
//! label column.
//!
//! The file is streamed record by record through the `csv` crate. Fields are
//! trimmed; blank lines are skipped. Positions in errors are 1-based lines and
//! columns, as an editor shows them.

use std::fs::File;
use std::path::Path;

use ::csv::{ByteRecord, ReaderBuilder, Trim};
use ndarray::{Array1, Array2};

use super::Dataset;
use super::error::{DataError, Position};
use super::input::{check_label, class_count};

/// Which column holds the labels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LabelColumn {
    /// The last column.
    #[default]
    Last,
    /// The column at this 0-based index.
    Index(usize),
    /// The column with this name in the header row (requires a header).
    Name(String),
}

/// Whether the first row is a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsvHeader {
    /// A header exactly when some field of the first row is not a number.
    #[default]
    Auto,
    /// The first row is a header.
    Yes,
    /// There is no header; the first row is data.
    No,
}

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The label column (default: the last one).
    pub label_column: LabelColumn,
    /// Header detection (default: automatic).
    pub header: CsvHeader,
    /// Field delimiter (default: `b','`).
    pub delimiter: u8,
    /// Number of classes; `None` means the largest label plus one.
    pub classes: Option<usize>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            label_column: LabelColumn::Last,
            header: CsvHeader::Auto,
            delimiter: b',',
            classes: None,
        }
    }
}

/// Loads a CSV file: every column but the label column is a feature.
///
/// Every row must have as many fields as the first one, features must be finite
/// numbers and labels non-negative integers (an integral decimal such as `3.0`
/// is accepted). With `options.classes` set, every label must be below it.
pub fn load_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(Trim::All)
        .delimiter(options.delimiter)
        .from_reader(file);
    let mut record = ByteRecord::new();
    if !next_record(&mut reader, &mut record, path)? {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }

    let first_line = line_of(&record);
    let has_header = match options.header {
        CsvHeader::Yes => true,
        CsvHeader::No => false,
        CsvHeader::Auto => record.iter().any(|field| parse_number(field).is_none()),
    };
    let width = record.len();
    if width < 2 {
        return Err(DataError::Csv {
            path: path.to_path_buf(),
            line: first_line,
            message: format!("expected at least 2 columns (features and a label), found {width}"),
        });
    }
    let label_column = resolve_label_column(
        &options.label_column,
        has_header.then_some(&record),
        width,
        path,
        first_line,
    )?;

    let mut rows = RowParser {
        path,
        width,
        label_column,
        classes: options.classes,
        features: Vec::new(),
        labels: Vec::new(),
    };
    if !has_header {
        rows.push(&record)?;
    }
    while next_record(&mut reader, &mut record, path)? {
        rows.push(&record)?;
    }
    if rows.labels.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }

    let examples = rows.labels.len();
    let classes = class_count(&rows.labels, options.classes);
    let features = Array2::from_shape_vec((examples, width - 1), rows.features)
        .map_err(|e| DataError::Shape(e.to_string()))?;
    Dataset::new(features, Array1::from(rows.labels), classes)
}

/// Accumulates parsed rows.
struct RowParser<'a> {
    path: &'a Path,
    width: usize,
    label_column: usize,
    classes: Option<usize>,
    features: Vec<f32>,
    labels: Vec<u32>,
}

impl RowParser<'_> {
    fn push(&mut self, record: &ByteRecord) -> Result<(), DataError> {
        let line = line_of(record);
        if record.len() != self.width {
            return Err(DataError::CsvRaggedRow {
                path: self.path.to_path_buf(),
                line,
                expected: self.width,
                found: record.len(),
            });
        }
        for (index, field) in record.iter().enumerate() {
            if index == self.label_column {
                let label = parse_label(field).ok_or_else(|| DataError::CsvBadLabel {
                    path: self.path.to_path_buf(),
                    line,
                    column: index + 1,
                    text: String::from_utf8_lossy(field).into_owned(),
                })?;
                check_label(self.path, Position::Line(line), label, self.classes)?;
                self.labels.push(label);
            } else {
                let value = parse_number(field).ok_or_else(|| DataError::CsvNotNumber {
                    path: self.path.to_path_buf(),
                    line,
                    column: index + 1,
                    text: String::from_utf8_lossy(field).into_owned(),
                })?;
                self.features.push(value);
            }
        }
        Ok(())
    }
}

/// Reads the next record; `false` at the end of the file.
fn next_record(
    reader: &mut ::csv::Reader<File>,
    record: &mut ByteRecord,
    path: &Path,
) -> Result<bool, DataError> {
    reader.read_byte_record(record).map_err(|error| {
        let line = error.position().map_or(0, ::csv::Position::line);
        let message = error.to_string();
        match error.into_kind() {
            ::csv::ErrorKind::Io(source) => DataError::io(path, source),
            _ => DataError::Csv {
                path: path.to_path_buf(),
                line,
                message,
            },
        }
    })
}

/// The 1-based line where `record` starts.
fn line_of(record: &ByteRecord) -> u64 {
    record.position().map_or(0, ::csv::Position::line)
}

/// Resolves the label column to an index below `width`.
fn resolve_label_column(
    column: &LabelColumn,
    header: Option<&ByteRecord>,
    width: usize,
    path: &Path,
    line: u64,
) -> Result<usize, DataError> {
    let error = |message: String| DataError::Csv {
        path: path.to_path_buf(),
        line,
        message,
    };
    match column {
        LabelColumn::Last => Ok(width - 1),
        LabelColumn::Index(index) if *index < width => Ok(*index),
        LabelColumn::Index(index) => Err(error(format!(
            "label column index {index} is out of range: the file has {width} columns"
        ))),
        LabelColumn::Name(name) => {
            let header = header.ok_or_else(|| {
                error(format!(
                    "label column {name:?} is given by name but the file has no header row"
                ))
            })?;
            header
                .iter()
                .position(|field| field == name.as_bytes())
                .ok_or_else(|| {
                    let names: Vec<_> = header.iter().map(String::from_utf8_lossy).collect();
                    error(format!(
                        "expected a header column named {name:?}, found columns {}",
                        names.join(", ")
                    ))
                })
        }
    }
}

/// A finite `f32`, or `None`.
fn parse_number(field: &[u8]) -> Option<f32> {
    std::str::from_utf8(field)
        .ok()?
        .parse::<f32>()
        .ok()
        .filter(|v| v.is_finite())
}

/// A non-negative integer label (`7` or `7.0`), or `None`.
fn parse_label(field: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(field).ok()?;
    if let Ok(label) = text.parse::<u32>() {
        return Some(label);
    }
    let value = text.parse::<f64>().ok()?;
    let integral = value.is_finite() && value.fract() == 0.0;
    (integral && (0.0..=f64::from(u32::MAX)).contains(&value)).then_some(value as u32)
}
