//! The QUIC side of the coordinator: accepting connections, admitting
//! clients, and moving their messages to and from the round driver.
//!
//! Each connection runs in its own task. Before a connection costs the
//! coordinator any state its peer's address must be validated (a QUIC
//! retry), and at most [`SharedSettings::max_unadmitted`] connections may
//! be between their first packet and admission; more are refused
//! ([`DEFAULT_MAX_UNADMITTED`] by default). Until the client is admitted its
//! frames are limited to [`JOIN_FRAME_LIMIT`] and its flow-control windows
//! to `fedstake_quic::UNADMITTED_RECEIVE_WINDOW`; the QUIC handshake and the
//! join together must finish within the task's join deadline. A client is
//! admitted when its EIP-191 signature of a fresh challenge recovers the
//! address it claims and that address has at least the task's minimum stake
//! on chain (the driver reads it again before every attempt and
//! [`Shared::expel`]s a client that fell below it). Then its windows are
//! raised (`fedstake_quic::admit`), its control stream is read into
//! [`Event`]s for the driver, a writer task drains its outbox, and every
//! further stream it opens is a model download.
//! A frame over the limit, or bytes that are not a message, close that
//! connection with [`close::PROTOCOL`] and nothing else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use fedstake_ledger::chain::Chain;
use fedstake_ledger::{Ledger, LedgerError};
use fedstake_protocol::join::JoinChallenge;
use fedstake_protocol::wire::{
    Admission, ClientMessage, JOIN_FRAME_LIMIT, MODEL_HASH_BYTES, ServerMessage, decode_client,
    encode,
};
use fedstake_quic::{FrameReader, FrameWriter, NetError, close};
use rand::RngCore;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// Events queued for the driver at most; a full queue makes connections
/// wait before reading more.
pub const EVENT_QUEUE: usize = 1024;

/// Connections between their first packet and admission at most, unless
/// configured otherwise. Each holds at most
/// `fedstake_quic::UNADMITTED_RECEIVE_WINDOW` (64 KiB) of peer data plus a
/// join frame being decoded and quinn's state of a few KiB, so 256 of them
/// bound unauthenticated memory to about 25 MB, while joins of thousands of
/// clients (each under a second on a working link) still pass in batches.
pub const DEFAULT_MAX_UNADMITTED: usize = 256;

/// What a connection tells the round driver.
#[derive(Debug)]
pub enum Event {
    /// A client was admitted.
    Joined {
        /// Its address.
        address: Address,
    },
    /// An admitted client sent a message.
    Message {
        /// Its address.
        address: Address,
        /// Its connection.
        connection: u64,
        /// The message.
        message: ClientMessage,
    },
    /// An admitted client's connection ended.
    Gone {
        /// Its address.
        address: Address,
        /// The connection that ended.
        connection: u64,
    },
}

/// An admitted client's live connection.
#[derive(Debug, Clone)]
pub struct Link {
    /// Connection number.
    pub id: u64,
    /// Messages to send it.
    pub outbox: mpsc::UnboundedSender<ServerMessage>,
    connection: quinn::Connection,
}

/// What every connection task shares.
pub struct Shared<C> {
    /// The reward contract.
    pub ledger: Arc<Ledger<C>>,
    /// The task and the connection settings.
    pub settings: SharedSettings,
    /// Admitted clients by address.
    pub links: Mutex<HashMap<Address, Link>>,
    /// Models clients may download, by content hash.
    pub models: RwLock<HashMap<[u8; 32], Arc<Vec<u8>>>>,
    /// To the round driver.
    pub events: mpsc::Sender<Event>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    next_connection: AtomicU64,
    unadmitted: AtomicUsize,
}

impl<C> std::fmt::Debug for Shared<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("task_id", &self.settings.task_id)
            .finish()
    }
}

/// Settings of [`Shared::new`].
#[derive(Debug)]
pub struct SharedSettings {
    /// The task.
    pub task_id: U256,
    /// The minimum stake, from the contract.
    pub min_stake: U256,
    /// The coordinator certificate's fingerprint.
    pub certificate_sha256: [u8; 32],
    /// What admitted clients are told.
    pub admission: Admission,
    /// Frame limit after admission.
    pub frame_limit: u32,
    /// How long a join may take.
    pub join_deadline: Duration,
    /// Most clients admitted at once.
    pub max_clients: usize,
    /// Most connections not admitted yet (handshake or join in progress).
    pub max_unadmitted: usize,
}

