//! The lab's driver of the round engine: the coordinator's attempt, fed in
//! memory.
//!
//! [`Lab`] holds a task's [`Plan`], the clients' keys and the coordinator's
//! identity. For each attempt it draws the cohort and its groups with the
//! engine ([`Lab::draw`]), then moves the members' messages through the
//! engine's [`Attempt`] exactly as the coordinator moves them over QUIC
//! ([`Lab::collect`]): signed plain updates, or every member's SecAgg+
//! client session answering the attempt's messages phase by phase, with the
//! member's rounding seeded from its key as the real client seeds it. A
//! member that drops stops answering, and the attempt's deadlines close its
//! phases. What the attempt collected is settled by the engine's
//! [`fedstake_round::settle`], as the coordinator settles it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use alloy_primitives::{Address, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::Eip712Domain;
use fedstake_aggregation::Model;
use fedstake_protocol::Submission;
use fedstake_protocol::wire::ClientMessage;
use fedstake_round::{
    Attempt, AttemptId, Collected, Contributions, Plan, RoundState, draw_cohort, group_cohort,
};
use fedstake_secure_agg::client::ClientSession;
use fedstake_secure_agg::grouping::{Grouping, GroupingError, RoundId};
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::quantize::{quantize, rounding_rng};
use fedstake_secure_agg::session::Phase;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::SimError;

/// What one cohort member brings to an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberInput {
    /// Its update (clipped, or crafted by an attacker).
    pub update: Vec<f32>,
    /// Its claimed weight.
    pub weight: u32,
    /// The phase it drops from, if it does (in plain mode any phase means
    /// it never uploads).
    pub drop_from: Option<Phase>,
}

/// Who takes part in an attempt.
#[derive(Debug, Clone)]
pub struct Draw {
    /// Round.
    pub round: u64,
    /// Attempt.
    pub attempt: u32,
    /// The members that take part (under secure aggregation, those placed
    /// in a group), ascending.
    pub cohort: Vec<Address>,
    /// The groups, under secure aggregation.
    pub grouping: Option<Grouping<Address>>,
}

/// A client's keys: its Ethereum signer and the same key as a SecAgg+
/// identity.
struct Keys {
    signer: PrivateKeySigner,
    identity: Identity,
}

/// One task's engine, driven in memory (see the module documentation).
pub struct Lab {
    plan: Plan,
    task_id: U256,
    domain: Eip712Domain,
    coordinator: Identity,
    keys: BTreeMap<Address, Keys>,
    seed: u64,
}

