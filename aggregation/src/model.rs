//! Model layouts, flat parameter vectors, safetensors and content hashes.
//!
//! Every backend (ndarray, tch) and every aggregator exchanges a model as a
//! [`ModelLayout`] — the ordered list of named tensors and their shapes — plus
//! one flat `f32` vector holding the tensors back to back in layout order. A
//! model travels as safetensors; the layout order is kept in the file's
//! metadata because safetensors itself orders tensors by name.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::{SafeTensors, serialize};
use sha2::{Digest, Sha256};

/// Metadata key under which the layout order of tensors is stored.
const LAYOUT_ORDER_KEY: &str = "fedstake.layout";
/// Domain separator of the content hash, versioned with the encoding.
const HASH_DOMAIN: &[u8] = b"fedstake/model/v1";

/// One named tensor of a model. Every tensor is `f32`, the only dtype the
/// secure-aggregation path can quantize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Name, unique within the layout (for example `layers.0.weight`).
    pub name: String,
    /// Shape, outermost dimension first.
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// A tensor spec from a name and a shape.
    pub fn new(name: impl Into<String>, shape: impl Into<Vec<usize>>) -> Self {
        Self {
            name: name.into(),
            shape: shape.into(),
        }
    }

    /// Number of scalars in the tensor.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?} f32", self.name, self.shape)
    }
}

/// The ordered tensors of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLayout {
    tensors: Vec<TensorSpec>,
}

impl ModelLayout {
    /// A layout from its tensors; names must be unique and non-empty.
    pub fn new(tensors: Vec<TensorSpec>) -> Result<Self, ModelError> {
        let mut seen = std::collections::HashSet::new();
        for tensor in &tensors {
            if tensor.name.is_empty() || tensor.name.contains(',') {
                return Err(ModelError::InvalidLayout(format!(
                    "tensor name {:?} must be non-empty and free of commas",
                    tensor.name
                )));
            }
            if !seen.insert(tensor.name.as_str()) {
                return Err(ModelError::InvalidLayout(format!(
                    "tensor name {:?} appears twice",
                    tensor.name
                )));
            }
        }
        Ok(Self { tensors })
    }

    /// The tensors in order.
    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    /// Total number of parameters (the length of the flat vector).
    pub fn num_params(&self) -> usize {
        self.tensors.iter().map(TensorSpec::numel).sum()
    }

    /// Ranges of the flat vector that hold each tensor, in layout order.
    pub fn ranges(&self) -> impl Iterator<Item = (&TensorSpec, Range<usize>)> {
        self.tensors.iter().scan(0, |offset, tensor| {
            let start = *offset;
            *offset += tensor.numel();
            Some((tensor, start..*offset))
        })
    }

    /// The range of the flat vector that holds tensor `name`.
    pub fn range_of(&self, name: &str) -> Option<Range<usize>> {
        self.ranges().find(|(t, _)| t.name == name).map(|(_, r)| r)
    }
}

impl fmt::Display for ModelLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.tensors.iter().map(ToString::to_string).collect();
        write!(f, "[{}]", parts.join(", "))
    }
}

/// A model: its layout and its parameters as one flat vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    layout: ModelLayout,
    params: Vec<f32>,
}

impl Model {
    /// A model from a layout and parameters of matching length.
    pub fn new(layout: ModelLayout, params: Vec<f32>) -> Result<Self, ModelError> {
        if params.len() != layout.num_params() {
            return Err(ModelError::LengthMismatch {
                expected: layout.num_params(),
                found: params.len(),
            });
        }
        Ok(Self { layout, params })
    }

    /// The layout.
    pub fn layout(&self) -> &ModelLayout {
        &self.layout
    }

    /// The flat parameter vector.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The flat parameter vector, mutable (its length is fixed by the layout).
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// Consumes the model, returning its flat parameters.
    pub fn into_params(self) -> Vec<f32> {
        self.params
    }

    /// The parameters of tensor `name`.
    pub fn tensor(&self, name: &str) -> Option<&[f32]> {
        self.layout.range_of(name).map(|r| &self.params[r])
    }

    /// Encodes the model as safetensors bytes (little-endian `F32` tensors; the
    /// layout order in the metadata).
    pub fn to_safetensors(&self) -> Result<Vec<u8>, ModelError> {
        let bytes: Vec<u8> = self.params.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut views = Vec::with_capacity(self.layout.tensors.len());
        for (tensor, range) in self.layout.ranges() {
            let data = &bytes[range.start * 4..range.end * 4];
            let view = TensorView::new(Dtype::F32, tensor.shape.clone(), data)
                .map_err(|e| ModelError::Safetensors(e.to_string()))?;
            views.push((tensor.name.clone(), view));
        }
        let order: Vec<&str> = self
            .layout
            .tensors
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let metadata = HashMap::from([(LAYOUT_ORDER_KEY.to_string(), order.join(","))]);
        serialize(views, Some(metadata)).map_err(|e| ModelError::Safetensors(e.to_string()))
    }

