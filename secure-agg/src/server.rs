//! The server side of one SecAgg+ group attempt, as a sans-IO state machine.
//!
//! The caller passes each client message to [`ServerSession::receive`] and calls
//! [`ServerSession::phase_deadline_passed`] when a phase's deadline is over; that
//! closes the phase (clients that did not answer are dropouts) and returns the
//! messages to send, or at the end the exact sum mod `2^32` of the survivors'
//! inputs. Phases: keys (U1), shares (U2), masked inputs (U3, the survivors),
//! consistency signatures (U4) and unmasking shares (U5).
//!
//! A rejected message returns a specific [`ServerError`]; unless it came from a
//! non-member or an already excluded client, its sender is excluded (a dropout
//! from then on) and the rejection is recorded as [`Misbehaviour`], with the
//! message as evidence when its signature is valid. Signatures are checked
//! against the member addresses; the transport should authenticate senders too,
//! since a forged, badly signed message excludes the client it names.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;
use zeroize::Zeroizing;

use crate::identity::{Identity, IdentityError};
use crate::kdf::{ClientPair, Context, Purpose, self_mask_seed};
use crate::keys::{KeyError, KeyPair};
use crate::messages::{
    AdvertiseKeys, Body, Header, MessageError, MessageKind, RevealedShare, RevealedShareKind,
    SERVER_SENDER, SHARE_CIPHERTEXT_BYTES, ShareBoxEntry, SignedMessage,
};
use crate::prg::{MaskSign, PrgError, SignedMask, sum_and_mask};
use crate::session::{ConfigError, SessionConfig};
use crate::shamir::{ShamirError, Share, reconstruct};

