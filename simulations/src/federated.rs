//! One federated population in memory: clients with their local data, the
//! sponsor's validation set and the global model, advanced a round at a time
//! through the same trainer and aggregation code the real client and
//! coordinator run.

use fedstake_aggregation::norm::clip_l2;
use fedstake_aggregation::weighted_mean;
use fedstake_client::data::Dataset;
use fedstake_client::trainer::{
    Architecture, CpuTrainer, Evaluation, LocalTraining, Optimizer, Trainer,
};
use ndarray::Array2;
use rayon::prelude::*;

use crate::SimError;

/// A client's contribution to one round.
#[derive(Debug, Clone)]
pub struct ClientUpdate {
    /// `local - global` after clipping to the task's L2 bound.
    pub update: Vec<f32>,
    /// Aggregation weight: the client's example count, capped.
    pub weight: f32,
    /// Norm of the update before clipping.
    pub norm_before_clip: f64,
    /// Mean training loss of the client's last local epoch.
    pub train_loss: f64,
}

/// What one round did.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOutcome {
    /// Round number, from 1.
    pub round: usize,
    /// Clients whose updates were aggregated.
    pub participants: usize,
    /// Weighted mean of the clients' last-epoch training losses.
    pub train_loss: f64,
    /// Mean update norm before clipping.
    pub mean_update_norm: f64,
    /// Updates the L2 bound scaled down.
    pub clipped: usize,
    /// The new global model on the validation set.
    pub validation: Evaluation,
}

/// Local training settings shared by every client of a population.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// The network.
    pub architecture: Architecture,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Epochs and batch size (the seed is derived per client and round).
    pub schedule: LocalTraining,
    /// L2 bound every update is clipped to.
    pub clip_norm: f32,
    /// Cap on a client's aggregation weight (its example count).
    pub max_examples: usize,
}

/// Clients, validation data and the global model of one simulated task.
pub struct Population {
    settings: LocalSettings,
    clients: Vec<Dataset>,
    validation: Dataset,
    global: Vec<f32>,
    round: usize,
}

impl Population {
    /// A population starting from the architecture's seeded initialization.
    pub fn new(
        settings: LocalSettings,
        clients: Vec<Dataset>,
        validation: Dataset,
        init_seed: u64,
    ) -> Result<Self, SimError> {
        if clients.is_empty() {
            return Err(SimError::Config(
                "a population needs at least one client".into(),
            ));
        }
        let global = settings.architecture.init_parameters(init_seed);
        Ok(Self {
            settings,
            clients,
            validation,
            global,
            round: 0,
        })
    }

    /// The current global parameters.
    pub fn global(&self) -> &[f32] {
        &self.global
    }

    /// The clients' datasets.
    pub fn clients(&self) -> &[Dataset] {
        &self.clients
    }

    /// The global model on the validation set.
    pub fn evaluate(&self) -> Result<Evaluation, SimError> {
        let trainer = self.trainer(self.global.clone())?;
        Ok(trainer.evaluate(&self.validation)?)
    }

    /// Validation loss of the global model moved by `delta` (the global
    /// model itself is unchanged).
    pub fn validation_loss_with(&self, delta: &[f32]) -> Result<f64, SimError> {
        let params = self.global.iter().zip(delta).map(|(g, d)| g + d).collect();
        let trainer = self.trainer(params)?;
        Ok(trainer.evaluate(&self.validation)?.loss)
    }

    fn trainer(&self, params: Vec<f32>) -> Result<CpuTrainer, SimError> {
        Ok(CpuTrainer::new(
            self.settings.architecture.clone(),
            self.settings.optimizer,
            params,
        )?)
    }

    /// Trains client `index` from the global model; the shuffling seed is
    /// derived from `seed`, the round and the client, so rounds are
    /// reproducible whatever order clients run in.
    pub fn local_update(&self, index: usize, seed: u64) -> Result<ClientUpdate, SimError> {
        self.train_update(&self.clients[index], seed ^ index as u64)
    }

    /// Trains on `data` from the global model and returns the clipped update
    /// (`seed` is mixed with the round number).
    pub fn train_update(&self, data: &Dataset, seed: u64) -> Result<ClientUpdate, SimError> {
        let mut trainer = self.trainer(self.global.clone())?;
        let schedule = LocalTraining {
            seed: seed ^ ((self.round as u64) << 32),
            ..self.settings.schedule
        };
        let report = trainer.train(data, &schedule)?;
        let mut update: Vec<f32> = trainer
            .parameters()
            .iter()
            .zip(&self.global)
            .map(|(l, g)| l - g)
            .collect();
        let norm_before_clip = clip_l2(&mut update, self.settings.clip_norm);
        Ok(ClientUpdate {
            update,
            weight: data.len().min(self.settings.max_examples) as f32,
            norm_before_clip,
            train_loss: report.epoch_losses.last().copied().unwrap_or(f64::NAN),
        })
    }

    /// Adds `update` to the global model and advances the round counter.
    pub fn apply(&mut self, update: &[f32]) {
        self.global
            .iter_mut()
            .zip(update)
            .for_each(|(g, a)| *g += a);
        self.round += 1;
    }

    /// Rounds applied so far.
    pub fn round(&self) -> usize {
        self.round
    }

    /// The local training settings.
    pub fn settings(&self) -> &LocalSettings {
        &self.settings
    }

    /// The sponsor's validation set.
    pub fn validation(&self) -> &Dataset {
        &self.validation
    }

    /// One FedAvg round with every client: local training in parallel, the
    /// weighted mean of the clipped updates added to the global model.
    pub fn fedavg_round(&mut self, seed: u64) -> Result<RoundOutcome, SimError> {
        let updates: Vec<ClientUpdate> = (0..self.clients.len())
            .into_par_iter()
            .map(|i| self.local_update(i, seed))
            .collect::<Result<_, _>>()?;
        let dim = self.global.len();
        let matrix = Array2::from_shape_vec(
            (updates.len(), dim),
            updates
                .iter()
                .flat_map(|u| u.update.iter().copied())
                .collect(),
        )
        .map_err(|e| SimError::Config(format!("update matrix: {e}")))?;
        let weights: Vec<f32> = updates.iter().map(|u| u.weight).collect();
        let aggregate = weighted_mean(matrix.view(), &weights)?;
        self.global
            .iter_mut()
            .zip(aggregate.iter())
            .for_each(|(g, a)| *g += a);
        self.round += 1;

        let total_weight: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        let clip = f64::from(self.settings.clip_norm);
        Ok(RoundOutcome {
            round: self.round,
            participants: updates.len(),
            train_loss: updates
                .iter()
                .map(|u| u.train_loss * f64::from(u.weight))
                .sum::<f64>()
                / total_weight,
            mean_update_norm: updates.iter().map(|u| u.norm_before_clip).sum::<f64>()
                / updates.len() as f64,
            clipped: updates.iter().filter(|u| u.norm_before_clip > clip).count(),
            validation: self.evaluate()?,
        })
    }
}
