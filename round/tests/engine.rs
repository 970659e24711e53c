//! The round engine on its own: plans, attempts fed messages and time,
//! settlement and replay — no sockets, no chain, no clock.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use fedstake_aggregation::Model;
use fedstake_protocol::spec::{Phase as SpecPhase, TaskSpec};
use fedstake_protocol::wire::ClientMessage;
use fedstake_protocol::{Submission, submission_domain};
use fedstake_round::{
    Attempt, AttemptId, AttemptInputs, Collected, Contributions, PlainContribution, Plan,
    PlanError, RefusalKind, RoundState, SeatError, SettleError, draw_cohort, group_cohort, seat_of,
    settle,
};
use fedstake_secure_agg::client::ClientSession;
use fedstake_secure_agg::grouping::{Grouping, GroupingError, RoundId};
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::messages::{MessageKind, SignedMessage};
use fedstake_secure_agg::quantize::quantize;
use fedstake_training::data::{Dataset, SyntheticSpec, synthetic};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const TASK: &str = r#"
name = "engine"
rounds = 3

[model]
kind = "logreg"

[data]
features = 4
classes = 3

[cohort]
size = 6
min = 4

[training]
epochs = 1
batch_size = 8
learning_rate = 0.1
max_examples = 50

[training.optimizer]
kind = "sgd"

[update]
clip_norm = 2.0
fractional_bits = 16

[privacy]
mode = "plain"

[aggregation]
rule = "median"

[rewards]
pool = 1000000
round_budget = 1000
min_stake = 10

[slashing]
window = 3
min_flags = 2
fraction = 0.5
"#;

fn spec(edit: impl FnOnce(String) -> String) -> TaskSpec {
    TaskSpec::from_toml_str(&edit(TASK.to_string())).unwrap()
}

fn plan() -> Plan {
    Plan::from_spec(&spec(|t| t)).unwrap()
}

fn validation() -> Dataset {
    synthetic(&SyntheticSpec {
        classes: 3,
        dim: 4,
        examples: 120,
        separation: 3.0,
        noise: 1.0,
        seed: 3,
    })
    .unwrap()
}

fn initial_model(plan: &Plan) -> Model {
    let architecture = plan.architecture();
    Model::new(architecture.layout(), architecture.init_parameters(1)).unwrap()
}

fn signers(n: usize) -> Vec<PrivateKeySigner> {
    let mut signers: Vec<PrivateKeySigner> = (1..=n as u8)
        .map(|i| PrivateKeySigner::from_bytes(&[i; 32].into()).unwrap())
        .collect();
    signers.sort_by_key(|s| s.address());
    signers
}

fn id(round: u64, attempt: u32, dimension: usize) -> AttemptId {
    AttemptId {
        task_id: U256::from(9),
        round,
        attempt,
        domain: submission_domain(1, Address::ZERO),
        dimension,
    }
}

fn plain_update(
    signer: &PrivateKeySigner,
    id: &AttemptId,
    update: &[f32],
    weight: u32,
) -> ClientMessage {
    let bytes: Vec<u8> = update.iter().flat_map(|v| v.to_le_bytes()).collect();
    let signature = Submission::new(id.task_id, id.round, id.attempt, keccak256(&bytes))
        .sign(signer, &id.domain)
        .unwrap();
    ClientMessage::PlainUpdate {
        round: id.round,
        attempt: id.attempt,
        weight,
        update: bytes,
        signature: signature.as_bytes().to_vec(),
    }
}

