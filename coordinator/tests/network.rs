//! The coordinator and clients over real loopback QUIC: clients killed at
//! random phases, refused joins, an oversized frame and a replayed message.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use common::{client_seed, join_as, join_raw, secagg_spec, setup};
use fedstake_aggregation::Model;
use fedstake_client::{Behaviour, ClientRunError, CrashPoint, run_client};
use fedstake_coordinator::{Store, StoredRound};
use fedstake_protocol::wire::{
    ClientMessage, Role, ServerMessage, decode_server, encode, task_frame_limit,
};
use fedstake_quic::{NetError, close};
use fedstake_round::{Plan, SettledRound, seat_of};
use fedstake_secure_agg::client::ClientSession;
use fedstake_secure_agg::grouping::RoundId;
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::session::{Phase, SessionConfig};
use fedstake_training::local_update;
use fedstake_training::trainer::{BackendOptions, build_trainer};
use rand::{Rng, SeedableRng};

/// The engine's records of the stored rounds.
fn records(stored: Vec<StoredRound>) -> Vec<SettledRound<Address>> {
    stored.into_iter().map(|s| s.settled).collect()
}

/// Every stored round's model, from the initial one: `models[r]` is the
/// global model after round `r`.
fn stored_models(store: &Store, rounds: &[SettledRound<Address>]) -> Vec<Model> {
    let initial = store.initial_model().unwrap().unwrap();
    std::iter::once(initial)
        .chain(rounds.iter().map(|r| r.model_hash))
        .map(|hash| Model::from_safetensors(&store.model(&hash).unwrap().unwrap(), None).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_lose_a_fifth_at_random_phases_and_every_sum_is_exactly_the_survivors() {
    let rounds = 5;
    let net = setup(secagg_spec(rounds, 20, 10), 20).await;
    let coordinator = net.coordinator(false, 1000).await;
    let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
    let serving = tokio::spawn(coordinator.run());

    // 4 of the 20 clients crash, each at a random round and phase.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2026);
    let phases = [
        None,
        Some(Phase::AdvertiseKeys),
        Some(Phase::ShareKeys),
        Some(Phase::MaskedInput),
        Some(Phase::Consistency),
        Some(Phase::Unmasking),
    ];
    let mut crashes = BTreeMap::new();
    while crashes.len() < 4 {
        let client = rng.random_range(0..20usize);
        let point = CrashPoint {
            round: rng.random_range(1..=u64::from(rounds)),
            phase: phases[rng.random_range(0..phases.len())],
        };
        crashes.entry(client).or_insert(point);
    }
    let mut clients = Vec::new();
    for index in 0..20 {
        let options = net.client(index, address, fingerprint, crashes.get(&index).copied());
        clients.push(tokio::spawn(run_client(options)));
    }
    let settled = records(serving.await.unwrap().unwrap());
    // The crash points reached (a client left out of its crash round's
    // groups never gets there).
    let mut crashed = BTreeMap::new();
    for (index, client) in clients.into_iter().enumerate() {
        match (client.await.unwrap(), crashes.get(&index)) {
            (Ok(report), None) => assert_eq!(report.task_rounds, u64::from(rounds)),
            (Err(ClientRunError::Crashed { round, .. }), Some(point)) => {
                assert_eq!(round, point.round);
                crashed.insert(index, *point);
            }
            (Ok(report), Some(point)) => {
                assert!(
                    !report.results.iter().any(|r| r.round == point.round),
                    "{report:?}"
                );
            }
            (other, plan) => panic!("client {index} (crash plan {plan:?}) ended with {other:?}"),
        }
    }
    assert_eq!(settled.len(), rounds as usize);
    assert!(
        crashed.len() >= 2,
        "only {crashed:?} of {crashes:?} were reached"
    );

    // Each round's model moved by exactly the weighted mean of the group
    // survivors' updates, recomputed here from their data: within the
    // fixed-point rounding, and far from it if any survivor is left out.
    let (store, _, _) =
        Store::inspect(&net.coordinator_state().join("coordinator.sqlite")).unwrap();
    let models = stored_models(&store, &settled);
    let index_of: BTreeMap<Address, usize> = net
        .clients
        .iter()
        .enumerate()
        .map(|(i, s)| (s.address(), i))
        .collect();
    for (r, round) in settled.iter().enumerate() {
        let global = models[r].params();
        let moved: Vec<f32> = models[r + 1]
            .params()
            .iter()
            .zip(global)
            .map(|(n, g)| n - g)
            .collect();
        let mut contributions = Vec::new();
        for group in &round.groups {
            for member in &group.members {
                let index = index_of[member];
                if let Some(point) = crashed.get(&index) {
                    // Only a client that crashed after sending its masked
                    // input can be a survivor of its crash round.
                    assert!(
                        round.round < point.round
                            || (round.round == point.round
                                && point.phase > Some(Phase::MaskedInput)),
                        "client {index} crashed at {point:?} but is a survivor of round {}",
                        round.round
                    );
                }
                let mut trainer = build_trainer(
                    &net.spec,
                    std::path::Path::new("."),
                    &BackendOptions::default(),
                    0,
                )
                .unwrap();
                let local = local_update(
                    trainer.as_mut(),
                    &net.data[index],
                    global,
                    &net.spec,
                    (client_seed(index), round.round),
                    |_| {},
                )
                .unwrap();
                contributions.push((local.update, f64::from(local.weight)));
            }
        }
        assert!(
            round.groups.len() >= 2,
            "round {} kept {} groups",
            round.round,
            round.groups.len()
        );
        let mean = |skip: Option<usize>| -> Vec<f64> {
            let kept: Vec<&(Vec<f32>, f64)> = contributions
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != skip)
                .map(|(_, c)| c)
                .collect();
            let total: f64 = kept.iter().map(|(_, w)| w).sum();
            (0..global.len())
                .map(|j| kept.iter().map(|(u, w)| f64::from(u[j]) * w).sum::<f64>() / total)
                .collect()
        };
        let distance = |expected: &[f64]| {
            moved
                .iter()
                .zip(expected)
                .map(|(m, e)| (f64::from(*m) - e).abs())
                .fold(0.0, f64::max)
        };
        let exact = distance(&mean(None));
        assert!(
            exact < 1e-4,
            "round {}: the model moved {exact} away from the survivors' mean",
            round.round
        );
        for skip in 0..contributions.len() {
            assert!(
                distance(&mean(Some(skip))) > 10.0 * exact.max(1e-5),
                "round {}: survivor {skip} made no difference",
                round.round
            );
        }
    }
    // Every round was posted once, and the chain reserved exactly the sum.
    let task = net.ledger.task(net.task_id).await.unwrap();
    let total: u128 = settled.iter().map(SettledRound::total).sum();
    assert_eq!(task.postedTotal, alloy::primitives::U256::from(total));
    assert_eq!(task.lastPostedRound, u64::from(rounds));
}

/// Asserts that the counter `name{name="label"}` of the metrics `text` is
/// `expected`.
#[track_caller]
fn assert_metric(text: &str, name: &str, label: &str, expected: u64) {
    assert_eq!(
        metric(text, name, label),
        expected,
        "{name}{{{label}}} in {text}"
    );
}

fn metric(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(&format!("name=\"{label}\"")))
        .and_then(|l| l.split_whitespace().last())
        .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_joins_an_oversized_frame_and_a_replay_are_refused_while_the_task_goes_on() {
    // Clients 0..9 are honest, 9 replays a message, 10 sends an oversized
    // frame; an unstaked key and a forged signature are refused at join.
    let net = setup(secagg_spec(2, 10, 10), 11).await;
    let coordinator = net.coordinator(true, 1000).await;
    let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
    let metrics_address = coordinator.metrics_addr().unwrap();
    let metrics = coordinator.metrics();
    let serving = tokio::spawn(coordinator.run());

    let unstaked = PrivateKeySigner::random();
    let (_, _, _, answer) = join_as(address, fingerprint, &net, &unstaked).await;
    let ServerMessage::Refused { reason } = answer else {
        panic!("{answer:?}")
    };
    assert!(reason.contains("the minimum is"), "{reason}");

    let impostor = PrivateKeySigner::random();
    let (_, _, _, answer) = join_raw(
        address,
        fingerprint,
        &net,
        net.clients[0].address(),
        &impostor,
    )
    .await;
    let ServerMessage::Refused { reason } = answer else {
        panic!("{answer:?}")
    };
    assert!(
        reason.contains(&format!("signed by {}", impostor.address())),
        "{reason}"
    );

    // An admitted client announces a frame one byte over the task's limit:
    // its connection is closed with the protocol error code.
    let (connection, mut reader, mut writer, answer) =
        join_as(address, fingerprint, &net, &net.clients[10]).await;
    assert!(matches!(answer, ServerMessage::Admitted(_)), "{answer:?}");
    let limit = task_frame_limit(33).unwrap();
    writer.set_limit(u32::MAX);
    // Sending may fail half-way: the coordinator closes on the header.
    writer.send(&vec![0; limit as usize + 1]).await.ok();
    let ended = reader.next().await.unwrap_err();
    assert!(
        matches!(ended, NetError::Read(_) | NetError::Connection(_)),
        "{ended:?}"
    );
    let reason = connection.closed().await;
    assert!(
        matches!(&reason, quinn::ConnectionError::ApplicationClosed(close) if close.error_code == close::PROTOCOL.into()),
        "{reason:?}"
    );
    // The endpoint serves what happened so far.
    let text = get_metrics(metrics_address).await;
    assert_metric(&text, "fedstake_rejected_messages_total", "oversized", 1);
    assert_metric(&text, "fedstake_joins_total", "unstaked", 1);

    // The replaying client joins, sits out round 1 and in round 2 sends a
    // validly signed AdvertiseKeys of round 1.
    let (_connection, mut reader, mut writer, answer) =
        join_as(address, fingerprint, &net, &net.clients[9]).await;
    let ServerMessage::Admitted(admission) = answer else {
        panic!("{answer:?}")
    };
    let frame_limit = task_frame_limit(33).unwrap();
    reader.set_limit(frame_limit);
    writer.set_limit(frame_limit);
    let honest: Vec<_> = (0..9)
        .map(|index| tokio::spawn(run_client(net.client(index, address, fingerprint, None))))
        .collect();
    let spec = net.spec.clone();
    let (task_id, signer) = (net.task_id, net.clients[9].clone());
    let replayer = tokio::spawn(async move {
        let mut replayed = false;
        while let Ok(frame) = reader.next().await {
            match decode_server(&frame).unwrap() {
                ServerMessage::Round(announcement) => {
                    let (round, attempt) = (announcement.round, announcement.attempt);
                    if round == 2 {
                        let Role::SecAgg { cohort } = announcement.role else {
                            panic!("a plain role in a secagg task");
                        };
                        let cohort: Vec<Address> = cohort.into_iter().map(Address::from).collect();
                        let round_id = RoundId {
                            task_id: task_id.to_be_bytes(),
                            round,
                            attempt,
                        };
                        let seat = seat_of(
                            &Plan::from_spec(&spec).unwrap(),
                            &cohort,
                            &announcement.model_hash,
                            &round_id,
                            &signer.address(),
                        )
                        .unwrap();
                        let members = seat.members.iter().map(|a| a.into_array()).collect();
                        let old = replay_message(
                            &spec,
                            task_id,
                            &signer,
                            admission.coordinator,
                            (1, seat.group as u32, seat.index, members),
                        );
                        writer
                            .send(&encode(&ClientMessage::SecAgg { message: old }))
                            .await
                            .unwrap();
                        replayed = true;
                    }
                    // Then it bows out, so its group does not wait for it.
                    let decline = ClientMessage::Decline {
                        round,
                        attempt,
                        reason: "test".into(),
                    };
                    writer.send(&encode(&decline)).await.unwrap();
                }
                ServerMessage::Finished { .. } => break,
                _ => {}
            }
        }
        replayed
    });
    for client in honest {
        client.await.unwrap().unwrap();
    }
    let settled = records(serving.await.unwrap().unwrap());
    assert_eq!(settled.len(), 2);
    assert!(
        replayer.await.unwrap(),
        "the replaying client was never drawn for round 2"
    );
    let text = metrics.encode();
    assert_metric(&text, "fedstake_rejected_messages_total", "replayed", 1);
    assert_metric(&text, "fedstake_joins_total", "unstaked", 1);
    assert_metric(&text, "fedstake_joins_total", "bad_signature", 1);
    assert_metric(&text, "fedstake_rejected_messages_total", "oversized", 1);
}

/// GET /metrics over plain TCP.
async fn get_metrics(address: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// A validly signed AdvertiseKeys of `round` (attempt 0) for the seat
/// `(group, index)` among `members`.
fn replay_message(
    spec: &fedstake_protocol::spec::TaskSpec,
    task_id: alloy::primitives::U256,
    signer: &PrivateKeySigner,
    coordinator: [u8; 20],
    (round, group, index, members): (u64, u32, u32, Vec<[u8; 20]>),
) -> Vec<u8> {
    let topology = Plan::from_spec(spec)
        .unwrap()
        .secagg()
        .unwrap()
        .topology
        .clone();
    let config = SessionConfig {
        context: RoundId {
            task_id: task_id.to_be_bytes(),
            round,
            attempt: 0,
        }
        .group_context(group),
        topology,
        dimension: 34,
        member_addresses: members,
        server_address: coordinator,
    };
    let identity = Identity::from_secret_bytes(&signer.to_bytes().0).unwrap();
    let mut session =
        ClientSession::new(config, index, identity, vec![0; 34], &mut rand::rng()).unwrap();
    session.advertise_keys().unwrap().to_bytes().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rounds_slash_sign_flippers_on_chain_with_their_own_signatures() {
    // Clients 0 and 1 flip and scale their updates; the median rejects them
    // and their signed updates are the evidence of the slashes.
    let net = common::setup(common::plain_median_spec(3, 8), 8).await;
    let coordinator = net.coordinator(false, 1000).await;
    let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
    let serving = tokio::spawn(coordinator.run());
    let clients: Vec<_> = (0..8)
        .map(|index| {
            let mut options = net.client(index, address, fingerprint, None);
            if index < 2 {
                options.behaviour = Behaviour::SignFlip { scale: 10.0 };
            }
            tokio::spawn(run_client(options))
        })
        .collect();
    for client in clients {
        client.await.unwrap().unwrap();
    }
    let stored = serving.await.unwrap().unwrap();
    let settled = records(stored.clone());
    let slashed: Vec<Address> = settled
        .iter()
        .flat_map(|r| r.slashes.iter().map(|(a, _)| *a))
        .collect();
    let poisoners = [net.clients[0].address(), net.clients[1].address()];
    assert_eq!(slashed.len(), 2, "{settled:?}");
    assert!(slashed.iter().all(|a| poisoners.contains(a)), "{slashed:?}");
    // The contract checked each slash's EIP-712 signature and took half of
    // the poisoners' stake; the honest stakes are whole.
    let full = common::stake_amount(&net.spec);
    for (index, signer) in net.clients.iter().enumerate() {
        let stake = net
            .ledger
            .stake_of(net.task_id, signer.address())
            .await
            .unwrap();
        let expected = if index < 2 {
            full / alloy::primitives::U256::from(2)
        } else {
            full
        };
        assert_eq!(stake.active, expected, "client {index}");
    }
    // The poisoners earned less than any honest client.
    let tree = StoredRound::latest_tree(&stored).unwrap();
    let paid = |a: Address| tree.amount(a).unwrap_or_default();
    let least_honest = net.clients[2..]
        .iter()
        .map(|s| paid(s.address()))
        .min()
        .unwrap();
    assert!(poisoners.iter().all(|&p| paid(p) < least_honest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_unstakes_after_joining_is_expelled_before_a_later_round() {
    // Six clients, rounds of at least five: the task goes on without the
    // one that asks to unstake after round 1.
    let mut spec = common::plain_median_spec(4, 6);
    spec.cohort.min = 5;
    let net = setup(spec, 6).await;
    let mut coordinator = net.coordinator(false, 1000).await;
    let mut reports = coordinator.subscribe();
    let metrics = coordinator.metrics();
    let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
    let clients: Vec<_> = (0..6)
        .map(|index| tokio::spawn(run_client(net.client(index, address, fingerprint, None))))
        .collect();
    // All six in round 1: the rounds start once every client is admitted.
    while metrics.clients.get() < 6 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let serving = tokio::spawn(coordinator.run());
    let leaver = &net.clients[5];
    let took_part = |round: &SettledRound<Address>| {
        round
            .observations
            .iter()
            .any(|(address, _)| *address == leaver.address())
    };
    let first = reports.recv().await.unwrap().stored.settled;
    assert!(took_part(&first), "{first:?}");
    let all = common::stake_amount(&net.spec);
    net.ledger
        .request_unstake(leaver, net.task_id, all)
        .await
        .unwrap();

    let settled = records(serving.await.unwrap().unwrap());
    assert_eq!(settled.len(), 4);
    // Round 2 may have been drawn before the request landed; no later one.
    for round in &settled[2..] {
        assert!(!took_part(round), "round {}: {round:?}", round.round);
        assert_eq!(round.observations.len(), 5, "round {}", round.round);
    }
    for (index, client) in clients.into_iter().enumerate() {
        let result = client.await.unwrap();
        if index == 5 {
            match result {
                Err(ClientRunError::Refused { reason, .. }) => {
                    assert!(reason.contains("the minimum is"), "{reason}")
                }
                other => panic!("the leaver was not refused: {other:?}"),
            }
        } else {
            assert_eq!(result.unwrap().results.len(), 4, "client {index}");
        }
    }
    let text = metrics.encode();
    assert_metric(&text, "fedstake_rejected_messages_total", "unstaked", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_coordinator_refuses_the_next_client_and_readmits_a_reconnecting_one() {
    let net = setup(secagg_spec(1, 5, 5), 2).await;
    let coordinator = net.coordinator(false, 1).await;
    let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
    let first = &net.clients[0];
    let (_kept, _reader, _writer, answer) = join_as(address, fingerprint, &net, first).await;
    assert!(matches!(answer, ServerMessage::Admitted(_)), "{answer:?}");
    let second = &net.clients[1];
    let (_, _, _, answer) = join_as(address, fingerprint, &net, second).await;
    let ServerMessage::Refused { reason } = answer else {
        panic!("{answer:?}")
    };
    assert!(reason.contains("at most 1 clients"), "{reason}");
    // The admitted address may reconnect (its new connection replaces the old).
    let (_, _, _, answer) = join_as(address, fingerprint, &net, first).await;
    assert!(matches!(answer, ServerMessage::Admitted(_)), "{answer:?}");
    drop(coordinator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_pinning_another_certificate_is_refused_at_start() {
    let mut spec = secagg_spec(1, 5, 5);
    spec.coordinator = Some(fedstake_protocol::spec::CoordinatorSpec {
        address: "127.0.0.1:4433".into(),
        tls_fingerprint: "ab".repeat(32),
    });
    spec.validate().unwrap();
    let net = setup(spec, 1).await;
    let error = net.start_error().await;
    assert!(
        error
            .to_string()
            .contains(&format!("pins coordinator certificate {}", "ab".repeat(32))),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_member_is_dropped_when_the_phase_deadline_passes() {
    // Client 4 joins and then never answers, as a machine that lost power
    // would (no connection close): its group waits for the deadline, then
    // sums the four others.
    let text = secagg_spec(1, 5, 5)
        .to_toml_string()
        .replace("train = 20", "train = 3")
        .replace("advertise_keys = 5", "advertise_keys = 1");
    let spec = fedstake_protocol::spec::TaskSpec::from_toml_str(&text).unwrap();
    assert_eq!(
        spec.deadline(fedstake_protocol::spec::Phase::Train)
            .as_secs(),
        3,
        "{text}"
    );
    let net = setup(spec, 5).await;
    let coordinator = net.coordinator(false, 10).await;
    let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
    let serving = tokio::spawn(coordinator.run());
    let silent = &net.clients[4];
    let (_connection, mut reader, _writer, answer) =
        join_as(address, fingerprint, &net, silent).await;
    assert!(matches!(answer, ServerMessage::Admitted(_)), "{answer:?}");
    let listening = tokio::spawn(async move { while reader.next().await.is_ok() {} });
    let honest: Vec<_> = (0..4)
        .map(|index| tokio::spawn(run_client(net.client(index, address, fingerprint, None))))
        .collect();
    for client in honest {
        client.await.unwrap().unwrap();
    }
    let settled = records(serving.await.unwrap().unwrap());
    listening.abort();
    let survivors: Vec<Address> = settled[0].groups[0].members.clone();
    let mut expected: Vec<Address> = net.clients[..4].iter().map(|s| s.address()).collect();
    expected.sort();
    assert_eq!(survivors, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fltrust_task_is_served_with_the_sponsors_root_data_and_refused_without() {
    let text = common::plain_median_spec(2, 5)
        .to_toml_string()
        .replace("rule = \"median\"", "rule = \"fltrust\"");
    let spec = fedstake_protocol::spec::TaskSpec::from_toml_str(&text).unwrap();
    let net = setup(spec, 5).await;
    let error = net.start_error().await;
    assert!(
        error.to_string().contains("root update") && error.to_string().contains("--root"),
        "{error}"
    );
    // With root data the engine trains the root update each round and
    // FLTrust weighs the clients by their alignment with it.
    let config = fedstake_coordinator::CoordinatorConfig {
        root: Some(net.validation.clone()),
        ..net.config(false, 10)
    };
    let coordinator = fedstake_coordinator::Coordinator::start(config, net.ledger.clone())
        .await
        .unwrap();
    let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
    let clients: Vec<_> = (0..5)
        .map(|index| tokio::spawn(run_client(net.client(index, address, fingerprint, None))))
        .collect();
    let settled = records(coordinator.run().await.unwrap());
    for client in clients {
        client.await.unwrap().unwrap();
    }
    assert_eq!(settled.len(), 2);
    assert!(
        settled.iter().all(|r| r.accepted > 0 && r.total() > 0),
        "{settled:?}"
    );
}

/// One input per client per round: when the only group of a round fails
/// after every member sent its masked input (two members crash before
/// signing the survivor list, so no secret can be rebuilt), the round is
/// skipped. It never runs again with new groups, whose sums the coordinator
/// could subtract from what it saw of the first; the crashed members come
/// back and the next round completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_whose_inputs_were_spent_is_skipped_not_run_again() {
    let net = setup(secagg_spec(3, 5, 5), 5).await;
    let coordinator = net.coordinator(false, 10).await;
    let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
    let serving = tokio::spawn(coordinator.run());
    let crash = CrashPoint {
        round: 2,
        phase: Some(Phase::Consistency),
    };
    let mut clients = Vec::new();
    for index in 0..5 {
        let options = net.client(index, address, fingerprint, (index < 2).then_some(crash));
        clients.push(tokio::spawn(async move {
            match run_client(options.clone()).await {
                Err(ClientRunError::Crashed { round: 2, .. }) => {
                    let restarted = fedstake_client::ClientOptions {
                        crash: None,
                        ..options
                    };
                    run_client(restarted).await
                }
                other => other,
            }
        }));
    }
    let stored = serving.await.unwrap().unwrap();
    for client in clients {
        let report = client.await.unwrap().unwrap();
        assert_eq!(report.declined, 0, "{report:?}");
    }
    let settled = records(stored.clone());
    assert_eq!(settled.len(), 3);
    assert!(!settled[0].is_skipped() && !settled[2].is_skipped());
    let skipped = &settled[1];
    assert!(skipped.is_skipped(), "{skipped:?}");
    assert!(skipped.payouts.is_empty() && skipped.groups.is_empty());
    assert_eq!(skipped.model_hash, settled[0].model_hash);
    assert!(stored[1].payout_tree.is_none());

    // Round 2 had exactly one attempt.
    let (store, _, _) =
        Store::inspect(&net.coordinator_state().join("coordinator.sqlite")).unwrap();
    let second: Vec<u32> = store
        .attempts()
        .unwrap()
        .into_iter()
        .filter(|a| a.round == 2)
        .map(|a| a.attempt)
        .collect();
    assert_eq!(second, vec![0], "round 2 ran again");
    // The skipped round was never posted; the others were, once.
    let task = net.ledger.task(net.task_id).await.unwrap();
    let total: u128 = settled.iter().map(SettledRound::total).sum();
    assert_eq!(task.postedTotal, alloy::primitives::U256::from(total));
    assert_eq!(task.lastPostedRound, 3);
}
