//! Settling a grouped round with client ids that are not indices.

use fedstake_aggregation::{Aggregator, RoundContext, Rule};
use fedstake_rewards::settle::{GroupRoundInputs, GroupSum, SettleParams, score_groups};
use fedstake_secure_agg::attribution::GroupAttribution;
use ndarray::Array2;

const PARAMS: SettleParams = SettleParams {
    clip_norm: 5.0,
    round_budget: 1_000_000_007,
    duplicate_threshold: 0.99,
    attribution_significance: 0.001,
};

fn sums() -> Vec<GroupSum<String>> {
    let group = |members: &[&str], mean: [f32; 3]| GroupSum {
        members: members.iter().map(|m| m.to_string()).collect(),
        mean: mean.to_vec(),
        weight: 10.0,
    };
    vec![
        group(&["carol", "alice"], [1.0, 0.5, 0.0]),
        group(&["bob", "dave"], [0.8, 0.7, 0.1]),
        group(&["erin", "frank"], [0.9, 0.2, 0.3]),
    ]
}

#[test]
fn groups_keyed_by_name_are_paid_the_whole_budget_in_group_order() {
    let sums = sums();
    let means =
        Array2::from_shape_vec((3, 3), sums.iter().flat_map(|s| s.mean.clone()).collect()).unwrap();
    let weights: Vec<f32> = sums.iter().map(|s| s.weight).collect();
    let aggregator = Aggregator::new(Rule::FedAvg, None).unwrap();
    let context = RoundContext {
        root_update: None,
        previous_aggregate: None,
        seed: 7,
    };
    let aggregate = aggregator
        .aggregate(means.view(), &weights, &context)
        .unwrap();
    let mut inputs = GroupRoundInputs {
        sums: &sums,
        means: means.view(),
        weights: &weights,
        aggregate: Some(&aggregate),
        aggregator: &aggregator,
        context: &context,
        reference: None,
        loss_improvements: None,
    };
    let mut attribution = GroupAttribution::new();
    let (clients, scores, verdicts) = score_groups(&PARAMS, &inputs, &mut attribution).unwrap();
    assert_eq!(clients, ["carol", "alice", "bob", "dave", "erin", "frank"]);
    // Replaying the verdicts rebuilds the same attribution (a restarted
    // coordinator does this).
    let mut replayed = GroupAttribution::new();
    let results: Vec<_> = sums
        .iter()
        .zip(&verdicts)
        .map(
            |(sum, verdict)| fedstake_secure_agg::attribution::GroupResult {
                members: &sum.members,
                quality: verdict.quality,
                flagged: verdict.flagged,
            },
        )
        .collect();
    replayed.record_round(&results).unwrap();
    for client in &clients {
        assert_eq!(replayed.evidence(client), attribution.evidence(client));
    }
    assert_eq!(scores.accepted, 6);
    assert_eq!(
        scores.payouts.iter().sum::<u128>() + scores.dust,
        PARAMS.round_budget
    );
    // Equal shares within a group, since single weights are secret.
    assert_eq!(scores.payouts[0], scores.payouts[1]);
    assert!(scores.observations.iter().all(|o| !o.rejected));
    assert_eq!(attribution.groups_recorded(), 3);

    // A failed round pays no one and records nothing.
    inputs.aggregate = None;
    let (clients, scores, verdicts) = score_groups(&PARAMS, &inputs, &mut attribution).unwrap();
    assert!(verdicts.is_empty());
    assert_eq!(clients.len(), 6);
    assert!(scores.payouts.iter().all(|&p| p == 0));
    assert_eq!(scores.dust, PARAMS.round_budget);
    assert_eq!(attribution.groups_recorded(), 3);
}
