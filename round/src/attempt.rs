//! One attempt of a round as a state machine: fed the cohort's messages and
//! the clock, it says what to send and when it next needs waking, until
//! every group has its sum (secure aggregation) or every member its update
//! (plain), or the deadlines pass. It never touches a socket or a clock.
//!
//! Its methods follow quinn-proto's connection: [`Attempt::handle_message`],
//! [`Attempt::handle_member_gone`] and [`Attempt::handle_timeout`] take
//! events in; [`Attempt::poll_transmit`], [`Attempt::poll_timeout`] and
//! [`Attempt::poll_closed_phase`] say what the driver must do next. The
//! coordinator drives it over QUIC; tests and the lab drive it in memory.
//!
//! The SecAgg+ logic is the secure-agg crate's [`ServerSession`], one per
//! group; the attempt only routes messages to it and closes its phases when
//! every live member has answered or the phase's deadline passes. Messages
//! are checked before they reach a session: they must come from a member of
//! this attempt's cohort and decode within the group's limits; the session
//! then checks signatures and the (task, round, attempt, group) context, so
//! a message replayed from an earlier round or attempt is refused.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::Eip712Domain;
use fedstake_protocol::Submission;
use fedstake_protocol::spec::Phase as SpecPhase;
use fedstake_protocol::wire::ClientMessage;
use fedstake_rewards::settle::GroupSum;
use fedstake_secure_agg::grouping::{Grouping, GroupingError, RoundId};
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::messages::{MessageKind, SignedMessage};
use fedstake_secure_agg::quantize::{check_honest_sum, weighted_mean};
use fedstake_secure_agg::server::{PhaseOutcome, ServerError, ServerSession};
use fedstake_secure_agg::session::{Phase, SessionConfig};

use crate::Plan;
use crate::settle::{Contributions, PlainContribution};

/// A participant of an attempt: ordered, and known by the Ethereum address
/// that signs its submissions.
pub trait Participant: Ord + Clone + Debug {
    /// The address its signatures must recover to.
    fn address(&self) -> Address;
}

impl Participant for Address {
    fn address(&self) -> Address {
        *self
    }
}

/// Why an attempt could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The task's plan has no secure aggregation.
    #[error("a secagg attempt in a plain task")]
    NotSecagg,
    /// A group's configuration could not be built.
    #[error("grouping: {0}")]
    Grouping(#[from] GroupingError),
    /// A group's server session refused its configuration.
    #[error("server session: {0}")]
    Server(#[from] ServerError),
}

/// A client's EIP-712 signature over what it submitted in an attempt: the
/// slashing evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSubmission {
    /// The attempt.
    pub attempt: u32,
    /// Keccak-256 of what the client submitted.
    pub update_hash: B256,
    /// The client's signature.
    pub signature: Vec<u8>,
}

/// Why the attempt refused a message; the metric label is
/// [`RefusalKind::label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// For another round or attempt (or another group's context).
    Replayed,
    /// Not expected from this sender now.
    Unexpected,
    /// Cannot be decoded or out of bounds.
    Malformed,
    /// The signature is not the sender's over what it sent.
    BadSignature,
    /// A SecAgg+ message claiming another member's index.
    Impersonation,
    /// The SecAgg+ session refused it.
    SecAgg,
}

impl RefusalKind {
    /// The label of the metric that counts it.
    pub fn label(self) -> &'static str {
        match self {
            RefusalKind::Replayed => "replayed",
            RefusalKind::Unexpected => "unexpected",
            RefusalKind::Malformed => "malformed",
            RefusalKind::BadSignature => "bad_signature",
            RefusalKind::Impersonation => "impersonation",
            RefusalKind::SecAgg => "secagg",
        }
    }
}

/// A message the attempt refused, for the metrics and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused<P> {
    /// Who sent it.
    pub from: P,
    /// What kind of refusal.
    pub kind: RefusalKind,
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

/// What identifies an attempt to its messages' checks.
#[derive(Debug, Clone)]
pub struct AttemptId {
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
}

/// What an attempt collected.
#[derive(Debug, Clone, PartialEq)]
pub struct Collected<P> {
    /// For [`crate::settle`]: the plain updates, or each completed group's
    /// weighted mean with its survivors.
    pub contributions: Contributions<P>,
    /// The signed submissions received.
    pub submissions: BTreeMap<P, SignedSubmission>,
    /// Members whose masked input arrived, whether or not their group
    /// completed: their input of the round is spent
    /// ([`crate::SpentInputs`]). Members that declined count too: a client
    /// declines a round whose input it spent in an attempt the coordinator
    /// no longer knows of. Empty in plain mode, where nothing is hidden.
    pub spent: BTreeSet<P>,
}