/// Why the server rejected a message or could not complete a phase.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error("invalid session configuration: {0}")]
    Config(#[from] ConfigError),
    /// The sender index is not a member of the group.
    #[error("sender {0} is not a member of the group")]
    UnknownSender(u32),
    /// The message is for another task, round, attempt or group (a replay).
    #[error("message from {sender} is for {got:?}, this session is {expected:?}")]
    WrongContext {
        /// Sender.
        sender: u32,
        /// This session's context.
        expected: Box<Context>,
        /// The message's context.
        got: Box<Context>,
    },
    /// The sender was excluded earlier.
    #[error("sender {0} was already excluded")]
    SenderExcluded(u32),
    /// The sender is not in the live set of this phase (dropped earlier).
    #[error("sender {sender} is not live in phase {phase} (it dropped earlier)")]
    NotExpected {
        /// Sender.
        sender: u32,
        /// Current phase.
        phase: &'static str,
    },
    /// The signature does not verify against the sender's address.
    #[error("bad signature from sender {sender}: {source}")]
    BadSignature {
        /// Sender.
        sender: u32,
        /// Why.
        source: IdentityError,
    },
    /// The message kind does not fit the phase.
    #[error("unexpected {kind:?} from {sender} in phase {phase}")]
    UnexpectedMessage {
        /// Sender.
        sender: u32,
        /// Current phase.
        phase: &'static str,
        /// Kind received.
        kind: MessageKind,
    },
    /// A second message from the same sender in one phase.
    #[error("duplicate {kind:?} from {sender}")]
    DuplicateMessage {
        /// Sender.
        sender: u32,
        /// Kind.
        kind: MessageKind,
    },
    /// An advertised public key has small order.
    #[error("sender {sender} advertised a small-order public key")]
    SmallOrderPublicKey {
        /// Sender.
        sender: u32,
    },
    /// A share box is addressed to a client that is no live neighbour.
    #[error("sender {sender} addressed a share box to {peer}, which is no live neighbour")]
    ShareBoxForNonNeighbour {
        /// Sender.
        sender: u32,
        /// Addressee.
        peer: u32,
    },
    /// Two share boxes for one neighbour.
    #[error("sender {sender} sent two share boxes for {peer}")]
    DuplicateShareBox {
        /// Sender.
        sender: u32,
        /// Addressee.
        peer: u32,
    },
    /// A live neighbour got no share box.
    #[error("sender {sender} sent no share box for live neighbour {peer}")]
    MissingShareBox {
        /// Sender.
        sender: u32,
        /// Neighbour left out.
        peer: u32,
    },
    /// A share box has the wrong length.
    #[error(
        "sender {sender}'s share box for {peer} has {got} bytes, expected {SHARE_CIPHERTEXT_BYTES}"
    )]
    WrongCiphertextLength {
        /// Sender.
        sender: u32,
        /// Addressee.
        peer: u32,
        /// Length found.
        got: usize,
    },
    /// The masked vector has the wrong length.
    #[error("sender {sender}'s masked input has {got} coordinates, expected {expected}")]
    WrongVectorLength {
        /// Sender.
        sender: u32,
        /// Configured dimension.
        expected: usize,
        /// Length found.
        got: usize,
    },
    /// A consistency response signs another list than the server sent.
    #[error("sender {sender} signed another survivor list than the one sent")]
    ConsistencyMismatch {
        /// Sender.
        sender: u32,
    },
    /// A client revealed both shares of one peer.
    #[error("sender {sender} revealed both the self-mask and the mask-secret share of {owner}")]
    BothSharesRevealed {
        /// Sender.
        sender: u32,
        /// Whose shares.
        owner: u32,
    },
    /// A revealed share has the wrong kind for its owner's status.
    #[error("sender {sender} revealed a {kind:?} share of {owner}, which is the wrong kind")]
    WrongShareKind {
        /// Sender.
        sender: u32,
        /// Whose share.
        owner: u32,
        /// Kind revealed.
        kind: RevealedShareKind,
    },
    /// The same share revealed twice.
    #[error("sender {sender} revealed the share of {owner} twice")]
    DuplicateShare {
        /// Sender.
        sender: u32,
        /// Whose share.
        owner: u32,
    },
    /// A share of a client whose box the sender never received.
    #[error("sender {sender} revealed a share of {owner}, which it never held")]
    ShareFromNonHolder {
        /// Sender.
        sender: u32,
        /// Whose share.
        owner: u32,
    },
    /// Too few clients are live to continue safely.
    #[error("only {live} clients live after phase {phase}; at least {minimum} are needed")]
    TooFewSurvivors {
        /// The phase that ended.
        phase: &'static str,
        /// Live clients.
        live: usize,
        /// The threshold `t`, or for the inputs the fewest survivors a sum
        /// may cover.
        minimum: usize,
    },
    /// Too few neighbours revealed shares of a client whose secret is needed.
    #[error("{got} shares of client {owner}'s {kind:?} secret, the threshold is {threshold}")]
    NotEnoughShares {
        /// Whose secret.
        owner: u32,
        /// Which secret.
        kind: RevealedShareKind,
        /// Shares received.
        got: usize,
        /// Threshold `t`.
        threshold: usize,
    },
    /// Reconstruction failed.
    #[error("reconstructing client {owner}'s secret failed: {source}")]
    Reconstruction {
        /// Whose secret.
        owner: u32,
        /// Why.
        source: ShamirError,
    },
    /// The revealed shares of one secret do not lie on one polynomial.
    #[error("the revealed shares of client {owner}'s {kind:?} secret are inconsistent")]
    InconsistentShares {
        /// Whose secret.
        owner: u32,
        /// Which secret.
        kind: RevealedShareKind,
    },
    /// A reconstructed mask secret does not match the advertised public key.
    #[error("client {owner}'s reconstructed mask secret does not match its advertised key")]
    ReconstructedKeyMismatch {
        /// Whose secret.
        owner: u32,
    },
    /// An agreement with a reconstructed key failed.
    #[error("agreement for client {owner} failed: {source}")]
    Agreement {
        /// Whose key.
        owner: u32,
        /// Why.
        source: KeyError,
    },
    /// Unmasking failed.
    #[error("unmasking failed: {0}")]
    Masking(PrgError),
    /// Encoding or signing a message failed.
    #[error("message encoding failed: {0}")]
    Message(MessageError),
    /// The session finished or failed already.
    #[error("the session is over ({0})")]
    SessionOver(&'static str),
}

/// A rejected message and, when it was validly signed, the message as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misbehaviour {
    /// The offending client.
    pub sender: u32,
    /// What was wrong.
    pub error: ServerError,
    /// The validly signed message, for slashing.
    pub evidence: Option<SignedMessage>,
}

