//! The clients of one simulated task and their local training: each trains
//! the global model on its own data with the production trainer and
//! `fedstake_training::local_update`, exactly as a real client does.

use fedstake_round::Plan;
use fedstake_training::data::Dataset;
use fedstake_training::trainer::{CpuTrainer, LocalUpdate, local_update};

use crate::SimError;

/// The clients of one simulated task with their data.
pub struct Population {
    plan: Plan,
    clients: Vec<Dataset>,
}

impl Population {
    /// A population of `clients`, each with its dataset, training as `plan`
    /// says.
    pub fn new(plan: Plan, clients: Vec<Dataset>) -> Result<Self, SimError> {
        if clients.is_empty() {
            return Err(SimError::Config(
                "a population needs at least one client".into(),
            ));
        }
        Ok(Self { plan, clients })
    }

    /// The clients' datasets.
    pub fn clients(&self) -> &[Dataset] {
        &self.clients
    }

    /// The training seed of client `index` in a run seeded `seed`: what the
    /// real client is started with.
    pub fn client_seed(seed: u64, index: usize) -> u64 {
        seed ^ index as u64
    }

    /// Client `index`'s update of `round` from `global` (clipped, weight
    /// capped), as its real client would compute it.
    pub fn local_update(
        &self,
        index: usize,
        global: &[f32],
        round: u64,
        seed: u64,
    ) -> Result<LocalUpdate, SimError> {
        let mut trainer = CpuTrainer::new(
            self.plan.architecture().clone(),
            self.plan.optimizer(),
            global.to_vec(),
        )?;
        Ok(local_update(
            &mut trainer,
            &self.clients[index],
            global,
            self.plan.spec(),
            (Self::client_seed(seed, index), round),
            |_| {},
        )?)
    }
}
