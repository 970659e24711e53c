//! The round driver: the coordinator's one loop around the round engine.
//!
//! Per round: wait for at least `cohort.min` admitted clients whose stake,
//! read again, still meets the minimum (the others are expelled); record a
//! new attempt in the store; draw the cohort and its groups
//! ([`fedstake_round::draw_cohort`], [`fedstake_round::group_cohort`]);
//! announce; move messages and time into the engine's
//! [`Attempt`] and its messages out to the clients; settle
//! ([`fedstake_round::settle`]); store the settled round in one
//! transaction; tell the participants; post the round and its slashes on
//! chain ([`crate::chain`]). An attempt that yields nothing usable is
//! abandoned and the round runs again with the next attempt number: fresh
//! keys, fresh masks, a fresh cohort drawn from the clients whose masked
//! input reached no earlier attempt of the round
//! ([`fedstake_round::SpentInputs`]: one input per client per round). When
//! too few such clients are left, the round is skipped
//! ([`fedstake_round::skip_round`]): recorded, never posted.
//!
//! On start the coordinator rebuilds the engine's state from the store
//! ([`fedstake_round::RoundState::replay`]) and the driver posts whatever a
//! crash left unposted. An attempt that was running when the coordinator
//! died is never resumed: its number is spent, and the round runs again
//! with the next one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use fedstake_aggregation::Model;
use fedstake_ledger::Ledger;
use fedstake_ledger::chain::Chain;
use fedstake_protocol::spec::Phase as SpecPhase;
use fedstake_protocol::wire::{Role, RoundAnnouncement, RoundResult, ServerMessage};
use fedstake_rewards::PayoutTree;
use fedstake_round::{
    Attempt, AttemptId, AttemptInputs, Collected, Contributions, MAX_ATTEMPTS, Plan, RoundState,
    Settlement, SignedSubmission, SpentInputs, draw_cohort, group_cohort, root_update, settle,
    skip_round,
};
use fedstake_secure_agg::grouping::RoundId;
use fedstake_secure_agg::identity::Identity;
use fedstake_training::data::Dataset;
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::CoordinatorError;
use crate::server::{Event, Shared};
use crate::store::{AttemptOutcome, Store, StoredRound};

/// Stake reads in flight at once when the driver checks the connected
/// clients before an attempt.
const STAKE_READS_IN_FLIGHT: usize = 16;

/// The sponsor's data: validation, and root data when the plan needs a root
/// update.
pub(crate) struct SponsorData {
    pub(crate) validation: Dataset,
    pub(crate) root: Option<Dataset>,
    /// The root update of the round being run: every attempt of a round
    /// starts from the same model, so it is trained once.
    pub(crate) root_update: Option<(u64, Vec<f32>)>,
}

/// What the driver owns.
pub struct Driver<C> {
    pub(crate) shared: Arc<Shared<C>>,
    pub(crate) events: mpsc::Receiver<Event>,
    pub(crate) store: Store,
    pub(crate) plan: Plan,
    pub(crate) state: RoundState<Address>,
    pub(crate) sponsor: SponsorData,
    pub(crate) ledger: Arc<Ledger<C>>,
    pub(crate) signer: PrivateKeySigner,
    pub(crate) identity: Identity,
    pub(crate) global: Model,
    pub(crate) reports: Option<mpsc::UnboundedSender<RoundReport>>,
}

/// What a settled round reports (the demo's table, `task status`).
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// The settled round.
    pub stored: StoredRound,
    /// Attempts of the round that failed before this one.
    pub failed_attempts: u32,
}

/// How an attempt ended.
enum AttemptEnd {
    Settled(Box<StoredRound>),
    Failed {
        reason: String,
        /// Members whose masked input reached the attempt.
        spent: BTreeSet<Address>,
    },
}