impl<C: Chain> Shared<C> {
    /// Why `address` may not take part, if its active stake in the task is
    /// below the contract's minimum (never staked, unstaking, or slashed
    /// below it).
    pub async fn stake_shortfall(&self, address: Address) -> Result<Option<String>, LedgerError> {
        let stake = self.ledger.stake_of(self.settings.task_id, address).await?;
        Ok((stake.active < self.settings.min_stake).then(|| {
            format!(
                "{address} has {} staked in task {}; the minimum is {}",
                stake.active, self.settings.task_id, self.settings.min_stake
            )
        }))
    }
}

impl<C: Chain + 'static> Shared<C> {
    /// Connection state for `settings`, sending events to `events`.
    pub fn new(
        ledger: Arc<Ledger<C>>,
        settings: SharedSettings,
        events: mpsc::Sender<Event>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            ledger,
            settings,
            links: Mutex::new(HashMap::new()),
            models: RwLock::new(HashMap::new()),
            events,
            metrics,
            next_connection: AtomicU64::new(1),
            unadmitted: AtomicUsize::new(0),
        }
    }

    /// A place among the connections not admitted yet; `None` when
    /// [`SharedSettings::max_unadmitted`] are.
    fn enter_unadmitted(self: &Arc<Self>) -> Option<Unadmitted<C>> {
        let cap = self.settings.max_unadmitted;
        let live = self
            .unadmitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < cap).then_some(live + 1)
            })
            .ok()?
            + 1;
        self.metrics.unadmitted.set(live as i64);
        self.metrics
            .unadmitted_peak
            .inner()
            .fetch_max(live as i64, Ordering::Relaxed);
        Some(Unadmitted {
            shared: Arc::clone(self),
        })
    }

    /// The admitted clients' addresses, sorted.
    pub fn connected(&self) -> Vec<Address> {
        let mut addresses: Vec<Address> = lock(&self.links).keys().copied().collect();
        addresses.sort();
        addresses
    }

    /// Queues `message` for `address`; `false` if it is not connected.
    pub fn send(&self, address: &Address, message: ServerMessage) -> bool {
        lock(&self.links)
            .get(address)
            .is_some_and(|link| link.outbox.send(message).is_ok())
    }

    /// Whether `connection` is `address`'s live connection.
    pub fn is_current(&self, address: &Address, connection: u64) -> bool {
        lock(&self.links)
            .get(address)
            .is_some_and(|link| link.id == connection)
    }

    /// Makes `bytes` downloadable under `hash`, replacing older models.
    pub fn publish_model(&self, hash: [u8; 32], bytes: Vec<u8>) {
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        models.clear();
        models.insert(hash, Arc::new(bytes));
    }

    /// Refuses an admitted client from now on: it is told `reason` (then the
    /// connection closes with [`close::REFUSED`]) and is no longer
    /// [`connected`](Self::connected).
    pub fn expel(&self, address: &Address, reason: String) {
        if let Some(link) = lock(&self.links).remove(address) {
            // Queued before the sender drops: the writer delivers it last.
            let _ = link.outbox.send(ServerMessage::Refused { reason });
        }
        self.metrics.clients.set(lock(&self.links).len() as i64);
    }

    /// Closes every connection with [`close::DONE`].
    pub fn close_all(&self, reason: &str) {
        for link in lock(&self.links).values() {
            link.connection.close(close::DONE.into(), reason.as_bytes());
        }
    }
}

/// One connection counted among those not admitted yet, until dropped.
struct Unadmitted<C> {
    shared: Arc<Shared<C>>,
}