#[test]
fn a_plan_refuses_specs_no_coordinator_could_run() {
    // A trim fraction below 0.5 in the spec's f64 that rounds to 0.5 in the
    // rule's f32: the spec's own check passes, the aggregator refuses it.
    let trimmed = spec(|t| {
        t.replace(
            "rule = \"median\"",
            "rule = \"trimmed-mean\"\ntrim_fraction = 0.49999999999",
        )
    });
    let error = Plan::from_spec(&trimmed).unwrap_err();
    assert!(matches!(error, PlanError::Aggregation(_)), "{error}");
    assert!(error.to_string().contains("trim"), "{error}");

    let mut unpaid = spec(|t| t);
    unpaid.rewards = None;
    unpaid.slashing = None;
    assert!(matches!(
        Plan::from_spec(&unpaid).unwrap_err(),
        PlanError::NoRewards
    ));

    // The secure-aggregation topology is the spec's threshold on the
    // complete graph, the same for the coordinator, the client and the lab.
    let secagg = spec(|t| {
        t.replace(
            "mode = \"plain\"",
            "mode = \"secagg\"\ngroup_size = 4\nthreshold = 3",
        )
    });
    let plan = Plan::from_spec(&secagg).unwrap();
    let topology = &plan.secagg().unwrap().topology;
    assert_eq!((topology.threshold(), topology.graph().degree()), (3, 3));
    assert_eq!(topology.min_survivors(), 3);
}

#[test]
fn a_plain_attempt_takes_each_members_signed_update_once_and_refuses_the_rest() {
    let plan = plan();
    let dimension = plan.architecture().num_params();
    let members = signers(4);
    let cohort: Vec<Address> = members[..3].iter().map(|s| s.address()).collect();
    let start = Instant::now();
    let id = id(1, 0, dimension);
    let mut attempt = Attempt::plain(&plan, id.clone(), &cohort, start);
    let update = vec![0.01; dimension];

    attempt
        .handle_message(
            start,
            cohort[0],
            plain_update(&members[0], &id, &update, 10),
        )
        .unwrap();
    let refusal = |attempt: &mut Attempt<Address>, from: Address, message| {
        attempt
            .handle_message(start, from, message)
            .unwrap_err()
            .kind
    };
    // The same member again: not waited for any more.
    let again = plain_update(&members[0], &id, &update, 10);
    assert_eq!(
        refusal(&mut attempt, cohort[0], again),
        RefusalKind::Unexpected
    );
    // An update signed for another attempt.
    let stale = plain_update(
        &members[1],
        &AttemptId {
            attempt: 1,
            ..id.clone()
        },
        &update,
        10,
    );
    assert_eq!(
        refusal(&mut attempt, cohort[1], stale),
        RefusalKind::Replayed
    );
    // Signed by someone else.
    let forged = plain_update(&members[3], &id, &update, 10);
    assert_eq!(
        refusal(&mut attempt, cohort[1], forged),
        RefusalKind::BadSignature
    );
    // A weight over the task's cap, or a vector of the wrong length.
    let heavy = plain_update(&members[1], &id, &update, 51);
    assert_eq!(
        refusal(&mut attempt, cohort[1], heavy),
        RefusalKind::Malformed
    );
    let short = plain_update(&members[1], &id, &update[1..], 10);
    assert_eq!(
        refusal(&mut attempt, cohort[1], short),
        RefusalKind::Malformed
    );
    // Not in the cohort.
    let outsider = plain_update(&members[3], &id, &update, 10);
    let outsider_address = members[3].address();
    assert_eq!(
        refusal(&mut attempt, outsider_address, outsider),
        RefusalKind::Unexpected
    );

    attempt
        .handle_message(
            start,
            cohort[1],
            plain_update(&members[1], &id, &update, 20),
        )
        .unwrap();
    assert!(!attempt.is_complete());
    // Member 2 never answers: the attempt waits until its deadline.
    let deadline = attempt.poll_timeout().unwrap();
    assert_eq!(
        deadline,
        start + plan.deadline(SpecPhase::Train) + plan.deadline(SpecPhase::MaskedInput)
    );
    attempt.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!attempt.is_complete());
    attempt.handle_timeout(deadline);
    assert!(attempt.is_complete() && attempt.poll_timeout().is_none());

    let Collected {
        contributions: Contributions::Plain(updates),
        submissions,
        spent,
    } = attempt.finish()
    else {
        panic!("a plain attempt collects plain updates");
    };
    assert_eq!(updates.keys().copied().collect::<Vec<_>>(), cohort[..2]);
    assert_eq!(updates[&cohort[1]].weight, 20);
    assert_eq!(submissions.keys().copied().collect::<Vec<_>>(), cohort[..2]);
    assert!(
        spent.is_empty(),
        "a plain update is not hidden, so nothing is spent"
    );
}

