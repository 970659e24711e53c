//! Turning one round's contributions into payouts and slashing evidence, the
//! way the coordinator does: quality scores against the robust aggregate,
//! near-duplicate detection, the exact integer payout split, and the
//! observation each client's slashing window records.

use fedstake_aggregation::quality::{
    DuplicateDetector, RoundContributions, cosine, leave_one_out_alignment,
};
use fedstake_aggregation::{Aggregate, Aggregator, RoundContext, Verdict};
use fedstake_rewards::{RoundObservation, Score, split_budget};
use ndarray::{ArrayView1, ArrayView2, Axis};

use crate::SimError;
use crate::experiment::Experiment;

/// What one round paid and showed, per cohort member (cohort order).
#[derive(Debug, Clone, PartialEq)]
pub struct RoundScores {
    /// Base units paid to each cohort member.
    pub payouts: Vec<u128>,
    /// Budget left in the pool.
    pub dust: u128,
    /// The slashing evidence of each cohort member.
    pub observations: Vec<RoundObservation>,
    /// Contributions the aggregator counted.
    pub accepted: usize,
    /// Contributions refused (over the bound) or rejected by the aggregator.
    pub rejected: usize,
}

/// The cohort's contributions of one round.
pub struct RoundInputs<'a> {
    /// Client ids of the cohort, ascending.
    pub cohort: &'a [usize],
    /// Every client's update this round (`None` for clients not in the cohort).
    pub updates: &'a [Option<Vec<f32>>],
    /// Cohort members whose update was within the bound, in cohort order: the
    /// rows of `admitted_updates`.
    pub admitted: &'a [usize],
    /// The admitted updates, one per row.
    pub admitted_updates: ArrayView2<'a, f32>,
    /// Their nominal weights.
    pub admitted_weights: &'a [f32],
    /// The aggregate, when anything was admitted.
    pub aggregate: Option<&'a Aggregate>,
    /// The aggregator that produced `aggregate`.
    pub aggregator: &'a Aggregator,
    /// The round's context it ran with.
    pub context: &'a RoundContext<'a>,
    /// The sponsor's validation loss of the global model moved by a delta
    /// (for the validation-harm evidence); `None` measures no harm.
    pub validation_loss: Option<&'a ValidationLoss<'a>>,
}

/// The sponsor's validation loss of the global model moved by a delta.
pub type ValidationLoss<'a> = dyn Fn(&[f32]) -> Result<f64, SimError> + Sync + 'a;

/// How much the sponsor's validation loss rises when row `row` is mixed, at
/// its share of the round's nominal weight, into the aggregate of the other
/// rows: `loss(a + s (u - a)) - loss(a)` with `a` the leave-one-out aggregate
/// (moves of the global model). `None` when the others cannot be aggregated.
fn validation_harm(
    inputs: &RoundInputs,
    loss: &ValidationLoss,
    row: usize,
) -> Result<Option<f64>, SimError> {
    let updates = inputs.admitted_updates;
    let others: Vec<usize> = (0..updates.nrows()).filter(|&i| i != row).collect();
    let other_weights: Vec<f32> = others.iter().map(|&i| inputs.admitted_weights[i]).collect();
    let rest = updates.select(Axis(0), &others);
    let Ok(without) = inputs
        .aggregator
        .aggregate(rest.view(), &other_weights, inputs.context)
    else {
        return Ok(None);
    };
    let total: f32 = inputs.admitted_weights.iter().sum();
    if total <= 0.0 {
        return Ok(None);
    }
    let share = inputs.admitted_weights[row] / total;
    let without = without.update.to_vec();
    let with: Vec<f32> = without
        .iter()
        .zip(updates.row(row))
        .map(|(a, u)| a + share * (u - a))
        .collect();
    let harm = loss(&with)? - loss(&without)?;
    Ok(harm.is_finite().then_some(harm))
}

