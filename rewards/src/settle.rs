//! The pure settlement of one round: quality scores against the robust
//! aggregate, near-duplicate detection, the exact integer payout split, and
//! the observation each client's slashing window records. The coordinator and
//! the simulation lab both settle rounds with this code, so the lab measures
//! what the coordinator pays and slashes.
//!
//! Nothing here does IO or draws randomness: given the round's contributions,
//! the aggregate the robust aggregator produced from them and [`SettleParams`],
//! the result is fixed. [`score_round`] settles a plain round, where the
//! coordinator sees every update; [`score_groups`] a round under grouped
//! secure aggregation, where it sees only each group's sum.
//!
//! Scoring under secure aggregation (see `fedstake_secure_agg::attribution`
//! for what it can and cannot attribute): a group's quality is its trust (the
//! positive part of its mean's cosine to the aggregate, 0 for a
//! near-duplicate) times its verdict weight; a group is *flagged* when the
//! aggregator rejected it as an outlier and its mean points away from the
//! aggregate of the other groups. Each survivor is paid in proportion to its
//! group's quality this round times its attribution quality (the mean quality
//! of all its groups so far), equally within a group since single weights are
//! secret. A flagged group counts against a member, as slashing evidence, only
//! while the member's groups were flagged significantly more often than other
//! groups ([`SettleParams::attribution_significance`]).

use std::fmt::Debug;

use fedstake_aggregation::norm::l2_norm;
use fedstake_aggregation::quality::{
    DuplicateDetector, QualityError, RoundContributions, cosine, leave_one_out_alignment,
};
use fedstake_aggregation::{Aggregate, Aggregator, RoundContext, Verdict};
use fedstake_secure_agg::attribution::{AttributionError, GroupAttribution, GroupResult};
use ndarray::{ArrayView1, ArrayView2, Axis};

use crate::{PolicyError, RoundObservation, Score, split_budget};

/// The task's settings a round is settled with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettleParams {
    /// The L2 norm bound on an update (the observations' `norm_bound`).
    pub clip_norm: f64,
    /// Base units split among the cohort each round.
    pub round_budget: u128,
    /// Cosine of deviations from the aggregate above which two contributions
    /// are near-duplicates (both score 0).
    pub duplicate_threshold: f64,
    /// Under secure aggregation, the p-value below which a member's flagged
    /// groups count against it.
    pub attribution_significance: f64,
}

/// Why a round could not be settled.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// Contribution scoring refused its inputs.
    #[error(transparent)]
    Quality(#[from] QualityError),
    /// The payout policy refused a score.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Group attribution refused the round's groups.
    #[error("attribution: {0}")]
    Attribution(#[from] AttributionError),
    /// A survivor of a group has no attribution evidence.
    #[error("client {0} missing from the attribution")]
    NotAttributed(String),
    /// The sponsor's validation loss could not be computed.
    #[error(transparent)]
    ValidationLoss(Box<dyn std::error::Error + Send + Sync>),
}

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
    /// The direction contributions are scored against; `None` scores
    /// against the aggregate.
    pub reference: Option<ArrayView1<'a, f32>>,
    /// The validation-loss improvement of each admitted update, when the
    /// task multiplies scores by it.
    pub loss_improvements: Option<&'a [f64]>,
    /// The sponsor's validation loss of the global model moved by a delta
    /// (for the validation-harm evidence); `None` measures no harm.
    pub validation_loss: Option<&'a ValidationLoss<'a>>,
}

/// The sponsor's validation loss of the global model moved by a delta; its
/// own failures are wrapped in [`SettleError::ValidationLoss`].
pub type ValidationLoss<'a> = dyn Fn(&[f32]) -> Result<f64, SettleError> + Sync + 'a;

/// How much the sponsor's validation loss rises when row `row` is mixed, at
/// its share of the round's nominal weight, into the aggregate of the other
/// rows: `loss(a + s (u - a)) - loss(a)` with `a` the leave-one-out aggregate
/// (moves of the global model). `None` when the others cannot be aggregated.
fn validation_harm(
    inputs: &RoundInputs,
    loss: &ValidationLoss,
    row: usize,
) -> Result<Option<f64>, SettleError> {
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
fn evidence_alignment(
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
pub fn score_round(
    params: &SettleParams,
    inputs: &RoundInputs,
) -> Result<RoundScores, SettleError> {
    let detector = DuplicateDetector::new(params.duplicate_threshold)?;
    let qualities = match inputs.aggregate {
        Some(aggregate) => RoundContributions {
            updates: inputs.admitted_updates,
            reference: inputs.reference.unwrap_or(aggregate.update.view()),
            weights: inputs.admitted_weights,
            verdicts: &aggregate.verdicts,
            loss_improvements: inputs.loss_improvements,
        }
        .score(&detector)?,
        None => Vec::new(),
    };
    let mut scores = Vec::with_capacity(inputs.cohort.len());
    let mut observations = Vec::with_capacity(inputs.cohort.len());
    let mut accepted = 0;
    for &client in inputs.cohort {
        let update = inputs.updates[client].as_deref().unwrap_or(&[]);
        let update_norm = Some(l2_norm(update));
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
                        norm_bound: params.clip_norm,
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
                        norm_bound: params.clip_norm,
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
    let split = split_budget(params.round_budget, &scores);
    Ok(RoundScores {
        payouts: split.payouts,
        dust: split.dust,
        observations,
        accepted,
        rejected: inputs.cohort.len() - accepted,
    })
}

/// One group's exact sum, as the aggregator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSum<C> {
    /// Clients whose updates are in the sum (the group's survivors).
    pub members: Vec<C>,
    /// Weighted mean of their clipped updates.
    pub mean: Vec<f32>,
    /// Their summed weight.
    pub weight: f32,
}

/// What a round recorded about one group in the attribution: replaying
/// these rebuilds the attribution (a restarted coordinator does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupVerdict {
    /// The group's quality, in `[0, 1]`.
    pub quality: f64,
    /// Whether the group was flagged.
    pub flagged: bool,
}

/// The aggregated groups of one round, for scoring.
pub struct GroupRoundInputs<'a, C> {
    /// The groups, in the rows' order.
    pub sums: &'a [GroupSum<C>],
    /// Their means, one per row.
    pub means: ArrayView2<'a, f32>,
    /// Their summed weights.
    pub weights: &'a [f32],
    /// The aggregate of the means, if the round did not fail.
    pub aggregate: Option<&'a Aggregate>,
    /// The aggregator.
    pub aggregator: &'a Aggregator,
    /// The round's context.
    pub context: &'a RoundContext<'a>,
    /// The direction group means are scored against; `None` scores against
    /// the aggregate.
    pub reference: Option<ArrayView1<'a, f32>>,
    /// The validation-loss improvement of each group mean, when the task
    /// multiplies scores by it.
    pub loss_improvements: Option<&'a [f64]>,
}

