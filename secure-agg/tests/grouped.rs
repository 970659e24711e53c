//! Grouped secure aggregation: the keyed grouping of a cohort, exact group
//! sums of quantized updates under dropouts in every phase (one server
//! session per group, driven through memory), and per-client attribution
//! from group results.
#![allow(clippy::unwrap_used)]

use fedstake_secure_agg::attribution::{AttributionError, GroupAttribution, GroupResult};
use fedstake_secure_agg::graph::GroupTopology;
use fedstake_secure_agg::grouping::{Grouping, GroupingError, RoundId, assign_groups};
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::memory::{MemoryError, MemoryGroup};
use fedstake_secure_agg::quantize::{QuantizationParams, dequantize_sum_of_dimension, quantize};
use fedstake_secure_agg::server::ServerError;
use fedstake_secure_agg::session::Phase;
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn round(number: u64) -> RoundId {
    RoundId {
        task_id: [3; 32],
        round: number,
        attempt: 0,
    }
}

#[test]
fn grouping_is_a_deterministic_partition_into_groups_of_exactly_g() {
    let cohort: Vec<u32> = (100..123).collect();
    let seed = [9; 32];
    let grouping = assign_groups(&cohort, 5, &seed, &round(1)).unwrap();
    assert_eq!(grouping.groups().len(), 4);
    assert!(grouping.groups().iter().all(|g| g.len() == 5));
    assert_eq!(grouping.left_out().len(), 3);
    let mut everyone: Vec<u32> = grouping.groups().concat();
    everyone.extend_from_slice(grouping.left_out());
    everyone.sort_unstable();
    assert_eq!(everyone, cohort);
    for (index, members) in grouping.groups().iter().enumerate() {
        assert!(members.windows(2).all(|pair| pair[0] < pair[1]));
        for (position, member) in members.iter().enumerate() {
            assert_eq!(grouping.locate(member), Some((index, position as u32)));
        }
    }
    assert_eq!(grouping.locate(&grouping.left_out()[0]), None);
    // The order in which clients are listed does not matter.
    let mut shuffled = cohort.clone();
    shuffled.reverse();
    assert_eq!(
        assign_groups(&shuffled, 5, &seed, &round(1)).unwrap(),
        grouping
    );
    // Another round or seed regroups.
    assert_ne!(
        assign_groups(&cohort, 5, &seed, &round(2)).unwrap(),
        grouping
    );
    assert_ne!(
        assign_groups(&cohort, 5, &[8; 32], &round(1)).unwrap(),
        grouping
    );
}

#[test]
fn grouping_mixes_clients_evenly_across_rounds() {
    // Over many rounds every pair of 12 clients shares a group about equally
    // often: 3 groups of 4, so a pair shares one with probability 3/11.
    let cohort: Vec<u32> = (0..12).collect();
    let rounds = 2_000;
    let mut together = vec![vec![0u32; 12]; 12];
    for number in 0..rounds {
        let grouping = assign_groups(&cohort, 4, &[1; 32], &round(number)).unwrap();
        for members in grouping.groups() {
            for &a in members {
                for &b in members {
                    together[a as usize][b as usize] += 1;
                }
            }
        }
    }
    let expected = rounds as f64 * 3.0 / 11.0;
    for (a, row) in together.iter().enumerate() {
        for (b, &count) in row.iter().enumerate().filter(|&(b, _)| b != a) {
            // Binomial sd ~ 20; 6 sd from the mean.
            let count = f64::from(count);
            assert!((count - expected).abs() < 120.0, "{a},{b}: {count}");
        }
    }
}

#[test]
fn grouping_refuses_impossible_cohorts() {
    let seed = [0; 32];
    assert_eq!(
        assign_groups(&[1u32, 2, 3], 2, &seed, &round(1)),
        Err(GroupingError::GroupTooSmall(2))
    );
    assert_eq!(
        assign_groups(&[1u32, 2], 3, &seed, &round(1)),
        Err(GroupingError::CohortTooSmall {
            cohort: 2,
            group_size: 3
        })
    );
    assert_eq!(
        assign_groups(&[1u32, 2, 3, 2], 3, &seed, &round(1)),
        Err(GroupingError::DuplicateClient)
    );
}

/// A cohort of clients with identities and quantized updates, grouped for one
/// round and run group by group through real sessions.
struct Cohort {
    identities: Vec<Identity>,
    server: Identity,
    updates: Vec<Vec<f32>>,
    weights: Vec<u32>,
    quantized: Vec<Vec<u32>>,
    params: QuantizationParams,
    grouping: Grouping<u32>,
    topology: GroupTopology,
}