/// The alignment a round's evidence uses for input `row`: an outlier's is
/// measured against the aggregate of the others (leave-one-out), so it is not
/// judged against an aggregate it pulled; anyone else's, or an outlier's when
/// that cannot be computed, is `alignment` as scored.
pub(crate) fn evidence_alignment(
    aggregator: &Aggregator,
    updates: ArrayView2<'_, f32>,
    weights: &[f32],
    context: &RoundContext,
    (row, outlier): (usize, bool),
    alignment: f64,
) -> f64 {
    if !outlier {
        return alignment;
    }
    leave_one_out_alignment(aggregator, updates, weights, context, row)
        .ok()
        .filter(|a| a.is_finite())
        .unwrap_or(alignment)
}

/// Scores a round, splits its budget and records the evidence.
pub fn score_round(experiment: &Experiment, inputs: &RoundInputs) -> Result<RoundScores, SimError> {
    let detector = DuplicateDetector::new(experiment.scoring.duplicate_threshold)?;
    let qualities = match inputs.aggregate {
        Some(aggregate) => RoundContributions {
            updates: inputs.admitted_updates,
            reference: aggregate.update.view(),
            weights: inputs.admitted_weights,
            verdicts: &aggregate.verdicts,
            loss_improvements: None,
        }
        .score(&detector)?,
        None => Vec::new(),
    };
    let mut scores = Vec::with_capacity(inputs.cohort.len());
    let mut observations = Vec::with_capacity(inputs.cohort.len());
    let mut accepted = 0;
    for &client in inputs.cohort {
        let update = inputs.updates[client].as_deref().unwrap_or(&[]);
        let update_norm = fedstake_aggregation::norm::l2_norm(update);
        let slot = inputs.admitted.iter().position(|&a| a == client);
        let (score, observation) = match (slot, inputs.aggregate) {
            (Some(row), Some(aggregate)) => {
                let quality = &qualities[row];
                let verdict: Verdict = aggregate.verdicts[row];
                if !verdict.is_rejected() {
                    accepted += 1;
                }
                // Under bucketing an input shares its bucket's verdict, which
                // is no evidence against it alone.
                let individual = inputs.aggregator.bucket_size().is_none_or(|size| size <= 1);
                let outlier = individual && verdict.is_outlier();
                let alignment = evidence_alignment(
                    inputs.aggregator,
                    inputs.admitted_updates,
                    inputs.admitted_weights,
                    inputs.context,
                    (row, outlier),
                    quality.alignment,
                );
                // Harm is evidence only together with negative alignment, so
                // it is measured only then (one extra aggregation each).
                let validation_harm = match inputs.validation_loss {
                    Some(loss) if alignment < 0.0 => validation_harm(inputs, loss, row)?,
                    _ => None,
                };
                (
                    quality.score,
                    RoundObservation {
                        update_norm,
                        norm_bound: experiment.clip_norm,
                        rejected: outlier,
                        alignment,
                        near_duplicate_cosine: quality.near_duplicate.map(|d| d.cosine),
                        validation_harm,
                    },
                )
            }
            _ => {
                // Refused before aggregation (over the bound), or the round
                // failed (too few inputs for the rule): nothing counted.
                let alignment = inputs.aggregate.map_or(0.0, |aggregate| {
                    cosine(ArrayView1::from(update), aggregate.update.view())
                });
                (
                    0.0,
                    RoundObservation {
                        update_norm,
                        norm_bound: experiment.clip_norm,
                        rejected: true,
                        alignment: if alignment.is_finite() {
                            alignment
                        } else {
                            0.0
                        },
                        near_duplicate_cosine: None,
                        validation_harm: None,
                    },
                )
            }
        };
        scores.push(Score::from_f64(score)?);
        observations.push(observation);
    }
    let split = split_budget(experiment.rewards.round_budget, &scores);
    Ok(RoundScores {
        payouts: split.payouts,
        dust: split.dust,
        observations,
        accepted,
        rejected: inputs.cohort.len() - accepted,
    })
}