/// One group of a secagg attempt.
struct GroupRun<P> {
    members: Vec<P>,
    session: ServerSession,
    /// Index of the phase being collected in [`Phase::ALL`].
    phase: usize,
    expected: BTreeSet<u32>,
    answered: BTreeSet<u32>,
    /// Members whose connection ended: never waited for again.
    gone: BTreeSet<u32>,
    deadline: Instant,
    started: Instant,
    masked_input_hash: BTreeMap<u32, B256>,
    /// Members that declined the attempt.
    declined: BTreeSet<u32>,
    outcome: Option<Result<Vec<u32>, String>>,
}

enum Collection<P> {
    Plain {
        waiting: BTreeSet<P>,
        updates: BTreeMap<P, PlainContribution>,
        deadline: Instant,
    },
    Secagg {
        groups: Vec<GroupRun<P>>,
        seats: BTreeMap<P, (usize, u32)>,
    },
}

/// One attempt of a round (see the module documentation).
pub struct Attempt<P> {
    plan: Plan,
    id: AttemptId,
    collection: Collection<P>,
    submissions: BTreeMap<P, SignedSubmission>,
    transmit: VecDeque<(P, SignedMessage)>,
    closed: VecDeque<ClosedPhase>,
}

impl<P: Debug> Debug for Attempt<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("round", &self.id.round)
            .field("attempt", &self.id.attempt)
            .finish()
    }
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

impl<P: Participant> Attempt<P> {
    /// A plain attempt collecting an update from each of `cohort`, closing
    /// after the training and upload deadlines.
    pub fn plain(plan: &Plan, id: AttemptId, cohort: &[P], now: Instant) -> Self {
        let deadline =
            now + plan.deadline(SpecPhase::Train) + plan.deadline(SpecPhase::MaskedInput);
        Self::with(
            plan,
            id,
            Collection::Plain {
                waiting: cohort.iter().cloned().collect(),
                updates: BTreeMap::new(),
                deadline,
            },
        )
    }

    /// A secagg attempt of `grouping`, one server session per group held by
    /// `coordinator`; the first phase also covers training.
    pub fn secagg(
        plan: &Plan,
        id: AttemptId,
        grouping: &Grouping<P>,
        coordinator: &Identity,
        now: Instant,
    ) -> Result<Self, StartError> {
        let secagg = plan.secagg().ok_or(StartError::NotSecagg)?;
        let round = RoundId {
            task_id: id.task_id.to_be_bytes(),
            round: id.round,
            attempt: id.attempt,
        };
        let mut groups = Vec::with_capacity(grouping.groups().len());
        for (group, members) in grouping.groups().iter().enumerate() {
            let config = grouping.session_config(
                group,
                &round,
                &secagg.topology,
                id.dimension + 1,
                coordinator.address(),
                |member| member.address().into_array(),
            )?;
            groups.push((
                members.clone(),
                ServerSession::new(config, coordinator.clone())?,
            ));
        }
        let first = plan.deadline(SpecPhase::Train) + plan.deadline(SpecPhase::AdvertiseKeys);
        let mut seats = BTreeMap::new();
        let groups = groups
            .into_iter()
            .enumerate()
            .map(|(group, (members, session))| {
                for (index, member) in members.iter().enumerate() {
                    seats.insert(member.clone(), (group, index as u32));
                }
                GroupRun {
                    expected: (0..members.len() as u32).collect(),
                    members,
                    session,
                    phase: 0,
                    answered: BTreeSet::new(),
                    gone: BTreeSet::new(),
                    deadline: now + first,
                    started: now,
                    masked_input_hash: BTreeMap::new(),
                    declined: BTreeSet::new(),
                    outcome: None,
                }
            })
            .collect();
        Ok(Self::with(plan, id, Collection::Secagg { groups, seats }))
    }

    /// The session configuration of group `group` (secagg), what its
    /// members' client sessions are built with.
    pub fn session_config(&self, group: usize) -> Option<&SessionConfig> {
        match &self.collection {
            Collection::Plain { .. } => None,
            Collection::Secagg { groups, .. } => groups.get(group).map(|g| g.session.config()),
        }
    }

    fn with(plan: &Plan, id: AttemptId, collection: Collection<P>) -> Self {
        Attempt {
            plan: plan.clone(),
            id,
            collection,
            submissions: BTreeMap::new(),
            transmit: VecDeque::new(),
            closed: VecDeque::new(),
        }
    }

    /// The attempt's identity.
    pub fn id(&self) -> &AttemptId {
        &self.id
    }

    /// Whether nothing more can arrive that matters.
    pub fn is_complete(&self) -> bool {
        match &self.collection {
            Collection::Plain { waiting, .. } => waiting.is_empty(),
            Collection::Secagg { groups, .. } => groups.iter().all(|g| g.outcome.is_some()),
        }
    }

    /// When [`Attempt::handle_timeout`] must next be called; `None` once
    /// complete.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.collection {
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