/// Scores the survivors of the aggregated groups from group attribution (see
/// the module documentation), records the groups in `attribution`, splits the
/// budget and returns the survivors in group order with their scores, and
/// what was recorded per group (empty when nothing was, as in a failed round).
pub fn score_groups<C: Ord + Clone + Debug>(
    params: &SettleParams,
    inputs: &GroupRoundInputs<'_, C>,
    attribution: &mut GroupAttribution<C>,
) -> Result<(Vec<C>, RoundScores, Vec<GroupVerdict>), SettleError> {
    let clients: Vec<C> = inputs
        .sums
        .iter()
        .flat_map(|sum| sum.members.iter().cloned())
        .collect();
    let Some(aggregate) = inputs.aggregate else {
        // The round failed: nothing counted, nothing shown about anyone.
        let observations = clients
            .iter()
            .map(|_| RoundObservation {
                update_norm: None,
                norm_bound: params.clip_norm,
                rejected: false,
                alignment: 0.0,
                near_duplicate_cosine: None,
                validation_harm: None,
            })
            .collect();
        let split = split_budget(params.round_budget, &vec![Score::ZERO; clients.len()]);
        let rejected = clients.len();
        return Ok((
            clients,
            RoundScores {
                payouts: split.payouts,
                dust: split.dust,
                observations,
                accepted: 0,
                rejected,
            },
            Vec::new(),
        ));
    };
    let detector = DuplicateDetector::new(params.duplicate_threshold)?;
    let qualities = RoundContributions {
        updates: inputs.means,
        reference: inputs.reference.unwrap_or(aggregate.update.view()),
        weights: inputs.weights,
        verdicts: &aggregate.verdicts,
        loss_improvements: inputs.loss_improvements,
    }
    .score(&detector)?;
    let individual = inputs.aggregator.bucket_size().is_none_or(|size| size <= 1);
    let mut groups = Vec::with_capacity(inputs.sums.len());
    for (row, quality) in qualities.iter().enumerate() {
        let verdict = aggregate.verdicts[row];
        let outlier = individual && verdict.is_outlier();
        let alignment = evidence_alignment(
            inputs.aggregator,
            inputs.means,
            inputs.weights,
            inputs.context,
            (row, outlier),
            quality.alignment,
        );
        let alignment = if alignment.is_finite() {
            alignment
        } else {
            0.0
        };
        groups.push((
            quality.trust * f64::from(verdict.weight),
            outlier && alignment < 0.0,
            alignment,
            verdict.is_rejected(),
        ));
    }
    let results: Vec<GroupResult<'_, C>> = inputs
        .sums
        .iter()
        .zip(&groups)
        .map(|(sum, &(quality, flagged, _, _))| GroupResult {
            members: &sum.members,
            quality: quality.clamp(0.0, 1.0),
            flagged,
        })
        .collect();
    attribution.record_round(&results)?;
    let verdicts = results
        .iter()
        .map(|result| GroupVerdict {
            quality: result.quality,
            flagged: result.flagged,
        })
        .collect();
    let significance = params.attribution_significance;
    let mut scores = Vec::with_capacity(clients.len());
    let mut observations = Vec::with_capacity(clients.len());
    let mut accepted = 0;
    for (sum, &(quality, flagged, alignment, rejected)) in inputs.sums.iter().zip(&groups) {
        for member in &sum.members {
            let evidence = attribution
                .evidence(member)
                .ok_or_else(|| SettleError::NotAttributed(format!("{member:?}")))?;
            if !rejected {
                accepted += 1;
            }
            scores.push(Score::from_f64(quality.clamp(0.0, 1.0) * evidence.quality)?);
            observations.push(RoundObservation {
                update_norm: None,
                norm_bound: params.clip_norm,
                rejected: flagged && evidence.is_suspect(significance),
                alignment: alignment.clamp(-1.0, 1.0),
                near_duplicate_cosine: None,
                validation_harm: None,
            });
        }
    }
    let split = split_budget(params.round_budget, &scores);
    let rejected = clients.len() - accepted;
    Ok((
        clients,
        RoundScores {
            payouts: split.payouts,
            dust: split.dust,
            observations,
            accepted,
            rejected,
        },
        verdicts,
    ))
}
