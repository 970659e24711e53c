//! Model parameters and how updates are combined.
//!
//! This crate is pure: no IO beyond (de)serializing bytes the caller hands in,
//! no clocks, no network. It owns
//! - [`model`]: the layout of a model (ordered named tensors) and its parameters
//!   as one flat `f32` vector, with safetensors encoding and a content hash;
//! - [`Aggregator`]: FedAvg and the robust rules (median, trimmed mean, Krum,
//!   Multi-Krum, Bulyan, geometric median, centered clipping, norm bounding,
//!   FLTrust, optionally over bucket means), each returning the aggregate and a
//!   [`Verdict`] per input, built from the task spec through [`spec`];
//! - [`norm`]: norms and the L2 clipping every update goes through;
//! - [`quality`]: trust, near-duplicate detection, scores and reputation.

mod aggregator;
mod error;
pub mod model;
pub mod norm;
pub mod quality;
pub mod rules;
pub mod spec;

pub use aggregator::{Aggregate, Aggregator, Reason, RoundContext, Rule, Verdict};
pub use error::AggregationError;
pub use model::{Model, ModelError, ModelLayout, TensorSpec};
pub use rules::mean::weighted_mean;
