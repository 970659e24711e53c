//! `fedstake client run`: join a task's coordinator over QUIC and take part
//! in its rounds until the task is finished.
//!
//! One connection at a time; when it fails the client reconnects with
//! exponential backoff (a refusal at join or a pinned-certificate mismatch
//! is final). Per announced attempt the client records the attempt in its
//! [`History`] first (declining an attempt it already entered), downloads
//! the global model by content hash, trains on its private data, clips the
//! update to the task's bound and either sends it signed (`plain`) or runs
//! its group's SecAgg+ client session (`secagg`), signing its masked input
//! as an EIP-712 `Submission` for the reward contract.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use fedstake_aggregation::Model;
use fedstake_protocol::Submission;
use fedstake_protocol::join::JoinChallenge;
use fedstake_protocol::spec::TaskSpec;
use fedstake_protocol::wire::{
    Admission, ClientMessage, JOIN_FRAME_LIMIT, MODEL_HASH_BYTES, Role, RoundAnnouncement,
    RoundResult, ServerMessage, decode_server, encode, task_frame_limit,
};
use fedstake_secure_agg::client::ClientSession;
use fedstake_secure_agg::grouping::RoundId;
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::messages::{MessageKind, SignedMessage};
use fedstake_secure_agg::quantize::{quantize, rounding_rng};
use fedstake_secure_agg::session::{Phase, SessionConfig};
use tracing::{info, warn};

use crate::history::{History, HistoryError, RecordedResult};
use fedstake_quic::{FrameReader, FrameWriter, NetError, TlsError, client_config, close};
use fedstake_round::{Plan, Seat, seat_of};
use fedstake_training::data::Dataset;
use fedstake_training::trainer::{LocalUpdate, TrainError, Trainer, local_update};

/// Builds the task's trainer once the client knows the task spec.
pub type TrainerFactory =
    Arc<dyn Fn(&TaskSpec) -> Result<Box<dyn Trainer>, TrainError> + Send + Sync>;

/// How the client retries a lost connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reconnect {
    /// First delay.
    pub initial: Duration,
    /// Delay cap (each failure doubles the delay up to it).
    pub max: Duration,
    /// Consecutive failed connections before giving up.
    pub attempts: u32,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            attempts: 30,
        }
    }
}

/// What the client submits. Anything but `Honest` exists for demos and
/// tests of the coordinator's defences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Behaviour {
    /// The trained update.
    Honest,
    /// The trained update flipped and scaled by `scale` (then clipped to the
    /// task's bound like any update): a model-poisoning client.
    SignFlip {
        /// Factor before clipping.
        scale: f32,
    },
}

impl Behaviour {
    /// Transforms the trained update (before it is clipped).
    pub fn apply(self, update: &mut [f32]) {
        if let Behaviour::SignFlip { scale } = self {
            update.iter_mut().for_each(|u| *u *= -scale);
        }
    }
}

/// Where a scripted crash happens: in `round`, just before the client would
/// act in `phase` (`None`: before training). The client drops its
/// connection and stops, as if the process died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashPoint {
    /// Round.
    pub round: u64,
    /// Phase whose message the client does not send.
    pub phase: Option<Phase>,
}

impl std::str::FromStr for CrashPoint {
    type Err = String;

    /// `ROUND:PHASE` with PHASE one of `train`, `advertise_keys`,
    /// `share_keys`, `masked_input`, `consistency`, `unmasking`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (round, phase) = text
            .split_once(':')
            .ok_or_else(|| format!("crash point {text:?} is not ROUND:PHASE"))?;
        let round = round
            .parse()
            .map_err(|_| format!("crash point round {round:?} is not a number"))?;
        let phase = match phase {
            "train" => None,
            name => Some(
                Phase::ALL
                    .into_iter()
                    .find(|p| p.name() == name)
                    .ok_or_else(|| {
                        format!("crash point phase {name:?} is not train or a SecAgg+ phase")
                    })?,
            ),
        };
        Ok(Self { round, phase })
    }
}