impl Cohort {
    fn new(size: u32, group_size: u32, dimension: usize, rng: &mut ChaCha20Rng) -> Self {
        let params = QuantizationParams {
            clip_norm: 2.0,
            fractional_bits: 16,
            max_weight: 50,
            summands: group_size,
        };
        let identities = (0..size).map(|_| Identity::generate(rng)).collect();
        let updates: Vec<Vec<f32>> = (0..size)
            .map(|_| {
                (0..dimension)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect()
            })
            .collect();
        let weights: Vec<u32> = (0..size).map(|_| rng.random_range(1..=50)).collect();
        let quantized = updates
            .iter()
            .zip(&weights)
            .map(|(update, &weight)| quantize(update, weight, &params, rng).unwrap())
            .collect();
        let cohort: Vec<u32> = (0..size).collect();
        let grouping = assign_groups(&cohort, group_size, &rng.random(), &round(4)).unwrap();
        Self {
            identities,
            server: Identity::generate(rng),
            updates,
            weights,
            quantized,
            params,
            grouping,
            topology: GroupTopology::for_group(group_size, 1).unwrap(),
        }
    }

    /// Runs group `group` with `drop_from[i]` for its member `i`; returns the
    /// driven group and its outcome.
    fn run_group(
        &self,
        group: usize,
        drop_from: Vec<Option<Phase>>,
        rng: &mut ChaCha20Rng,
    ) -> (MemoryGroup, Result<Vec<u32>, MemoryError>) {
        let config = self
            .grouping
            .session_config(
                group,
                &round(4),
                &self.topology,
                self.quantized[0].len(),
                self.server.address(),
                |&client| self.identities[client as usize].address(),
            )
            .unwrap();
        let members = self.grouping.groups()[group]
            .iter()
            .map(|&client| {
                (
                    self.identities[client as usize].clone(),
                    self.quantized[client as usize].clone(),
                )
            })
            .collect();
        let mut memory =
            MemoryGroup::start(config, self.server.clone(), members, drop_from, rng).unwrap();
        let outcome = memory.run(rng);
        (memory, outcome)
    }

    fn plain_sum(&self, clients: &[u32]) -> Vec<u32> {
        let mut sum = vec![0u32; self.quantized[0].len()];
        for &client in clients {
            for (total, value) in sum.iter_mut().zip(&self.quantized[client as usize]) {
                *total = total.wrapping_add(*value);
            }
        }
        sum
    }
}

/// `dropouts` members of a group of `size` drop, each from a random phase.
fn dropout_plan(size: u32, dropouts: usize, rng: &mut ChaCha20Rng) -> Vec<Option<Phase>> {
    let mut plan = vec![None; size as usize];
    let mut members: Vec<usize> = (0..size as usize).collect();
    members.shuffle(rng);
    for &member in members.iter().take(dropouts) {
        plan[member] = Some(Phase::ALL[rng.random_range(0..Phase::ALL.len())]);
    }
    plan
}

/// Members whose masked input reached the server.
fn survivors(members: &[u32], plan: &[Option<Phase>]) -> Vec<u32> {
    members
        .iter()
        .zip(plan)
        .filter(|(_, drop)| drop.is_none_or(|phase| phase > Phase::MaskedInput))
        .map(|(&member, _)| member)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn every_group_sum_is_exact_up_to_the_tolerance_and_never_wrong_beyond(
        cohort_size in 3u32..80,
        group_fraction in 0.0f64..=1.0,
        dimension in 1usize..=24,
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        // Groups of 3..=20 (larger single groups are covered in sessions.rs).
        let group_size = 3 + (group_fraction * f64::from(cohort_size.min(20) - 3)).round() as u32;
        let cohort = Cohort::new(cohort_size, group_size, dimension, &mut rng);
        let tolerance = cohort.topology.dropout_tolerance() as usize;
        prop_assert_eq!(cohort.grouping.groups().len(), (cohort_size / group_size) as usize);
        for (group, members) in cohort.grouping.groups().iter().enumerate() {
            // Half the groups stay within the tolerance, the others may not.
            let most = if group % 2 == 0 { tolerance } else { group_size as usize };
            let dropouts = rng.random_range(0..=most);
            let plan = dropout_plan(group_size, dropouts, &mut rng);
            let expected = survivors(members, &plan);
            let (memory, outcome) = cohort.run_group(group, plan, &mut rng);
            // Nobody misbehaved, so nobody was excluded.
            prop_assert!(memory.server().misbehaviour().is_empty());
            match outcome {
                Ok(sum) => {
                    prop_assert_eq!(sum, cohort.plain_sum(&expected));
                    if dropouts <= tolerance {
                        // No live client ever lacked the neighbours to answer.
                        prop_assert!(memory.client_errors().is_empty());
                    }
                }
                Err(error) => {
                    prop_assert!(dropouts > tolerance, "{} dropouts of {}: {}", dropouts, tolerance, error);
                    prop_assert!(
                        matches!(
                            error,
                            MemoryError::Server(
                                ServerError::TooFewSurvivors { .. }
                                    | ServerError::NotEnoughShares { .. }
                            )
                        ),
                        "unclear error {}",
                        error
                    );
                }
            }
        }
    }
}

