//! [`TaskSpec::validate`]: every constraint of `docs/task-spec.md`, section by section in file
//! order. The first violation is returned, naming the dotted field.

use super::{
    ChainEndpoint, MAX_CHAIN_AMOUNT, MAX_CHAIN_DURATION, MAX_DEADLINE_SECS, MAX_FRACTIONAL_BITS,
    ModelSpec, OptimizerSpec, Phase, PrivacySpec, QUANTIZED_SUM_LIMIT, SpecError, TaskSpec,
    parse_sha256_hex,
};
use fedstake_secure_agg::graph::{GroupTopology, NeighbourGraph, recommended_threshold};

type Result<T = ()> = std::result::Result<T, SpecError>;

/// Longest accepted task name, in bytes.
const MAX_NAME_BYTES: usize = 128;

pub(super) fn validate(spec: &TaskSpec) -> Result {
    name(spec)?;
    ensure(spec.rounds >= 1, "rounds", || "must be at least 1".into())?;
    model(spec)?;
    data(spec)?;
    parameter_count(spec)?;
    cohort(spec)?;
    deadlines(spec)?;
    training(spec)?;
    update(spec)?;
    privacy(spec)?;
    quantization(spec)?;
    aggregation(spec)?;
    scoring(spec)?;
    rewards(spec)?;
    slashing(spec)?;
    chain(spec)?;
    coordinator(spec)
}

fn ensure(ok: bool, field: &str, reason: impl FnOnce() -> String) -> Result {
    if ok {
        Ok(())
    } else {
        Err(SpecError::invalid(field, reason()))
    }
}

fn positive(field: &str, value: f64) -> Result {
    ensure(value.is_finite() && value > 0.0, field, || {
        format!("{value} must be a finite number above 0")
    })
}

fn non_negative(field: &str, value: f64) -> Result {
    ensure(value.is_finite() && value >= 0.0, field, || {
        format!("{value} must be a finite number of at least 0")
    })
}

/// `value` in `[0, 1)`.
fn unit_half_open(field: &str, value: f64) -> Result {
    ensure((0.0..1.0).contains(&value), field, || {
        format!("{value} must be at least 0 and below 1")
    })
}

fn name(spec: &TaskSpec) -> Result {
    let name = &spec.name;
    ensure(!name.trim().is_empty(), "name", || {
        "must not be empty".into()
    })?;
    ensure(name.len() <= MAX_NAME_BYTES, "name", || {
        format!(
            "is {} bytes long, the limit is {MAX_NAME_BYTES}",
            name.len()
        )
    })?;
    ensure(!name.chars().any(char::is_control), "name", || {
        "must not contain control characters".into()
    })
}

fn model(spec: &TaskSpec) -> Result {
    match &spec.model {
        ModelSpec::Logreg {} => Ok(()),
        ModelSpec::Mlp { hidden } => {
            ensure(!hidden.is_empty(), "model.hidden", || {
                "an mlp needs at least one hidden layer (use kind = \"logreg\" for none)".into()
            })?;
            match hidden.iter().position(|&width| width == 0) {
                Some(layer) => Err(SpecError::invalid(
                    "model.hidden",
                    format!(
                        "hidden layer {} has 0 units; every layer needs at least 1",
                        layer + 1
                    ),
                )),
                None => Ok(()),
            }
        }
        ModelSpec::Torchscript { path, sha256 } => {
            ensure(!path.trim().is_empty(), "model.path", || {
                "must not be empty".into()
            })?;
            match sha256 {
                Some(digest) => parse_sha256_hex(digest)
                    .map(|_| ())
                    .map_err(|reason| SpecError::invalid("model.sha256", reason)),
                None => Ok(()),
            }
        }
    }
}

fn data(spec: &TaskSpec) -> Result {
    let data = &spec.data;
    ensure(data.features >= 1, "data.features", || {
        "must be at least 1".into()
    })?;
    ensure(data.classes >= 2, "data.classes", || {
        format!("{} must be at least 2", data.classes)
    })?;
    match data.feature_scale {
        Some(scale) => positive("data.feature_scale", scale),
        None => Ok(()),
    }
}

fn parameter_count(spec: &TaskSpec) -> Result {
    match spec.model {
        ModelSpec::Torchscript { .. } => Ok(()),
        _ => ensure(spec.parameter_count().is_some(), "model", || {
            "the parameter count does not fit in 64 bits".into()
        }),
    }
}

fn cohort(spec: &TaskSpec) -> Result {
    let cohort = &spec.cohort;
    ensure(cohort.size >= 1, "cohort.size", || {
        "must be at least 1".into()
    })?;
    ensure(cohort.min >= 1, "cohort.min", || {
        "must be at least 1".into()
    })?;
    ensure(cohort.min <= cohort.size, "cohort.min", || {
        format!("{} is above cohort.size {}", cohort.min, cohort.size)
    })
}

fn deadlines(spec: &TaskSpec) -> Result {
    for phase in Phase::ALL {
        let seconds = spec.deadlines.seconds(phase);
        ensure(
            (1..=MAX_DEADLINE_SECS).contains(&seconds),
            &format!("deadlines.{phase}"),
            || format!("{seconds} s is outside 1..={MAX_DEADLINE_SECS} s (30 days)"),
        )?;
    }
    Ok(())
}

