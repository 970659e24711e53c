//! Attacks on a running coordinator over loopback QUIC, by a drawn member
//! and by peers that never authenticate: the coordinator drops what it
//! must, bounds what it holds, and the honest clients' rounds complete.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use common::{Net, plain_median_spec, secagg_spec, setup};
use fedstake_client::run_client;
use fedstake_coordinator::{Coordinator, CoordinatorConfig};
use fedstake_protocol::wire::{
    ClientMessage, ServerMessage, decode_server, encode, task_frame_limit,
};
use fedstake_quic::{FrameReader, FrameWriter, close};
use fedstake_secure_agg::messages::{HEADER_BYTES, MessageKind};

/// An admitted raw connection of `signer`, its frame limits raised to the
/// task's.
async fn join_as(
    coordinator: SocketAddr,
    fingerprint: [u8; 32],
    net: &Net,
    signer: &PrivateKeySigner,
) -> (quinn::Connection, FrameReader, FrameWriter) {
    let (connection, mut reader, mut writer, answer) =
        common::join_as(coordinator, fingerprint, net, signer).await;
    assert!(matches!(answer, ServerMessage::Admitted(_)), "{answer:?}");
    let limit = task_frame_limit(net.spec.parameter_count().unwrap() as usize).unwrap();
    reader.set_limit(limit);
    writer.set_limit(limit);
    (connection, reader, writer)
}

/// As many `KeysDelivery` messages, each nested in the next, as fit in
/// `bytes`: 126 bytes a level (header, count, signature).
fn nested_keys_deliveries(bytes: usize) -> Vec<u8> {
    const SIGNATURE: usize = 65;
    let level = HEADER_BYTES + 4 + SIGNATURE;
    let depth = bytes / level - 1;
    let header = |payload_len: usize| {
        let mut header = vec![MessageKind::KeysDelivery.to_byte()];
        header.extend_from_slice(&[0; 48 + 4]);
        header.extend_from_slice(&u32::try_from(payload_len).unwrap().to_be_bytes());
        header
    };
    let mut frame = Vec::with_capacity(level * (depth + 1));
    for inner in (0..depth).rev() {
        frame.extend(header(4 + level * (inner + 1)));
        frame.extend_from_slice(&1u32.to_be_bytes());
    }
    frame.extend(header(4));
    frame.extend_from_slice(&0u32.to_be_bytes());
    frame.resize(level * (depth + 1), 0);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sending_a_two_megabyte_nest_of_messages_is_refused_and_the_round_settles() {
    // Clients 0..9 are honest; 9 sends, when drawn, one frame of SecAgg
    // messages nested 16,600 deep (it used to overflow the coordinator's
    // stack and abort the process), then declines.
    let net = setup(secagg_spec(1, 10, 10), 10).await;
    let coordinator = net.coordinator(false, 1000).await;
    let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
    let metrics = coordinator.metrics();
    let serving = tokio::spawn(coordinator.run());
    let (_connection, mut reader, mut writer) =
        join_as(address, fingerprint, &net, &net.clients[9]).await;
    let honest: Vec<_> = (0..9)
        .map(|index| tokio::spawn(run_client(net.client(index, address, fingerprint, None))))
        .collect();
    // Room for the message's own envelope (variant and length) in the frame.
    let limit = task_frame_limit(net.spec.parameter_count().unwrap() as usize).unwrap();
    let nest = nested_keys_deliveries(limit as usize - 8);
    assert!(nest.len() > 2_000_000, "{} bytes", nest.len());
    let attacker = tokio::spawn(async move {
        let mut sent = false;
        while let Ok(frame) = reader.next().await {
            match decode_server(&frame).unwrap() {
                ServerMessage::Round(announcement) => {
                    writer
                        .send(&encode(&ClientMessage::SecAgg {
                            message: nest.clone(),
                        }))
                        .await
                        .unwrap();
                    sent = true;
                    let decline = ClientMessage::Decline {
                        round: announcement.round,
                        attempt: announcement.attempt,
                        reason: "attacker".into(),
                    };
                    writer.send(&encode(&decline)).await.unwrap();
                }
                ServerMessage::Finished { .. } => break,
                _ => {}
            }
        }
        sent
    });
    for client in honest {
        client.await.unwrap().unwrap();
    }
    let settled = serving.await.unwrap().unwrap();
    assert_eq!(settled.len(), 1);
    assert!(attacker.await.unwrap(), "the attacker was never drawn");
    let text = metrics.encode();
    assert!(
        text.contains("fedstake_rejected_messages_total{name=\"malformed\"} 1"),
        "{text}"
    );
}

/// Unauthenticated connection attempts of the flood.
const FLOOD: usize = 1000;
/// The coordinator's cap on unadmitted connections in the flood test.
const CAP: usize = 16;

/// What became of one flooding connection.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Flood {
    /// The coordinator refused it (the cap was reached).
    Refused,
    /// It never sent anything and was closed at the join deadline.
    SilentClosed,
    /// It sent garbage and was refused at join.
    GarbageRefused,
    /// Its retried Initial reached the coordinator after the retry token
    /// expired (the flood overloads a 2-core machine): refused as well.
    StaleRetry,
    /// Anything else (the task ended under it, say).
    Other(String),
}