    /// The next SecAgg+ message to send, and to whom.
    pub fn poll_transmit(&mut self) -> Option<(P, SignedMessage)> {
        self.transmit.pop_front()
    }

    /// The next phase that closed, for the metrics.
    pub fn poll_closed_phase(&mut self) -> Option<ClosedPhase> {
        self.closed.pop_front()
    }

    /// Deadlines up to `now` passed: their phases close.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// A cohort member's connection ended: it is not waited for any more.
    pub fn handle_member_gone(&mut self, member: &P, now: Instant) {
        match &mut self.collection {
            Collection::Plain { waiting, .. } => {
                waiting.remove(member);
            }
            Collection::Secagg { groups, seats } => {
                if let Some(&(group, index)) = seats.get(member) {
                    groups[group].expected.remove(&index);
                    groups[group].gone.insert(index);
                }
            }
        }
        self.advance(now);
    }

    /// Takes a message from `from` (anyone: non-members are refused).
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: P,
        message: ClientMessage,
    ) -> Result<(), Refused<P>> {
        // A phase whose deadline passed closes before a late message can
        // count in it.
        self.advance(now);
        let result = self.receive(from, message);
        self.advance(now);
        result
    }

    fn receive(&mut self, from: P, message: ClientMessage) -> Result<(), Refused<P>> {
        let id = &self.id;
        let refused = |kind: RefusalKind, reason: String| Refused {
            from: from.clone(),
            kind,
            reason,
        };
        let this_attempt = |round: u64, attempt: u32| (round, attempt) == (id.round, id.attempt);
        match (&mut self.collection, message) {
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
                if !this_attempt(round, attempt) {
                    return Err(refused(
                        RefusalKind::Replayed,
                        format!(
                            "update for round {round} attempt {attempt}; this is round {} attempt {}",
                            id.round, id.attempt
                        ),
                    ));
                }
                if !waiting.contains(&from) {
                    return Err(refused(
                        RefusalKind::Unexpected,
                        "not waiting for an update from this client".into(),
                    ));
                }
                let values = parse_update(&update, id.dimension)
                    .map_err(|reason| refused(RefusalKind::Malformed, reason))?;
                let max_weight = self.plan.max_weight();
                if weight == 0 || weight > max_weight {
                    return Err(refused(
                        RefusalKind::Malformed,
                        format!("weight {weight} outside 1..={max_weight}"),
                    ));
                }
                let update_hash = keccak256(&update);
                Submission::new(id.task_id, round, attempt, update_hash)
                    .verify(&signature, &id.domain, from.address())
                    .map_err(|e| refused(RefusalKind::BadSignature, e.to_string()))?;
                waiting.remove(&from);
                self.submissions.insert(
                    from.clone(),
                    SignedSubmission {
                        attempt,
                        update_hash,
                        signature,
                    },
                );
                updates.insert(
                    from,
                    PlainContribution {
                        update: values,
                        weight,
                    },
                );
                Ok(())
            }
            (Collection::Plain { waiting, .. }, ClientMessage::Decline { round, attempt, .. })
                if this_attempt(round, attempt) =>
            {
                waiting.remove(&from);
                Ok(())
            }
            (Collection::Secagg { groups, seats }, ClientMessage::SecAgg { message }) => {
                let &(group, index) = seats.get(&from).ok_or_else(|| {
                    refused(
                        RefusalKind::Unexpected,
                        "not in this attempt's cohort".into(),
                    )
                })?;
                let run = &mut groups[group];
                let limits = run.session.config().decode_limits();
                let decoded = SignedMessage::from_bytes(&message, &limits)
                    .map_err(|e| refused(RefusalKind::Malformed, e.to_string()))?;
                if decoded.header.context != run.session.config().context {
                    let c = decoded.header.context;
                    return Err(refused(
                        RefusalKind::Replayed,
                        format!(
                            "SecAgg message of round {} attempt {} group {}; this is round {} attempt {} group {group}",
                            c.round, c.attempt, c.group, id.round, id.attempt
                        ),
                    ));
                }
                if decoded.header.sender != index {
                    return Err(refused(
                        RefusalKind::Impersonation,
                        format!(
                            "sender index {} is not this client's {index}",
                            decoded.header.sender
                        ),
                    ));
                }
                let kind = decoded.kind();
                run.session
                    .receive(decoded)
                    .map_err(|e| refused(RefusalKind::SecAgg, e.to_string()))?;
                if kind == MessageKind::MaskedInput {
                    run.masked_input_hash.insert(index, keccak256(&message));
                }
                run.answered.insert(index);
                Ok(())
            }
            (
                Collection::Secagg { groups, seats },
                ClientMessage::Submission {
                    round,
                    attempt,
                    update_hash,
                    signature,
                },
            ) => {
                if !this_attempt(round, attempt) {
                    return Err(refused(
                        RefusalKind::Replayed,
                        format!("submission for round {round} attempt {attempt}"),
                    ));
                }
                let &(group, index) = seats.get(&from).ok_or_else(|| {
                    refused(
                        RefusalKind::Unexpected,
                        "not in this attempt's cohort".into(),
                    )
                })?;
                let hash = B256::from(update_hash);
                if groups[group].masked_input_hash.get(&index) != Some(&hash) {
                    return Err(refused(
                        RefusalKind::BadSignature,
                        "the submission does not sign the masked input received".into(),
                    ));
                }
                Submission::new(id.task_id, round, attempt, hash)
                    .verify(&signature, &id.domain, from.address())
                    .map_err(|e| refused(RefusalKind::BadSignature, e.to_string()))?;
                self.submissions.insert(
                    from,
                    SignedSubmission {
                        attempt,
                        update_hash: hash,
                        signature,
                    },
                );
                Ok(())
            }
            (
                Collection::Secagg { groups, seats },
                ClientMessage::Decline { round, attempt, .. },
            ) if this_attempt(round, attempt) => {
                if let Some(&(group, index)) = seats.get(&from) {
                    groups[group].expected.remove(&index);
                    groups[group].gone.insert(index);
                    groups[group].declined.insert(index);
                }
                Ok(())
            }
            (_, other) => Err(refused(
                RefusalKind::Unexpected,
                format!("unexpected {}", message_name(&other)),
            )),
        }
    }

    /// Closes every secagg phase that is complete or overdue, queueing the
    /// next phase's messages.
    fn advance(&mut self, now: Instant) {
        match &mut self.collection {
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
                    self.closed.push_back(ClosedPhase {
                        phase: Phase::ALL[run.phase].name(),
                        duration: now.saturating_duration_since(run.started),
                    });
                    match run.session.phase_deadline_passed() {
                        Ok(PhaseOutcome::Messages(messages)) => {
                            run.phase += 1;
                            let next = Phase::ALL[run.phase.min(Phase::ALL.len() - 1)];
                            run.expected = messages
                                .iter()
                                .map(|m| m.recipient)
                                .filter(|recipient| !run.gone.contains(recipient))
                                .collect();
                            run.answered.clear();
                            run.started = now;
                            run.deadline = now + self.plan.deadline(spec_phase(next));
                            for message in messages {
                                self.transmit.push_back((
                                    run.members[message.recipient as usize].clone(),
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
    }

    /// The signed submissions received, the evidence slashes rest on.
    pub fn submissions(&self) -> &BTreeMap<P, SignedSubmission> {
        &self.submissions
    }

    /// What the attempt collected (see [`Collected`]).
    pub fn finish(self) -> Collected<P> {
        let spent = match &self.collection {
            Collection::Plain { .. } => BTreeSet::new(),
            Collection::Secagg { groups, .. } => groups
                .iter()
                .flat_map(|run| {
                    run.masked_input_hash
                        .keys()
                        .chain(&run.declined)
                        .map(|&index| run.members[index as usize].clone())
                })
                .collect(),
        };
        let contributions = match self.collection {
            Collection::Plain { updates, .. } => Contributions::Plain(updates),
            Collection::Secagg { ref groups, .. } => {
                let mut sums = Vec::new();
                let mut failures = Vec::new();
                for (group, run) in groups.iter().enumerate() {
                    match &run.outcome {
                        Some(Ok(sum)) => match group_sum(&self.plan, run, sum) {
                            Ok(sum) => sums.push(sum),
                            Err(reason) => failures.push(format!("group {group}: {reason}")),
                        },
                        Some(Err(reason)) => failures.push(format!("group {group}: {reason}")),
                        None => failures.push(format!("group {group}: did not finish")),
                    }
                }
                Contributions::Groups { sums, failures }
            }
        };
        Collected {
            contributions,
            submissions: self.submissions,
            spent,
        }
    }
}

/// A completed group's weighted mean, with its survivors.
fn group_sum<P: Clone>(plan: &Plan, run: &GroupRun<P>, sum: &[u32]) -> Result<GroupSum<P>, String> {
    let params = &plan
        .secagg()
        .ok_or("a secagg attempt in a plain task")?
        .quantization;
    let survivors = run.session.survivors();
    check_honest_sum(sum, survivors.len(), params).map_err(|e| {
        format!(
            "the sum of {} members is none that clipped inputs give, so a member masked an \
             out-of-bounds input: {e}",
            survivors.len()
        )
    })?;
    let mean = weighted_mean(sum, params).map_err(|e| format!("group mean: {e}"))?;
    let weight = sum.last().copied().unwrap_or(0) as f32;
    let members = survivors
        .iter()
        .map(|&index| run.members[index as usize].clone())
        .collect();
    Ok(GroupSum {
        members,
        mean,
        weight,
    })
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
