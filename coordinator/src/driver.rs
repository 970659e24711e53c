//! The round driver: the coordinator's one loop that runs a task's rounds.
//!
//! Per round: wait for at least `cohort.min` admitted clients whose stake,
//! read again, still meets the minimum (the others are expelled); record a new
//! attempt in the store; draw the cohort (uniform or reputation-weighted,
//! seeded by the task, round and attempt); announce; collect
//! ([`crate::attempt`]); aggregate and settle ([`crate::settle`]); store the
//! settled round in one transaction; tell the participants; post the round
//! and its slashes on chain ([`crate::chain`]). An attempt that yields
//! nothing usable (too many dropouts, no group sum, too few inputs for the
//! rule) is abandoned and the round runs again with the next attempt
//! number: fresh keys, fresh masks, a fresh cohort.
//!
//! On start the driver rebuilds its state from the store: the global model,
//! cumulative payouts, reputation, slashing windows and group attribution of
//! every settled round, and posts whatever a crash left unposted. An attempt
//! that was running when the coordinator died is never resumed: its number
//! is spent, and the round runs again with the next one.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use fedstake_aggregation::Model;
use fedstake_protocol::spec::{Phase as SpecPhase, Selection, TaskSpec};
use fedstake_protocol::wire::{Role, RoundAnnouncement, RoundResult, ServerMessage};
use fedstake_rewards::chain::Chain;
use fedstake_rewards::ledger::Ledger;
use fedstake_secure_agg::grouping::{RoundId, assign_groups};
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::server::ServerSession;
use futures::{StreamExt, TryStreamExt, stream};
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::CoordinatorError;
use crate::attempt::{AttemptContext, Collection};
use crate::server::{Event, Shared};
use crate::settle::{Settlement, Settler};
use crate::store::{SettledRound, Store};

/// Attempts of one round before the coordinator gives up.
pub const MAX_ATTEMPTS: u32 = 20;

/// Stake reads in flight at once when the driver checks the connected
/// clients before an attempt.
const STAKE_READS_IN_FLIGHT: usize = 16;

/// What the driver owns.
pub struct Driver<C> {
    pub(crate) shared: Arc<Shared<C>>,
    pub(crate) events: mpsc::Receiver<Event>,
    pub(crate) store: Store,
    pub(crate) spec: TaskSpec,
    pub(crate) ledger: Arc<Ledger<C>>,
    pub(crate) signer: PrivateKeySigner,
    pub(crate) identity: Identity,
    pub(crate) settler: Settler,
    pub(crate) global: Model,
    pub(crate) reports: Option<mpsc::UnboundedSender<RoundReport>>,
}

/// What a settled round reports (the demo's table, `task status`).
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// The settled round.
    pub settled: SettledRound,
    /// Attempts of the round that failed before this one.
    pub failed_attempts: u32,
}

/// How an attempt ended.
enum AttemptEnd {
    Settled(Box<SettledRound>),
    Failed(String),
}

