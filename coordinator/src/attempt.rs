//! One attempt of a round: announcing it to the cohort and collecting what
//! the cohort sends, phase by phase, until every group has its sum (secagg)
//! or every member its update (plain), or the deadlines pass.
//!
//! The SecAgg+ logic is the secure-agg crate's [`ServerSession`], one per
//! group; this module only routes messages to it and closes its phases when
//! every live member has answered or the phase's deadline passes. Messages
//! are checked before they reach a session: they must come from the
//! member's own connection and decode within the group's limits; the
//! session then checks signatures and the (task, round, attempt, group)
//! context, so a message replayed from an earlier round or attempt is
//! refused and counted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::Eip712Domain;
use fedstake_protocol::spec::{Phase as SpecPhase, TaskSpec};
use fedstake_protocol::wire::ClientMessage;
use fedstake_rewards::Submission;
use fedstake_secure_agg::messages::SignedMessage;
use fedstake_secure_agg::server::{PhaseOutcome, ServerSession};
use fedstake_secure_agg::session::Phase;
use tokio::time::Instant;

use crate::store::StoredSubmission;

/// A plain update as received and checked.
#[derive(Debug, Clone)]
pub struct PlainUpdate {
    /// The update.
    pub update: Vec<f32>,
    /// Its weight.
    pub weight: u32,
    /// The signed submission.
    pub submission: StoredSubmission,
}

/// One group of a secagg attempt.
pub struct GroupRun {
    /// Members by client index.
    pub members: Vec<Address>,
    /// The server's state machine.
    pub session: ServerSession,
    /// Index of the phase being collected in [`Phase::ALL`].
    phase: usize,
    /// Members expected to answer in this phase.
    expected: BTreeSet<u32>,
    /// Members that answered in this phase.
    answered: BTreeSet<u32>,
    /// When this phase closes regardless.
    deadline: Instant,
    /// When this phase started.
    started: Instant,
    /// Keccak-256 of each member's MaskedInput message.
    masked_input_hash: BTreeMap<u32, B256>,
    /// The group's sum once unmasked, or why it failed.
    pub outcome: Option<Result<Vec<u32>, String>>,
}

impl std::fmt::Debug for GroupRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupRun")
            .field("members", &self.members)
            .field("phase", &self.phase)
            .finish()
    }
}

/// A message the attempt refused, for the metrics and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// Who sent it.
    pub address: Address,
    /// Metric label.
    pub kind: &'static str,
    /// What was wrong.
    pub reason: String,
}

/// A phase that closed, for the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedPhase {
    /// Phase name.
    pub phase: &'static str,
    /// How long it took.
    pub duration: Duration,
}

/// What the cohort of one attempt has sent so far.
#[derive(Debug)]
pub enum Collection {
    /// Plain mode: updates by member.
    Plain {
        /// Members that have not answered yet.
        waiting: BTreeSet<Address>,
        /// Updates received.
        updates: BTreeMap<Address, PlainUpdate>,
        /// When collection stops.
        deadline: Instant,
    },
    /// Secagg mode: one run per group.
    Secagg {
        /// The groups.
        groups: Vec<GroupRun>,
        /// Each member's group and index.
        seats: BTreeMap<Address, (usize, u32)>,
        /// The signed submissions (MaskedInput hashes).
        submissions: BTreeMap<Address, StoredSubmission>,
    },
}

/// What the checks of an attempt need to know.
#[derive(Debug, Clone)]
pub struct AttemptContext {
    /// The task.
    pub task_id: U256,
    /// Round.
    pub round: u64,
    /// Attempt.
    pub attempt: u32,
    /// EIP-712 domain of the reward contract.
    pub domain: Eip712Domain,
    /// Dimension of updates.
    pub dimension: usize,
    /// Largest weight.
    pub max_weight: u32,
}

fn deadline_of(spec: &TaskSpec, phase: SpecPhase) -> Duration {
    spec.deadline(phase)
}

fn spec_phase(phase: Phase) -> SpecPhase {
    match phase {
        Phase::AdvertiseKeys => SpecPhase::AdvertiseKeys,
        Phase::ShareKeys => SpecPhase::ShareKeys,
        Phase::MaskedInput => SpecPhase::MaskedInput,
        Phase::Consistency => SpecPhase::Consistency,
        Phase::Unmasking => SpecPhase::Unmasking,
    }
}

impl Collection {
    /// Plain collection from `cohort`, closing after training and upload.
    pub fn plain(spec: &TaskSpec, cohort: &[Address], now: Instant) -> Self {
        Collection::Plain {
            waiting: cohort.iter().copied().collect(),
            updates: BTreeMap::new(),
            deadline: now
                + deadline_of(spec, SpecPhase::Train)
                + deadline_of(spec, SpecPhase::MaskedInput),
        }
    }

