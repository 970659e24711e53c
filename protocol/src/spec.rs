//! The task spec: the sponsor's `task.toml` (DESIGN section 3.1).
//!
//! A [`TaskSpec`] fixes everything about a federated training task that the coordinator, the
//! clients and the reward contract must agree on: the model and data schema, the cohort, the
//! phase deadlines, local training, the update bound and its fixed-point encoding, the privacy
//! mode, the robust aggregator, scoring, rewards, slashing, the chain and the coordinator.
//! `docs/task-spec.md` documents every field with its default and constraint.
//!
//! Three properties hold for every spec this module hands out:
//!
//! * **Typos are errors.** Every table rejects unknown keys, so `cohort.mn = 3` fails instead of
//!   silently running with a default.
//! * **Validated.** [`TaskSpec::from_toml_str`] and [`TaskSpec::load`] run
//!   [`TaskSpec::validate`], which rejects settings that would break a round, each with a
//!   [`SpecError::Invalid`] naming the dotted field (`"cohort.min"`) and the reason. This includes
//!   the quantization overflow check of the secure sum (see [`TaskSpec::validate`]).
//! * **Canonically hashed.** [`TaskSpec::spec_hash`] is the SHA-256 of
//!   [`TaskSpec::to_toml_string`], the re-serialization of the parsed struct. Comments,
//!   whitespace, key order, number spelling and defaults written out or left implicit do not
//!   change it; any change of value does.
//!
//! String fields that have a syntax of their own (chain endpoint, contract and token addresses,
//! coordinator address, TLS fingerprint) are kept as written and checked by
//! [`TaskSpec::validate`], so that a bad value is reported like any other invalid setting; typed
//! accessors such as [`ChainSpec::contract_address`] parse them.

mod amount;
mod error;
mod network;
mod sections;
mod validate;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use amount::parse_token_amount;
pub use error::SpecError;
pub use fedstake_aggregation::spec::{AggregationRule, AggregationSpec, Bucketing};
pub use network::{
    ChainEndpoint, ChainSpec, CoordinatorSpec, DEFAULT_CHAIN_ID, parse_eth_address,
    parse_sha256_hex,
};
pub use sections::{
    CohortSpec, DataSpec, DeadlinesSpec, MAX_CHAIN_AMOUNT, MAX_CHAIN_DURATION, ModelSpec,
    OptimizerSpec, Phase, PrivacySpec, Reference, RewardsSpec, ScoringSpec, Selection,
    SlashingSpec, TrainingSpec, UpdateSpec,
};

/// Exclusive bound on the magnitude of a quantized sum: the secure sum works in `Z_2^32` with
/// values in two's complement, so every partial sum must stay strictly inside `(-2^31, 2^31)`.
pub const QUANTIZED_SUM_LIMIT: u64 = 1 << 31;

/// Largest accepted `update.fractional_bits`.
pub const MAX_FRACTIONAL_BITS: u32 = 24;

/// Largest accepted phase deadline, in seconds (30 days). Far above any sensible deadline; it
/// catches unit mistakes (milliseconds written as seconds) and keeps `Instant + deadline` from
/// overflowing.
pub const MAX_DEADLINE_SECS: u32 = 30 * 24 * 60 * 60;

/// Largest accepted task spec, in bytes. A spec is a few kilobytes; the bound matters once specs
/// travel over the network.
pub const MAX_SPEC_BYTES: usize = 1 << 20;