/// Everything `client run` needs.
#[derive(Clone)]
pub struct ClientOptions {
    /// The coordinator's UDP address.
    pub coordinator: SocketAddr,
    /// The TLS server name to send (the certificate is pinned, not named).
    pub server_name: String,
    /// SHA-256 of the coordinator's certificate.
    pub certificate_sha256: [u8; 32],
    /// The on-chain task id.
    pub task_id: U256,
    /// Hash of the task spec the client agreed to; the coordinator's must
    /// be the same.
    pub spec_hash: [u8; 32],
    /// The client's staked key.
    pub signer: PrivateKeySigner,
    /// The private training data.
    pub data: Arc<Dataset>,
    /// Builds the trainer for the task.
    pub trainer: TrainerFactory,
    /// Where the history is kept.
    pub state_dir: PathBuf,
    /// Reconnection policy.
    pub reconnect: Reconnect,
    /// What the client submits.
    pub behaviour: Behaviour,
    /// A scripted crash, for tests and the demo.
    pub crash: Option<CrashPoint>,
    /// Seed of local shuffling (mixed with the round).
    pub seed: u64,
}

/// Why the client stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClientRunError {
    /// The coordinator refused to admit the client.
    #[error("the coordinator refused to admit {address}: {reason}")]
    Refused {
        /// The client's address.
        address: Address,
        /// The coordinator's reason.
        reason: String,
    },
    /// TLS or QUIC could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The coordinator broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Local training failed.
    #[error("training: {0}")]
    Train(#[from] TrainError),
    /// The history database failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The scripted crash point was reached.
    #[error("crashed on purpose at round {round}, {phase}")]
    Crashed {
        /// Round.
        round: u64,
        /// Phase name.
        phase: &'static str,
    },
    /// Every reconnection failed.
    #[error("gave up after {attempts} failed connections; last error: {last}")]
    GaveUp {
        /// Failed connections in a row.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// What the client did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientReport {
    /// Rounds whose result the client received.
    pub results: Vec<RecordedResult>,
    /// Attempts it declined: entered before, or of a round (or from a
    /// model) whose masked input it had already sent.
    pub declined: usize,
    /// Connections it made.
    pub connections: u32,
    /// Rounds the task ran, from the coordinator's final message.
    pub task_rounds: u64,
}

/// Errors of one connection: whether to retry.
enum SessionError {
    /// Give up now.
    Fatal(ClientRunError),
    /// Reconnect.
    Retry(String),
}

impl From<NetError> for SessionError {
    fn from(error: NetError) -> Self {
        SessionError::Retry(error.to_string())
    }
}

impl From<ClientRunError> for SessionError {
    fn from(error: ClientRunError) -> Self {
        SessionError::Fatal(error)
    }
}

impl From<HistoryError> for SessionError {
    fn from(error: HistoryError) -> Self {
        SessionError::Fatal(error.into())
    }
}

fn protocol(message: impl Into<String>) -> SessionError {
    SessionError::Fatal(ClientRunError::Protocol(message.into()))
}

/// Joins the task and takes part until the coordinator says it is finished.
pub async fn run_client(options: ClientOptions) -> Result<ClientReport, ClientRunError> {
    let history = History::open(&options.state_dir)?;
    let bind: SocketAddr = if options.coordinator.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .map_err(|e| ClientRunError::Protocol(format!("bind address: {e}")))?;
    let mut endpoint = quinn::Endpoint::client(bind)
        .map_err(|e| ClientRunError::Protocol(format!("cannot open a UDP socket: {e}")))?;
    endpoint.set_default_client_config(client_config(options.certificate_sha256)?);
    let mut report = ClientReport::default();
    let mut failures = 0;
    let mut delay = options.reconnect.initial;
    loop {
        report.connections += 1;
        let outcome = session(&options, &history, &endpoint, &mut report).await;
        match outcome {
            Ok(()) => {
                endpoint.wait_idle().await;
                return Ok(report);
            }
            Err(SessionError::Fatal(error)) => return Err(error),
            Err(SessionError::Retry(reason)) => {
                failures += 1;
                if failures >= options.reconnect.attempts {
                    return Err(ClientRunError::GaveUp {
                        attempts: failures,
                        last: reason,
                    });
                }
                warn!(%reason, retry_in = ?delay, "connection lost");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(options.reconnect.max);
            }
        }
    }
}

/// One attempt the client is taking part in.
struct Taking {
    round: u64,
    attempt: u32,
    /// Hex content hash of the model the update was trained from.
    model: String,
    secagg: Option<ClientSession>,
}

/// What a connection knows once admitted.
struct Admitted<'a> {
    options: &'a ClientOptions,
    history: &'a History,
    connection: quinn::Connection,
    writer: FrameWriter,
    plan: Plan,
    admission: Admission,
    /// Out while training runs on a blocking thread.
    trainer: std::sync::Mutex<Option<Box<dyn Trainer>>>,
    task: String,
    taking: Option<Taking>,
}