#[test]
fn a_secagg_attempt_fed_in_memory_gives_the_exact_sum_of_its_survivors() {
    let run = SecaggRun::start(5, |t| t);
    let (plan, grouping, start) = (run.plan.clone(), run.grouping.clone(), run.start);
    let secagg = plan.secagg().unwrap().clone();
    let dimension = plan.architecture().num_params();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut inputs = BTreeMap::new();
    let mut sessions = run.sessions(&mut rng, |address, index, rng| {
        let update = vec![0.1 * (index as f32 + 1.0); dimension];
        let input = quantize(&update, 10, &secagg.quantization, rng).unwrap();
        inputs.insert(*address, input.clone());
        input
    });
    let mut attempt = run.attempt;
    // The first member's connection ends right after it shares its keys: it
    // never sends its masked input, so the sum is the other four's, and
    // nobody waits for it again (no deadline needs to pass).
    let leaver = grouping.groups()[0][0];
    drive_secagg(
        &mut attempt,
        &mut sessions,
        &mut rng,
        start,
        |member, sent| *member == leaver && sent == MessageKind::ShareKeys,
    );
    // Each closed phase was reported for the metrics.
    let mut closed = Vec::new();
    while let Some(phase) = attempt.poll_closed_phase() {
        closed.push(phase.phase);
    }
    assert_eq!(closed.len(), 5, "{closed:?}");
    let Collected {
        contributions: Contributions::Groups { sums, failures },
        spent,
        ..
    } = attempt.finish()
    else {
        panic!("a secagg attempt collects group sums");
    };
    assert!(failures.is_empty(), "{failures:?}");
    let survivors: Vec<Address> = grouping.groups()[0][1..].to_vec();
    assert_eq!(sums[0].members, survivors);
    // The leaver sent no masked input: only the survivors' inputs are spent.
    assert_eq!(spent.into_iter().collect::<Vec<_>>(), survivors);
    assert_eq!(sums[0].weight, 40.0);
    // The mean of the survivors' quantized inputs, exactly.
    let expected: Vec<u32> = (0..=dimension)
        .map(|j| {
            survivors
                .iter()
                .fold(0u32, |sum, a| sum.wrapping_add(inputs[a][j]))
        })
        .collect();
    let mean =
        fedstake_secure_agg::quantize::weighted_mean(&expected, &secagg.quantization).unwrap();
    assert_eq!(sums[0].mean, mean);
}

/// Six plain updates of round `round`: four that roughly agree (each with
/// its own noise, as honest clients' data differ), a flipped one and a tiny
/// one.
/// The first attempt of a secagg task with groups of 5 (`t = 3`) and a
/// cohort of `clients` (also its `cohort.size` and `cohort.min`).
struct SecaggRun {
    plan: Plan,
    members: Vec<PrivateKeySigner>,
    grouping: Grouping<Address>,
    global: Model,
    attempt: Attempt<Address>,
    start: Instant,
}