fn training(spec: &TaskSpec) -> Result {
    let training = &spec.training;
    ensure(training.epochs >= 1, "training.epochs", || {
        "must be at least 1".into()
    })?;
    ensure(training.batch_size >= 1, "training.batch_size", || {
        "must be at least 1".into()
    })?;
    positive("training.learning_rate", training.learning_rate)?;
    ensure(training.max_examples >= 1, "training.max_examples", || {
        "must be at least 1".into()
    })?;
    match training.optimizer {
        OptimizerSpec::Sgd {
            momentum,
            weight_decay,
        } => {
            unit_half_open("training.optimizer.momentum", momentum)?;
            non_negative("training.optimizer.weight_decay", weight_decay)
        }
        OptimizerSpec::Adam {
            beta1,
            beta2,
            epsilon,
            weight_decay,
        } => {
            unit_half_open("training.optimizer.beta1", beta1)?;
            unit_half_open("training.optimizer.beta2", beta2)?;
            positive("training.optimizer.epsilon", epsilon)?;
            non_negative("training.optimizer.weight_decay", weight_decay)
        }
    }
}

fn update(spec: &TaskSpec) -> Result {
    positive("update.clip_norm", spec.update.clip_norm)?;
    let bits = spec.update.fractional_bits;
    ensure(
        (1..=MAX_FRACTIONAL_BITS).contains(&bits),
        "update.fractional_bits",
        || format!("{bits} is outside 1..={MAX_FRACTIONAL_BITS}"),
    )
}

fn privacy(spec: &TaskSpec) -> Result {
    let PrivacySpec::Secagg {
        group_size,
        threshold,
        corrupt_per_group,
    } = spec.privacy
    else {
        return Ok(());
    };
    ensure(group_size >= 3, "privacy.group_size", || {
        format!(
            "{group_size} is below 3, the smallest group secure aggregation can hide a member in"
        )
    })?;
    ensure(group_size <= spec.cohort.size, "privacy.group_size", || {
        format!("{group_size} is above cohort.size {}", spec.cohort.size)
    })?;
    ensure(group_size <= spec.cohort.min, "privacy.group_size", || {
        format!(
            "{group_size} is above cohort.min {}: a round with the minimum cohort could not fill \
             one group",
            spec.cohort.min
        )
    })?;
    // The bound itself lives with the sessions that enforce it.
    let graph = NeighbourGraph::complete(group_size)
        .map_err(|e| SpecError::invalid("privacy.group_size", e.to_string()))?;
    let neighbours = graph.degree();
    GroupTopology::new(graph, threshold, corrupt_per_group).map_err(|error| {
        let lowest = recommended_threshold(neighbours, corrupt_per_group);
        let advice = if lowest > neighbours {
            format!(
                "no threshold holds against {corrupt_per_group} corrupt members among \
                 k = group_size - 1 = {neighbours} neighbours; raise privacy.group_size or \
                 lower privacy.corrupt_per_group"
            )
        } else {
            format!(
                "with k = group_size - 1 = {neighbours} neighbours and corrupt_per_group = \
                 {corrupt_per_group}, the threshold must be in {lowest}..={neighbours}"
            )
        };
        SpecError::invalid("privacy.threshold", format!("{error}: {advice}"))
    })?;
    Ok(())
}

/// The overflow inequality of [`TaskSpec::validate`]:
/// `n * (W * B * 2^f + 1) < 2^31` and `n * W < 2^31`.
fn quantization(spec: &TaskSpec) -> Result {
    let n = spec.summands();
    let max_examples = spec.training.max_examples;
    let limit = QUANTIZED_SUM_LIMIT;
    let summands_source = match spec.privacy {
        PrivacySpec::Plain {} => "cohort.size",
        PrivacySpec::Secagg { .. } => "privacy.group_size",
    };
    let weight_sum = u64::from(n) * u64::from(max_examples);
    ensure(weight_sum < limit, "training.max_examples", || {
        format!(
            "the summed weights can overflow: summands * max_examples = {n} * {max_examples} = \
             {weight_sum} must be below 2^31 = {limit} (summands = {summands_source})"
        )
    })?;
    let bound = |bits: u32| {
        f64::from(n)
            * (f64::from(max_examples) * spec.update.clip_norm * 2f64.powi(bits as i32) + 1.0)
    };
    let bits = spec.update.fractional_bits;
    let limit_f64 = limit as f64;
    if bound(bits) < limit_f64 {
        return Ok(());
    }
    let hint = match (1..bits).rev().find(|&b| bound(b) < limit_f64) {
        Some(fits) => format!("fractional_bits = {fits} would fit"),
        None => "no fractional_bits >= 1 fits; lower update.clip_norm or training.max_examples"
            .to_owned(),
    };
    Err(SpecError::invalid(
        "update.fractional_bits",
        format!(
            "the quantized sum can overflow: summands * (max_examples * clip_norm * \
             2^fractional_bits + 1) = {n} * ({max_examples} * {} * 2^{bits} + 1) = {} must be \
             below 2^31 = {limit} (summands = {summands_source}); {hint}",
            spec.update.clip_norm,
            bound(bits),
        ),
    ))
}

