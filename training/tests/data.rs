//! Tests of the data loaders: round trips through files written by the tests,
//! one specific error per malformed input, the synthetic generator and splits.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use fedstake_training::data::{
    CsvHeader, CsvOptions, DataError, Dataset, LabelColumn, Position, SyntheticSpec, load_csv,
    load_idx, load_npy, synthetic, write_idx, write_npy_f32, write_npy_labels,
};
use ndarray::{Array1, Array2, array};
use npyz::{AutoSerialize, Order, WriteOptions, WriterBuilder};
use tempfile::TempDir;

fn dir() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn write_text(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, text).expect("write text");
    path
}

/// Writes an NPY array of `shape` with elements in file order.
fn write_npy<T: AutoSerialize>(path: &Path, shape: &[u64], order: Order, values: &[T]) {
    let file = BufWriter::new(File::create(path).expect("create npy"));
    let mut writer = WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .order(order)
        .writer(file)
        .begin_nd()
        .expect("begin npy");
    for value in values {
        writer.push(value).expect("push");
    }
    writer.finish().expect("finish npy");
}

/// Asserts that an error message names the file and contains `position`.
fn assert_message(error: &DataError, path: &Path, position: &str) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{message} does not name {path:?}"
    );
    assert!(
        message.contains(position),
        "{message} does not contain {position:?}"
    );
}

// ---------------------------------------------------------------- IDX

fn sample_images() -> (Array2<u8>, Vec<u8>) {
    let images = Array2::from_shape_fn((5, 6), |(i, j)| (i * 40 + j * 7) as u8);
    (images, vec![0, 1, 2, 1, 0])
}

fn idx_round_trip(gzip: bool) {
    let dir = dir();
    // Names without .gz: compression is detected from the content.
    let images_path = dir.path().join("images.idx");
    let labels_path = dir.path().join("labels.idx");
    let (images, labels) = sample_images();
    write_idx(
        &images_path,
        &labels_path,
        images.view(),
        2,
        3,
        &labels,
        gzip,
    )
    .expect("write");

    let head = fs::read(&images_path).expect("read back");
    assert_eq!(head.starts_with(&[0x1f, 0x8b]), gzip);

    let dataset = load_idx(&images_path, &labels_path, None).expect("load");
    assert_eq!(dataset.features(), &images.mapv(f32::from));
    assert_eq!(dataset.labels().to_vec(), vec![0, 1, 2, 1, 0]);
    assert_eq!(dataset.classes(), 3);
    assert_eq!(dataset.dim(), 6);

    let dataset = load_idx(&images_path, &labels_path, Some(10)).expect("load with classes");
    assert_eq!(dataset.classes(), 10);
}

#[test]
fn idx_plain_round_trip() {
    idx_round_trip(false);
}

#[test]
fn idx_gzip_round_trip() {
    idx_round_trip(true);
}

#[test]
fn idx_float_images_are_read_as_is() {
    let dir = dir();
    let images_path = dir.path().join("images");
    let mut bytes = vec![0, 0, 0x0d, 2, 0, 0, 0, 2, 0, 0, 0, 2];
    for value in [0.5f32, -1.25, 3.0, 7.5] {
        bytes.extend(value.to_be_bytes());
    }
    fs::write(&images_path, bytes).expect("write");
    let labels_path = dir.path().join("labels");
    fs::write(&labels_path, [0, 0, 8, 1, 0, 0, 0, 2, 1, 0]).expect("write");

    let dataset = load_idx(&images_path, &labels_path, None).expect("load");
    assert_eq!(dataset.features(), &array![[0.5f32, -1.25], [3.0, 7.5]]);
    assert_eq!(dataset.labels().to_vec(), vec![1, 0]);
}

#[test]
fn idx_bad_magic() {
    let dir = dir();
    let images_path = write_text(&dir, "images", "this is not an idx file");
    let labels_path = dir.path().join("labels");
    let error = load_idx(&images_path, &labels_path, None).unwrap_err();
    assert!(
        matches!(error, DataError::IdxMagic { found, .. } if found == *b"this"),
        "{error:?}"
    );
    assert_message(&error, &images_path, "byte 0");
}