/// A message for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Client index.
    pub recipient: u32,
    /// The message.
    pub message: SignedMessage,
}

/// What closing a phase produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseOutcome {
    /// Messages for the next phase.
    Messages(Vec<Outgoing>),
    /// The exact sum mod `2^32` of the survivors' inputs.
    Sum(Vec<u32>),
}

/// The server's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerPhase {
    /// Collecting AdvertiseKeys.
    CollectingKeys,
    /// Collecting ShareKeys.
    CollectingShares,
    /// Collecting MaskedInput.
    CollectingInputs,
    /// Collecting ConsistencyResponse.
    CollectingConsistency,
    /// Collecting UnmaskingResponse.
    CollectingUnmasking,
    /// The sum was output.
    Finished,
    /// A phase failed; no sum.
    Failed,
}

impl ServerPhase {
    fn name(self) -> &'static str {
        match self {
            ServerPhase::CollectingKeys => "keys",
            ServerPhase::CollectingShares => "shares",
            ServerPhase::CollectingInputs => "masked inputs",
            ServerPhase::CollectingConsistency => "consistency",
            ServerPhase::CollectingUnmasking => "unmasking",
            ServerPhase::Finished => "finished",
            ServerPhase::Failed => "failed",
        }
    }

    fn expected_kind(self) -> Option<MessageKind> {
        match self {
            ServerPhase::CollectingKeys => Some(MessageKind::AdvertiseKeys),
            ServerPhase::CollectingShares => Some(MessageKind::ShareKeys),
            ServerPhase::CollectingInputs => Some(MessageKind::MaskedInput),
            ServerPhase::CollectingConsistency => Some(MessageKind::ConsistencyResponse),
            ServerPhase::CollectingUnmasking => Some(MessageKind::UnmaskingResponse),
            ServerPhase::Finished | ServerPhase::Failed => None,
        }
    }
}

/// The server's state for one group attempt. Cloning copies every message
/// received so far (benchmarks time the last phase on clones).
#[derive(Clone)]
pub struct ServerSession {
    config: SessionConfig,
    identity: Identity,
    phase: ServerPhase,
    excluded: BTreeSet<u32>,
    advertisements: BTreeMap<u32, (AdvertiseKeys, SignedMessage)>,
    key_holders: BTreeSet<u32>,
    share_boxes: BTreeMap<u32, Vec<ShareBoxEntry>>,
    share_holders: BTreeSet<u32>,
    masked_inputs: BTreeMap<u32, Vec<u32>>,
    survivors: Vec<u32>,
    dropouts: Vec<u32>,
    consistency: BTreeMap<u32, SignedMessage>,
    unmasking: BTreeMap<u32, Vec<RevealedShare>>,
    misbehaviour: Vec<Misbehaviour>,
}