#[test]
fn dequantized_group_sums_match_float_sums_within_the_rounding_bound() {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let dimension = 300;
    let cohort = Cohort::new(30, 10, dimension, &mut rng);
    for (group, members) in cohort.grouping.groups().iter().enumerate() {
        // One dropout per group, in a different phase each time.
        let mut plan = vec![None; 10];
        plan[group * 3] = Some(Phase::ALL[group + 1]);
        let expected = survivors(members, &plan);
        let sum = cohort.run_group(group, plan, &mut rng).1.unwrap();
        let (values, weight) =
            dequantize_sum_of_dimension(&sum, dimension, &cohort.params).unwrap();
        let weights: u64 = expected
            .iter()
            .map(|&c| u64::from(cohort.weights[c as usize]))
            .sum();
        assert_eq!(weight, weights);
        // Stochastic rounding moves each summand by less than one step 2^-f.
        let bound = expected.len() as f64 * (-f64::from(cohort.params.fractional_bits)).exp2();
        for (coordinate, value) in values.iter().enumerate() {
            // The updates' norms (about 10) are above the clip norm 2.
            let clipped: f64 = expected
                .iter()
                .map(|&c| {
                    let update = &cohort.updates[c as usize];
                    let norm = update
                        .iter()
                        .map(|&v| f64::from(v).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    let factor = (f64::from(cohort.params.clip_norm) / norm).min(1.0);
                    f64::from(cohort.weights[c as usize]) * f64::from(update[coordinate]) * factor
                })
                .sum();
            let tolerance = bound + clipped.abs() * f64::from(f32::EPSILON);
            assert!(
                (f64::from(*value) - clipped).abs() <= tolerance,
                "group {group} coordinate {coordinate}: {value} vs {clipped}"
            );
        }
    }
}

/// Rounds of groups of 5 from 40 clients of which `attackers` (the lowest
/// ids) spoil every group they are in; honest groups are flagged with
/// probability 0.05 anyway.
fn attribute(attackers: u32, rounds: u64) -> GroupAttribution<u32> {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let cohort: Vec<u32> = (0..40).collect();
    let mut attribution = GroupAttribution::new();
    for number in 0..rounds {
        let grouping = assign_groups(&cohort, 5, &[2; 32], &round(number)).unwrap();
        let results: Vec<GroupResult<'_, u32>> = grouping
            .groups()
            .iter()
            .map(|members| {
                let spoiled = members.iter().any(|&m| m < attackers);
                let flagged = spoiled || rng.random_bool(0.05);
                GroupResult {
                    members,
                    quality: if spoiled { 0.1 } else { 0.9 },
                    flagged,
                }
            })
            .collect();
        attribution.record_round(&results).unwrap();
    }
    attribution
}

#[test]
fn attribution_singles_out_clients_that_spoil_their_groups() {
    let attribution = attribute(3, 30);
    assert_eq!(attribution.groups_recorded(), 30 * 8);
    let significance = 1e-4;
    for client in 0..40u32 {
        let evidence = attribution.evidence(&client).unwrap();
        assert_eq!(evidence.groups, 30);
        if client < 3 {
            assert_eq!(evidence.flagged, 30);
            assert!(evidence.is_suspect(significance), "{evidence:?}");
            assert!(evidence.quality < 0.11, "{evidence:?}");
        } else {
            assert!(!evidence.is_suspect(significance), "{client}: {evidence:?}");
            assert!(evidence.quality > 0.4, "{client}: {evidence:?}");
        }
    }
    assert_eq!(attribution.evidence(&40), None);
}

#[test]
fn attribution_cannot_tell_when_attackers_spoil_nearly_every_group() {
    // 12 of 40 attackers in groups of 5: a group is clean with probability
    // about 0.16, so the background rate is as high as an attacker's own.
    let attribution = attribute(12, 30);
    let suspects = (0..40u32)
        .filter(|c| attribution.evidence(c).unwrap().is_suspect(1e-4))
        .count();
    assert_eq!(suspects, 0);
}

#[test]
fn attribution_refuses_invalid_rounds_and_records_nothing() {
    let mut attribution = GroupAttribution::new();
    let bad_quality = [GroupResult {
        members: &[1u32, 2, 3][..],
        quality: 1.5,
        flagged: false,
    }];
    assert!(matches!(
        attribution.record_round(&bad_quality),
        Err(AttributionError::InvalidQuality { group: 0, .. })
    ));
    let twice = [
        GroupResult {
            members: &[1u32, 2, 3][..],
            quality: 0.5,
            flagged: false,
        },
        GroupResult {
            members: &[4u32, 2, 5][..],
            quality: 0.5,
            flagged: true,
        },
    ];
    assert_eq!(
        attribution.record_round(&twice),
        Err(AttributionError::ClientListedTwice { group: 1 })
    );
    assert_eq!(attribution.groups_recorded(), 0);
    assert_eq!(attribution.evidence(&1), None);
    let nan = [GroupResult {
        members: &[1u32][..],
        quality: f64::NAN,
        flagged: false,
    }];
    assert!(attribution.record_round(&nan).is_err());
}