impl Lab {
    /// The lab of task `task_id` under `plan`, with the clients holding
    /// `signers`, a coordinator of identity `coordinator`, and the EIP-712
    /// `domain` submissions are signed in. `seed` seeds what the real
    /// parties draw from the operating system (SecAgg+ keys and masks,
    /// which cancel in every sum).
    pub fn new(
        plan: Plan,
        task_id: U256,
        domain: Eip712Domain,
        coordinator: Identity,
        signers: Vec<PrivateKeySigner>,
        seed: u64,
    ) -> Result<Self, SimError> {
        let keys = signers
            .into_iter()
            .map(|signer| {
                let identity = Identity::from_secret_bytes(&signer.to_bytes().0)
                    .map_err(|e| SimError::Config(format!("client key: {e}")))?;
                Ok((signer.address(), Keys { signer, identity }))
            })
            .collect::<Result<_, SimError>>()?;
        Ok(Self {
            plan,
            task_id,
            domain,
            coordinator,
            keys,
            seed,
        })
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn round_id(&self, round: u64, attempt: u32) -> RoundId {
        RoundId {
            task_id: self.task_id.to_be_bytes(),
            round,
            attempt,
        }
    }

    /// Draws the cohort (and groups) of attempt `attempt` of `round` from
    /// the `eligible` clients, as the coordinator draws it.
    pub fn draw(
        &self,
        state: &RoundState<Address>,
        global: &Model,
        eligible: &[Address],
        round: u64,
        attempt: u32,
    ) -> Result<Draw, SimError> {
        let task = self.task_id.to_be_bytes::<32>();
        let drawn = draw_cohort(&self.plan, state, eligible, &task, round, attempt);
        let grouping = match self.plan.secagg() {
            None => None,
            Some(_) => {
                match group_cohort(
                    &self.plan,
                    &drawn,
                    &global.content_hash(),
                    &self.round_id(round, attempt),
                ) {
                    Ok(grouping) => Some(grouping),
                    Err(GroupingError::CohortTooSmall { .. }) => {
                        return Ok(Draw {
                            round,
                            attempt,
                            cohort: Vec::new(),
                            grouping: None,
                        });
                    }
                    Err(e) => return Err(SimError::Config(format!("grouping: {e}"))),
                }
            }
        };
        let cohort = match &grouping {
            None => drawn,
            Some(grouping) => {
                let mut members = grouping.groups().concat();
                members.sort();
                members
            }
        };
        Ok(Draw {
            round,
            attempt,
            cohort,
            grouping,
        })
    }

    fn keys(&self, member: &Address) -> Result<&Keys, SimError> {
        self.keys
            .get(member)
            .ok_or_else(|| SimError::Config(format!("no keys for client {member}")))
    }

    /// Runs the engine's attempt of `draw` in memory with each member's
    /// `inputs` and returns what it collected, as [`Attempt::finish`] does.
    pub fn collect(
        &self,
        draw: &Draw,
        global: &Model,
        inputs: &BTreeMap<Address, MemberInput>,
    ) -> Result<Collected<Address>, SimError> {
        let id = AttemptId {
            task_id: self.task_id,
            round: draw.round,
            attempt: draw.attempt,
            domain: self.domain.clone(),
            dimension: global.params().len(),
        };
        let input = |member: &Address| {
            inputs
                .get(member)
                .ok_or_else(|| SimError::Config(format!("no input for cohort member {member}")))
        };
        let now = Instant::now();
        match (&draw.grouping, self.plan.secagg()) {
            (Some(grouping), Some(secagg)) => {
                let mut rng = ChaCha20Rng::seed_from_u64(
                    self.seed ^ (draw.round << 20) ^ u64::from(draw.attempt),
                );
                let mut attempt = Attempt::secagg(&self.plan, id, grouping, &self.coordinator, now)
                    .map_err(|e| SimError::Config(format!("secagg attempt: {e}")))?;
                let mut sessions = BTreeMap::new();
                for (group, members) in grouping.groups().iter().enumerate() {
                    let config = attempt
                        .session_config(group)
                        .ok_or_else(|| SimError::Config(format!("no group {group}")))?
                        .clone();
                    for (index, member) in members.iter().enumerate() {
                        let keys = self.keys(member)?;
                        let member_input = input(member)?;
                        let secret = keys.signer.to_bytes().0;
                        let mut rounding = rounding_rng(&secret, &config.context, index as u32);
                        let quantized = quantize(
                            &member_input.update,
                            member_input.weight,
                            &secagg.quantization,
                            &mut rounding,
                        )
                        .map_err(|e| SimError::Config(format!("quantizing {member}: {e}")))?;
                        let session = ClientSession::new(
                            config.clone(),
                            index as u32,
                            keys.identity.clone(),
                            quantized,
                            &mut rng,
                        )
                        .map_err(|e| SimError::Config(format!("client session: {e}")))?;
                        sessions.insert(*member, session);
                    }
                }
                run_secagg(&mut attempt, sessions, inputs, &mut rng, now)?;
                Ok(attempt.finish())
            }
            // Under secure aggregation a cohort too small for one group
            // gives nothing, as the coordinator's grouping does.
            (None, Some(_)) => Ok(Collected {
                contributions: Contributions::Groups {
                    sums: Vec::new(),
                    failures: vec!["too few clients for one group".into()],
                },
                submissions: BTreeMap::new(),
                spent: BTreeSet::new(),
            }),
            (_, None) => {
                let mut attempt = Attempt::plain(&self.plan, id, &draw.cohort, now);
                for member in &draw.cohort {
                    let member_input = input(member)?;
                    if member_input.drop_from.is_some() {
                        attempt.handle_member_gone(member, now);
                        continue;
                    }
                    let message = self.signed_update(member, draw, member_input)?;
                    attempt
                        .handle_message(now, *member, message)
                        .map_err(|refused| SimError::Config(refused.reason))?;
                }
                Ok(attempt.finish())
            }
        }
    }

    /// A member's plain update, signed as the client signs it.
    fn signed_update(
        &self,
        member: &Address,
        draw: &Draw,
        input: &MemberInput,
    ) -> Result<ClientMessage, SimError> {
        let update: Vec<u8> = input.update.iter().flat_map(|v| v.to_le_bytes()).collect();
        let signature = Submission::new(self.task_id, draw.round, draw.attempt, keccak256(&update))
            .sign(&self.keys(member)?.signer, &self.domain)
            .map_err(|e| SimError::Config(format!("signing {member}'s update: {e}")))?;
        Ok(ClientMessage::PlainUpdate {
            round: draw.round,
            attempt: draw.attempt,
            weight: input.weight,
            update,
            signature: signature.as_bytes().to_vec(),
        })
    }
}

/// Moves SecAgg+ messages between the attempt and the members' sessions
/// until the attempt is complete. A member stops answering from the phase
/// it drops in; when nothing is left to deliver, the attempt's next
/// deadline passes.
fn run_secagg(
    attempt: &mut Attempt<Address>,
    mut sessions: BTreeMap<Address, ClientSession>,
    inputs: &BTreeMap<Address, MemberInput>,
    rng: &mut ChaCha20Rng,
    mut now: Instant,
) -> Result<(), SimError> {
    let mut gone = BTreeSet::new();
    let answers = |member: &Address, phase: Phase| {
        inputs
            .get(member)
            .and_then(|input| input.drop_from)
            .is_none_or(|drop| drop > phase)
    };
    let members: Vec<Address> = sessions.keys().copied().collect();
    for member in members {
        if !answers(&member, Phase::AdvertiseKeys) {
            gone.insert(member);
            attempt.handle_member_gone(&member, now);
            continue;
        }
        let Some(session) = sessions.get_mut(&member) else {
            continue;
        };
        let message = session
            .advertise_keys()
            .map_err(|e| SimError::Config(format!("client {member}: {e}")))?;
        send(attempt, now, member, &message)?;
    }
    while !attempt.is_complete() {
        let mut delivered = false;
        while let Some((member, message)) = attempt.poll_transmit() {
            delivered = true;
            if gone.contains(&member) {
                continue;
            }
            let Some(session) = sessions.get_mut(&member) else {
                continue;
            };
            // A member whose session refuses the coordinator's message
            // stops answering, as a real client would.
            let Ok(reply) = session.handle(&message, rng) else {
                gone.insert(member);
                attempt.handle_member_gone(&member, now);
                continue;
            };
            let phase = reply.kind().client_phase().unwrap_or(Phase::Unmasking);
            if !answers(&member, phase) {
                gone.insert(member);
                attempt.handle_member_gone(&member, now);
                continue;
            }
            send(attempt, now, member, &reply)?;
        }
        if !delivered && !attempt.is_complete() {
            let Some(deadline) = attempt.poll_timeout() else {
                break;
            };
            now = now.max(deadline);
            attempt.handle_timeout(now);
        }
    }
    Ok(())
}

fn send(
    attempt: &mut Attempt<Address>,
    now: Instant,
    member: Address,
    message: &fedstake_secure_agg::messages::SignedMessage,
) -> Result<(), SimError> {
    let bytes = message
        .to_bytes()
        .map_err(|e| SimError::Config(format!("encoding {member}'s message: {e}")))?;
    attempt
        .handle_message(now, member, ClientMessage::SecAgg { message: bytes })
        .map_err(|refused| SimError::Config(format!("{member}: {}", refused.reason)))
}