impl<C: Chain + 'static> Driver<C> {
    fn task_id(&self) -> U256 {
        self.shared.settings.task_id
    }

    /// Runs every remaining round and returns all settled rounds.
    pub async fn run(mut self) -> Result<Vec<StoredRound>, CoordinatorError> {
        let settled = self.store.settled_rounds()?;
        for round in &settled {
            crate::chain::post_round(
                &self.ledger,
                &self.signer,
                &self.store,
                self.task_id(),
                round,
            )
            .await?;
        }
        let first = settled.last().map_or(1, |r| r.settled.round + 1);
        for round in first..=self.plan.rounds() {
            let mut failed = 0;
            let mut spent = SpentInputs::new();
            let stored = loop {
                let connected = self.wait_for_clients().await?;
                let Some(eligible) = spent.remaining(&self.plan, &connected) else {
                    warn!(
                        round,
                        needed = self.plan.cohort_min(),
                        "too few clients left whose input of the round is unspent; skipping it"
                    );
                    break self.skip(round, failed)?;
                };
                match self.run_attempt(round, &eligible).await? {
                    AttemptEnd::Settled(stored) => break stored,
                    AttemptEnd::Failed {
                        reason,
                        spent: members,
                    } => {
                        failed += 1;
                        spent.record(members);
                        self.shared.metrics.failed_attempts.inc();
                        warn!(round, %reason, "attempt failed; the round runs again");
                        if failed >= MAX_ATTEMPTS {
                            return Err(CoordinatorError::RoundFailed {
                                round,
                                attempts: failed,
                                last: reason,
                            });
                        }
                    }
                }
            };
            crate::chain::post_round(
                &self.ledger,
                &self.signer,
                &self.store,
                self.task_id(),
                &stored,
            )
            .await?;
            self.shared.metrics.rounds.inc();
            if let Some(reports) = &self.reports {
                let _ = reports.send(RoundReport {
                    stored: (*stored).clone(),
                    failed_attempts: failed,
                });
            }
        }
        let rounds = self.plan.rounds();
        for address in self.shared.connected() {
            self.shared
                .send(&address, ServerMessage::Finished { rounds });
        }
        // Let the last messages leave before the endpoint closes.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.shared.close_all("task finished");
        Ok(self.store.settled_rounds()?)
    }

    /// Waits until at least `cohort.min` admitted clients still hold the
    /// minimum stake, and returns them.
    async fn wait_for_clients(&mut self) -> Result<Vec<Address>, CoordinatorError> {
        loop {
            self.wait_for_connections().await?;
            let eligible = self.eligible_clients().await?;
            if eligible.len() >= self.plan.cohort_min() {
                return Ok(eligible);
            }
        }
    }

    /// The connected clients whose active stake still meets the minimum.
    /// The stake is read again before every attempt: a client that
    /// requested to unstake, or was slashed below the minimum, since it
    /// joined is refused and disconnected, as it would be at join.
    async fn eligible_clients(&self) -> Result<Vec<Address>, CoordinatorError> {
        let connected = self.shared.connected();
        // Several reads in flight: over a remote RPC endpoint each one is a
        // round trip.
        let reads = connected.iter().copied().map(|address| {
            let shared = Arc::clone(&self.shared);
            async move { shared.stake_shortfall(address).await }
        });
        let shortfalls: Vec<Option<String>> = stream::iter(reads)
            .buffered(STAKE_READS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut eligible = Vec::new();
        for (address, shortfall) in connected.into_iter().zip(shortfalls) {
            match shortfall {
                None => eligible.push(address),
                Some(reason) => {
                    self.shared.metrics.reject("unstaked");
                    warn!(%address, %reason, "expelling a client below the minimum stake");
                    self.shared.expel(&address, reason);
                }
            }
        }
        Ok(eligible)
    }

    /// Waits until at least `cohort.min` clients are admitted.
    async fn wait_for_connections(&mut self) -> Result<(), CoordinatorError> {
        let min = self.plan.cohort_min();
        let mut announced = false;
        while self.shared.connected().len() < min {
            if !announced {
                info!(
                    connected = self.shared.connected().len(),
                    needed = min,
                    "waiting for clients"
                );
                announced = true;
            }
            // Messages outside an attempt are stale; join events wake us.
            match self.events.recv().await {
                Some(Event::Message { address, .. }) => {
                    self.shared.metrics.reject("outside_attempt");
                    warn!(%address, "message outside an attempt refused");
                }
                Some(_) => {}
                None => return Err(CoordinatorError::Stopped),
            }
        }
        Ok(())
    }

    async fn run_attempt(
        &mut self,
        round: u64,
        eligible: &[Address],
    ) -> Result<AttemptEnd, CoordinatorError> {
        let previous_attempts = self
            .store
            .attempts()?
            .iter()
            .filter(|a| a.round == round)
            .count() as u32;
        let task = self.task_id().to_be_bytes::<32>();
        let cohort = draw_cohort(
            &self.plan,
            &self.state,
            eligible,
            &task,
            round,
            previous_attempts,
        );
        let attempt = self.store.begin_attempt(round, &cohort, unix_now())?;
        let model_bytes = self.global.to_safetensors()?;
        let model_hash = self.global.content_hash();
        self.shared.publish_model(model_hash, model_bytes.clone());
        let id = AttemptId {
            task_id: self.task_id(),
            round,
            attempt,
            domain: self.ledger.domain().clone(),
            dimension: self.global.params().len(),
        };
        let started = Instant::now();
        let announce = |address: &Address, role: Role| {
            self.shared.send(
                address,
                ServerMessage::Round(RoundAnnouncement {
                    round,
                    attempt,
                    model_hash,
                    model_bytes: model_bytes.len() as u64,
                    role,
                }),
            );
        };
        let mut engine = match self.plan.secagg() {
            None => {
                for address in &cohort {
                    announce(address, Role::Plain);
                }
                Attempt::plain(&self.plan, id, &cohort, started.into_std())
            }
            Some(_) => {
                let round_id = RoundId {
                    task_id: task,
                    round,
                    attempt,
                };
                let grouping = match group_cohort(&self.plan, &cohort, &model_hash, &round_id) {
                    Ok(grouping) => grouping,
                    Err(error) => {
                        let reason = format!("grouping: {error}");
                        return self.abandon(round, attempt, reason, BTreeSet::new());
                    }
                };
                let engine = Attempt::secagg(
                    &self.plan,
                    id,
                    &grouping,
                    &self.identity,
                    started.into_std(),
                )
                .map_err(|e| CoordinatorError::Internal(format!("secagg attempt: {e}")))?;
                // Each member recomputes its group from the cohort.
                let announced: Vec<[u8; 20]> = cohort.iter().map(|a| a.into_array()).collect();
                for address in grouping.groups().iter().flatten() {
                    announce(
                        address,
                        Role::SecAgg {
                            cohort: announced.clone(),
                        },
                    );
                }
                engine
            }
        };
        info!(round, attempt, cohort = cohort.len(), "attempt announced");
        self.collect(&mut engine).await?;
        self.shared
            .metrics
            .phase("collect", started.elapsed().as_secs_f64());
        let settle_started = Instant::now();
        let Collected {
            contributions,
            submissions,
            spent,
        } = engine.finish();
        let stakes = self.stakes(&contributions).await?;
        self.train_root_update(round)?;
        let root = self.sponsor.root_update.as_ref().map(|(_, u)| u.as_slice());
        let outcome = settle(
            &self.plan,
            &self.state,
            &self.sponsor.validation,
            &AttemptInputs {
                round,
                attempt,
                global: &self.global,
                contributions: &contributions,
                root_update: root,
                stakes: &stakes,
            },
        );
        let settlement = match outcome {
            Ok(settlement) => settlement,
            Err(error) => return self.abandon(round, attempt, error.to_string(), spent),
        };
        let stored = self.adopt(settlement, &submissions)?;
        self.shared
            .metrics
            .phase("settle", settle_started.elapsed().as_secs_f64());
        let settled = &stored.settled;
        self.shared
            .metrics
            .rejected_inputs
            .inc_by(settled.rejected as u64);
        for (address, accepted) in settled.participants() {
            self.shared.send(
                address,
                ServerMessage::RoundResult(RoundResult {
                    round,
                    attempt,
                    model_hash: settled.model_hash,
                    accuracy: settled.accuracy,
                    payout: settled.payout_of(address),
                    cumulative: self.state.cumulative(address),
                    accepted,
                }),
            );
        }
        info!(
            round,
            attempt,
            accuracy = settled.accuracy,
            accepted = settled.accepted,
            rejected = settled.rejected,
            total = %settled.total(),
            slashes = settled.slashes.len(),
            "round settled"
        );
        Ok(AttemptEnd::Settled(Box::new(stored)))
    }

    /// Stores a settled round (its submissions, record, payout tree and
    /// model) and adopts its state and model.
    fn adopt(
        &mut self,
        settlement: Settlement<Address>,
        submissions: &BTreeMap<Address, SignedSubmission>,
    ) -> Result<StoredRound, CoordinatorError> {
        let Settlement {
            record,
            model,
            next,
        } = settlement;
        for (address, submission) in submissions {
            self.store
                .put_submission(record.round, *address, submission)?;
        }
        let payout_tree = if record.is_skipped() {
            None
        } else {
            Some(
                PayoutTree::from_payouts(next.cumulative_payouts())
                    .map_err(|e| CoordinatorError::Internal(format!("payout tree: {e}")))?,
            )
        };
        let stored = StoredRound {
            settled: record,
            payout_tree,
        };
        self.store.settle_round(&stored, &model.to_safetensors()?)?;
        self.state = next;
        self.global = model;
        Ok(stored)
    }

    /// Skips `round` after `failed` attempts (see the module documentation).
    fn skip(&mut self, round: u64, failed: u32) -> Result<Box<StoredRound>, CoordinatorError> {
        let settlement: Settlement<Address> = skip_round(
            &self.plan,
            &self.state,
            &self.sponsor.validation,
            round,
            failed,
            &self.global,
        )
        .map_err(|e| CoordinatorError::Internal(format!("skipping round {round}: {e}")))?;
        let stored = self.adopt(settlement, &BTreeMap::new())?;
        info!(round, "round skipped");
        Ok(Box::new(stored))
    }

    /// Trains the sponsor's root update of `round` unless it is known or
    /// the plan needs none.
    fn train_root_update(&mut self, round: u64) -> Result<(), CoordinatorError> {
        let Some(root) = self
            .sponsor
            .root
            .as_ref()
            .filter(|_| self.plan.needs_root_update())
        else {
            return Ok(());
        };
        if self
            .sponsor
            .root_update
            .as_ref()
            .is_none_or(|(r, _)| *r != round)
        {
            let update = root_update(&self.plan, self.global.params(), root, round)
                .map_err(|e| CoordinatorError::Internal(format!("root update: {e}")))?;
            self.sponsor.root_update = Some((round, update));
        }
        Ok(())
    }

    /// Records that the attempt gave nothing usable; the round runs again
    /// without the members whose input it `spent`.
    fn abandon(
        &self,
        round: u64,
        attempt: u32,
        reason: String,
        spent: BTreeSet<Address>,
    ) -> Result<AttemptEnd, CoordinatorError> {
        self.store
            .end_attempt(round, attempt, &AttemptOutcome::Abandoned(reason.clone()))?;
        Ok(AttemptEnd::Failed { reason, spent })
    }

    /// Moves messages and time into the attempt, and its messages out, until
    /// it is complete.
    async fn collect(&mut self, engine: &mut Attempt<Address>) -> Result<(), CoordinatorError> {
        engine.handle_timeout(Instant::now().into_std());
        loop {
            while let Some(phase) = engine.poll_closed_phase() {
                self.shared
                    .metrics
                    .phase(phase.phase, phase.duration.as_secs_f64());
            }
            while let Some((address, message)) = engine.poll_transmit() {
                let bytes = message
                    .to_bytes()
                    .map_err(|e| CoordinatorError::Internal(format!("secagg encoding: {e}")))?;
                self.shared
                    .send(&address, ServerMessage::SecAgg { message: bytes });
            }
            if engine.is_complete() {
                return Ok(());
            }
            let deadline = engine.poll_timeout().map_or_else(
                || Instant::now() + self.plan.deadline(SpecPhase::Train),
                Instant::from_std,
            );
            let event = tokio::select! {
                event = self.events.recv() => event,
                () = tokio::time::sleep_until(deadline) => {
                    engine.handle_timeout(Instant::now().into_std());
                    continue;
                }
            };
            let now = Instant::now().into_std();
            match event {
                None => return Err(CoordinatorError::Stopped),
                Some(Event::Joined { .. }) => {}
                Some(Event::Gone {
                    address,
                    connection,
                }) => {
                    if !self.shared.is_current(&address, connection) {
                        engine.handle_member_gone(&address, now);
                    }
                }
                Some(Event::Message {
                    address,
                    connection,
                    message,
                }) => {
                    if !self.shared.is_current(&address, connection) {
                        continue;
                    }
                    if let Err(refused) = engine.handle_message(now, address, message) {
                        let kind = refused.kind.label();
                        self.shared.metrics.reject(kind);
                        warn!(%address, kind, reason = %refused.reason, "message refused");
                    }
                }
            }
        }
    }

    /// Stake (active plus unbonding) of every participant, for slash amounts.
    async fn stakes(
        &self,
        contributions: &Contributions<Address>,
    ) -> Result<BTreeMap<Address, u128>, CoordinatorError> {
        let mut stakes = BTreeMap::new();
        for address in contributions.participants() {
            let stake = self.ledger.stake_of(self.task_id(), address).await?;
            let total = stake.active.saturating_add(stake.unbonding);
            stakes.insert(address, u128::try_from(total).unwrap_or(u128::MAX));
        }
        Ok(stakes)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