impl std::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    /// A session collecting key advertisements.
    pub fn new(config: SessionConfig, identity: Identity) -> Result<Self, ServerError> {
        config.validate()?;
        Ok(Self {
            config,
            identity,
            phase: ServerPhase::CollectingKeys,
            excluded: BTreeSet::new(),
            advertisements: BTreeMap::new(),
            key_holders: BTreeSet::new(),
            share_boxes: BTreeMap::new(),
            share_holders: BTreeSet::new(),
            masked_inputs: BTreeMap::new(),
            survivors: Vec::new(),
            dropouts: Vec::new(),
            consistency: BTreeMap::new(),
            unmasking: BTreeMap::new(),
            misbehaviour: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The current phase.
    pub fn phase(&self) -> ServerPhase {
        self.phase
    }

    /// Rejected messages with their evidence.
    pub fn misbehaviour(&self) -> &[Misbehaviour] {
        &self.misbehaviour
    }

    /// Clients excluded for misbehaviour.
    pub fn excluded(&self) -> &BTreeSet<u32> {
        &self.excluded
    }

    /// Clients whose masked inputs are in the sum (known once inputs are closed).
    pub fn survivors(&self) -> &[u32] {
        &self.survivors
    }

    /// Clients that shared keys but whose input is not in the sum.
    pub fn dropouts(&self) -> &[u32] {
        &self.dropouts
    }

    /// Clients live in the current phase (those expected to send).
    fn live_in_phase(&self) -> BTreeSet<u32> {
        match self.phase {
            ServerPhase::CollectingKeys => (0..self.config.group_size()).collect(),
            ServerPhase::CollectingShares => self.key_holders.clone(),
            ServerPhase::CollectingInputs => self.share_holders.clone(),
            ServerPhase::CollectingConsistency => self.survivors.iter().copied().collect(),
            ServerPhase::CollectingUnmasking => self.consistency.keys().copied().collect(),
            ServerPhase::Finished | ServerPhase::Failed => BTreeSet::new(),
        }
    }

    fn already_received(&self, sender: u32) -> bool {
        match self.phase {
            ServerPhase::CollectingKeys => self.advertisements.contains_key(&sender),
            ServerPhase::CollectingShares => self.share_boxes.contains_key(&sender),
            ServerPhase::CollectingInputs => self.masked_inputs.contains_key(&sender),
            ServerPhase::CollectingConsistency => self.consistency.contains_key(&sender),
            ServerPhase::CollectingUnmasking => self.unmasking.contains_key(&sender),
            ServerPhase::Finished | ServerPhase::Failed => false,
        }
    }

    fn forget_current(&mut self, sender: u32) {
        match self.phase {
            ServerPhase::CollectingKeys => {
                self.advertisements.remove(&sender);
            }
            ServerPhase::CollectingShares => {
                self.share_boxes.remove(&sender);
            }
            ServerPhase::CollectingInputs => {
                self.masked_inputs.remove(&sender);
            }
            ServerPhase::CollectingConsistency => {
                self.consistency.remove(&sender);
            }
            ServerPhase::CollectingUnmasking => {
                self.unmasking.remove(&sender);
            }
            ServerPhase::Finished | ServerPhase::Failed => {}
        }
    }

    fn exclude(
        &mut self,
        sender: u32,
        error: ServerError,
        evidence: Option<&SignedMessage>,
    ) -> ServerError {
        self.forget_current(sender);
        self.excluded.insert(sender);
        self.misbehaviour.push(Misbehaviour {
            sender,
            error: error.clone(),
            evidence: evidence.cloned(),
        });
        error
    }

    /// Takes one client message. On error the message is dropped and, as
    /// described in the module documentation, its sender may be excluded.
    pub fn receive(&mut self, message: SignedMessage) -> Result<(), ServerError> {
        let sender = message.header.sender;
        let Some(expected_kind) = self.phase.expected_kind() else {
            return Err(ServerError::SessionOver(self.phase.name()));
        };
        let Some(address) = self.config.address_of(sender).copied() else {
            return Err(ServerError::UnknownSender(sender));
        };
        if self.excluded.contains(&sender) {
            return Err(ServerError::SenderExcluded(sender));
        }
        let signature_valid = message.verify(&address);
        let evidence = signature_valid.is_ok().then_some(&message);
        if message.header.context != self.config.context {
            let error = ServerError::WrongContext {
                sender,
                expected: Box::new(self.config.context),
                got: Box::new(message.header.context),
            };
            return Err(self.exclude(sender, error, evidence));
        }
        if let Err(source) = signature_valid {
            return Err(self.exclude(sender, ServerError::BadSignature { sender, source }, None));
        }
        if !self.live_in_phase().contains(&sender) {
            return Err(ServerError::NotExpected {
                sender,
                phase: self.phase.name(),
            });
        }
        if message.kind() != expected_kind {
            let error = ServerError::UnexpectedMessage {
                sender,
                phase: self.phase.name(),
                kind: message.kind(),
            };
            return Err(self.exclude(sender, error, evidence));
        }
        if self.already_received(sender) {
            let error = ServerError::DuplicateMessage {
                sender,
                kind: message.kind(),
            };
            return Err(self.exclude(sender, error, evidence));
        }
        if let Err(error) = self.accept(sender, &message) {
            return Err(self.exclude(sender, error, evidence));
        }
        Ok(())
    }

    fn accept(&mut self, sender: u32, message: &SignedMessage) -> Result<(), ServerError> {
        match &message.body {
            Body::AdvertiseKeys(keys) => {
                // Any clamped secret gives the all-zero result exactly for small-order points.
                let probe = KeyPair::from_secret_bytes([7u8; 32]);
                if probe.agree(&keys.mask_public_key).is_err()
                    || probe.agree(&keys.encryption_public_key).is_err()
                {
                    return Err(ServerError::SmallOrderPublicKey { sender });
                }
                self.advertisements
                    .insert(sender, (keys.clone(), message.clone()));
            }
            Body::ShareKeys(boxes) => {
                self.check_share_boxes(sender, boxes)?;
                self.share_boxes.insert(sender, boxes.clone());
            }
            Body::MaskedInput(values) => {
                if values.len() != self.config.dimension {
                    return Err(ServerError::WrongVectorLength {
                        sender,
                        expected: self.config.dimension,
                        got: values.len(),
                    });
                }
                self.masked_inputs.insert(sender, values.clone());
            }
            Body::ConsistencyResponse(list) => {
                if list != &self.survivors {
                    return Err(ServerError::ConsistencyMismatch { sender });
                }
                self.consistency.insert(sender, message.clone());
            }
            Body::UnmaskingResponse(shares) => {
                self.check_revealed(sender, shares)?;
                self.unmasking.insert(sender, shares.clone());
            }
            // expected_kind admits only client kinds.
            _ => {
                return Err(ServerError::UnexpectedMessage {
                    sender,
                    phase: self.phase.name(),
                    kind: message.kind(),
                });
            }
        }
        Ok(())
    }

    fn check_share_boxes(&self, sender: u32, boxes: &[ShareBoxEntry]) -> Result<(), ServerError> {
        let graph = self.config.topology.graph();
        let mut seen = BTreeSet::new();
        for entry in boxes {
            let peer = entry.peer;
            if !graph.are_neighbours(sender, peer) || !self.key_holders.contains(&peer) {
                return Err(ServerError::ShareBoxForNonNeighbour { sender, peer });
            }
            if !seen.insert(peer) {
                return Err(ServerError::DuplicateShareBox { sender, peer });
            }
            if entry.ciphertext.len() != SHARE_CIPHERTEXT_BYTES {
                return Err(ServerError::WrongCiphertextLength {
                    sender,
                    peer,
                    got: entry.ciphertext.len(),
                });
            }
        }
        if let Some(&peer) = graph
            .neighbours(sender)
            .iter()
            .find(|peer| self.key_holders.contains(peer) && !seen.contains(peer))
        {
            return Err(ServerError::MissingShareBox { sender, peer });
        }
        Ok(())
    }

    fn check_revealed(&self, sender: u32, shares: &[RevealedShare]) -> Result<(), ServerError> {
        let graph = self.config.topology.graph();
        let mut seen: BTreeMap<u32, RevealedShareKind> = BTreeMap::new();
        for revealed in shares {
            let owner = revealed.owner;
            if let Some(&earlier) = seen.get(&owner) {
                return Err(if earlier == revealed.kind {
                    ServerError::DuplicateShare { sender, owner }
                } else {
                    ServerError::BothSharesRevealed { sender, owner }
                });
            }
            seen.insert(owner, revealed.kind);
        }
        for revealed in shares {
            let owner = revealed.owner;
            if !graph.are_neighbours(sender, owner) || !self.share_holders.contains(&owner) {
                return Err(ServerError::ShareFromNonHolder { sender, owner });
            }
            let expected = if self.survivors.binary_search(&owner).is_ok() {
                RevealedShareKind::SelfMaskSeed
            } else {
                RevealedShareKind::MaskSecret
            };
            if revealed.kind != expected {
                return Err(ServerError::WrongShareKind {
                    sender,
                    owner,
                    kind: revealed.kind,
                });
            }
        }
        Ok(())
    }

    fn sign(&self, body: Body) -> Result<SignedMessage, ServerError> {
        SignedMessage::sign(
            Header {
                context: self.config.context,
                sender: SERVER_SENDER,
            },
            body,
            &self.identity,
        )
        .map_err(ServerError::Message)
    }

    fn require_live(&self, live: usize) -> Result<(), ServerError> {
        self.require_at_least(live, self.config.threshold())
    }

    fn require_at_least(&self, live: usize, minimum: usize) -> Result<(), ServerError> {
        if live < minimum {
            return Err(ServerError::TooFewSurvivors {
                phase: self.phase.name(),
                live,
                minimum,
            });
        }
        Ok(())
    }

    /// Closes the current phase: whoever has not sent its message is a dropout.
    /// Returns the next phase's messages or, after unmasking, the sum. An error
    /// here ends the session without a sum.
    pub fn phase_deadline_passed(&mut self) -> Result<PhaseOutcome, ServerError> {
        let result = self.close_phase();
        if result.is_err() {
            self.phase = ServerPhase::Failed;
        }
        result
    }

    fn close_phase(&mut self) -> Result<PhaseOutcome, ServerError> {
        match self.phase {
            ServerPhase::CollectingKeys => self.close_keys(),
            ServerPhase::CollectingShares => self.close_shares(),
            ServerPhase::CollectingInputs => self.close_inputs(),
            ServerPhase::CollectingConsistency => self.close_consistency(),
            ServerPhase::CollectingUnmasking => self.close_unmasking().map(PhaseOutcome::Sum),
            ServerPhase::Finished | ServerPhase::Failed => {
                Err(ServerError::SessionOver(self.phase.name()))
            }
        }
    }

    fn close_keys(&mut self) -> Result<PhaseOutcome, ServerError> {
        let graph = self.config.topology.graph();
        let threshold = self.config.threshold();
        let mut live: BTreeSet<u32> = self.advertisements.keys().copied().collect();
        // A client with fewer than t live neighbours cannot share its secrets.
        loop {
            let lonely: Vec<u32> = live
                .iter()
                .copied()
                .filter(|&client| {
                    graph
                        .neighbours(client)
                        .iter()
                        .filter(|peer| live.contains(peer))
                        .count()
                        < threshold
                })
                .collect();
            if lonely.is_empty() {
                break;
            }
            for client in lonely {
                live.remove(&client);
            }
        }
        self.require_live(live.len())?;
        let mut outgoing = Vec::with_capacity(live.len());
        for &client in &live {
            let advertisements = graph
                .neighbours(client)
                .iter()
                .filter(|peer| live.contains(peer))
                .filter_map(|peer| self.advertisements.get(peer))
                .map(|(_, message)| message.clone())
                .collect();
            outgoing.push(Outgoing {
                recipient: client,
                message: self.sign(Body::KeysDelivery(advertisements))?,
            });
        }
        self.key_holders = live;
        self.phase = ServerPhase::CollectingShares;
        Ok(PhaseOutcome::Messages(outgoing))
    }

    fn close_shares(&mut self) -> Result<PhaseOutcome, ServerError> {
        let live: BTreeSet<u32> = self.share_boxes.keys().copied().collect();
        self.require_live(live.len())?;
        let mut inbox: BTreeMap<u32, Vec<ShareBoxEntry>> = BTreeMap::new();
        for (&sender, boxes) in &self.share_boxes {
            for entry in boxes.iter().filter(|entry| live.contains(&entry.peer)) {
                inbox.entry(entry.peer).or_default().push(ShareBoxEntry {
                    peer: sender,
                    ciphertext: entry.ciphertext.clone(),
                });
            }
        }
        let mut outgoing = Vec::with_capacity(live.len());
        for &client in &live {
            let boxes = inbox.remove(&client).unwrap_or_default();
            outgoing.push(Outgoing {
                recipient: client,
                message: self.sign(Body::SharesDelivery(boxes))?,
            });
        }
        self.share_holders = live;
        self.phase = ServerPhase::CollectingInputs;
        Ok(PhaseOutcome::Messages(outgoing))
    }

    fn close_inputs(&mut self) -> Result<PhaseOutcome, ServerError> {
        self.survivors = self.masked_inputs.keys().copied().collect();
        self.dropouts = self
            .share_holders
            .iter()
            .copied()
            .filter(|client| !self.masked_inputs.contains_key(client))
            .collect();
        // Clients refuse to sign a shorter list; stopping here says why.
        self.require_at_least(self.survivors.len(), self.config.min_survivors())?;
        let request = self.sign(Body::ConsistencyRequest(self.survivors.clone()))?;
        let outgoing = self
            .survivors
            .iter()
            .map(|&client| Outgoing {
                recipient: client,
                message: request.clone(),
            })
            .collect();
        self.phase = ServerPhase::CollectingConsistency;
        Ok(PhaseOutcome::Messages(outgoing))
    }

    fn close_consistency(&mut self) -> Result<PhaseOutcome, ServerError> {
        self.require_live(self.consistency.len())?;
        let request = self.sign(Body::UnmaskingRequest {
            survivors: self.survivors.clone(),
            dropouts: self.dropouts.clone(),
            consistency_responses: self.consistency.values().cloned().collect(),
        })?;
        let outgoing = self
            .consistency
            .keys()
            .map(|&client| Outgoing {
                recipient: client,
                message: request.clone(),
            })
            .collect();
        self.phase = ServerPhase::CollectingUnmasking;
        Ok(PhaseOutcome::Messages(outgoing))
    }

    fn reconstruct_secret(
        &self,
        owner: u32,
        kind: RevealedShareKind,
    ) -> Result<Zeroizing<[u8; 32]>, ServerError> {
        let shares: Vec<Share> = self
            .unmasking
            .values()
            .flatten()
            .filter(|revealed| revealed.owner == owner && revealed.kind == kind)
            .map(|revealed| revealed.share.clone())
            .collect();
        let threshold = self.config.threshold();
        if shares.len() < threshold {
            return Err(ServerError::NotEnoughShares {
                owner,
                kind,
                got: shares.len(),
                threshold,
            });
        }
        let secret = reconstruct(&shares, threshold)
            .map_err(|source| ServerError::Reconstruction { owner, source })?;
        // Every further share must lie on the same polynomial: the first t - 1
        // shares with it must give the same secret. Otherwise some share is wrong.
        let mut subset: Vec<Share> = shares[..threshold - 1].to_vec();
        for extra in &shares[threshold..] {
            subset.push(extra.clone());
            let again = reconstruct(&subset, threshold).ok();
            subset.pop();
            if again.as_deref() != Some(&*secret) {
                return Err(ServerError::InconsistentShares { owner, kind });
            }
        }
        Ok(secret)
    }

    fn close_unmasking(&mut self) -> Result<Vec<u32>, ServerError> {
        self.require_live(self.unmasking.len())?;
        let context = self.config.context;
        let graph = self.config.topology.graph();
        let mut seeds = Vec::new();
        for &survivor in &self.survivors {
            let secret = self.reconstruct_secret(survivor, RevealedShareKind::SelfMaskSeed)?;
            seeds.push((
                self_mask_seed(&secret, &context, survivor),
                MaskSign::Subtract,
            ));
        }
        for &dropout in &self.dropouts {
            let secret = self.reconstruct_secret(dropout, RevealedShareKind::MaskSecret)?;
            let keys = KeyPair::from_secret_bytes(*secret);
            let advertised = self
                .advertisements
                .get(&dropout)
                .map(|(keys, _)| keys.mask_public_key);
            if advertised != Some(keys.public_key()) {
                return Err(ServerError::ReconstructedKeyMismatch { owner: dropout });
            }
            for &survivor in graph.neighbours(dropout) {
                if self.survivors.binary_search(&survivor).is_err() {
                    continue;
                }
                let Some((survivor_keys, _)) = self.advertisements.get(&survivor) else {
                    continue;
                };
                let shared = keys
                    .agree(&survivor_keys.mask_public_key)
                    .map_err(|source| ServerError::Agreement {
                        owner: dropout,
                        source,
                    })?;
                let seed =
                    shared.derive(&context, Purpose::Mask, ClientPair::new(dropout, survivor));
                // The survivor added PRG(s) when the dropout's index is higher.
                let sign = if dropout > survivor {
                    MaskSign::Subtract
                } else {
                    MaskSign::Add
                };
                seeds.push((seed, sign));
            }
        }
        let masks: Vec<SignedMask<'_>> = seeds
            .iter()
            .map(|(seed, sign)| SignedMask {
                seed: seed.as_bytes(),
                sign: *sign,
            })
            .collect();
        let inputs: Vec<&[u32]> = self.masked_inputs.values().map(Vec::as_slice).collect();
        let mut sum = vec![0u32; self.config.dimension];
        sum_and_mask(&mut sum, &inputs, &masks).map_err(ServerError::Masking)?;
        self.phase = ServerPhase::Finished;
        Ok(sum)
    }
}