#[test]
fn idx_bad_dtype() {
    let dir = dir();
    let images_path = dir.path().join("images");
    fs::write(&images_path, [0, 0, 0x0c, 3, 0, 0, 0, 0]).expect("write");
    let error = load_idx(&images_path, dir.path().join("labels"), None).unwrap_err();
    assert!(
        matches!(error, DataError::IdxDtype { found: 0x0c, .. }),
        "{error:?}"
    );
    assert_message(&error, &images_path, "byte 2");
}

#[test]
fn idx_truncated_images() {
    let dir = dir();
    let images_path = dir.path().join("images");
    let labels_path = dir.path().join("labels");
    let (images, labels) = sample_images();
    write_idx(
        &images_path,
        &labels_path,
        images.view(),
        2,
        3,
        &labels,
        false,
    )
    .expect("write");
    let bytes = fs::read(&images_path).expect("read");
    let full = bytes.len() as u64; // 16 header bytes + 30 pixels
    fs::write(&images_path, &bytes[..bytes.len() - 4]).expect("truncate");

    let error = load_idx(&images_path, &labels_path, None).unwrap_err();
    match &error {
        DataError::Truncated {
            offset,
            expected,
            decompressed: false,
            ..
        } => {
            assert_eq!(*offset, full - 4);
            assert_eq!(*expected, full);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert_message(&error, &images_path, &format!("byte {}", full - 4));
    assert_message(&error, &images_path, &format!("expected {full} bytes"));
}

#[test]
fn idx_truncated_gzip_labels() {
    let dir = dir();
    let images_path = dir.path().join("images");
    let labels_path = dir.path().join("labels");
    let (images, labels) = sample_images();
    write_idx(
        &images_path,
        &labels_path,
        images.view(),
        2,
        3,
        &labels,
        true,
    )
    .expect("write");
    let bytes = fs::read(&labels_path).expect("read");
    // Cut into the deflate stream: the decompressed data ends early.
    fs::write(&labels_path, &bytes[..bytes.len() - 12]).expect("truncate");

    let error = load_idx(&images_path, &labels_path, None).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::Truncated {
                offset: 10,
                expected: 13,
                decompressed: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_message(&error, &labels_path, "byte 10 of the decompressed stream");

    // All data present but the gzip footer cut off.
    fs::write(&labels_path, &bytes[..bytes.len() - 4]).expect("truncate");
    let error = load_idx(&images_path, &labels_path, None).unwrap_err();
    assert!(
        matches!(error, DataError::Gzip { offset: 13, .. }),
        "{error:?}"
    );
    assert_message(&error, &labels_path, "footer");

    // A corrupted checksum.
    let mut corrupt = bytes.clone();
    let crc = corrupt.len() - 6;
    corrupt[crc] ^= 0xff;
    fs::write(&labels_path, &corrupt).expect("corrupt");
    let error = load_idx(&images_path, &labels_path, None).unwrap_err();
    assert!(matches!(error, DataError::Gzip { .. }), "{error:?}");
    assert_message(&error, &labels_path, "checksum");
}

#[test]
fn idx_count_mismatch() {
    let dir = dir();
    let (images, labels) = sample_images();
    let images_path = dir.path().join("images");
    let labels_path = dir.path().join("labels");
    write_idx(
        &images_path,
        dir.path().join("unused"),
        images.view(),
        2,
        3,
        &labels,
        false,
    )
    .expect("write images");
    let four = images.select(ndarray::Axis(0), &[0, 1, 2, 3]);
    write_idx(
        dir.path().join("unused2"),
        &labels_path,
        four.view(),
        2,
        3,
        &labels[..4],
        false,
    )
    .expect("write labels");

    let error = load_idx(&images_path, &labels_path, None).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::CountMismatch {
                features: 5,
                labels: 4,
                ..
            }
        ),
        "{error:?}"
    );
    assert_message(&error, &images_path, "5 examples");
    assert_message(&error, &labels_path, "4 labels");
}

#[test]
fn idx_trailing_data() {
    let dir = dir();
    let images_path = dir.path().join("images");
    let labels_path = dir.path().join("labels");
    let (images, labels) = sample_images();
    write_idx(
        &images_path,
        &labels_path,
        images.view(),
        2,
        3,
        &labels,
        false,
    )
    .expect("write");
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&labels_path)
        .expect("open");
    file.write_all(&[9]).expect("append");
    drop(file);

    let error = load_idx(&images_path, &labels_path, None).unwrap_err();
    assert!(
        matches!(error, DataError::TrailingData { offset: 13, .. }),
        "{error:?}"
    );
    assert_message(&error, &labels_path, "byte 13");
}