impl<C> Drop for Unadmitted<C> {
    fn drop(&mut self) {
        let live = self.shared.unadmitted.fetch_sub(1, Ordering::AcqRel) - 1;
        self.shared.metrics.unadmitted.set(live as i64);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicked holder leaves plain data behind; keep serving.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accepts connections until the endpoint closes: a connection attempt
/// from an address not validated yet is answered with a stateless retry;
/// one over [`SharedSettings::max_unadmitted`] is refused.
pub async fn accept<C: Chain + 'static>(endpoint: quinn::Endpoint, shared: Arc<Shared<C>>) {
    while let Some(incoming) = endpoint.accept().await {
        if !incoming.remote_address_validated() {
            shared.metrics.incoming("retried");
            // Fails only for an attempt that already carries a retry token,
            // whose address is then validated: not this branch.
            if let Err(error) = incoming.retry() {
                error.into_incoming().ignore();
            }
            continue;
        }
        let Some(place) = shared.enter_unadmitted() else {
            shared.metrics.incoming("refused_unadmitted_cap");
            debug!(remote = %incoming.remote_address(), "refused: too many connections not admitted yet");
            incoming.refuse();
            continue;
        };
        shared.metrics.incoming("accepted");
        tokio::spawn(serve_connection(Arc::clone(&shared), incoming, place));
    }
}

/// A join that did not succeed: what the client is told, and the metric.
struct Refusal {
    reason: String,
    metric: &'static str,
}

fn refuse(metric: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal {
        reason: reason.into(),
        metric,
    }
}

async fn serve_connection<C: Chain + 'static>(
    shared: Arc<Shared<C>>,
    incoming: quinn::Incoming,
    place: Unadmitted<C>,
) {
    let remote = incoming.remote_address();
    // The handshake, the control stream and the join share one deadline.
    let deadline = tokio::time::Instant::now() + shared.settings.join_deadline;
    let connection = match tokio::time::timeout_at(deadline, incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            shared.metrics.incoming("handshake_failed");
            debug!(%remote, %error, "handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.incoming("handshake_timeout");
            debug!(%remote, "handshake took longer than the join deadline");
            return;
        }
    };
    let Ok(Ok((send, recv))) = tokio::time::timeout_at(deadline, connection.accept_bi()).await
    else {
        shared.metrics.join("no_control_stream");
        connection.close(close::PROTOCOL.into(), b"no control stream");
        return;
    };
    let mut reader = FrameReader::new(recv, JOIN_FRAME_LIMIT);
    let mut writer = FrameWriter::new(send, JOIN_FRAME_LIMIT);
    let joined = tokio::time::timeout_at(deadline, join(&shared, &mut reader, &mut writer))
        .await
        .unwrap_or_else(|_| Err(refuse("timeout", "the join took longer than its deadline")));
    let address = match joined {
        Ok(address) => address,
        Err(refusal) => {
            shared.metrics.join(refusal.metric);
            warn!(%remote, reason = %refusal.reason, "join refused");
            let _ = writer
                .send(&encode(&ServerMessage::Refused {
                    reason: refusal.reason.clone(),
                }))
                .await;
            let _ = writer.finish();
            // Give the refusal time to arrive before the close overtakes it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            connection.close(close::REFUSED.into(), refusal.reason.as_bytes());
            return;
        }
    };
    drop(place);
    fedstake_quic::admit(&connection);
    reader.set_limit(shared.settings.frame_limit);
    writer.set_limit(shared.settings.frame_limit);
    let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    let (outbox, mut outgoing) = mpsc::unbounded_channel::<ServerMessage>();
    let link = Link {
        id,
        outbox,
        connection: connection.clone(),
    };
    if let Some(previous) = lock(&shared.links).insert(address, link) {
        previous
            .connection
            .close(close::REPLACED.into(), b"replaced by a newer connection");
    }
    shared.metrics.join("admitted");
    shared.metrics.clients.set(lock(&shared.links).len() as i64);
    info!(%address, %remote, "client admitted");
    let _ = shared.events.send(Event::Joined { address }).await;

    let metrics = Arc::clone(&shared.metrics);
    let closing = connection.clone();
    let writer_task = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let bytes = encode(&message);
            metrics.bytes_sent.inc_by(bytes.len() as u64 + 4);
            if writer.send(&bytes).await.is_err() {
                break;
            }
            if let ServerMessage::Refused { reason } = message {
                // Expelled (`Shared::expel`): let the refusal arrive first.
                let _ = writer.finish();
                tokio::time::sleep(Duration::from_millis(100)).await;
                closing.close(close::REFUSED.into(), reason.as_bytes());
                break;
            }
        }
    });
    let downloads = tokio::spawn(serve_models(Arc::clone(&shared), connection.clone()));
    let ended = read_messages(&shared, &mut reader, address, id).await;
    match ended {
        Err(NetError::Frame(error)) => {
            shared.metrics.reject("oversized");
            warn!(%address, %error, "closing the connection");
            connection.close(close::PROTOCOL.into(), error.to_string().as_bytes());
        }
        Err(NetError::Wire(error)) => {
            shared.metrics.reject("malformed");
            warn!(%address, %error, "closing the connection");
            connection.close(close::PROTOCOL.into(), error.to_string().as_bytes());
        }
        Err(error) => debug!(%address, %error, "connection ended"),
        Ok(()) => {}
    }
    downloads.abort();
    writer_task.abort();
    {
        let mut links = lock(&shared.links);
        if links.get(&address).is_some_and(|link| link.id == id) {
            links.remove(&address);
        }
        shared.metrics.clients.set(links.len() as i64);
    }
    let _ = shared
        .events
        .send(Event::Gone {
            address,
            connection: id,
        })
        .await;
}

