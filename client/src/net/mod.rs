//! The client's side of the network: QUIC with a pinned coordinator
//! certificate ([`tls`]), framed control streams ([`framed`]), the history a
//! client keeps on disk ([`history`]) and the session that joins a task and
//! takes part in its rounds ([`session`]).
//!
//! [`secagg_parameters`] is shared with the coordinator: both sides derive
//! the group topology and the fixed-point encoding from the task spec alone.

pub mod framed;
pub mod history;
pub mod session;
pub mod tls;

use fedstake_protocol::spec::{PrivacySpec, TaskSpec};
use fedstake_secure_agg::graph::{GroupTopology, NeighbourGraph};
use fedstake_secure_agg::quantize::QuantizationParams;

/// The SecAgg+ settings of a task: the fixed-point encoding and the group
/// topology (complete graph of `group_size` with the spec's threshold).
/// `None` in plain mode.
pub fn secagg_parameters(
    spec: &TaskSpec,
) -> Result<Option<(QuantizationParams, GroupTopology)>, String> {
    let PrivacySpec::Secagg {
        group_size,
        threshold,
    } = spec.privacy
    else {
        return Ok(None);
    };
    let params = QuantizationParams {
        clip_norm: spec.update.clip_norm as f32,
        fractional_bits: spec.update.fractional_bits,
        max_weight: spec.training.max_examples,
        summands: group_size,
    };
    params.validate().map_err(|e| e.to_string())?;
    let graph = NeighbourGraph::complete(group_size).map_err(|e| e.to_string())?;
    let topology = GroupTopology::new(graph, threshold).map_err(|e| e.to_string())?;
    Ok(Some((params, topology)))
}
