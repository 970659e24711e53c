//! The client side of one SecAgg+ group attempt, as a sans-IO state machine.
//!
//! [`ClientSession::advertise_keys`] starts it; every server message is then passed
//! to [`ClientSession::handle`], which answers with the client's next message:
//!
//! 1. KeysDelivery → ShareKeys: the mask secret and a fresh self-mask seed `b` are
//!    Shamir-shared (`t` of the `k` neighbours) and sealed per live neighbour.
//! 2. SharesDelivery → MaskedInput: `y = x + PRG(b) + sum_{j>i} PRG(s_ij) -
//!    sum_{j<i} PRG(s_ij)` over the neighbours whose shares arrived.
//! 3. ConsistencyRequest → ConsistencyResponse: the survivor list, signed back.
//! 4. UnmaskingRequest → UnmaskingResponse: shares of `b` for survivors, of the
//!    mask secret for dropouts, never both for one neighbour.
//!
//! A rejected message leaves the session in its phase, so the genuine message can
//! still be handled. Share boxes that fail to open are recorded as
//! [`ShareFault`]s: the sender stays a masking peer (its masks are in the sum) but
//! its shares are not revealed.

use std::collections::{BTreeMap, BTreeSet};

use rand::CryptoRng;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::identity::{Identity, IdentityError};
use crate::kdf::{ClientPair, Context, Purpose, self_mask_seed};
use crate::keys::{KeyError, KeyPair};
use crate::messages::{
    AdvertiseKeys, Body, Header, MessageError, MessageKind, RevealedShare, RevealedShareKind,
    SERVER_SENDER, SHARE_PLAINTEXT_BYTES, ShareBoxEntry, SignedMessage,
};
use crate::prg::{MaskSign, PrgError, SignedMask, apply_masks};
use crate::session::{ConfigError, SessionConfig};
use crate::shamir::{SHARE_BYTES, ShamirError, Share, split};
use crate::share_box::{ShareBoxError, open, seal};

/// Why the client refused a message or could not answer it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The configuration is invalid.
    #[error("invalid session configuration: {0}")]
    Config(#[from] ConfigError),
    /// The input vector has the wrong length.
    #[error("input has {got} coordinates, the task expects {expected}")]
    InputLengthMismatch {
        /// Configured dimension.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The message is for another task, round, attempt or group (a replay).
    #[error("message for {got:?}, this session is {expected:?}")]
    WrongContext {
        /// This session's context.
        expected: Box<Context>,
        /// The message's context.
        got: Box<Context>,
    },
    /// A message the server should have sent claims another sender.
    #[error("message claims sender {0}, expected the server")]
    NotFromServer(u32),
    /// A signature does not verify.
    #[error("bad signature on a message from sender {sender}: {source}")]
    BadSignature {
        /// Claimed sender.
        sender: u32,
        /// Why verification failed.
        source: IdentityError,
    },
    /// The message does not fit the current phase.
    #[error("unexpected {kind:?} in phase {phase}")]
    UnexpectedMessage {
        /// Current phase.
        phase: &'static str,
        /// Kind received.
        kind: MessageKind,
    },
    /// A delivered advertisement or share box is from a client that is no neighbour.
    #[error("client {0} is not a neighbour of this client")]
    NotANeighbour(u32),
    /// A neighbour appears twice in a delivery.
    #[error("client {0} appears twice in the delivery")]
    DuplicatePeer(u32),
    /// A nested message has the wrong kind.
    #[error("delivered message from {sender} is {kind:?}")]
    WrongDeliveredKind {
        /// Its sender.
        sender: u32,
        /// Its kind.
        kind: MessageKind,
    },
    /// Fewer live neighbours than the threshold.
    #[error("{live} live neighbours, the threshold is {threshold}")]
    TooFewNeighbours {
        /// Live neighbours.
        live: usize,
        /// Threshold `t`.
        threshold: usize,
    },
    /// A neighbour's public key was refused.
    #[error("the key of neighbour {peer} was refused: {source}")]
    NeighbourKey {
        /// The neighbour.
        peer: u32,
        /// Why.
        source: KeyError,
    },
    /// Shamir sharing failed.
    #[error("Shamir sharing failed: {0}")]
    Sharing(ShamirError),
    /// A share box could not be sealed.
    #[error("sealing a share box failed: {0}")]
    Sealing(ShareBoxError),
    /// A share box from `peer` did not open or held malformed shares.
    #[error("the share box from client {peer} is undecryptable or malformed")]
    ShareDecryptionFailed {
        /// Its sender.
        peer: u32,
    },
    /// Masking failed.
    #[error("masking failed: {0}")]
    Masking(PrgError),
    /// Encoding or signing a message failed.
    #[error("message encoding failed: {0}")]
    Message(MessageError),
    /// A survivor list is unsorted, has duplicates or names non-members.
    #[error("the survivor list is not strictly ascending member indices")]
    MalformedSurvivorList,
    /// Fewer survivors than a revealed sum needs
    /// ([`crate::graph::GroupTopology::min_survivors`]): unmasking would
    /// reveal too much.
    #[error("{survivors} survivors, a revealed sum needs at least {minimum}")]
    TooFewSurvivors {
        /// Survivors listed.
        survivors: usize,
        /// The fewest allowed.
        minimum: usize,
    },
    /// This client is not on the survivor list it is asked to sign.
    #[error("this client is not on the survivor list")]
    NotASurvivor,
    /// The unmasking survivor list differs from the one this client signed.
    #[error("the unmasking request's survivor list differs from the signed one")]
    SurvivorListChanged,
    /// The server asked for both shares of one neighbour.
    #[error("refusing to reveal both the self-mask and the mask-secret share of client {peer}")]
    BothSharesRequested {
        /// The neighbour.
        peer: u32,
    },
    /// A consistency response in the unmasking request is invalid.
    #[error("consistency response from {sender} is invalid: {reason}")]
    BadConsistencyResponse {
        /// Its sender.
        sender: u32,
        /// What was wrong.
        reason: &'static str,
    },
    /// Too few valid consistency signatures.
    #[error("{got} consistency signatures, the threshold is {threshold}")]
    TooFewConsistencySignatures {
        /// Valid signatures.
        got: usize,
        /// Threshold `t`.
        threshold: usize,
    },
}

/// A share box the client could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareFault {
    /// Sender of the box.
    pub peer: u32,
    /// What was wrong.
    pub error: ClientError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    KeysAdvertised,
    SharesSent,
    InputSent,
    ConsistencySigned,
    Finished,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Created => "created",
            Phase::KeysAdvertised => "keys advertised",
            Phase::SharesSent => "shares sent",
            Phase::InputSent => "input sent",
            Phase::ConsistencySigned => "consistency signed",
            Phase::Finished => "finished",
        }
    }
}