/// The aggregation crate checks its own rules' parameters against the fewest
/// inputs a round can give them.
fn aggregation(spec: &TaskSpec) -> Result {
    let n = spec.min_aggregator_inputs();
    let inputs = match spec.privacy {
        PrivacySpec::Plain {} => format!("{n} client updates (cohort.min)"),
        PrivacySpec::Secagg { group_size, .. } => format!(
            "{n} group means (floor(cohort.min {} / privacy.group_size {group_size}))",
            spec.cohort.min
        ),
    };
    spec.aggregation
        .check(n, &inputs)
        .map_err(|invalid| SpecError::invalid(invalid.field, invalid.reason))
}

fn scoring(spec: &TaskSpec) -> Result {
    let decay = spec.scoring.reputation_decay;
    ensure(
        decay > 0.0 && decay < 1.0,
        "scoring.reputation_decay",
        || format!("{decay} must be above 0 and below 1"),
    )
}

fn rewards(spec: &TaskSpec) -> Result {
    let Some(rewards) = &spec.rewards else {
        return Ok(());
    };
    ensure(rewards.pool >= 1, "rewards.pool", || {
        "must be at least 1".into()
    })?;
    ensure(rewards.round_budget >= 1, "rewards.round_budget", || {
        "must be at least 1".into()
    })?;
    ensure(
        rewards.round_budget <= rewards.pool,
        "rewards.round_budget",
        || {
            format!(
                "{} is above rewards.pool {}",
                rewards.round_budget, rewards.pool
            )
        },
    )?;
    ensure(rewards.min_stake >= 1, "rewards.min_stake", || {
        "must be at least 1".into()
    })?;
    for (field, amount) in [
        ("rewards.pool", rewards.pool),
        ("rewards.round_budget", rewards.round_budget),
        ("rewards.min_stake", rewards.min_stake),
    ] {
        ensure(amount <= MAX_CHAIN_AMOUNT, field, || {
            format!("{amount} is above the contract's limit 2^112 - 1")
        })?;
    }
    for (field, seconds, min) in [
        ("rewards.challenge_window", rewards.challenge_window, 1),
        ("rewards.unbonding_period", rewards.unbonding_period, 0),
        ("rewards.duration", rewards.duration, 1),
        (
            "rewards.claim_period",
            rewards.claim_period,
            rewards.challenge_window,
        ),
    ] {
        ensure((min..=MAX_CHAIN_DURATION).contains(&seconds), field, || {
            format!("{seconds} s is outside {min}..={MAX_CHAIN_DURATION} s")
        })?;
    }
    rewards.token_address()?;
    rewards.arbiter_address()?;
    ensure(
        rewards.token.is_some()
            || !matches!(
                spec.chain.parsed_endpoint(),
                Ok(ChainEndpoint::JsonRpc { .. })
            ),
        "rewards.token",
        || "is required with a JSON-RPC chain endpoint".into(),
    )
}

fn slashing(spec: &TaskSpec) -> Result {
    let Some(slashing) = &spec.slashing else {
        return Ok(());
    };
    ensure(spec.rewards.is_some(), "slashing", || {
        "needs a [rewards] section: without a minimum stake there is nothing to slash".into()
    })?;
    slashing.validate()
}

impl super::SlashingSpec {
    /// Checks the section on its own (`window >= 1`, `1 <= min_flags <=
    /// window`, `0 < fraction <= 1`), naming the field; task specs and
    /// simulation experiments share it.
    pub fn validate(&self) -> Result {
        let slashing = self;
        ensure(slashing.window >= 1, "slashing.window", || {
            "must be at least 1".into()
        })?;
        ensure(slashing.min_flags >= 1, "slashing.min_flags", || {
            "must be at least 1".into()
        })?;
        ensure(
            slashing.min_flags <= slashing.window,
            "slashing.min_flags",
            || {
                format!(
                    "{} is above slashing.window {}",
                    slashing.min_flags, slashing.window
                )
            },
        )?;
        let fraction = slashing.fraction;
        ensure(
            fraction > 0.0 && fraction <= 1.0,
            "slashing.fraction",
            || format!("{fraction} must be above 0 and at most 1"),
        )
    }
}

fn chain(spec: &TaskSpec) -> Result {
    let chain = &spec.chain;
    let endpoint = chain.parsed_endpoint()?;
    chain.contract_address()?;
    ensure(
        chain.contract.is_some() || !matches!(endpoint, ChainEndpoint::JsonRpc { .. }),
        "chain.contract",
        || "is required with a JSON-RPC endpoint".into(),
    )?;
    ensure(chain.chain_id >= 1, "chain.chain_id", || {
        "must be at least 1".into()
    })
}

fn coordinator(spec: &TaskSpec) -> Result {
    let Some(coordinator) = &spec.coordinator else {
        return Ok(());
    };
    coordinator.host_port()?;
    coordinator.fingerprint().map(|_| ())
}