async fn flood_one(endpoint: quinn::Endpoint, coordinator: SocketAddr, garbage: bool) -> Flood {
    let connection = match endpoint.connect(coordinator, "localhost").unwrap().await {
        Ok(connection) => connection,
        Err(quinn::ConnectionError::ConnectionClosed(close))
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            return Flood::Refused;
        }
        Err(quinn::ConnectionError::ConnectionClosed(close))
            if close.error_code == quinn::TransportErrorCode::INVALID_TOKEN =>
        {
            return Flood::StaleRetry;
        }
        Err(error) => return Flood::Other(error.to_string()),
    };
    if garbage {
        let Ok((mut send, _recv)) = connection.open_bi().await else {
            return Flood::Other("no stream".into());
        };
        // A frame of random bytes where Hello belongs.
        let mut frame = 32u32.to_be_bytes().to_vec();
        frame.extend((0..32).map(|i: u8| i.wrapping_mul(97)));
        let _ = send.write_all(&frame).await;
    }
    match connection.closed().await {
        quinn::ConnectionError::ApplicationClosed(reason)
            if garbage && reason.error_code == close::REFUSED.into() =>
        {
            Flood::GarbageRefused
        }
        quinn::ConnectionError::ApplicationClosed(reason)
            if !garbage && reason.error_code == close::PROTOCOL.into() =>
        {
            Flood::SilentClosed
        }
        other => Flood::Other(other.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_unauthenticated_connections_stay_under_the_cap_and_admitted_clients_finish() {
    // Cohorts of 5: four clients are admitted, the flood comes, then the
    // fifth joins and the rounds run. Joins must finish in 3 s.
    let text = plain_median_spec(2, 5)
        .to_toml_string()
        .replace("join = 10", "join = 3");
    let spec = fedstake_protocol::TaskSpec::from_toml_str(&text).unwrap();
    assert_eq!(
        spec.deadline(fedstake_protocol::spec::Phase::Join),
        Duration::from_secs(3)
    );
    let net = setup(spec, 5).await;
    let config = CoordinatorConfig {
        max_unadmitted: CAP,
        ..net.config(false, 1000)
    };
    let coordinator = Coordinator::start(config, Arc::clone(&net.ledger))
        .await
        .unwrap();
    let (address, fingerprint) = (coordinator.local_addr().unwrap(), coordinator.fingerprint());
    let metrics = coordinator.metrics();
    let serving = tokio::spawn(coordinator.run());
    let mut honest: Vec<_> = (0..4)
        .map(|index| tokio::spawn(run_client(net.client(index, address, fingerprint, None))))
        .collect();
    while metrics.clients.get() < 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Half the flood stays silent after its handshake, half sends garbage.
    let endpoints: Vec<quinn::Endpoint> = (0..4)
        .map(|_| {
            let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
            endpoint.set_default_client_config(fedstake_quic::client_config(fingerprint).unwrap());
            endpoint
        })
        .collect();
    let flood: Vec<_> = (0..FLOOD)
        .map(|i| {
            let endpoint = endpoints[i % endpoints.len()].clone();
            tokio::spawn(flood_one(endpoint, address, i % 2 == 0))
        })
        .collect();
    let mut outcomes = std::collections::BTreeMap::<Flood, usize>::new();
    for attempt in flood {
        *outcomes.entry(attempt.await.unwrap()).or_default() += 1;
    }
    let peak = metrics.unadmitted_peak.get();
    assert!(peak <= CAP as i64, "{peak} unadmitted connections at once");
    assert_eq!(peak, CAP as i64, "the flood reached the cap");
    assert_eq!(metrics.clients.get(), 4, "the admitted clients stayed");
    assert_eq!(metrics.unadmitted.get(), 0);

    honest.push(tokio::spawn(run_client(net.client(
        4,
        address,
        fingerprint,
        None,
    ))));
    for client in honest {
        client.await.unwrap().unwrap();
    }
    let settled = serving.await.unwrap().unwrap();
    assert_eq!(settled.len(), 2, "the honest clients' rounds settle");

    let counted = |outcome: &str| {
        metrics
            .incoming
            .get_or_create(&fedstake_coordinator::metrics::Label {
                name: outcome.into(),
            })
            .get()
    };
    // Every attempt was asked to prove its address first.
    assert!(counted("retried") >= FLOOD as u64, "{outcomes:?}");
    let refused = outcomes.get(&Flood::Refused).copied().unwrap_or(0);
    assert!(refused > 0, "{outcomes:?}");
    // At least once per refused attempt: an Initial retransmitted before
    // the refusal arrived is refused (and counted) again.
    assert!(
        counted("refused_unadmitted_cap") >= refused as u64,
        "{outcomes:?}"
    );
    // Those let in were closed by the coordinator: garbage at once, silence
    // at the join deadline.
    assert!(
        outcomes.keys().all(|o| !matches!(o, Flood::Other(_))),
        "{outcomes:?}"
    );
}
