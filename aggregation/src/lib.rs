//! Model parameters and how updates are combined.
//!
//! This crate is pure: no IO beyond (de)serializing bytes the caller hands in,
//! no clocks, no network. It owns
//! - [`model`]: the layout of a model (ordered named tensors) and its parameters
//!   as one flat `f32` vector, with safetensors encoding and a content hash;
//! - [`fedavg`]: weighted federated averaging of update vectors, the baseline
//!   aggregator the robust ones are measured against;
//! - [`norm`]: norms and the L2 clipping every update goes through.

pub mod fedavg;
pub mod model;
pub mod norm;

pub use fedavg::{AggregationError, weighted_mean};
pub use model::{Model, ModelError, ModelLayout, TensorSpec};