    /// Decodes safetensors bytes. With `expected`, the file must hold exactly
    /// that layout; without, the layout comes from the file (in the order its
    /// metadata records, or by name when it records none).
    pub fn from_safetensors(
        bytes: &[u8],
        expected: Option<&ModelLayout>,
    ) -> Result<Self, ModelError> {
        let (_, metadata) = SafeTensors::read_metadata(bytes)
            .map_err(|e| ModelError::Safetensors(e.to_string()))?;
        let file =
            SafeTensors::deserialize(bytes).map_err(|e| ModelError::Safetensors(e.to_string()))?;
        let layout = match expected {
            Some(layout) => layout.clone(),
            None => {
                let recorded = metadata
                    .metadata()
                    .as_ref()
                    .and_then(|m| m.get(LAYOUT_ORDER_KEY));
                let mut names: Vec<String> = match recorded {
                    Some(order) if !order.is_empty() => {
                        order.split(',').map(String::from).collect()
                    }
                    _ => file.names().into_iter().map(String::from).collect(),
                };
                if recorded.is_none() {
                    names.sort();
                }
                let mut tensors = Vec::with_capacity(names.len());
                for name in names {
                    let view = file
                        .tensor(&name)
                        .map_err(|_| ModelError::MissingTensor(name.clone()))?;
                    tensors.push(TensorSpec::new(name, view.shape().to_vec()));
                }
                ModelLayout::new(tensors)?
            }
        };
        if file.len() != layout.tensors.len() {
            let mut extra: Vec<String> = file
                .names()
                .into_iter()
                .filter(|n| layout.range_of(n).is_none())
                .map(String::from)
                .collect();
            extra.sort();
            return Err(ModelError::LayoutMismatch(format!(
                "the file has tensors the layout does not: {}",
                extra.join(", ")
            )));
        }
        let mut params = Vec::with_capacity(layout.num_params());
        for tensor in &layout.tensors {
            let view = file
                .tensor(&tensor.name)
                .map_err(|_| ModelError::MissingTensor(tensor.name.clone()))?;
            if view.dtype() != Dtype::F32 {
                return Err(ModelError::UnsupportedDtype {
                    tensor: tensor.name.clone(),
                    dtype: format!("{:?}", view.dtype()),
                });
            }
            if view.shape() != tensor.shape.as_slice() {
                return Err(ModelError::LayoutMismatch(format!(
                    "tensor {} has shape {:?}, the layout expects {:?}",
                    tensor.name,
                    view.shape(),
                    tensor.shape
                )));
            }
            params.extend(
                view.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        Model::new(layout, params)
    }

    /// Writes the model to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let bytes = self.to_safetensors()?;
        std::fs::write(path, bytes).map_err(|source| ModelError::Io {
            path: path.into(),
            source,
        })
    }

    /// Reads a model from a safetensors file (see [`Model::from_safetensors`]).
    pub fn load(path: &Path, expected: Option<&ModelLayout>) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_safetensors(&bytes, expected).map_err(|e| ModelError::InFile {
            path: path.into(),
            source: Box::new(e),
        })
    }

    /// SHA-256 of the model's canonical bytes: a domain tag, then per tensor in
    /// layout order its name, its shape and its values as little-endian `f32`.
    /// Unlike a hash of the safetensors file it does not depend on how a
    /// serializer orders or pads the header.
    pub fn content_hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(HASH_DOMAIN);
        hasher.update((self.layout.tensors.len() as u64).to_le_bytes());
        for (tensor, range) in self.layout.ranges() {
            hasher.update((tensor.name.len() as u64).to_le_bytes());
            hasher.update(tensor.name.as_bytes());
            hasher.update((tensor.shape.len() as u64).to_le_bytes());
            for &dim in &tensor.shape {
                hasher.update((dim as u64).to_le_bytes());
            }
            for value in &self.params[range] {
                hasher.update(value.to_le_bytes());
            }
        }
        hasher.finalize().into()
    }

    /// [`Model::content_hash`] as lowercase hex.
    pub fn content_hash_hex(&self) -> String {
        hex::encode(self.content_hash())
    }
}

/// What can go wrong with a model or its encoding.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The layout itself is malformed.
    #[error("invalid model layout: {0}")]
    InvalidLayout(String),
    /// A parameter vector does not have the layout's length.
    #[error("parameter vector has {found} values, the layout needs {expected}")]
    LengthMismatch {
        /// Number of parameters of the layout.
        expected: usize,
        /// Number of values given.
        found: usize,
    },
    /// The tensors in a file do not match the expected layout.
    #[error("model layout mismatch: {0}")]
    LayoutMismatch(String),
    /// A tensor of the layout is missing from the file.
    #[error("model file has no tensor named {0:?}")]
    MissingTensor(String),
    /// A tensor is stored in a dtype other than `F32`.
    #[error("tensor {tensor} is {dtype}; fedstake models are F32")]
    UnsupportedDtype {
        /// Tensor name.
        tensor: String,
        /// The dtype found.
        dtype: String,
    },
    /// The safetensors encoding is malformed.
    #[error("malformed safetensors data: {0}")]
    Safetensors(String),
    /// An error reading a specific file.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        source: Box<ModelError>,
    },
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}