impl SecaggRun {
    fn start(clients: usize, edit: impl FnOnce(String) -> String) -> Self {
        let plan = Plan::from_spec(&spec(|t| {
            edit(t)
                .replace(
                    "mode = \"plain\"",
                    "mode = \"secagg\"\ngroup_size = 5\nthreshold = 3",
                )
                .replace(
                    "size = 6\nmin = 4",
                    &format!("size = {clients}\nmin = {clients}"),
                )
        }))
        .unwrap();
        let global = initial_model(&plan);
        let members = signers(clients);
        let cohort: Vec<Address> = members.iter().map(|s| s.address()).collect();
        let round = RoundId {
            task_id: U256::from(9).to_be_bytes(),
            round: 1,
            attempt: 0,
        };
        let grouping = group_cohort(&plan, &cohort, &global.content_hash(), &round).unwrap();
        let server = Identity::from_secret_bytes(&[42; 32]).unwrap();
        let start = Instant::now();
        let dimension = plan.architecture().num_params();
        let attempt =
            Attempt::secagg(&plan, id(1, 0, dimension), &grouping, &server, start).unwrap();
        SecaggRun {
            plan,
            members,
            grouping,
            global,
            attempt,
            start,
        }
    }

    /// Every member's client session, its quantized input given by
    /// `input(member, index in its group, rng)`.
    fn sessions(
        &self,
        rng: &mut ChaCha20Rng,
        mut input: impl FnMut(&Address, usize, &mut ChaCha20Rng) -> Vec<u32>,
    ) -> BTreeMap<Address, ClientSession> {
        let mut sessions = BTreeMap::new();
        for (group, members) in self.grouping.groups().iter().enumerate() {
            let config = self.attempt.session_config(group).unwrap().clone();
            for (index, address) in members.iter().enumerate() {
                let signer = self
                    .members
                    .iter()
                    .find(|s| s.address() == *address)
                    .unwrap();
                let identity = Identity::from_secret_bytes(&signer.to_bytes().0).unwrap();
                let input = input(address, index, rng);
                let session =
                    ClientSession::new(config.clone(), index as u32, identity, input, rng).unwrap();
                sessions.insert(*address, session);
            }
        }
        sessions
    }
}

/// Moves every SecAgg+ message between `attempt` and the members'
/// `sessions` until the attempt is complete, never waiting for a deadline; a
/// member for which `leaves_after(member, kind)` holds once it sent a
/// message of `kind` is gone from then on.
fn drive_secagg(
    attempt: &mut Attempt<Address>,
    sessions: &mut BTreeMap<Address, ClientSession>,
    rng: &mut ChaCha20Rng,
    now: Instant,
    leaves_after: impl Fn(&Address, MessageKind) -> bool,
) {
    let mut gone = BTreeSet::new();
    let send = |attempt: &mut Attempt<Address>,
                gone: &mut BTreeSet<Address>,
                from: Address,
                message: SignedMessage| {
        let kind = message.kind();
        let message = message.to_bytes().unwrap();
        attempt
            .handle_message(now, from, ClientMessage::SecAgg { message })
            .unwrap();
        if leaves_after(&from, kind) {
            gone.insert(from);
            attempt.handle_member_gone(&from, now);
        }
    };
    let members: Vec<Address> = sessions.keys().copied().collect();
    for member in members {
        let advertise = sessions.get_mut(&member).unwrap().advertise_keys().unwrap();
        send(attempt, &mut gone, member, advertise);
    }
    while !attempt.is_complete() {
        let mut delivered = false;
        while let Some((to, message)) = attempt.poll_transmit() {
            delivered = true;
            if gone.contains(&to) {
                continue;
            }
            let reply = sessions
                .get_mut(&to)
                .unwrap()
                .handle(&message, rng)
                .unwrap();
            send(attempt, &mut gone, to, reply);
        }
        assert!(delivered, "the attempt waited for a deadline");
    }
}