/// The join conversation; the admitted address.
async fn join<C: Chain + 'static>(
    shared: &Shared<C>,
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
) -> Result<Address, Refusal> {
    let malformed = |e: NetError| refuse("malformed", format!("join: {e}"));
    let hello =
        decode_client(&reader.next().await.map_err(malformed)?).map_err(|e| malformed(e.into()))?;
    let ClientMessage::Hello { task_id, address } = hello else {
        return Err(refuse("malformed", "the first message must be Hello"));
    };
    let address = Address::from(address);
    if U256::from_be_bytes(task_id) != shared.settings.task_id {
        return Err(refuse(
            "wrong_task",
            format!(
                "this coordinator runs task {}, not {}",
                shared.settings.task_id,
                U256::from_be_bytes(task_id)
            ),
        ));
    }
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    let challenge = JoinChallenge {
        task_id: shared.settings.task_id,
        nonce,
        certificate_sha256: shared.settings.certificate_sha256,
    };
    writer
        .send(&encode(&ServerMessage::Challenge {
            task_id,
            nonce,
            certificate_sha256: shared.settings.certificate_sha256,
        }))
        .await
        .map_err(malformed)?;
    let answer =
        decode_client(&reader.next().await.map_err(malformed)?).map_err(|e| malformed(e.into()))?;
    let ClientMessage::JoinSignature { signature } = answer else {
        return Err(refuse("malformed", "expected the join signature"));
    };
    challenge
        .verify(&signature, address)
        .map_err(|e| refuse("bad_signature", e.to_string()))?;
    let shortfall = shared
        .stake_shortfall(address)
        .await
        .map_err(|e| refuse("chain", format!("cannot read the stake of {address}: {e}")))?;
    if let Some(reason) = shortfall {
        return Err(refuse("unstaked", reason));
    }
    let full = {
        let links = lock(&shared.links);
        links.len() >= shared.settings.max_clients && !links.contains_key(&address)
    };
    if full {
        return Err(refuse(
            "full",
            format!(
                "the coordinator admits at most {} clients",
                shared.settings.max_clients
            ),
        ));
    }
    writer
        .send(&encode(&ServerMessage::Admitted(
            shared.settings.admission.clone(),
        )))
        .await
        .map_err(malformed)?;
    Ok(address)
}

async fn read_messages<C: Chain + 'static>(
    shared: &Shared<C>,
    reader: &mut FrameReader,
    address: Address,
    connection: u64,
) -> Result<(), NetError> {
    loop {
        let frame = reader.next().await?;
        shared.metrics.bytes_received.inc_by(frame.len() as u64 + 4);
        let message = decode_client(&frame)?;
        if shared
            .events
            .send(Event::Message {
                address,
                connection,
                message,
            })
            .await
            .is_err()
        {
            return Ok(());
        }
    }
}

/// Answers model downloads: each stream carries a content hash one way and
/// the model's bytes the other.
async fn serve_models<C: Chain + 'static>(shared: Arc<Shared<C>>, connection: quinn::Connection) {
    while let Ok((mut send, mut recv)) = connection.accept_bi().await {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut hash = [0u8; MODEL_HASH_BYTES];
            if recv.read_exact(&mut hash).await.is_err() {
                let _ = send.reset(close::PROTOCOL.into());
                return;
            }
            let model = shared
                .models
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&hash)
                .cloned();
            match model {
                Some(bytes) => {
                    if send.write_all(&bytes).await.is_ok() {
                        shared.metrics.bytes_sent.inc_by(bytes.len() as u64);
                        let _ = send.finish();
                    }
                }
                None => {
                    shared.metrics.reject("unknown_model");
                    let _ = send.reset(close::PROTOCOL.into());
                }
            }
        });
    }
}