/// The shares a neighbour gave this client.
struct HeldShares {
    mask_secret: Share,
    self_mask_seed: Share,
}

/// One client's state for one group attempt.
pub struct ClientSession {
    config: SessionConfig,
    index: u32,
    identity: Identity,
    input: Zeroizing<Vec<u32>>,
    mask_secret: Zeroizing<[u8; 32]>,
    mask_keys: KeyPair,
    encryption_keys: KeyPair,
    self_mask_secret: Zeroizing<[u8; 32]>,
    neighbour_keys: BTreeMap<u32, AdvertiseKeys>,
    held_shares: BTreeMap<u32, HeldShares>,
    share_faults: Vec<ShareFault>,
    signed_survivors: Option<Vec<u32>>,
    revealed: BTreeMap<u32, RevealedShareKind>,
    phase: Phase,
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("index", &self.index)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    /// A session for client `index` with quantized `input`; draws the round's key
    /// pairs and self-mask seed from `rng`.
    pub fn new<R: CryptoRng + ?Sized>(
        config: SessionConfig,
        index: u32,
        identity: Identity,
        input: Vec<u32>,
        rng: &mut R,
    ) -> Result<Self, ClientError> {
        config.validate()?;
        if index >= config.group_size() {
            return Err(ConfigError::IndexOutOfRange {
                index,
                group_size: config.group_size(),
            }
            .into());
        }
        if input.len() != config.dimension {
            return Err(ClientError::InputLengthMismatch {
                expected: config.dimension,
                got: input.len(),
            });
        }
        let mut mask_secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(mask_secret.as_mut());
        let mask_keys = KeyPair::from_secret_bytes(*mask_secret);
        let encryption_keys = KeyPair::generate(rng);
        let mut self_mask_secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(self_mask_secret.as_mut());
        Ok(Self {
            config,
            index,
            identity,
            input: Zeroizing::new(input),
            mask_secret,
            mask_keys,
            encryption_keys,
            self_mask_secret,
            neighbour_keys: BTreeMap::new(),
            held_shares: BTreeMap::new(),
            share_faults: Vec::new(),
            signed_survivors: None,
            revealed: BTreeMap::new(),
            phase: Phase::Created,
        })
    }