#[test]
fn idx_label_not_below_classes() {
    let dir = dir();
    let images_path = dir.path().join("images");
    let labels_path = dir.path().join("labels");
    let (images, labels) = sample_images();
    write_idx(
        &images_path,
        &labels_path,
        images.view(),
        2,
        3,
        &labels,
        false,
    )
    .expect("write");

    let error = load_idx(&images_path, &labels_path, Some(2)).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::LabelOutOfRange {
                position: Position::Byte(10),
                label: 2,
                classes: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert_message(&error, &labels_path, "byte 10");
}

#[test]
fn idx_missing_file_is_io_error() {
    let dir = dir();
    let images_path = dir.path().join("missing");
    let error = load_idx(&images_path, dir.path().join("labels"), None).unwrap_err();
    assert!(matches!(error, DataError::Io { .. }), "{error:?}");
    assert_message(&error, &images_path, "missing");
}

#[test]
fn write_idx_rejects_inconsistent_shapes() {
    let dir = dir();
    let (images, labels) = sample_images();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let error = write_idx(&a, &b, images.view(), 2, 2, &labels, false).unwrap_err();
    assert!(matches!(error, DataError::Shape(_)), "{error:?}");
    let error = write_idx(&a, &b, images.view(), 2, 3, &labels[..3], false).unwrap_err();
    assert!(matches!(error, DataError::Shape(_)), "{error:?}");
}

// ---------------------------------------------------------------- CSV

#[test]
fn csv_with_header_label_by_name() {
    let dir = dir();
    let path = write_text(&dir, "d.csv", "x1, y ,x2\n1.5,1,2\n-3,0,4e1\n\n0.25,2,0\n");
    let options = CsvOptions {
        label_column: LabelColumn::Name("y".into()),
        ..CsvOptions::default()
    };
    let dataset = load_csv(&path, &options).expect("load");
    assert_eq!(
        dataset.features(),
        &array![[1.5f32, 2.0], [-3.0, 40.0], [0.25, 0.0]]
    );
    assert_eq!(dataset.labels().to_vec(), vec![1, 0, 2]);
    assert_eq!(dataset.classes(), 3);
}

#[test]
fn csv_without_header_label_by_index() {
    let dir = dir();
    let path = write_text(&dir, "d.csv", "1;0.5;0.25\n0;1;2\n");
    let options = CsvOptions {
        label_column: LabelColumn::Index(0),
        header: CsvHeader::No,
        delimiter: b';',
        classes: Some(4),
    };
    let dataset = load_csv(&path, &options).expect("load");
    assert_eq!(dataset.features(), &array![[0.5f32, 0.25], [1.0, 2.0]]);
    assert_eq!(dataset.labels().to_vec(), vec![1, 0]);
    assert_eq!(dataset.classes(), 4);
}

#[test]
fn csv_auto_header_and_default_last_column() {
    let dir = dir();
    let numeric = write_text(&dir, "n.csv", "1,2,1\n3,4,0\n");
    let dataset = load_csv(&numeric, &CsvOptions::default()).expect("load");
    assert_eq!(dataset.len(), 2);
    assert_eq!(dataset.labels().to_vec(), vec![1, 0]);

    let headed = write_text(&dir, "h.csv", "a,b,label\n1,2,1.0\n3,4,0\n");
    let dataset = load_csv(&headed, &CsvOptions::default()).expect("load");
    assert_eq!(dataset.features(), &array![[1.0f32, 2.0], [3.0, 4.0]]);
    assert_eq!(dataset.labels().to_vec(), vec![1, 0]);
}

#[test]
fn csv_ragged_row() {
    let dir = dir();
    let path = write_text(&dir, "r.csv", "a,b,y\n1,2,0\n3,1\n");
    let error = load_csv(&path, &CsvOptions::default()).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::CsvRaggedRow {
                line: 3,
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert_message(&error, &path, ":3:");
    assert_message(&error, &path, "expected 3 fields, found 2");
}

#[test]
fn csv_non_numeric_feature() {
    let dir = dir();
    let path = write_text(&dir, "n.csv", "a,b,y\n1,2,0\n3,abc,1\n");
    let error = load_csv(&path, &CsvOptions::default()).unwrap_err();
    match &error {
        DataError::CsvNotNumber {
            line: 3,
            column: 2,
            text,
            ..
        } => assert_eq!(text, "abc"),
        other => panic!("expected CsvNotNumber, got {other:?}"),
    }
    assert_message(&error, &path, ":3: column 2");
    assert_message(&error, &path, "\"abc\"");
}

#[test]
fn csv_bad_label() {
    let dir = dir();
    for (text, found) in [
        ("1,2,-1\n", "-1"),
        ("1,2,1.5\n", "1.5"),
        ("1,2,cat\n", "cat"),
    ] {
        let path = write_text(&dir, "l.csv", &format!("a,b,y\n{text}"));
        let error = load_csv(&path, &CsvOptions::default()).unwrap_err();
        match &error {
            DataError::CsvBadLabel {
                line: 2,
                column: 3,
                text,
                ..
            } => assert_eq!(text, found),
            other => panic!("expected CsvBadLabel, got {other:?}"),
        }
        assert_message(&error, &path, ":2: column 3");
    }
}

#[test]
fn csv_label_not_below_classes() {
    let dir = dir();
    let path = write_text(&dir, "c.csv", "1,0\n2,1\n3,2\n");
    let options = CsvOptions {
        classes: Some(2),
        ..CsvOptions::default()
    };
    let error = load_csv(&path, &options).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::LabelOutOfRange {
                position: Position::Line(3),
                label: 2,
                classes: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert_message(&error, &path, "line 3");
}

#[test]
fn csv_empty_and_header_only() {
    let dir = dir();
    for (name, text) in [("empty.csv", ""), ("header.csv", "a,b,y\n")] {
        let path = write_text(&dir, name, text);
        let error = load_csv(&path, &CsvOptions::default()).unwrap_err();
        assert!(matches!(error, DataError::Empty { .. }), "{error:?}");
        assert_message(&error, &path, "no examples");
    }
}

#[test]
fn csv_unknown_label_column() {
    let dir = dir();
    let path = write_text(&dir, "u.csv", "a,b,y\n1,2,0\n");
    let options = CsvOptions {
        label_column: LabelColumn::Name("z".into()),
        ..CsvOptions::default()
    };
    let error = load_csv(&path, &options).unwrap_err();
    assert!(matches!(error, DataError::Csv { line: 1, .. }), "{error:?}");
    assert_message(&error, &path, "\"z\"");

    let options = CsvOptions {
        label_column: LabelColumn::Index(3),
        ..CsvOptions::default()
    };
    let error = load_csv(&path, &options).unwrap_err();
    assert!(matches!(error, DataError::Csv { line: 1, .. }), "{error:?}");
}

// ---------------------------------------------------------------- NPY

#[test]
fn npy_f32_round_trip() {
    let dir = dir();
    let features_path = dir.path().join("x.npy");
    let labels_path = dir.path().join("y.npy");
    let features = array![[0.5f32, -1.0, 2.0], [3.25, 4.0, -5.5]];
    write_npy_f32(&features_path, features.view()).expect("write features");
    write_npy_labels(&labels_path, &[1, 0]).expect("write labels");

    let dataset = load_npy(&features_path, &labels_path, None).expect("load");
    assert_eq!(dataset.features(), &features);
    assert_eq!(dataset.labels().to_vec(), vec![1, 0]);
    assert_eq!(dataset.classes(), 2);
}

#[test]
fn npy_f64_features_i64_labels() {
    let dir = dir();
    let features_path = dir.path().join("x.npy");
    let labels_path = dir.path().join("y.npy");
    write_npy(
        &features_path,
        &[3, 2],
        Order::C,
        &[1.0f64, 2.0, 3.0, 4.0, 5.5, -6.0],
    );
    write_npy(&labels_path, &[3], Order::C, &[2i64, 0, 1]);

    let dataset = load_npy(&features_path, &labels_path, Some(5)).expect("load");
    assert_eq!(
        dataset.features(),
        &array![[1.0f32, 2.0], [3.0, 4.0], [5.5, -6.0]]
    );
    assert_eq!(dataset.labels().to_vec(), vec![2, 0, 1]);
    assert_eq!(dataset.classes(), 5);
}

#[test]
fn npy_fortran_order_and_u8_features() {
    let dir = dir();
    let features_path = dir.path().join("x.npy");
    let labels_path = dir.path().join("y.npy");
    // Column-major storage of [[1, 2, 3], [4, 5, 6]].
    write_npy(
        &features_path,
        &[2, 3],
        Order::Fortran,
        &[1u8, 4, 2, 5, 3, 6],
    );
    write_npy(&labels_path, &[2], Order::C, &[0u16, 1]);

    let dataset = load_npy(&features_path, &labels_path, None).expect("load");
    assert_eq!(
        dataset.features(),
        &array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]
    );
    assert_eq!(dataset.labels().to_vec(), vec![0, 1]);
}

#[test]
fn npy_wrong_ndim() {
    let dir = dir();
    let features_path = dir.path().join("x.npy");
    let labels_path = dir.path().join("y.npy");
    write_npy(
        &features_path,
        &[2, 1, 2],
        Order::C,
        &[1.0f32, 2.0, 3.0, 4.0],
    );
    write_npy_labels(&labels_path, &[0, 1]).expect("write labels");
    let error = load_npy(&features_path, &labels_path, None).unwrap_err();
    match &error {
        DataError::NpyShape { found, .. } => assert_eq!(found, &vec![2, 1, 2]),
        other => panic!("expected NpyShape, got {other:?}"),
    }
    assert_message(&error, &features_path, "2-D");

    write_npy_f32(&features_path, array![[1.0f32], [2.0]].view()).expect("write features");
    write_npy(&labels_path, &[2, 1], Order::C, &[0u32, 1]);
    let error = load_npy(&features_path, &labels_path, None).unwrap_err();
    assert!(matches!(error, DataError::NpyShape { .. }), "{error:?}");
    assert_message(&error, &labels_path, "1-D");
}

#[test]
fn npy_count_mismatch() {
    let dir = dir();
    let features_path = dir.path().join("x.npy");
    let labels_path = dir.path().join("y.npy");
    write_npy_f32(&features_path, array![[1.0f32], [2.0], [3.0]].view()).expect("write");
    write_npy_labels(&labels_path, &[0, 1]).expect("write");
    let error = load_npy(&features_path, &labels_path, None).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::CountMismatch {
                features: 3,
                labels: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert_message(&error, &features_path, "3 examples");
    assert_message(&error, &labels_path, "2 labels");
}

#[test]
fn npy_negative_label() {
    let dir = dir();
    let features_path = dir.path().join("x.npy");
    let labels_path = dir.path().join("y.npy");
    write_npy_f32(&features_path, array![[1.0f32], [2.0]].view()).expect("write");
    write_npy(&labels_path, &[2], Order::C, &[0i32, -3]);
    let error = load_npy(&features_path, &labels_path, None).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::InvalidLabel {
                position: Position::Element(1),
                value: -3,
                ..
            }
        ),
        "{error:?}"
    );
    assert_message(&error, &labels_path, "element 1");
}

#[test]
fn npy_label_not_below_classes() {
    let dir = dir();
    let features_path = dir.path().join("x.npy");
    let labels_path = dir.path().join("y.npy");
    write_npy_f32(&features_path, array![[1.0f32], [2.0], [3.0]].view()).expect("write");
    write_npy_labels(&labels_path, &[0, 1, 7]).expect("write");
    let error = load_npy(&features_path, &labels_path, Some(3)).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::LabelOutOfRange {
                position: Position::Element(2),
                label: 7,
                classes: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert_message(&error, &labels_path, "element 2");
}

#[test]
fn npy_unsupported_dtype() {
    let dir = dir();
    let features_path = dir.path().join("x.npy");
    let labels_path = dir.path().join("y.npy");
    write_npy(&features_path, &[1, 2], Order::C, &[1i32, 2]);
    write_npy(&labels_path, &[1], Order::C, &[0i32]);
    let error = load_npy(&features_path, &labels_path, None).unwrap_err();
    assert!(matches!(error, DataError::NpyDtype { .. }), "{error:?}");
    assert_message(&error, &features_path, "<i4");

    write_npy_f32(&features_path, array![[1.0f32, 2.0]].view()).expect("write");
    write_npy(&labels_path, &[1], Order::C, &[0.5f32]);
    let error = load_npy(&features_path, &labels_path, None).unwrap_err();
    assert!(matches!(error, DataError::NpyDtype { .. }), "{error:?}");
    assert_message(&error, &labels_path, "<f4");
}

#[test]
fn npy_truncated_and_bad_header() {
    let dir = dir();
    let features_path = dir.path().join("x.npy");
    let labels_path = dir.path().join("y.npy");
    write_npy_f32(&features_path, array![[1.0f32, 2.0], [3.0, 4.0]].view()).expect("write");
    write_npy_labels(&labels_path, &[0, 1]).expect("write");
    let bytes = fs::read(&features_path).expect("read");
    let full = bytes.len() as u64;
    fs::write(&features_path, &bytes[..bytes.len() - 2]).expect("truncate");
    let error = load_npy(&features_path, &labels_path, None).unwrap_err();
    assert!(
        matches!(error, DataError::Truncated { offset, expected, .. }
            if offset == full - 2 && expected == full),
        "{error:?}"
    );
    assert_message(&error, &features_path, &format!("byte {}", full - 2));

    let garbage = write_text(&dir, "g.npy", "not numpy at all");
    let error = load_npy(&garbage, &labels_path, None).unwrap_err();
    assert!(matches!(error, DataError::NpyHeader { .. }), "{error:?}");
    assert_message(&error, &garbage, "NPY header");
}

// ---------------------------------------------------------------- synthetic

fn spec(seed: u64) -> SyntheticSpec {
    SyntheticSpec {
        classes: 3,
        dim: 8,
        examples: 301,
        separation: 4.0,
        noise: 0.5,
        seed,
    }
}

#[test]
fn synthetic_is_deterministic_per_seed() {
    let a = synthetic(&spec(7)).expect("generate");
    let b = synthetic(&spec(7)).expect("generate");
    let c = synthetic(&spec(8)).expect("generate");
    assert_eq!(a, b);
    assert_ne!(a.features(), c.features());
    assert_eq!((a.len(), a.dim(), a.classes()), (301, 8, 3));
}

#[test]
fn synthetic_is_balanced_and_clustered() {
    let data = synthetic(&spec(1)).expect("generate");
    let counts = data.class_counts();
    assert_eq!(counts.iter().sum::<usize>(), 301);
    assert!(counts.iter().all(|&n| n == 100 || n == 101), "{counts:?}");
    // Labels are shuffled, not in round-robin order.
    let labels = data.labels().to_vec();
    assert!(labels.windows(2).any(|w| (w[0] + 1) % 3 != w[1]));

    // Each example is closer to its own class mean than to the others'.
    let means: Vec<Array1<f32>> = (0..3u32)
        .map(|k| {
            let rows: Vec<usize> = (0..data.len()).filter(|&i| labels[i] == k).collect();
            let sel = data.select(&rows);
            sel.features()
                .mean_axis(ndarray::Axis(0))
                .expect("non-empty")
        })
        .collect();
    let correct = (0..data.len())
        .filter(|&i| {
            let x = data.features().row(i);
            let dist = |m: &Array1<f32>| (&x - m).mapv(|v| v * v).sum();
            let nearest = (0..3).min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b])));
            nearest == Some(labels[i] as usize)
        })
        .count();
    assert!(correct as f64 > 0.95 * data.len() as f64, "{correct}");
}