/// A member may mask any vector of `Z_{2^32}`. One that claims a huge
/// weight (to dominate its group's mean) and one that sends a huge vector
/// make sums no clipped inputs give: their groups fail, and nobody in them
/// is judged by a group mean; the honest group is settled alone.
#[test]
fn an_out_of_bounds_masked_input_fails_its_group_and_flags_no_honest_member() {
    let run = SecaggRun::start(15, |t| t.replace("rule = \"median\"", "rule = \"fedavg\""));
    let (plan, grouping, global, start) = (
        run.plan.clone(),
        run.grouping.clone(),
        run.global.clone(),
        run.start,
    );
    let secagg = plan.secagg().unwrap().clone();
    let dimension = plan.architecture().num_params();
    let cohort: Vec<Address> = grouping.groups().concat();
    let heavy = grouping.groups()[0][2];
    let large = grouping.groups()[1][4];
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut sessions = run.sessions(&mut rng, |address, index, rng| {
        let update = vec![0.05 * (index as f32 + 1.0); dimension];
        let mut input = quantize(&update, 10, &secagg.quantization, rng).unwrap();
        if *address == heavy {
            *input.last_mut().unwrap() = 1_000_000;
        }
        if *address == large {
            input[0] = 1 << 30;
        }
        input
    });
    let mut attempt = run.attempt;
    drive_secagg(&mut attempt, &mut sessions, &mut rng, start, |_, _| false);
    let Collected { contributions, .. } = attempt.finish();
    let Contributions::Groups { sums, failures } = &contributions else {
        panic!("a secagg attempt collects group sums");
    };
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].contains("summed weight 1000"), "{failures:?}");
    assert!(failures[1].contains("norm"), "{failures:?}");
    assert_eq!(sums.len(), 1);
    assert_eq!(sums[0].members, grouping.groups()[2]);

    let stakes = cohort.iter().map(|a| (*a, 100u128)).collect();
    let settlement = settle(
        &plan,
        &RoundState::new(&plan),
        &validation(),
        &AttemptInputs {
            round: 1,
            attempt: 0,
            global: &global,
            contributions: &contributions,
            root_update: None,
            stakes: &stakes,
        },
    )
    .unwrap();
    let record = settlement.record;
    let settled: Vec<Address> = record.payouts.iter().map(|(a, _)| *a).collect();
    assert_eq!(settled, grouping.groups()[2]);
    for (member, observation) in &record.observations {
        assert_eq!(observation.update_norm, None, "{member}");
        assert!(observation.flags().is_empty(), "{member}: {observation:?}");
    }
}

/// A coordinator that wants a victim grouped with keys of its own cannot
/// hand it a group: the client seats itself by the public rule over the
/// announced cohort, and refuses a cohort that is too small, too large, has
/// duplicates, or does not seat it.
#[test]
fn a_client_refuses_a_hand_picked_group_and_seats_itself_by_the_rule() {
    let plan = Plan::from_spec(&spec(|t| {
        t.replace(
            "mode = \"plain\"",
            "mode = \"secagg\"\ngroup_size = 4\nthreshold = 3",
        )
        .replace("size = 6\nmin = 4", "size = 12\nmin = 8")
        .replace("rule = \"median\"", "rule = \"fedavg\"")
    }))
    .unwrap();
    let model = [7u8; 32];
    let round = RoundId {
        task_id: U256::from(9).to_be_bytes(),
        round: 1,
        attempt: 0,
    };
    let people: Vec<Address> = signers(13).iter().map(|s| s.address()).collect();
    let (victim, sybils, honest) = (people[0], &people[1..4], &people[4..13]);
    let seat = |cohort: &[Address]| seat_of(&plan, cohort, &model, &round, &victim);

    // The victim and three Sybils alone: below cohort.min.
    let alone: Vec<Address> = std::iter::once(victim)
        .chain(sybils.iter().copied())
        .collect();
    assert_eq!(
        seat(&alone).unwrap_err(),
        SeatError::CohortTooSmall {
            cohort: 4,
            needed: 8
        }
    );
    // Padded to the minimum with a Sybil listed twice.
    let mut padded = alone.clone();
    padded.extend([sybils[0], honest[0], honest[1], honest[2]]);
    assert!(matches!(
        seat(&padded).unwrap_err(),
        SeatError::Grouping(GroupingError::DuplicateClient)
    ));
    // More than cohort.size, to dilute the honest members.
    let mut everyone = alone.clone();
    everyone.extend(honest);
    assert!(matches!(
        seat(&everyone).unwrap_err(),
        SeatError::CohortTooLarge { .. }
    ));
    // A cohort without the victim seats it nowhere.
    assert_eq!(
        seat_of(&plan, &everyone[1..9], &model, &round, &victim).unwrap_err(),
        SeatError::NotGrouped
    );
    // A valid cohort: the seat is the rule's output, whoever the coordinator
    // would have liked next to the victim.
    let cohort = &everyone[..8];
    let grouping = group_cohort(&plan, cohort, &model, &round).unwrap();
    let seat = seat(cohort).unwrap();
    assert_eq!(grouping.groups()[seat.group], seat.members);
    assert_eq!(seat.members[seat.index as usize], victim);
}