    /// The group's configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// This client's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Share boxes that could not be used.
    pub fn share_faults(&self) -> &[ShareFault] {
        &self.share_faults
    }

    /// Which share of which neighbour was revealed.
    pub fn revealed(&self) -> &BTreeMap<u32, RevealedShareKind> {
        &self.revealed
    }

    /// Whether the client answered the unmasking request.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    fn sign(&self, body: Body) -> Result<SignedMessage, ClientError> {
        SignedMessage::sign(
            Header {
                context: self.config.context,
                sender: self.index,
            },
            body,
            &self.identity,
        )
        .map_err(ClientError::Message)
    }

    fn unexpected(&self, kind: MessageKind) -> ClientError {
        ClientError::UnexpectedMessage {
            phase: self.phase.name(),
            kind,
        }
    }

    /// The first message: the two public keys.
    pub fn advertise_keys(&mut self) -> Result<SignedMessage, ClientError> {
        if self.phase != Phase::Created {
            return Err(self.unexpected(MessageKind::AdvertiseKeys));
        }
        let message = self.sign(Body::AdvertiseKeys(AdvertiseKeys {
            mask_public_key: self.mask_keys.public_key(),
            encryption_public_key: self.encryption_keys.public_key(),
        }))?;
        self.phase = Phase::KeysAdvertised;
        Ok(message)
    }

    fn check_context(&self, message: &SignedMessage) -> Result<(), ClientError> {
        if message.header.context != self.config.context {
            return Err(ClientError::WrongContext {
                expected: Box::new(self.config.context),
                got: Box::new(message.header.context),
            });
        }
        Ok(())
    }

    /// Handles a server message and returns the answer.
    pub fn handle<R: CryptoRng + ?Sized>(
        &mut self,
        message: &SignedMessage,
        rng: &mut R,
    ) -> Result<SignedMessage, ClientError> {
        self.check_context(message)?;
        if message.header.sender != SERVER_SENDER {
            return Err(ClientError::NotFromServer(message.header.sender));
        }
        message
            .verify(&self.config.server_address)
            .map_err(|source| ClientError::BadSignature {
                sender: SERVER_SENDER,
                source,
            })?;
        match (&message.body, self.phase) {
            (Body::KeysDelivery(advertisements), Phase::KeysAdvertised) => {
                self.share_keys(advertisements, rng)
            }
            (Body::SharesDelivery(boxes), Phase::SharesSent) => self.mask_input(boxes),
            (Body::ConsistencyRequest(survivors), Phase::InputSent) => {
                self.sign_survivors(survivors)
            }
            (
                Body::UnmaskingRequest {
                    survivors,
                    dropouts,
                    consistency_responses,
                },
                Phase::ConsistencySigned,
            ) => self.unmask(survivors, dropouts, consistency_responses),
            _ => Err(self.unexpected(message.kind())),
        }
    }

    fn share_keys<R: CryptoRng + ?Sized>(
        &mut self,
        advertisements: &[SignedMessage],
        rng: &mut R,
    ) -> Result<SignedMessage, ClientError> {
        let graph = self.config.topology.graph();
        let mut live: BTreeMap<u32, AdvertiseKeys> = BTreeMap::new();
        for advertisement in advertisements {
            let sender = advertisement.header.sender;
            self.check_context(advertisement)?;
            let Body::AdvertiseKeys(keys) = &advertisement.body else {
                return Err(ClientError::WrongDeliveredKind {
                    sender,
                    kind: advertisement.kind(),
                });
            };
            if !graph.are_neighbours(self.index, sender) {
                return Err(ClientError::NotANeighbour(sender));
            }
            let address = self
                .config
                .address_of(sender)
                .ok_or(ClientError::NotANeighbour(sender))?;
            advertisement
                .verify(address)
                .map_err(|source| ClientError::BadSignature { sender, source })?;
            if live.insert(sender, keys.clone()).is_some() {
                return Err(ClientError::DuplicatePeer(sender));
            }
        }
        let threshold = self.config.threshold();
        if live.len() < threshold {
            return Err(ClientError::TooFewNeighbours {
                live: live.len(),
                threshold,
            });
        }
        let degree = graph.degree() as usize;
        let mask_shares =
            split(&self.mask_secret, threshold, degree, rng).map_err(ClientError::Sharing)?;
        let seed_shares =
            split(&self.self_mask_secret, threshold, degree, rng).map_err(ClientError::Sharing)?;
        let mut boxes = Vec::with_capacity(live.len());
        for (&peer, keys) in &live {
            let position = graph
                .position(self.index, peer)
                .ok_or(ClientError::NotANeighbour(peer))?;
            let (Some(mask_share), Some(seed_share)) =
                (mask_shares.get(position), seed_shares.get(position))
            else {
                return Err(ClientError::NotANeighbour(peer));
            };
            let mut plaintext = Zeroizing::new(Vec::with_capacity(SHARE_PLAINTEXT_BYTES));
            plaintext.extend_from_slice(mask_share.to_bytes().as_ref());
            plaintext.extend_from_slice(seed_share.to_bytes().as_ref());
            let shared = self
                .encryption_keys
                .agree(&keys.encryption_public_key)
                .map_err(|source| ClientError::NeighbourKey { peer, source })?;
            let ciphertext = seal(&shared, &self.config.context, self.index, peer, &plaintext)
                .map_err(ClientError::Sealing)?;
            boxes.push(ShareBoxEntry { peer, ciphertext });
        }
        let message = self.sign(Body::ShareKeys(boxes))?;
        self.neighbour_keys = live;
        self.phase = Phase::SharesSent;
        Ok(message)
    }

    fn open_box(&self, entry: &ShareBoxEntry) -> Result<HeldShares, ClientError> {
        let peer = entry.peer;
        let keys = self
            .neighbour_keys
            .get(&peer)
            .ok_or(ClientError::NotANeighbour(peer))?;
        let shared = self
            .encryption_keys
            .agree(&keys.encryption_public_key)
            .map_err(|source| ClientError::NeighbourKey { peer, source })?;
        let plaintext = open(
            &shared,
            &self.config.context,
            peer,
            self.index,
            &entry.ciphertext,
        )
        .map_err(|_| ClientError::ShareDecryptionFailed { peer })?;
        if plaintext.len() != SHARE_PLAINTEXT_BYTES {
            return Err(ClientError::ShareDecryptionFailed { peer });
        }
        let parse = |bytes: &[u8]| {
            Share::from_bytes(bytes).map_err(|_| ClientError::ShareDecryptionFailed { peer })
        };
        Ok(HeldShares {
            mask_secret: parse(&plaintext[..SHARE_BYTES])?,
            self_mask_seed: parse(&plaintext[SHARE_BYTES..])?,
        })
    }

    fn mask_input(&mut self, boxes: &[ShareBoxEntry]) -> Result<SignedMessage, ClientError> {
        let mut peers = BTreeSet::new();
        for entry in boxes {
            if !self.neighbour_keys.contains_key(&entry.peer) {
                return Err(ClientError::NotANeighbour(entry.peer));
            }
            if !peers.insert(entry.peer) {
                return Err(ClientError::DuplicatePeer(entry.peer));
            }
        }
        let threshold = self.config.threshold();
        if peers.len() < threshold {
            return Err(ClientError::TooFewNeighbours {
                live: peers.len(),
                threshold,
            });
        }
        let context = self.config.context;
        let mut seeds = Vec::with_capacity(peers.len() + 1);
        seeds.push((
            self_mask_seed(&self.self_mask_secret, &context, self.index),
            MaskSign::Add,
        ));
        for &peer in &peers {
            let keys = self
                .neighbour_keys
                .get(&peer)
                .ok_or(ClientError::NotANeighbour(peer))?;
            let shared = self
                .mask_keys
                .agree(&keys.mask_public_key)
                .map_err(|source| ClientError::NeighbourKey { peer, source })?;
            let seed = shared.derive(&context, Purpose::Mask, ClientPair::new(self.index, peer));
            let sign = if peer > self.index {
                MaskSign::Add
            } else {
                MaskSign::Subtract
            };
            seeds.push((seed, sign));
        }
        let masks: Vec<SignedMask<'_>> = seeds
            .iter()
            .map(|(seed, sign)| SignedMask {
                seed: seed.as_bytes(),
                sign: *sign,
            })
            .collect();
        let mut masked = self.input.to_vec();
        apply_masks(&mut masked, &masks).map_err(ClientError::Masking)?;
        let message = self.sign(Body::MaskedInput(masked))?;
        let mut held = BTreeMap::new();
        let mut faults = Vec::new();
        for entry in boxes {
            match self.open_box(entry) {
                Ok(shares) => {
                    held.insert(entry.peer, shares);
                }
                Err(error) => faults.push(ShareFault {
                    peer: entry.peer,
                    error,
                }),
            }
        }
        self.held_shares = held;
        self.share_faults.extend(faults);
        self.phase = Phase::InputSent;
        Ok(message)
    }

    fn check_survivor_list(&self, survivors: &[u32]) -> Result<(), ClientError> {
        let ascending = survivors.windows(2).all(|pair| pair[0] < pair[1]);
        let members = survivors
            .last()
            .is_none_or(|&last| last < self.config.group_size());
        if !ascending || !members {
            return Err(ClientError::MalformedSurvivorList);
        }
        let minimum = self.config.min_survivors();
        if survivors.len() < minimum {
            return Err(ClientError::TooFewSurvivors {
                survivors: survivors.len(),
                minimum,
            });
        }
        Ok(())
    }

    fn sign_survivors(&mut self, survivors: &[u32]) -> Result<SignedMessage, ClientError> {
        self.check_survivor_list(survivors)?;
        if survivors.binary_search(&self.index).is_err() {
            return Err(ClientError::NotASurvivor);
        }
        let message = self.sign(Body::ConsistencyResponse(survivors.to_vec()))?;
        self.signed_survivors = Some(survivors.to_vec());
        self.phase = Phase::ConsistencySigned;
        Ok(message)
    }

    fn check_consistency_responses(
        &self,
        signed: &[u32],
        responses: &[SignedMessage],
    ) -> Result<(), ClientError> {
        let mut signers = BTreeSet::new();
        for response in responses {
            let sender = response.header.sender;
            let bad = |reason| ClientError::BadConsistencyResponse { sender, reason };
            if response.header.context != self.config.context {
                return Err(bad("made for another context"));
            }
            let Body::ConsistencyResponse(list) = &response.body else {
                return Err(bad("not a consistency response"));
            };
            if list.as_slice() != signed {
                return Err(bad("signs another survivor list"));
            }
            if signed.binary_search(&sender).is_err() {
                return Err(bad("signer is not a survivor"));
            }
            let address = self
                .config
                .address_of(sender)
                .ok_or(bad("unknown signer"))?;
            response
                .verify(address)
                .map_err(|_| bad("signature does not verify"))?;
            if !signers.insert(sender) {
                return Err(bad("duplicate signer"));
            }
        }
        let threshold = self.config.threshold();
        if signers.len() < threshold {
            return Err(ClientError::TooFewConsistencySignatures {
                got: signers.len(),
                threshold,
            });
        }
        Ok(())
    }

    fn unmask(
        &mut self,
        survivors: &[u32],
        dropouts: &[u32],
        responses: &[SignedMessage],
    ) -> Result<SignedMessage, ClientError> {
        let signed = self.signed_survivors.clone().unwrap_or_default();
        if survivors != signed.as_slice() {
            return Err(ClientError::SurvivorListChanged);
        }
        let dropout_set: BTreeSet<u32> = dropouts.iter().copied().collect();
        if let Some(&peer) = survivors.iter().find(|peer| dropout_set.contains(peer)) {
            return Err(ClientError::BothSharesRequested { peer });
        }
        self.check_consistency_responses(&signed, responses)?;
        let mut revealed = Vec::new();
        let mut kinds = BTreeMap::new();
        for (&peer, shares) in &self.held_shares {
            let (kind, share) = if survivors.binary_search(&peer).is_ok() {
                (RevealedShareKind::SelfMaskSeed, &shares.self_mask_seed)
            } else if dropout_set.contains(&peer) {
                (RevealedShareKind::MaskSecret, &shares.mask_secret)
            } else {
                continue;
            };
            if self
                .revealed
                .get(&peer)
                .is_some_and(|&earlier| earlier != kind)
            {
                return Err(ClientError::BothSharesRequested { peer });
            }
            kinds.insert(peer, kind);
            revealed.push(RevealedShare {
                owner: peer,
                kind,
                share: share.clone(),
            });
        }
        let message = self.sign(Body::UnmaskingResponse(revealed))?;
        self.revealed.extend(kinds);
        self.phase = Phase::Finished;
        Ok(message)
    }
}