/// A federated training task, as written in the sponsor's `task.toml`.
///
/// Construct it with [`TaskSpec::from_toml_str`] or [`TaskSpec::load`], which validate; a spec
/// built or modified in code should be checked with [`TaskSpec::validate`] before use. Sections
/// that a local simulation does not need (`rewards`, `slashing`, `coordinator`) are optional;
/// sections with defaults for every field (`deadlines`, `scoring`, `chain`) may be omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Human-readable task name: 1 to 128 bytes, no control characters.
    pub name: String,
    /// Number of training rounds, at least 1.
    pub rounds: u32,
    /// Model architecture (`[model]`).
    pub model: ModelSpec,
    /// Dataset schema every client's data must follow (`[data]`).
    pub data: DataSpec,
    /// Cohort size and selection (`[cohort]`).
    pub cohort: CohortSpec,
    /// Phase deadlines in seconds (`[deadlines]`, every field defaulted).
    #[serde(default)]
    pub deadlines: DeadlinesSpec,
    /// Local training hyper-parameters and the weight cap (`[training]`).
    pub training: TrainingSpec,
    /// Update bound and fixed-point encoding (`[update]`).
    pub update: UpdateSpec,
    /// Privacy mode: plain signed updates or secure aggregation (`[privacy]`).
    pub privacy: PrivacySpec,
    /// Robust aggregation rule and optional bucketing (`[aggregation]`).
    pub aggregation: AggregationSpec,
    /// Contribution scoring (`[scoring]`, every field defaulted).
    #[serde(default)]
    pub scoring: ScoringSpec,
    /// Reward pool, per-round budget and minimum stake (`[rewards]`, optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewards: Option<RewardsSpec>,
    /// Slashing policy (`[slashing]`, optional; requires `[rewards]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slashing: Option<SlashingSpec>,
    /// Chain endpoint and reward contract (`[chain]`, defaults to the embedded chain).
    #[serde(default)]
    pub chain: ChainSpec,
    /// Coordinator address and certificate fingerprint (`[coordinator]`, optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<CoordinatorSpec>,
}