async fn session(
    options: &ClientOptions,
    history: &History,
    endpoint: &quinn::Endpoint,
    report: &mut ClientReport,
) -> Result<(), SessionError> {
    let connecting = endpoint
        .connect(options.coordinator, &options.server_name)
        .map_err(|e| SessionError::Retry(format!("connect: {e}")))?;
    let connection = connecting.await.map_err(|e| match &e {
        quinn::ConnectionError::TransportError(t) if t.to_string().contains("pinned") => {
            SessionError::Fatal(ClientRunError::Protocol(format!("TLS: {e}")))
        }
        _ => SessionError::Retry(format!("connect: {e}")),
    })?;
    let (send, recv) = connection.open_bi().await.map_err(NetError::from)?;
    let mut writer = FrameWriter::new(send, JOIN_FRAME_LIMIT);
    let mut reader = FrameReader::new(recv, JOIN_FRAME_LIMIT);
    let address = options.signer.address();
    let task_id = options.task_id.to_be_bytes::<32>();
    writer
        .send(&encode(&ClientMessage::Hello {
            task_id,
            address: address.into_array(),
        }))
        .await?;
    let refused = |reason: String| SessionError::Fatal(ClientRunError::Refused { address, reason });
    let challenge = match decode_server(&reader.next().await?).map_err(NetError::from)? {
        ServerMessage::Challenge {
            task_id: challenged,
            nonce,
            certificate_sha256,
        } => {
            if challenged != task_id || certificate_sha256 != options.certificate_sha256 {
                return Err(protocol(
                    "the join challenge names another task or certificate",
                ));
            }
            JoinChallenge {
                task_id: options.task_id,
                nonce,
                certificate_sha256,
            }
        }
        ServerMessage::Refused { reason } => return Err(refused(reason)),
        other => return Err(protocol(format!("expected a challenge, got {other:?}"))),
    };
    let signature = options
        .signer
        .sign_message_sync(challenge.text().as_bytes())
        .map_err(|e| protocol(format!("cannot sign the challenge: {e}")))?;
    writer
        .send(&encode(&ClientMessage::JoinSignature {
            signature: signature.as_bytes().to_vec(),
        }))
        .await?;
    let admission = match decode_server(&reader.next().await?).map_err(NetError::from)? {
        ServerMessage::Admitted(admission) => admission,
        ServerMessage::Refused { reason } => return Err(refused(reason)),
        other => return Err(protocol(format!("expected admission, got {other:?}"))),
    };
    let spec = TaskSpec::from_toml_str(&admission.spec_toml)
        .map_err(|e| protocol(format!("the coordinator's task spec: {e}")))?;
    if spec.spec_hash() != options.spec_hash {
        return Err(protocol(format!(
            "the coordinator runs spec {}, not this client's {}",
            spec.spec_hash_hex(),
            hex::encode(options.spec_hash)
        )));
    }
    let plan = Plan::from_spec(&spec)
        .map_err(|e| protocol(format!("the coordinator's task spec: {e}")))?;
    let trainer = (options.trainer)(&spec).map_err(ClientRunError::from)?;
    let limit = task_frame_limit(trainer.layout().num_params())
        .ok_or_else(|| protocol("the model is too large for the wire"))?;
    reader.set_limit(limit);
    writer.set_limit(limit);
    info!(task = %options.task_id, spec = %spec.spec_hash_hex(), %address, "admitted");
    let mut admitted = Admitted {
        options,
        history,
        connection,
        writer,
        plan,
        admission,
        trainer: std::sync::Mutex::new(Some(trainer)),
        task: options.task_id.to_string(),
        taking: None,
    };
    loop {
        let message = decode_server(&reader.next().await?).map_err(NetError::from)?;
        match message {
            ServerMessage::Round(announcement) => admitted.enter(announcement, report).await?,
            ServerMessage::SecAgg { message } => admitted.secagg(&message).await?,
            ServerMessage::RoundResult(result) => admitted.result(&result, report)?,
            ServerMessage::Finished { rounds } => {
                report.task_rounds = rounds;
                admitted.connection.close(close::DONE.into(), b"done");
                return Ok(());
            }
            // Expelled, say because the stake fell below the minimum.
            ServerMessage::Refused { reason } => {
                return Err(SessionError::Fatal(ClientRunError::Refused {
                    address,
                    reason,
                }));
            }
            other => return Err(protocol(format!("unexpected {other:?}"))),
        }
    }
}