#[test]
fn synthetic_rejects_bad_specs() {
    let cases = [
        (
            SyntheticSpec {
                classes: 1,
                ..spec(0)
            },
            "classes",
        ),
        (SyntheticSpec { dim: 0, ..spec(0) }, "dim"),
        (
            SyntheticSpec {
                examples: 0,
                ..spec(0)
            },
            "examples",
        ),
        (
            SyntheticSpec {
                noise: -1.0,
                ..spec(0)
            },
            "noise",
        ),
        (
            SyntheticSpec {
                noise: f32::NAN,
                ..spec(0)
            },
            "noise",
        ),
        (
            SyntheticSpec {
                separation: f32::INFINITY,
                ..spec(0)
            },
            "separation",
        ),
    ];
    for (bad, name) in cases {
        let error = synthetic(&bad).unwrap_err();
        assert!(
            matches!(error, DataError::InvalidSpec { field, .. } if field == name),
            "{error:?}"
        );
        assert!(error.to_string().contains(name), "{error}");
    }
    // Zero noise is allowed: every example sits on its centre.
    let exact = synthetic(&SyntheticSpec {
        noise: 0.0,
        ..spec(0)
    })
    .expect("generate");
    let distinct: BTreeSet<Vec<u32>> = exact
        .features()
        .rows()
        .into_iter()
        .map(|row| row.iter().map(|v| v.to_bits()).collect())
        .collect();
    assert_eq!(distinct.len(), 3);
}

// ---------------------------------------------------------------- split

#[test]
fn split_sizes_and_disjoint() {
    let features = Array2::from_shape_fn((100, 2), |(i, j)| (i * 2 + j) as f32);
    let labels = Array1::from_iter((0..100).map(|i| i % 4));
    let data = Dataset::new(features, labels, 4).expect("dataset");
    let (train, validation) = data.split(0.25, 3).expect("split");
    assert_eq!((train.len(), validation.len()), (75, 25));
    assert_eq!(train.classes(), 4);

    let ids = |d: &Dataset| -> BTreeSet<u32> {
        d.features()
            .column(0)
            .iter()
            .map(|&v| v as u32 / 2)
            .collect()
    };
    let (a, b) = (ids(&train), ids(&validation));
    assert!(a.is_disjoint(&b));
    assert_eq!(a.union(&b).count(), 100);
    // Labels stay attached to their rows.
    for d in [&train, &validation] {
        for (row, &label) in d.features().rows().into_iter().zip(d.labels()) {
            assert_eq!(row[0] as u32 / 2 % 4, label);
        }
    }
    assert_eq!(data.split(0.25, 3).expect("split").0, train);
    assert!(matches!(data.split(1.0, 3), Err(DataError::Shape(_))));
}