impl TaskSpec {
    /// Parses a task spec from TOML text and validates it.
    ///
    /// Syntax errors, unknown keys and values of the wrong type give [`SpecError::Parse`] with the
    /// TOML error text (line, column and the offending line); settings that parse but are unsafe
    /// give [`SpecError::Invalid`]. Text longer than [`MAX_SPEC_BYTES`] gives
    /// [`SpecError::TooLarge`].
    pub fn from_toml_str(text: &str) -> Result<TaskSpec, SpecError> {
        if text.len() > MAX_SPEC_BYTES {
            return Err(SpecError::TooLarge {
                max: MAX_SPEC_BYTES,
            });
        }
        let spec: TaskSpec = toml::from_str(text).map_err(|e| SpecError::Parse {
            message: e.to_string().trim_end().to_owned(),
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Reads, parses and validates the task spec at `path`.
    ///
    /// Every error names the file: reading failures give [`SpecError::Read`], the others are
    /// wrapped in [`SpecError::InFile`]. Relative paths inside the spec (the TorchScript model,
    /// an embedded chain database) are kept as written; programs resolve them against the
    /// directory that contains the task file.
    pub fn load(path: &Path) -> Result<TaskSpec, SpecError> {
        let read_error = |error: std::io::Error| SpecError::Read {
            path: path.to_path_buf(),
            error,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut text = String::new();
        // Read one byte past the limit so that an oversized file is detected without reading
        // all of it.
        file.take(MAX_SPEC_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        TaskSpec::from_toml_str(&text).map_err(|e| SpecError::InFile {
            path: path.to_path_buf(),
            error: Box::new(e),
        })
    }

    /// The canonical TOML form of this spec: the struct re-serialized, with sections and keys in
    /// a fixed order, defaults written out, comments dropped, numbers in one spelling
    /// (`1e-3` becomes `0.001`) and token amounts as decimal strings.
    ///
    /// Parsing the result gives back an equal spec. This is the text that [`Self::spec_hash`]
    /// hashes.
    pub fn to_toml_string(&self) -> String {
        // Serialization cannot fail: every field is a string, a bool, a float, an integer that
        // fits in i64 (u32 fields; the u64 chain id and the u128 token amounts are written as
        // strings when they do not), an array of those or a table, and `None` fields are
        // skipped. `tests/spec.rs` serializes extreme values to keep this invariant checked.
        toml::to_string(self).expect("task spec serialization is infallible (see comment)")
    }

    /// SHA-256 of [`Self::to_toml_string`] (UTF-8 bytes, no prefix): the task's identity, the
    /// hash recorded on chain by `task create`.
    ///
    /// Anyone can recompute it from the canonical text with `sha256sum`. It does not depend on
    /// comments, whitespace, key order or whether defaults are written out, and it changes with
    /// any value. It does depend on this crate's field set and its serializer's formatting, so a
    /// change to either changes the hash of every task; `tests/spec.rs` pins one hash to make
    /// such a change deliberate.
    pub fn spec_hash(&self) -> [u8; 32] {
        Sha256::digest(self.to_toml_string().as_bytes()).into()
    }

    /// [`Self::spec_hash`] as 64 lowercase hex digits.
    pub fn spec_hash_hex(&self) -> String {
        hex::encode(self.spec_hash())
    }

    /// Checks every constraint documented in `docs/task-spec.md`, in file order, and returns the
    /// first violation as [`SpecError::Invalid`] with the dotted field path.
    ///
    /// Among them, the **quantization overflow** check. Updates are clipped to
    /// `||u||_2 <= B` (`update.clip_norm`), so every coordinate has `|u_j| <= B`; each client
    /// multiplies its update by its weight `w <= W` (`training.max_examples`), scales by `2^f`
    /// (`update.fractional_bits`) and rounds stochastically, so a quantized coordinate has
    /// magnitude at most `W * B * 2^f + 1`. A sum of `n` = [`Self::summands`] such vectors,
    /// computed in `Z_2^32` and read back in two's complement, is exact only if
    ///
    /// ```text
    /// n * (W * B * 2^f + 1) < 2^31      and      n * W < 2^31
    /// ```
    ///
    /// (the second for the appended weight coordinate, which sums to `sum w_i`). Specs that
    /// violate either are refused; the error suggests the largest `f` that would fit.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate::validate(self)
    }

    /// How many quantized vectors are added in one sum: `privacy.group_size` under secure
    /// aggregation (a group never has more members), `cohort.size` in plain mode (the whole
    /// cohort is summed).
    pub fn summands(&self) -> u32 {
        match self.privacy {
            PrivacySpec::Plain {} => self.cohort.size,
            PrivacySpec::Secagg { group_size, .. } => group_size,
        }
    }

    /// How many inputs the robust aggregator receives for a round of `clients` participants:
    /// `clients` client updates in plain mode, [`PrivacySpec::group_count`] group means under
    /// secure aggregation. Bucketing, if configured, then averages these inputs into
    /// [`Bucketing::bucket_count`] buckets before the rule sees them.
    pub fn aggregator_inputs(&self, clients: u32) -> u32 {
        self.privacy.group_count(clients)
    }

    /// The fewest inputs the robust aggregator can receive in a round that runs at all (one with
    /// `cohort.min` participants). Aggregation parameters are validated against this number.
    pub fn min_aggregator_inputs(&self) -> u32 {
        self.aggregator_inputs(self.cohort.min)
    }

    /// The most inputs the robust aggregator can receive (a full cohort of `cohort.size`).
    pub fn max_aggregator_inputs(&self) -> u32 {
        self.aggregator_inputs(self.cohort.size)
    }

    /// Number of model parameters (the update vector length) for the built-in models, `None`
    /// for a TorchScript model or if the count overflows `u64`.
    pub fn parameter_count(&self) -> Option<u64> {
        self.model
            .parameter_count(self.data.features, self.data.classes)
    }

    /// Fixed-point scale `2^f` of the quantized encoding (`update.fractional_bits`).
    pub fn fixed_point_scale(&self) -> f64 {
        self.update.fixed_point_scale()
    }

    /// Left side of the overflow inequality: `summands * (max_examples * clip_norm * 2^f + 1)`,
    /// a bound on the magnitude of any quantized sum. Below [`QUANTIZED_SUM_LIMIT`] for every
    /// valid spec.
    pub fn max_abs_quantized_sum(&self) -> f64 {
        f64::from(self.summands())
            * (f64::from(self.training.max_examples)
                * self.update.clip_norm
                * self.fixed_point_scale()
                + 1.0)
    }

    /// Deadline of one round phase.
    pub fn deadline(&self, phase: Phase) -> Duration {
        self.deadlines.get(phase)
    }
}
