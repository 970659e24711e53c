//! The coordinator and the lab drive one round engine: the same task, data,
//! keys and seeds, run (a) by `coordinator serve`'s coordinator with clients
//! over loopback QUIC and the reward contract on an embedded chain, and (b)
//! by the lab's in-memory driver, settle identical rounds — payouts,
//! slashes, group results and the model hash — in plain and in secagg mode.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../coordinator/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use alloy::primitives::Address;
use common::{Net, client_seed, plain_median_spec, secagg_spec, setup, stake_amount};
use fedstake_aggregation::Model;
use fedstake_client::{Behaviour, ClientOptions, run_client};
use fedstake_round::{AttemptInputs, Plan, RoundState, SettledRound, settle};
use fedstake_secure_agg::identity::Identity;
use fedstake_simulations::driver::{Lab, MemberInput};
use fedstake_training::trainer::{CpuTrainer, local_update};

/// Client 0 and 1 poison (flipped, scaled updates); the others are honest.
fn behaviour(index: usize) -> Behaviour {
    if index < 2 {
        Behaviour::SignFlip { scale: 4.0 }
    } else {
        Behaviour::Honest
    }
}

/// The rounds the coordinator settles with every client connected before
/// the first round.
async fn served(net: &Net) -> Vec<SettledRound<Address>> {
    let coordinator = net.coordinator(false, 100).await;
    let metrics = coordinator.metrics();
    let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
    let clients: Vec<_> = (0..net.clients.len())
        .map(|index| {
            tokio::spawn(run_client(ClientOptions {
                behaviour: behaviour(index),
                ..net.client(index, address, fingerprint, None)
            }))
        })
        .collect();
    while metrics.clients.get() < net.clients.len() as i64 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stored = coordinator.run().await.unwrap();
    for client in clients {
        client.await.unwrap().unwrap();
    }
    stored.into_iter().map(|s| s.settled).collect()
}

/// The same task through the lab's driver of the engine.
fn simulated(net: &Net) -> Vec<SettledRound<Address>> {
    let plan = Plan::from_spec(&net.spec).unwrap();
    let coordinator = Identity::from_secret_bytes(&net.coordinator.to_bytes().0).unwrap();
    let lab = Lab::new(
        plan.clone(),
        net.task_id,
        net.ledger.domain().clone(),
        coordinator,
        net.clients.clone(),
        7,
    )
    .unwrap();
    let index_of: BTreeMap<Address, usize> = net
        .clients
        .iter()
        .enumerate()
        .map(|(i, s)| (s.address(), i))
        .collect();
    let architecture = plan.architecture();
    // The coordinator's initial model (`init_seed` 1 in the tests' config).
    let mut global = Model::new(architecture.layout(), architecture.init_parameters(1)).unwrap();
    let mut state = RoundState::new(&plan);
    let full = u128::try_from(stake_amount(&net.spec)).unwrap();
    let mut stakes: BTreeMap<Address, u128> = index_of.keys().map(|&a| (a, full)).collect();
    let mut settled = Vec::new();
    for round in 1..=plan.rounds() {
        let eligible: Vec<Address> = stakes
            .iter()
            .filter(|(_, stake)| **stake >= plan.rewards().min_stake)
            .map(|(a, _)| *a)
            .collect();
        let draw = lab.draw(&state, &global, &eligible, round, 0).unwrap();
        let inputs: BTreeMap<Address, MemberInput> = draw
            .cohort
            .iter()
            .map(|address| {
                let index = index_of[address];
                let mut trainer = CpuTrainer::new(
                    architecture.clone(),
                    plan.optimizer(),
                    global.params().to_vec(),
                )
                .unwrap();
                let local = local_update(
                    &mut trainer,
                    &net.data[index],
                    global.params(),
                    &net.spec,
                    (client_seed(index), round),
                    |update| behaviour(index).apply(update),
                )
                .unwrap();
                let input = MemberInput {
                    update: local.update,
                    weight: local.weight,
                    drop_from: None,
                };
                (*address, input)
            })
            .collect();
        let contributions = lab.collect(&draw, &global, &inputs).unwrap().contributions;
        let participant_stakes = contributions
            .participants()
            .into_iter()
            .map(|a| (a, stakes[&a]))
            .collect();
        let settlement = settle(
            &plan,
            &state,
            &net.validation,
            &AttemptInputs {
                round,
                attempt: 0,
                global: &global,
                contributions: &contributions,
                root_update: None,
                stakes: &participant_stakes,
            },
        )
        .unwrap();
        for (address, amount) in &settlement.record.slashes {
            *stakes.get_mut(address).unwrap() -= amount;
        }
        state = settlement.next;
        global = settlement.model;
        settled.push(settlement.record);
    }
    settled
}

fn assert_same(served: &[SettledRound<Address>], simulated: &[SettledRound<Address>]) {
    assert_eq!(served.len(), simulated.len());
    for (a, b) in served.iter().zip(simulated) {
        assert_eq!(
            a.attempt, 0,
            "round {} ran again: the comparison needs attempt 0",
            a.round
        );
        assert_eq!(a.model_hash, b.model_hash, "round {}: model", a.round);
        assert_eq!(a.payouts, b.payouts, "round {}: payouts", a.round);
        assert_eq!(a.slashes, b.slashes, "round {}: slashes", a.round);
        assert_eq!(a.groups, b.groups, "round {}: groups", a.round);
        assert_eq!(a, b, "round {}", a.round);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_task_settles_the_same_rounds_served_and_simulated() {
    let net = setup(plain_median_spec(3, 6), 6).await;
    let served = served(&net).await;
    let simulated = simulated(&net);
    assert_same(&served, &simulated);
    // Not a vacuous comparison: rounds paid, and the poisoners were slashed.
    assert!(served.iter().all(|r| r.total() > 0));
    let slashed: Vec<Address> = served
        .iter()
        .flat_map(|r| r.slashes.iter().map(|(a, _)| *a))
        .collect();
    assert_eq!(
        slashed,
        {
            let mut poisoners = vec![net.clients[0].address(), net.clients[1].address()];
            poisoners.sort();
            poisoners
        },
        "{served:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secagg_task_settles_the_same_rounds_served_and_simulated() {
    let net = setup(secagg_spec(3, 10, 10), 10).await;
    let served = served(&net).await;
    let simulated = simulated(&net);
    assert_same(&served, &simulated);
    assert!(served.iter().all(|r| r.groups.len() == 2 && r.total() > 0));
}