fn contributions(cohort: &[Address], dimension: usize, round: u64) -> Contributions<Address> {
    let shift = round as f32 * 0.01;
    Contributions::Plain(
        cohort
            .iter()
            .enumerate()
            .map(|(i, address)| {
                let value = match i {
                    0 => -0.5,
                    5 => 0.001,
                    _ => 0.1 + shift,
                };
                let update = (0..dimension)
                    .map(|j| {
                        // Each honest client's own deviation, a hash of (i, j).
                        let hash = (i as u64 * 2_654_435_761 + j as u64 * 40_503) % 1000;
                        let noise = (hash as f32 / 1000.0 - 0.5) * 0.1 * value.abs() * 10.0;
                        value * if j % 2 == 0 { 1.0 } else { 0.5 } + noise
                    })
                    .collect();
                (*address, PlainContribution { update, weight: 40 })
            })
            .collect(),
    )
}

#[test]
fn settlement_pays_the_budget_and_a_replayed_state_settles_the_next_round_identically() {
    let plan = plan();
    let validation = validation();
    let dimension = plan.architecture().num_params();
    let cohort: Vec<Address> = signers(6).iter().map(|s| s.address()).collect();
    let stakes: BTreeMap<Address, u128> = cohort.iter().map(|a| (*a, 20)).collect();
    let mut global = initial_model(&plan);
    let mut state = RoundState::new(&plan);
    let mut records = Vec::new();
    let mut models = vec![global.clone()];
    for round in 1..=2 {
        let collected = contributions(&cohort, dimension, round);
        let settlement = settle(
            &plan,
            &state,
            &validation,
            &AttemptInputs {
                round,
                attempt: 0,
                global: &global,
                contributions: &collected,
                root_update: None,
                stakes: &stakes,
            },
        )
        .unwrap();
        let record = &settlement.record;
        assert_eq!(record.total() + record.dust, plan.rewards().round_budget);
        // The flipped update earns nothing.
        assert_eq!(record.payout_of(&cohort[0]), 0);
        assert!(record.payout_of(&cohort[2]) > 0);
        state = settlement.next;
        global = settlement.model;
        models.push(global.clone());
        records.push(settlement.record);
    }
    // Flagged in both rounds (2 of 3): the flipped client is slashed half
    // of its stake in round 2.
    assert_eq!(records[1].slashes, vec![(cohort[0], 10)]);
    assert_eq!(
        state.cumulative(&cohort[2]),
        records.iter().map(|r| r.payout_of(&cohort[2])).sum()
    );

    // A restarted coordinator rebuilds the state from the stored records
    // and settles round 3 exactly as the uninterrupted one.
    let mut replayed = RoundState::new(&plan);
    for (r, record) in records.iter().enumerate() {
        let aggregate: Vec<f32> = models[r + 1]
            .params()
            .iter()
            .zip(models[r].params())
            .map(|(n, g)| n - g)
            .collect();
        replayed.replay(&plan, record, aggregate).unwrap();
    }
    let third = contributions(&cohort, dimension, 3);
    let settle_third = |state: &RoundState<Address>| {
        settle(
            &plan,
            state,
            &validation,
            &AttemptInputs {
                round: 3,
                attempt: 0,
                global: &global,
                contributions: &third,
                root_update: None,
                stakes: &stakes,
            },
        )
        .unwrap()
        .record
    };
    assert_eq!(settle_third(&replayed), settle_third(&state));
    assert_eq!(
        replayed.reputation(&cohort[3]),
        state.reputation(&cohort[3])
    );
}

