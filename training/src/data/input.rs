//! Input plumbing shared by the binary loaders: a buffered file reader that
//! transparently decompresses gzip (detected by the `1f 8b` magic, not by the
//! file name), counts the bytes it hands out so errors can name offsets, and
//! maps I/O failures to the specific [`DataError`] variants; plus the label
//! checks every loader applies.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;

use super::error::{DataError, Position};

/// The two gzip magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Plain or gzip-compressed file contents.
enum Contents {
    Plain(BufReader<File>),
    Gzip(Box<GzDecoder<BufReader<File>>>),
}

impl Read for Contents {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Contents::Plain(reader) => reader.read(buf),
            Contents::Gzip(reader) => reader.read(buf),
        }
    }
}

/// A reader that counts the bytes it returns.
pub(crate) struct CountingReader {
    inner: Contents,
    count: u64,
}

impl CountingReader {
    /// Bytes handed out so far (decompressed bytes for gzip files).
    pub(crate) fn count(&self) -> u64 {
        self.count
    }
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// An input file opened for one sequential pass.
pub(crate) struct InputFile {
    pub(crate) path: PathBuf,
    pub(crate) reader: CountingReader,
    gzip: bool,
}

impl InputFile {
    /// Opens `path`, detecting gzip compression from the first two bytes.
    pub(crate) fn open(path: &Path) -> Result<Self, DataError> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let mut buffered = BufReader::new(file);
        let head = buffered.fill_buf().map_err(|e| DataError::io(path, e))?;
        let gzip = head.starts_with(&GZIP_MAGIC);
        let inner = if gzip {
            Contents::Gzip(Box::new(GzDecoder::new(buffered)))
        } else {
            Contents::Plain(buffered)
        };
        Ok(Self {
            path: path.to_path_buf(),
            reader: CountingReader { inner, count: 0 },
            gzip,
        })
    }

    /// Fills `buf`; `expected_total` is the byte count the file should have at
    /// least, reported if the data ends early.
    pub(crate) fn read_exact(
        &mut self,
        buf: &mut [u8],
        expected_total: u64,
    ) -> Result<(), DataError> {
        self.reader
            .read_exact(buf)
            .map_err(|e| self.error(e, expected_total))
    }

    /// Checks that the data ends here.
    pub(crate) fn expect_end(&mut self) -> Result<(), DataError> {
        let offset = self.reader.count();
        let mut byte = [0u8; 1];
        loop {
            match self.reader.read(&mut byte) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    return Err(DataError::TrailingData {
                        path: self.path.clone(),
                        offset,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(e, offset)),
            }
        }
    }

    /// Maps a read error: early end of data becomes [`DataError::Truncated`],
    /// decoder failures [`DataError::Gzip`], anything else [`DataError::Io`].
    pub(crate) fn error(&self, error: io::Error, expected_total: u64) -> DataError {
        let offset = self.reader.count();
        let eof = error.kind() == io::ErrorKind::UnexpectedEof;
        if eof && self.gzip && offset >= expected_total {
            // All announced data arrived; what is missing is the gzip footer.
            let source = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the compressed stream ends before its gzip footer",
            );
            DataError::Gzip {
                path: self.path.clone(),
                offset,
                source,
            }
        } else if eof {
            DataError::Truncated {
                path: self.path.clone(),
                offset,
                expected: expected_total,
                decompressed: self.gzip,
            }
        } else if self.gzip {
            DataError::Gzip {
                path: self.path.clone(),
                offset,
                source: error,
            }
        } else {
            DataError::io(&self.path, error)
        }
    }
}

/// Checks a label against the requested class count, if any.
pub(crate) fn check_label(
    path: &Path,
    position: Position,
    label: u32,
    classes: Option<usize>,
) -> Result<(), DataError> {
    match classes {
        Some(classes) if label as usize >= classes => Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            position,
            label,
            classes,
        }),
        _ => Ok(()),
    }
}

/// Converts an integer label read from a file to a class index.
pub(crate) fn to_label(
    path: &Path,
    position: Position,
    value: i128,
    classes: Option<usize>,
) -> Result<u32, DataError> {
    let label = u32::try_from(value).map_err(|_| DataError::InvalidLabel {
        path: path.to_path_buf(),
        position,
        value,
    })?;
    check_label(path, position, label, classes)?;
    Ok(label)
}

/// The class count: the requested one, or the largest label plus one.
pub(crate) fn class_count(labels: &[u32], classes: Option<usize>) -> usize {
    classes.unwrap_or_else(|| labels.iter().max().map_or(0, |&max| max as usize + 1))
}

/// Capacity to reserve for `announced` elements: a corrupt header must not
/// make the loader allocate gigabytes before the data proves it exists.
pub(crate) fn initial_capacity(announced: u64) -> usize {
    const MAX_RESERVE: u64 = 1 << 24;
    usize::try_from(announced.min(MAX_RESERVE)).unwrap_or(0)
}