impl<C: Chain + 'static> Driver<C> {
    fn task_id(&self) -> U256 {
        self.shared.settings.task_id
    }

    /// Runs every remaining round and returns all settled rounds.
    pub async fn run(mut self) -> Result<Vec<SettledRound>, CoordinatorError> {
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
        let first = settled.last().map_or(1, |r| r.round + 1);
        for round in first..=u64::from(self.spec.rounds) {
            let mut failed = 0;
            let settled = loop {
                let eligible = self.wait_for_clients().await?;
                match self.run_attempt(round, &eligible).await? {
                    AttemptEnd::Settled(settled) => break settled,
                    AttemptEnd::Failed(reason) => {
                        failed += 1;
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
                &settled,
            )
            .await?;
            self.shared.metrics.rounds.inc();
            if let Some(reports) = &self.reports {
                let _ = reports.send(RoundReport {
                    settled: (*settled).clone(),
                    failed_attempts: failed,
                });
            }
        }
        let rounds = u64::from(self.spec.rounds);
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
            if eligible.len() >= self.spec.cohort.min as usize {
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
        let min = self.spec.cohort.min as usize;
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

    /// Draws up to `cohort.size` of the `eligible` clients for an attempt.
    fn draw_cohort(&self, eligible: &[Address], round: u64, attempt_hint: u32) -> Vec<Address> {
        let size = (self.spec.cohort.size as usize).min(eligible.len());
        let mut seed = Sha256::new();
        seed.update(b"fedstake/cohort");
        seed.update(self.task_id().to_be_bytes::<32>());
        seed.update(round.to_be_bytes());
        seed.update(attempt_hint.to_be_bytes());
        let mut rng = ChaCha20Rng::from_seed(seed.finalize().into());
        let mut cohort: Vec<Address> = match self.spec.cohort.selection {
            Selection::Uniform => eligible.choose_multiple(&mut rng, size).copied().collect(),
            Selection::Reputation => eligible
                .choose_multiple_weighted(&mut rng, size, |a| 0.05 + self.settler.reputation(a))
                .map(|chosen| chosen.copied().collect())
                .unwrap_or_else(|_| eligible[..size].to_vec()),
        };
        cohort.sort();
        cohort
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
            .filter(|(r, _, _)| *r == round)
            .count() as u32;
        let cohort = self.draw_cohort(eligible, round, previous_attempts);
        let cohort_text: Vec<String> = cohort.iter().map(|a| a.to_string()).collect();
        let attempt = self.store.begin_attempt(round, &cohort_text, unix_now())?;
        let model_bytes = self.global.to_safetensors()?;
        let model_hash = self.global.content_hash();
        self.shared.publish_model(model_hash, model_bytes.clone());
        let round_id = RoundId {
            task_id: self.task_id().to_be_bytes(),
            round,
            attempt,
        };
        let dimension = self.global.params().len();
        let started = Instant::now();
        let mut collection = match self.settler.secagg() {
            None => {
                for address in &cohort {
                    self.announce(
                        address,
                        round,
                        attempt,
                        model_hash,
                        model_bytes.len(),
                        Role::Plain,
                    );
                }
                Collection::plain(&self.spec, &cohort, started)
            }
            Some((params, topology)) => {
                let grouping = match assign_groups(
                    &cohort,
                    params.summands,
                    &crate::settle::grouping_seed(&self.global),
                    &round_id,
                ) {
                    Ok(grouping) => grouping,
                    Err(error) => {
                        self.store.end_attempt(round, attempt, &error.to_string())?;
                        return Ok(AttemptEnd::Failed(format!("grouping: {error}")));
                    }
                };
                let mut groups = Vec::new();
                for (group, members) in grouping.groups().iter().enumerate() {
                    let config = grouping
                        .session_config(
                            group,
                            &round_id,
                            topology,
                            dimension + 1,
                            self.identity.address(),
                            |address| address.0.0,
                        )
                        .map_err(|e| CoordinatorError::Internal(format!("group config: {e}")))?;
                    let session = ServerSession::new(config, self.identity.clone())
                        .map_err(|e| CoordinatorError::Internal(format!("server session: {e}")))?;
                    let addresses: Vec<[u8; 20]> = members.iter().map(|a| a.into_array()).collect();
                    for (index, address) in members.iter().enumerate() {
                        let role = Role::SecAgg {
                            group: group as u32,
                            index: index as u32,
                            members: addresses.clone(),
                        };
                        self.announce(address, round, attempt, model_hash, model_bytes.len(), role);
                    }
                    groups.push((members.clone(), session));
                }
                Collection::secagg(&self.spec, groups, started)
            }
        };
        info!(round, attempt, cohort = cohort.len(), "attempt announced");
        let context = AttemptContext {
            task_id: self.task_id(),
            round,
            attempt,
            domain: self.ledger.domain().clone(),
            dimension,
            max_weight: self.spec.training.max_examples,
        };
        self.collect(&mut collection, &context).await?;
        self.shared
            .metrics
            .phase("collect", started.elapsed().as_secs_f64());
        let settle_started = Instant::now();
        let stakes = self.stakes(&collection).await?;
        let outcome = self
            .settler
            .settle(&self.global, &collection, &context, &stakes);
        let Settlement {
            settled,
            model,
            participants,
            next,
        } = match outcome {
            Ok(settlement) => settlement,
            Err(reason) => {
                self.store.end_attempt(round, attempt, &reason)?;
                return Ok(AttemptEnd::Failed(reason));
            }
        };
        for (address, submission) in crate::settle::submissions(&collection) {
            self.store
                .put_submission(round, &address.to_string(), submission)?;
        }
        self.store
            .settle_round(&settled, &model.to_safetensors()?)?;
        self.settler.adopt(*next);
        self.global = model;
        self.shared
            .metrics
            .phase("settle", settle_started.elapsed().as_secs_f64());
        self.shared
            .metrics
            .rejected_inputs
            .inc_by(settled.rejected as u64);
        for (address, accepted) in participants {
            let payout = settled
                .payouts
                .iter()
                .find(|(a, _)| *a == address.to_string())
                .and_then(|(_, amount)| amount.parse().ok())
                .unwrap_or(0);
            self.shared.send(
                &address,
                ServerMessage::RoundResult(RoundResult {
                    round,
                    attempt,
                    model_hash: self.global.content_hash(),
                    accuracy: settled.accuracy,
                    payout,
                    cumulative: self.settler.cumulative(&address),
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
            total = %settled.total,
            slashes = settled.slashes.len(),
            "round settled"
        );
        Ok(AttemptEnd::Settled(Box::new(settled)))
    }

    fn announce(
        &self,
        address: &Address,
        round: u64,
        attempt: u32,
        model_hash: [u8; 32],
        model_bytes: usize,
        role: Role,
    ) {
        self.shared.send(
            address,
            ServerMessage::Round(RoundAnnouncement {
                round,
                attempt,
                model_hash,
                model_bytes: model_bytes as u64,
                role,
            }),
        );
    }

    /// Moves messages into the collection until it is complete.
    async fn collect(
        &mut self,
        collection: &mut Collection,
        context: &AttemptContext,
    ) -> Result<(), CoordinatorError> {
        loop {
            let (outgoing, closed) = collection.advance(&self.spec, Instant::now());
            for phase in closed {
                self.shared
                    .metrics
                    .phase(phase.phase, phase.duration.as_secs_f64());
            }
            for (address, message) in outgoing {
                let bytes = message
                    .to_bytes()
                    .map_err(|e| CoordinatorError::Internal(format!("secagg encoding: {e}")))?;
                self.shared
                    .send(&address, ServerMessage::SecAgg { message: bytes });
            }
            if collection.is_complete() {
                return Ok(());
            }
            let deadline = collection
                .next_deadline()
                .unwrap_or_else(|| Instant::now() + self.spec.deadline(SpecPhase::Train));
            let event = tokio::select! {
                event = self.events.recv() => event,
                () = tokio::time::sleep_until(deadline) => continue,
            };
            match event {
                None => return Err(CoordinatorError::Stopped),
                Some(Event::Joined { .. }) => {}
                Some(Event::Gone {
                    address,
                    connection,
                }) => {
                    if !self.shared.is_current(&address, connection) {
                        collection.member_gone(&address);
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
                    if let Err(refused) = collection.receive(context, address, message) {
                        self.shared.metrics.reject(refused.kind);
                        warn!(%address, kind = refused.kind, reason = %refused.reason, "message refused");
                    }
                }
            }
        }
    }

    /// Stake (active plus unbonding) of every participant, for slash amounts.
    async fn stakes(
        &self,
        collection: &Collection,
    ) -> Result<BTreeMap<Address, u128>, CoordinatorError> {
        let mut stakes = BTreeMap::new();
        for address in crate::settle::participants(collection) {
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
