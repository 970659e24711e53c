//! One group attempt driven through memory, as a network would carry it.
//!
//! [`MemoryGroup`] moves messages between a [`ServerSession`] and its
//! [`ClientSession`]s: every message is encoded to its wire bytes, counted,
//! and decoded again with the group's [`DecodeLimits`] before it is handled, so
//! what runs is exactly what a networked deployment runs minus the transport.
//! Dropouts are scripted per client as the [`Phase`] from which it sends
//! nothing; every phase's deadline passes once the live clients have answered.
//! A client that refuses a message (for instance because too few of its
//! neighbours are left) sends nothing and its error is kept. The simulation
//! lab, the benchmarks and the cohort tests use it.

use rand::CryptoRng;

use crate::client::{ClientError, ClientSession};
use crate::identity::Identity;
use crate::messages::{DecodeLimits, MessageError, MessageKind, SignedMessage};
use crate::server::{Outgoing, PhaseOutcome, ServerError, ServerSession};
use crate::session::{Phase, SessionConfig};

/// Why a group could not be driven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The server refused the group's outcome (too many dropouts, bad shares).
    #[error(transparent)]
    Server(#[from] ServerError),
    /// A client session could not be created.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A message did not survive encoding and decoding.
    #[error("a message did not round-trip through its wire encoding: {0}")]
    Wire(#[from] MessageError),
    /// The client list or dropout plan does not match the group.
    #[error("{clients} clients and {plan} dropout entries for a group of {group_size}")]
    GroupMismatch {
        /// Clients given.
        clients: usize,
        /// Dropout entries given.
        plan: usize,
        /// Group size of the server's configuration.
        group_size: u32,
    },
}

/// One message on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireRecord {
    /// The client that sent or received it.
    pub client: u32,
    /// Its kind (client kinds are sent, server kinds received).
    pub kind: MessageKind,
    /// Encoded length in bytes, signature included.
    pub bytes: usize,
}

/// A server and its clients, advanced one phase at a time.
#[derive(Debug)]
pub struct MemoryGroup {
    server: ServerSession,
    clients: Vec<ClientSession>,
    drop_from: Vec<Option<Phase>>,
    limits: DecodeLimits,
    /// The next phase whose client messages are sent.
    next: usize,
    /// The server's messages of the phase just closed.
    outgoing: Vec<Outgoing>,
    traffic: Vec<WireRecord>,
    client_errors: Vec<(u32, ClientError)>,
}

impl MemoryGroup {
    /// A group whose client `i` is `clients[i]` and drops from `drop_from[i]`
    /// (`None`: it stays to the end).
    pub fn new(
        server: ServerSession,
        clients: Vec<ClientSession>,
        drop_from: Vec<Option<Phase>>,
    ) -> Result<Self, MemoryError> {
        let group_size = server.config().group_size();
        if clients.len() != group_size as usize || drop_from.len() != clients.len() {
            return Err(MemoryError::GroupMismatch {
                clients: clients.len(),
                plan: drop_from.len(),
                group_size,
            });
        }
        let limits = server.config().decode_limits();
        Ok(Self {
            server,
            clients,
            drop_from,
            limits,
            next: 0,
            outgoing: Vec::new(),
            traffic: Vec::new(),
            client_errors: Vec::new(),
        })
    }

    /// A new server session for `config` and one client session per member:
    /// `members[i]` is client `i`'s identity and quantized input; keys and
    /// seeds are drawn from `rng`.
    pub fn start<R: CryptoRng + ?Sized>(
        config: SessionConfig,
        server_identity: Identity,
        members: Vec<(Identity, Vec<u32>)>,
        drop_from: Vec<Option<Phase>>,
        rng: &mut R,
    ) -> Result<Self, MemoryError> {
        let clients = members
            .into_iter()
            .enumerate()
            .map(|(index, (identity, input))| {
                ClientSession::new(config.clone(), index as u32, identity, input, rng)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let server = ServerSession::new(config, server_identity)?;
        Self::new(server, clients, drop_from)
    }

    /// Encodes, counts and decodes one message.
    fn carry(
        &mut self,
        client: u32,
        message: &SignedMessage,
    ) -> Result<SignedMessage, MemoryError> {
        let bytes = message.to_bytes()?;
        self.traffic.push(WireRecord {
            client,
            kind: message.kind(),
            bytes: bytes.len(),
        });
        Ok(SignedMessage::from_bytes(&bytes, &self.limits)?)
    }

    fn sends_in(&self, client: u32, phase: Phase) -> bool {
        self.drop_from[client as usize].is_none_or(|drop| drop > phase)
    }

    /// Sends the next phase's client messages and closes the phase: `None`
    /// while phases remain, then the group's sum. An error ends the group.
    pub fn step<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<Option<Vec<u32>>, MemoryError> {
        self.send(rng)?;
        self.close()
    }

    /// The first half of [`MemoryGroup::step`]: the live clients answer the
    /// server's last messages (or advertise their keys) and the server receives
    /// the answers.
    pub fn send<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<(), MemoryError> {
        let phase = Phase::ALL
            .get(self.next)
            .copied()
            .ok_or(ServerError::SessionOver("finished"))?;
        self.next += 1;
        let mut replies = Vec::new();
        if phase == Phase::AdvertiseKeys {
            for index in 0..self.clients.len() as u32 {
                if self.sends_in(index, phase) {
                    match self.clients[index as usize].advertise_keys() {
                        Ok(message) => replies.push((index, message)),
                        Err(error) => self.client_errors.push((index, error)),
                    }
                }
            }
        } else {
            for outgoing in std::mem::take(&mut self.outgoing) {
                let recipient = outgoing.recipient;
                if !self.sends_in(recipient, phase) {
                    continue;
                }
                let delivered = self.carry(recipient, &outgoing.message)?;
                match self.clients[recipient as usize].handle(&delivered, rng) {
                    Ok(reply) => replies.push((recipient, reply)),
                    Err(error) => self.client_errors.push((recipient, error)),
                }
            }
        }
        for (sender, reply) in replies {
            let delivered = self.carry(sender, &reply)?;
            // A refused message is recorded by the server as misbehaviour.
            let _ = self.server.receive(delivered);
        }
        Ok(())
    }

    /// The second half of [`MemoryGroup::step`]: the phase's deadline passes.
    pub fn close(&mut self) -> Result<Option<Vec<u32>>, MemoryError> {
        match self.server.phase_deadline_passed()? {
            PhaseOutcome::Messages(messages) => {
                self.outgoing = messages;
                Ok(None)
            }
            PhaseOutcome::Sum(sum) => Ok(Some(sum)),
        }
    }

    /// Runs the remaining phases and returns the sum mod `2^32` of the
    /// survivors' inputs.
    pub fn run<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<Vec<u32>, MemoryError> {
        loop {
            if let Some(sum) = self.step(rng)? {
                return Ok(sum);
            }
        }
    }

    /// The server session.
    pub fn server(&self) -> &ServerSession {
        &self.server
    }

    /// Every message carried so far.
    pub fn traffic(&self) -> &[WireRecord] {
        &self.traffic
    }

    /// Messages clients refused, with the reason.
    pub fn client_errors(&self) -> &[(u32, ClientError)] {
        &self.client_errors
    }
}
