//! `fedstake demo`, first cut: federated training of the embedded demo task in
//! one process.
//!
//! The sponsor's validation set and every client's private data are drawn from
//! one synthetic Gaussian-cluster dataset; clients get label-skewed (non-IID)
//! shares of it through a Dirichlet partition; each round every client trains
//! locally from the global model and the clipped updates are combined with
//! FedAvg. No network, secure aggregation or chain is involved yet.

use fedstake_client::data::{SyntheticSpec, synthetic};
use fedstake_client::trainer::{Evaluation, architecture_for, optimizer_for, schedule_for};
use fedstake_protocol::spec::TaskSpec;

use crate::SimError;
use crate::federated::{LocalSettings, Population, RoundOutcome};
use crate::partition::{Partition, partition};

/// The demo's task spec, compiled into the binary.
pub const DEMO_TASK: &str = include_str!("../../examples/task-demo.toml");

/// Knobs of the demo beyond the task spec.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Rounds to run; `None` runs the spec's `rounds`.
    pub rounds: Option<u32>,
    /// Seed of the data, the partition, the initialization and the shuffling.
    pub seed: u64,
    /// Dirichlet concentration of the label skew (smaller is more skewed).
    pub alpha: f64,
    /// Examples per client, on average.
    pub examples_per_client: usize,
    /// Examples held by the sponsor for validation.
    pub validation_examples: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            rounds: None,
            seed: 7,
            alpha: 0.3,
            examples_per_client: 400,
            validation_examples: 2000,
        }
    }
}

/// One client of the demo, as the table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoClient {
    /// Number of local examples.
    pub examples: usize,
    /// Examples per class.
    pub class_counts: Vec<usize>,
}

/// Everything the demo did.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoReport {
    /// Task name.
    pub task: String,
    /// SHA-256 of the canonical task spec, hex.
    pub spec_hash: String,
    /// Number of model parameters.
    pub parameters: usize,
    /// The clients and their local data.
    pub clients: Vec<DemoClient>,
    /// The initial model on the validation set.
    pub initial: Evaluation,
    /// One entry per round.
    pub rounds: Vec<RoundOutcome>,
    /// Content hash of the final global model, hex.
    pub final_model_hash: String,
}

/// Runs the demo for `spec` (normally [`DEMO_TASK`]).
pub fn run_demo(spec: &TaskSpec, options: &DemoOptions) -> Result<DemoReport, SimError> {
    let architecture = architecture_for(&spec.model, &spec.data)?;
    let settings = LocalSettings {
        optimizer: optimizer_for(&spec.training)?,
        schedule: schedule_for(&spec.training, options.seed),
        clip_norm: spec.update.clip_norm as f32,
        max_examples: spec.training.max_examples as usize,
        architecture: architecture.clone(),
    };
    let clients = spec.cohort.size as usize;
    let data = synthetic(&SyntheticSpec {
        classes: spec.data.classes as usize,
        dim: spec.data.features as usize,
        examples: clients * options.examples_per_client + options.validation_examples,
        separation: 3.0,
        noise: 1.0,
        seed: options.seed,
    })?;
    let validation_fraction = options.validation_examples as f64 / data.len() as f64;
    let (pool, validation) = data.split(validation_fraction, options.seed)?;
    let shards = partition(
        pool.labels()
            .as_slice()
            .ok_or_else(|| SimError::Config("labels not contiguous".into()))?,
        pool.classes(),
        clients,
        Partition::Dirichlet {
            alpha: options.alpha,
        },
        spec.training.batch_size as usize,
        options.seed,
    )?;
    let client_data: Vec<_> = shards.iter().map(|idx| pool.select(idx)).collect();
    let demo_clients = client_data
        .iter()
        .map(|d| DemoClient {
            examples: d.len(),
            class_counts: d.class_counts(),
        })
        .collect();

    let mut population = Population::new(settings, client_data, validation, options.seed)?;
    let initial = population.evaluate()?;
    let rounds = options.rounds.unwrap_or(spec.rounds);
    let mut outcomes = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        outcomes.push(population.fedavg_round(options.seed)?);
    }
    let model =
        fedstake_aggregation::Model::new(architecture.layout(), population.global().to_vec())
            .map_err(fedstake_client::trainer::TrainError::from)?;
    Ok(DemoReport {
        task: spec.name.clone(),
        spec_hash: hex::encode(spec.spec_hash()),
        parameters: architecture.num_params(),
        clients: demo_clients,
        initial,
        rounds: outcomes,
        final_model_hash: model.content_hash_hex(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_learns_and_is_deterministic() {
        let spec = TaskSpec::from_toml_str(DEMO_TASK).unwrap();
        let options = DemoOptions {
            rounds: Some(4),
            ..DemoOptions::default()
        };
        let report = run_demo(&spec, &options).unwrap();
        assert_eq!(report.rounds.len(), 4);
        let last = report.rounds.last().unwrap();
        assert!(
            last.validation.accuracy > report.initial.accuracy + 0.3,
            "accuracy {} -> {}",
            report.initial.accuracy,
            last.validation.accuracy
        );
        assert!(last.validation.loss < report.initial.loss);
        assert_eq!(report.clients.len(), spec.cohort.size as usize);
        let again = run_demo(&spec, &options).unwrap();
        assert_eq!(again.final_model_hash, report.final_model_hash);
    }
}