#[test]
fn an_attempt_that_gave_nothing_usable_is_an_error_not_a_round() {
    let plan = plan();
    let validation = validation();
    let global = initial_model(&plan);
    let state = RoundState::new(&plan);
    let stakes = BTreeMap::new();
    let attempt = |contributions: &Contributions<Address>| {
        settle(
            &plan,
            &state,
            &validation,
            &AttemptInputs {
                round: 1,
                attempt: 0,
                global: &global,
                contributions,
                root_update: None,
                stakes: &stakes,
            },
        )
        .map(|_| ())
        .unwrap_err()
    };
    assert!(matches!(
        attempt(&Contributions::Plain(BTreeMap::new())),
        SettleError::NoUpdates
    ));
    let dimension = plan.architecture().num_params();
    let huge = Contributions::Plain(
        [(
            Address::repeat_byte(1),
            PlainContribution {
                update: vec![10.0; dimension],
                weight: 1,
            },
        )]
        .into(),
    );
    assert!(matches!(attempt(&huge), SettleError::AllOverBound));
    let failed = Contributions::Groups {
        sums: Vec::new(),
        failures: vec!["group 0: too few survivors".into()],
    };
    let error = attempt(&failed);
    assert!(error.to_string().contains("too few survivors"), "{error}");
}

#[test]
fn the_cohort_draw_is_a_function_of_public_data_only() {
    let plan = plan();
    let state = RoundState::new(&plan);
    let eligible: Vec<Address> = (1..=10u8).map(Address::repeat_byte).collect();
    let mut shuffled = eligible.clone();
    shuffled.reverse();
    let task = [7; 32];
    let first = draw_cohort(&plan, &state, &eligible, &task, 1, 0);
    assert_eq!(first.len(), plan.cohort_size());
    assert!(first.windows(2).all(|w| w[0] < w[1]));
    // The order the driver lists the eligible clients in does not matter.
    assert_eq!(draw_cohort(&plan, &state, &shuffled, &task, 1, 0), first);
    // Another attempt draws again.
    let others: Vec<_> = (1..5)
        .map(|attempt| draw_cohort(&plan, &state, &eligible, &task, 1, attempt))
        .collect();
    assert!(others.iter().any(|c| *c != first));
}

#[test]
fn an_update_arriving_after_its_deadline_is_refused_even_before_the_timer_fires() {
    let plan = plan();
    let dimension = plan.architecture().num_params();
    let members = signers(2);
    let cohort: Vec<Address> = members.iter().map(|s| s.address()).collect();
    let start = Instant::now();
    let id = id(1, 0, dimension);
    let mut attempt = Attempt::plain(&plan, id.clone(), &cohort, start);
    let deadline = attempt.poll_timeout().unwrap();
    // The driver has not called handle_timeout yet: a late client races the
    // timer. Its update must not count.
    let late = plain_update(&members[0], &id, &vec![0.01; dimension], 10);
    let refused = attempt
        .handle_message(deadline, cohort[0], late)
        .unwrap_err();
    assert_eq!(refused.kind, RefusalKind::Unexpected);
    assert!(attempt.is_complete());
    let Collected {
        contributions: Contributions::Plain(updates),
        submissions,
        ..
    } = attempt.finish()
    else {
        panic!("a plain attempt collects plain updates");
    };
    assert!(updates.is_empty() && submissions.is_empty());
}