impl Admitted<'_> {
    fn trainer_slot(&self) -> std::sync::MutexGuard<'_, Option<Box<dyn Trainer>>> {
        self.trainer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn crash_if_due(&self, round: u64, phase: Option<Phase>) -> Result<(), SessionError> {
        if self.options.crash == Some(CrashPoint { round, phase }) {
            self.connection.close(close::DONE.into(), b"crash");
            return Err(SessionError::Fatal(ClientRunError::Crashed {
                round,
                phase: phase.map_or("train", Phase::name),
            }));
        }
        Ok(())
    }

    async fn send(&mut self, message: &ClientMessage) -> Result<(), SessionError> {
        Ok(self.writer.send(&encode(message)).await?)
    }

    /// Takes part in an announced attempt, up to its first message, or
    /// declines it.
    async fn enter(
        &mut self,
        announcement: RoundAnnouncement,
        report: &mut ClientReport,
    ) -> Result<(), SessionError> {
        let RoundAnnouncement {
            round,
            attempt,
            model_hash,
            ..
        } = announcement;
        let model = hex::encode(model_hash);
        let round_id = RoundId {
            task_id: self.options.task_id.to_be_bytes(),
            round,
            attempt,
        };
        // Under secure aggregation the client seats itself by the public
        // grouping rule; a cohort the rule cannot seat it in is refused.
        let seat = match &announcement.role {
            Role::Plain => None,
            Role::SecAgg { cohort } => {
                let cohort: Vec<Address> = cohort.iter().map(|a| Address::from(*a)).collect();
                Some(seat_of(
                    &self.plan,
                    &cohort,
                    &model_hash,
                    &round_id,
                    &self.options.signer.address(),
                ))
            }
        };
        let role = match &seat {
            None => "plain".to_string(),
            Some(Ok(seat)) => format!("group {} index {}", seat.group, seat.index),
            Some(Err(_)) => "refused group".to_string(),
        };
        let refusal = if !self
            .history
            .enter_attempt(&self.task, round, attempt, &role, &model)?
        {
            Some("attempt already entered".to_string())
        } else if let Some(Err(error)) = &seat {
            Some(format!("refusing the announced group: {error}"))
        } else if let (Some(_), Some(spent)) = (&seat, self.history.spent_input(&self.task, round)?)
        {
            // One masked input per round (see the history).
            Some(format!(
                "this client's masked input for round {round} was sent in attempt {spent}; it \
                 sends one per round"
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            warn!(round, attempt, %reason, "declining the attempt");
            report.declined += 1;
            self.taking = None;
            return self
                .send(&ClientMessage::Decline {
                    round,
                    attempt,
                    reason,
                })
                .await;
        }
        self.crash_if_due(round, None)?;
        let global = self.download(&announcement).await?;
        let (update, weight) = self.train(global, round).await?;
        match announcement.role {
            Role::Plain => {
                let bytes: Vec<u8> = update.iter().flat_map(|v| v.to_le_bytes()).collect();
                let signature = self.sign_submission(round, attempt, keccak256(&bytes))?;
                self.crash_if_due(round, Some(Phase::MaskedInput))?;
                self.taking = Some(Taking {
                    round,
                    attempt,
                    model,
                    secagg: None,
                });
                self.send(&ClientMessage::PlainUpdate {
                    round,
                    attempt,
                    weight,
                    update: bytes,
                    signature,
                })
                .await
            }
            Role::SecAgg { .. } => {
                let Some(Ok(seat)) = seat else {
                    return Err(protocol("a SecAgg+ role without a seat"));
                };
                let mut session = self.secagg_session(&round_id, &seat, &update, weight)?;
                self.crash_if_due(round, Some(Phase::AdvertiseKeys))?;
                let advertise = session
                    .advertise_keys()
                    .map_err(|e| protocol(format!("secagg: {e}")))?;
                self.taking = Some(Taking {
                    round,
                    attempt,
                    model,
                    secagg: Some(session),
                });
                self.send_secagg(&advertise).await
            }
        }
    }

    fn secagg_session(
        &self,
        round_id: &RoundId,
        seat: &Seat<Address>,
        update: &[f32],
        weight: u32,
    ) -> Result<ClientSession, SessionError> {
        let secagg = self
            .plan
            .secagg()
            .ok_or_else(|| protocol("a SecAgg+ role in a plain task"))?;
        let (params, topology) = (&secagg.quantization, secagg.topology.clone());
        let (group, index) = (seat.group as u32, seat.index);
        let config = SessionConfig {
            context: round_id.group_context(group),
            topology,
            dimension: update.len() + 1,
            member_addresses: seat.members.iter().map(|a| a.into_array()).collect(),
            server_address: self.admission.coordinator,
        };
        // Rounding is a function of the client's key and the context, so a
        // simulation holding the key reproduces the group sum exactly.
        let secret = self.options.signer.to_bytes().0;
        let mut rounding = rounding_rng(&secret, &config.context, index);
        let input = quantize(update, weight, params, &mut rounding)
            .map_err(|e| protocol(format!("quantizing the update: {e}")))?;
        let identity =
            Identity::from_secret_bytes(&secret).map_err(|e| protocol(format!("identity: {e}")))?;
        ClientSession::new(config, index, identity, input, &mut rand::rng())
            .map_err(|e| protocol(format!("secagg session: {e}")))
    }

    fn sign_submission(
        &self,
        round: u64,
        attempt: u32,
        update_hash: B256,
    ) -> Result<Vec<u8>, SessionError> {
        let domain = fedstake_protocol::submission_domain(
            self.admission.chain_id,
            self.admission.contract.into(),
        );
        let signature = Submission::new(self.options.task_id, round, attempt, update_hash)
            .sign(&self.options.signer, &domain)
            .map_err(|e| protocol(format!("cannot sign the submission: {e}")))?;
        Ok(signature.as_bytes().to_vec())
    }

    async fn send_secagg(&mut self, message: &SignedMessage) -> Result<(), SessionError> {
        let bytes = message
            .to_bytes()
            .map_err(|e| protocol(format!("secagg encoding: {e}")))?;
        self.send(&ClientMessage::SecAgg { message: bytes }).await
    }

    /// Downloads the announced model on a stream of its own and checks its
    /// content hash.
    async fn download(&self, announcement: &RoundAnnouncement) -> Result<Vec<f32>, SessionError> {
        let layout = self
            .trainer_slot()
            .as_ref()
            .ok_or_else(|| protocol("trainer busy"))?
            .layout()
            .clone();
        // The safetensors header is a few hundred bytes per tensor.
        let limit = layout.num_params() * 4 + 64 * 1024;
        if announcement.model_bytes as usize > limit {
            return Err(protocol(format!(
                "announced model of {} bytes exceeds {limit} for this task",
                announcement.model_bytes
            )));
        }
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(NetError::from)?;
        send.write_all(&announcement.model_hash)
            .await
            .map_err(NetError::from)?;
        debug_assert_eq!(announcement.model_hash.len(), MODEL_HASH_BYTES);
        send.finish().map_err(NetError::from)?;
        let bytes = recv.read_to_end(limit).await.map_err(NetError::from)?;
        let model = Model::from_safetensors(&bytes, Some(&layout))
            .map_err(|e| protocol(format!("downloaded model: {e}")))?;
        if model.content_hash() != announcement.model_hash {
            return Err(protocol(format!(
                "downloaded model hashes to {}, not the announced {}",
                model.content_hash_hex(),
                hex::encode(announcement.model_hash)
            )));
        }
        Ok(model.into_params())
    }

    /// Trains from `global` off the async threads; returns the clipped
    /// update and the capped weight.
    async fn train(
        &mut self,
        global: Vec<f32>,
        round: u64,
    ) -> Result<(Vec<f32>, u32), SessionError> {
        let mut trainer = self
            .trainer_slot()
            .take()
            .ok_or_else(|| protocol("trainer busy"))?;
        let data = Arc::clone(&self.options.data);
        let spec = self.plan.spec().clone();
        let (seed, behaviour) = (self.options.seed, self.options.behaviour);
        let (trainer, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = local_update(
                trainer.as_mut(),
                &data,
                &global,
                &spec,
                (seed, round),
                |update| behaviour.apply(update),
            );
            (trainer, outcome)
        })
        .await
        .map_err(|e| protocol(format!("training task: {e}")))?;
        *self.trainer_slot() = Some(trainer);
        let LocalUpdate {
            update,
            weight,
            report,
        } = outcome.map_err(ClientRunError::from)?;
        info!(
            round,
            loss = report.epoch_losses.last().copied().unwrap_or(f64::NAN),
            examples = report.examples,
            "trained"
        );
        Ok((update, weight))
    }

    /// Answers a SecAgg+ message of the attempt in progress.
    async fn secagg(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        let Some(taking) = self.taking.as_mut() else {
            return Err(protocol("a SecAgg+ message outside an attempt"));
        };
        let (round, attempt) = (taking.round, taking.attempt);
        let session = taking
            .secagg
            .as_mut()
            .ok_or_else(|| protocol("a SecAgg+ message in a plain attempt"))?;
        let limits = session.config().decode_limits();
        let message = SignedMessage::from_bytes(bytes, &limits)
            .map_err(|e| protocol(format!("secagg message: {e}")))?;
        let reply = {
            let mut rng = rand::rng();
            session.handle(&message, &mut rng)
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                // The group cannot go on with this client (too few
                // neighbours left, a bad message); the attempt is over for it.
                warn!(round, attempt, %error, "secagg step refused");
                return Ok(());
            }
        };
        self.crash_if_due(round, reply.kind().client_phase())?;
        if reply.kind() == MessageKind::MaskedInput {
            return self.send_masked_input(&reply).await;
        }
        self.send_secagg(&reply).await
    }

    /// Sends the masked input of the attempt in progress and its signed
    /// submission, once the history has recorded it as the round's only
    /// one; otherwise sends nothing and the group goes on without it.
    async fn send_masked_input(&mut self, reply: &SignedMessage) -> Result<(), SessionError> {
        let Some(Taking {
            round,
            attempt,
            model,
            ..
        }) = self.taking.as_ref()
        else {
            return Err(protocol("a masked input outside an attempt"));
        };
        let (round, attempt) = (*round, *attempt);
        if let Err(spent) = self
            .history
            .spend_input(&self.task, round, attempt, model)?
        {
            warn!(
                round,
                attempt, spent, "not sending a second masked input for the round"
            );
            return Ok(());
        }
        self.send_secagg(reply).await?;
        let encoded = reply
            .to_bytes()
            .map_err(|e| protocol(format!("secagg encoding: {e}")))?;
        let update_hash = keccak256(&encoded);
        let signature = self.sign_submission(round, attempt, update_hash)?;
        self.send(&ClientMessage::Submission {
            round,
            attempt,
            update_hash: update_hash.0,
            signature,
        })
        .await
    }

    fn result(
        &mut self,
        result: &RoundResult,
        report: &mut ClientReport,
    ) -> Result<(), SessionError> {
        let recorded = RecordedResult {
            round: result.round,
            attempt: result.attempt,
            accuracy: result.accuracy,
            payout: result.payout,
            cumulative: result.cumulative,
        };
        self.history.record_result(&self.task, &recorded)?;
        info!(
            round = result.round,
            accuracy = result.accuracy,
            payout = %result.payout,
            cumulative = %result.cumulative,
            accepted = result.accepted,
            "round result"
        );
        report.results.push(recorded);
        self.taking = None;
        Ok(())
    }
}
