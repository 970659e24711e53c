//! The clients of one simulated task and their local training: each trains
//! the global model it is given on its own data through the production
//! trainer and clips its update, as a real client does.

use fedstake_aggregation::norm::clip_l2;
use fedstake_training::data::Dataset;
use fedstake_training::trainer::{Architecture, CpuTrainer, LocalTraining, Optimizer, Trainer};

use crate::SimError;

/// A client's contribution to one round.
#[derive(Debug, Clone)]
pub struct ClientUpdate {
    /// `local - global` after clipping to the task's L2 bound.
    pub update: Vec<f32>,
    /// Aggregation weight: the client's example count, capped (at least 1).
    pub weight: u32,
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
    pub max_examples: u32,
}

/// The clients of one simulated task with their data.
pub struct Population {
    settings: LocalSettings,
    clients: Vec<Dataset>,
}

impl Population {
    /// A population of `clients`, each with its dataset.
    pub fn new(settings: LocalSettings, clients: Vec<Dataset>) -> Result<Self, SimError> {
        if clients.is_empty() {
            return Err(SimError::Config(
                "a population needs at least one client".into(),
            ));
        }
        Ok(Self { settings, clients })
    }

    /// The clients' datasets.
    pub fn clients(&self) -> &[Dataset] {
        &self.clients
    }

    /// Client `index`'s update of `round` from `global`; the shuffling seed
    /// is derived from `seed`, the client and the round, so rounds are
    /// reproducible whatever order clients run in.
    pub fn local_update(
        &self,
        index: usize,
        global: &[f32],
        round: u64,
        seed: u64,
    ) -> Result<ClientUpdate, SimError> {
        let mut trainer = CpuTrainer::new(
            self.settings.architecture.clone(),
            self.settings.optimizer,
            global.to_vec(),
        )?;
        let schedule = LocalTraining {
            seed: seed ^ index as u64 ^ (round << 32),
            ..self.settings.schedule
        };
        let data = &self.clients[index];
        trainer.train(data, &schedule)?;
        let mut update: Vec<f32> = trainer
            .parameters()
            .iter()
            .zip(global)
            .map(|(l, g)| l - g)
            .collect();
        clip_l2(&mut update, self.settings.clip_norm);
        let examples = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Ok(ClientUpdate {
            update,
            weight: examples.min(self.settings.max_examples).max(1),
        })
    }
}