    /// Secagg collection of `groups` (members and their server sessions);
    /// the first phase also covers training.
    pub fn secagg(
        spec: &TaskSpec,
        groups: Vec<(Vec<Address>, ServerSession)>,
        now: Instant,
    ) -> Self {
        let mut seats = BTreeMap::new();
        let first =
            deadline_of(spec, SpecPhase::Train) + deadline_of(spec, SpecPhase::AdvertiseKeys);
        let groups = groups
            .into_iter()
            .enumerate()
            .map(|(group, (members, session))| {
                for (index, member) in members.iter().enumerate() {
                    seats.insert(*member, (group, index as u32));
                }
                GroupRun {
                    expected: (0..members.len() as u32).collect(),
                    members,
                    session,
                    phase: 0,
                    answered: BTreeSet::new(),
                    deadline: now + first,
                    started: now,
                    masked_input_hash: BTreeMap::new(),
                    outcome: None,
                }
            })
            .collect();
        Collection::Secagg {
            groups,
            seats,
            submissions: BTreeMap::new(),
        }
    }

    /// Whether nothing more can arrive that matters.
    pub fn is_complete(&self) -> bool {
        match self {
            Collection::Plain { waiting, .. } => waiting.is_empty(),
            Collection::Secagg { groups, .. } => groups.iter().all(|g| g.outcome.is_some()),
        }
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self {
            Collection::Plain {
                deadline, waiting, ..
            } => (!waiting.is_empty()).then_some(*deadline),
            Collection::Secagg { groups, .. } => groups
                .iter()
                .filter(|g| g.outcome.is_none())
                .map(|g| g.deadline)
                .min(),
        }
    }

    /// A cohort member's connection ended: it is not waited for any more.
    pub fn member_gone(&mut self, address: &Address) {
        match self {
            Collection::Plain { waiting, .. } => {
                waiting.remove(address);
            }
            Collection::Secagg { groups, seats, .. } => {
                if let Some(&(group, index)) = seats.get(address) {
                    groups[group].expected.remove(&index);
                }
            }
        }
    }

