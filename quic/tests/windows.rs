//! What a peer the coordinator has not admitted can make it buffer: the
//! coordinator's transport lets a connection have one stream and
//! `UNADMITTED_RECEIVE_WINDOW` bytes in flight until `admit`, whatever the
//! peer writes, and no unidirectional streams at all.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use fedstake_quic::{
    ADMITTED_RECEIVE_WINDOW, UNADMITTED_RECEIVE_WINDOW, admit, client_config, fingerprint,
    server_config,
};

/// Handshake bytes and packet headers on top of stream data.
const OVERHEAD: u64 = 16 * 1024;

/// Waits (polling, the test's own timeout bounding it) until `done` holds
/// for the client's connection statistics.
async fn until(connection: &quinn::Connection, done: impl Fn(&quinn::ConnectionStats) -> bool) {
    while !done(&connection.stats()) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unadmitted_peer_is_held_to_one_stream_and_its_window_until_admitted() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der = certified.cert.der().to_vec();
    let server = quinn::Endpoint::server(
        server_config(der.clone(), certified.signing_key.serialize_der()).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(client_config(fingerprint(&der)).unwrap());
    let address = server.local_addr().unwrap();
    let (connection, accepted) = tokio::join!(
        async { client.connect(address, "localhost").unwrap().await.unwrap() },
        async { server.accept().await.unwrap().await.unwrap() }
    );

    // The peer writes 1 MiB on its control stream, which the coordinator
    // has accepted but does not read (a join waiting on the chain, say).
    let attack = 1 << 20;
    let (mut send, _) = connection.open_bi().await.unwrap();
    let writing = tokio::spawn(async move {
        send.write_all(&vec![0; attack]).await.unwrap();
        send.finish().unwrap();
    });
    let (_, mut control) = accepted.accept_bi().await.unwrap();
    // The peer says it is blocked by the connection's window.
    until(&connection, |stats| stats.frame_tx.data_blocked > 0).await;
    let sent = connection.stats().udp_tx.bytes;
    assert!(
        sent < u64::from(UNADMITTED_RECEIVE_WINDOW) + OVERHEAD,
        "an unadmitted peer got {sent} bytes out"
    );
    // No credit for a second stream, nor for a unidirectional one: with
    // credit, opening is immediate.
    let wait = Duration::from_millis(200);
    assert!(
        tokio::time::timeout(wait, connection.open_bi())
            .await
            .is_err()
    );
    assert!(
        tokio::time::timeout(wait, connection.open_uni())
            .await
            .is_err()
    );

    // Admitted: the write goes through without the coordinator reading
    // (1 MiB is under the admitted window) and a second stream opens.
    assert!(attack < ADMITTED_RECEIVE_WINDOW as usize);
    admit(&accepted);
    writing.await.unwrap();
    connection.open_bi().await.unwrap();
    assert_eq!(control.read_to_end(attack).await.unwrap().len(), attack);
}