    /// Handles a message from a cohort member (or anyone: non-members are
    /// refused).
    pub fn receive(
        &mut self,
        context: &AttemptContext,
        from: Address,
        message: ClientMessage,
    ) -> Result<(), Refused> {
        let refused = |kind: &'static str, reason: String| Refused {
            address: from,
            kind,
            reason,
        };
        match (self, message) {
            (
                Collection::Plain {
                    waiting, updates, ..
                },
                ClientMessage::PlainUpdate {
                    round,
                    attempt,
                    weight,
                    update,
                    signature,
                },
            ) => {
                if (round, attempt) != (context.round, context.attempt) {
                    return Err(refused(
                        "replayed",
                        format!(
                            "update for round {round} attempt {attempt}; this is round {} attempt {}",
                            context.round, context.attempt
                        ),
                    ));
                }
                if !waiting.contains(&from) {
                    return Err(refused(
                        "unexpected",
                        "not waiting for an update from this client".into(),
                    ));
                }
                let values = parse_update(&update, context.dimension)
                    .map_err(|reason| refused("malformed", reason))?;
                if weight == 0 || weight > context.max_weight {
                    return Err(refused(
                        "malformed",
                        format!("weight {weight} outside 1..={}", context.max_weight),
                    ));
                }
                let update_hash = keccak256(&update);
                Submission::new(context.task_id, round, attempt, update_hash)
                    .verify(&signature, &context.domain, from)
                    .map_err(|e| refused("bad_signature", e.to_string()))?;
                waiting.remove(&from);
                updates.insert(
                    from,
                    PlainUpdate {
                        update: values,
                        weight,
                        submission: StoredSubmission {
                            attempt,
                            update_hash: update_hash.0,
                            signature,
                        },
                    },
                );
                Ok(())
            }
            (Collection::Plain { waiting, .. }, ClientMessage::Decline { round, attempt, .. })
                if (round, attempt) == (context.round, context.attempt) =>
            {
                waiting.remove(&from);
                Ok(())
            }
            (Collection::Secagg { groups, seats, .. }, ClientMessage::SecAgg { message }) => {
                let &(group, index) = seats
                    .get(&from)
                    .ok_or_else(|| refused("unexpected", "not in this attempt's cohort".into()))?;
                let run = &mut groups[group];
                let limits = run.session.config().decode_limits();
                let decoded = SignedMessage::from_bytes(&message, &limits)
                    .map_err(|e| refused("malformed", e.to_string()))?;
                let context_ok = decoded.header.context == run.session.config().context;
                if !context_ok {
                    let c = decoded.header.context;
                    return Err(refused(
                        "replayed",
                        format!(
                            "SecAgg message of round {} attempt {} group {}; this is round {} attempt {} group {group}",
                            c.round, c.attempt, c.group, context.round, context.attempt
                        ),
                    ));
                }
                if decoded.header.sender != index {
                    return Err(refused(
                        "impersonation",
                        format!(
                            "sender index {} is not this client's {index}",
                            decoded.header.sender
                        ),
                    ));
                }
                let kind = decoded.kind();
                run.session
                    .receive(decoded)
                    .map_err(|e| refused("secagg", e.to_string()))?;
                if kind == fedstake_secure_agg::messages::MessageKind::MaskedInput {
                    run.masked_input_hash.insert(index, keccak256(&message));
                }
                run.answered.insert(index);
                Ok(())
            }
            (
                Collection::Secagg {
                    groups,
                    seats,
                    submissions,
                },
                ClientMessage::Submission {
                    round,
                    attempt,
                    update_hash,
                    signature,
                },
            ) => {
                if (round, attempt) != (context.round, context.attempt) {
                    return Err(refused(
                        "replayed",
                        format!("submission for round {round} attempt {attempt}"),
                    ));
                }
                let &(group, index) = seats
                    .get(&from)
                    .ok_or_else(|| refused("unexpected", "not in this attempt's cohort".into()))?;
                let hash = B256::from(update_hash);
                if groups[group].masked_input_hash.get(&index) != Some(&hash) {
                    return Err(refused(
                        "bad_signature",
                        "the submission does not sign the masked input received".into(),
                    ));
                }
                Submission::new(context.task_id, round, attempt, hash)
                    .verify(&signature, &context.domain, from)
                    .map_err(|e| refused("bad_signature", e.to_string()))?;
                submissions.insert(
                    from,
                    StoredSubmission {
                        attempt,
                        update_hash,
                        signature,
                    },
                );
                Ok(())
            }
            (
                Collection::Secagg { groups, seats, .. },
                ClientMessage::Decline { round, attempt, .. },
            ) if (round, attempt) == (context.round, context.attempt) => {
                if let Some(&(group, index)) = seats.get(&from) {
                    groups[group].expected.remove(&index);
                }
                Ok(())
            }
            (_, other) => Err(refused(
                "unexpected",
                format!("unexpected {}", message_name(&other)),
            )),
        }
    }

    /// Closes every secagg phase that is complete or overdue and returns
    /// the server messages to send and the phases closed.
    pub fn advance(
        &mut self,
        spec: &TaskSpec,
        now: Instant,
    ) -> (Vec<(Address, SignedMessage)>, Vec<ClosedPhase>) {
        let mut outgoing = Vec::new();
        let mut closed = Vec::new();
        match self {
            Collection::Plain {
                waiting, deadline, ..
            } => {
                if now >= *deadline {
                    waiting.clear();
                }
            }
            Collection::Secagg { groups, .. } => {
                for run in groups.iter_mut().filter(|g| g.outcome.is_none()) {
                    let complete = run.expected.is_subset(&run.answered);
                    if !complete && now < run.deadline {
                        continue;
                    }
                    let phase = Phase::ALL[run.phase];
                    closed.push(ClosedPhase {
                        phase: phase.name(),
                        duration: now.saturating_duration_since(run.started),
                    });
                    match run.session.phase_deadline_passed() {
                        Ok(PhaseOutcome::Messages(messages)) => {
                            run.phase += 1;
                            let next = Phase::ALL[run.phase.min(Phase::ALL.len() - 1)];
                            run.expected = messages.iter().map(|m| m.recipient).collect();
                            run.answered.clear();
                            run.started = now;
                            run.deadline = now + spec.deadline(spec_phase(next));
                            for message in messages {
                                outgoing.push((
                                    run.members[message.recipient as usize],
                                    message.message,
                                ));
                            }
                        }
                        Ok(PhaseOutcome::Sum(sum)) => run.outcome = Some(Ok(sum)),
                        Err(error) => run.outcome = Some(Err(error.to_string())),
                    }
                }
            }
        }
        (outgoing, closed)
    }
}

fn message_name(message: &ClientMessage) -> &'static str {
    match message {
        ClientMessage::Hello { .. } => "Hello",
        ClientMessage::JoinSignature { .. } => "JoinSignature",
        ClientMessage::SecAgg { .. } => "SecAgg message",
        ClientMessage::Submission { .. } => "Submission",
        ClientMessage::PlainUpdate { .. } => "PlainUpdate",
        ClientMessage::Decline { .. } => "Decline",
    }
}

/// Little-endian `f32`s of exactly `dimension` finite values.
fn parse_update(bytes: &[u8], dimension: usize) -> Result<Vec<f32>, String> {
    if bytes.len() != dimension * 4 {
        return Err(format!(
            "update of {} bytes; the task's models have {dimension} parameters ({} bytes)",
            bytes.len(),
            dimension * 4
        ));
    }
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(position) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!("update value {position} is not finite"));
    }
    Ok(values)
}
