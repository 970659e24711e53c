//! The fedstake coordinator (`fedstake coordinator serve`, DESIGN section 3).
//!
//! The IO shell around the round engine (`fedstake_round`): QUIC and
//! admission ([`server`]), one round loop ([`driver`]) that moves messages
//! and time into the engine's attempt and its messages out, the reward
//! contract ([`chain`]), and a SQLite store written before anything is acted
//! on ([`store`]). Cohorts, groups, collection and settlement are the
//! engine's, the same code the lab runs. Metrics are served in Prometheus
//! format ([`metrics`]); the TLS certificate is self-signed and kept in the
//! state directory ([`identity`]).
//!
//! [`Coordinator::start`] checks the task against the chain (spec hash,
//! coordinator address), opens the store, rebuilds the round state from it
//! and starts listening; [`Coordinator::run`] runs the remaining rounds.

pub mod chain;
pub mod driver;
pub mod identity;
pub mod metrics;
pub mod server;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use fedstake_aggregation::Model;
use fedstake_ledger::chain::Chain;
use fedstake_ledger::{Ledger, LedgerError};
use fedstake_protocol::spec::{Phase, TaskSpec};
use fedstake_protocol::wire::{Admission, task_frame_limit};
use fedstake_round::{Plan, PlanError, RoundState};
use fedstake_secure_agg::identity::Identity;
use fedstake_training::data::Dataset;
use tokio::sync::mpsc;

pub use driver::RoundReport;
use driver::{Driver, SponsorData};
use identity::Certificate;
use metrics::Metrics;
use server::{Shared, SharedSettings};
pub use store::{Store, StoredRound};

/// Why the coordinator stopped.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The task or its settings are unusable.
    #[error("{0}")]
    Config(String),
    /// The task spec cannot be run.
    #[error("task spec: {0}")]
    Plan(#[from] PlanError),
    /// The task needs the sponsor's root data and none was given.
    #[error(
        "the task needs the sponsor's root update (FLTrust or scoring.reference = \"root\"): \
         serve it with --root SOURCE, the sponsor's clean root data"
    )]
    NoRootData,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The certificate could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// The chain refused or failed.
    #[error(transparent)]
    Ledger(Box<LedgerError>),
    /// The model could not be encoded.
    #[error("model: {0}")]
    Model(#[from] fedstake_aggregation::ModelError),
    /// A round failed too often.
    #[error("round {round} failed {attempts} attempts; last: {last}")]
    RoundFailed {
        /// The round.
        round: u64,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// Binding a socket failed.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The connection side stopped.
    #[error("the coordinator's connections stopped")]
    Stopped,
    /// A bug or a corrupt store.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<LedgerError> for CoordinatorError {
    fn from(error: LedgerError) -> Self {
        CoordinatorError::Ledger(Box::new(error))
    }
}

/// Everything `coordinator serve` needs besides the ledger.
#[derive(Clone)]
pub struct CoordinatorConfig {
    /// The task spec; its hash must be the one on chain.
    pub spec: TaskSpec,
    /// The on-chain task id.
    pub task_id: U256,
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// TCP address of `/metrics`, if served.
    pub metrics: Option<SocketAddr>,
    /// Directory of the store and the certificate.
    pub state_dir: PathBuf,
    /// The coordinator's key: the task's coordinator on chain.
    pub signer: PrivateKeySigner,
    /// The sponsor's validation data.
    pub validation: Dataset,
    /// The sponsor's clean root data, for tasks that need a root update
    /// (FLTrust, `scoring.reference = "root"`).
    pub root: Option<Dataset>,
    /// Seed of the initial model.
    pub init_seed: u64,
    /// Most clients admitted at once.
    pub max_clients: usize,
    /// Most connections not admitted yet at once (handshake or join in
    /// progress); [`server::DEFAULT_MAX_UNADMITTED`] unless there is a
    /// reason to change it.
    pub max_unadmitted: usize,
    /// Extra DNS names for a new certificate.
    pub names: Vec<String>,
}

/// A started coordinator.
pub struct Coordinator<C> {
    endpoint: quinn::Endpoint,
    certificate: Certificate,
    metrics_address: Option<SocketAddr>,
    driver: Driver<C>,
    accept: tokio::task::JoinHandle<()>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
}

impl<C> std::fmt::Debug for Coordinator<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("certificate", &self.certificate)
            .finish()
    }
}

impl<C: Chain + 'static> Coordinator<C> {
    /// Checks the task on chain, opens the store, rebuilds the state of
    /// settled rounds and listens.
    pub async fn start(
        config: CoordinatorConfig,
        ledger: Arc<Ledger<C>>,
    ) -> Result<Self, CoordinatorError> {
        let spec = &config.spec;
        let plan = Plan::from_spec(spec)?;
        if plan.needs_root_update() && config.root.is_none() {
            return Err(CoordinatorError::NoRootData);
        }
        let task = ledger.task(config.task_id).await?;
        if task.specHash.0 != spec.spec_hash() {
            return Err(CoordinatorError::Config(format!(
                "task {} on chain has spec hash {}, but this spec hashes to 0x{}",
                config.task_id,
                task.specHash,
                spec.spec_hash_hex()
            )));
        }
        if task.coordinator != config.signer.address() {
            return Err(CoordinatorError::Config(format!(
                "task {} names coordinator {}, not this key's {}",
                config.task_id,
                task.coordinator,
                config.signer.address()
            )));
        }
        std::fs::create_dir_all(&config.state_dir).map_err(|e| {
            CoordinatorError::Config(format!(
                "state directory {}: {e}",
                config.state_dir.display()
            ))
        })?;
        let store = Store::open(
            &config.state_dir.join("coordinator.sqlite"),
            &config.task_id.to_string(),
            &spec.spec_hash_hex(),
        )?;
        let mut state = RoundState::new(&plan);
        let global = restore(&store, &plan, &mut state, config.init_seed)?;
        let certificate = Certificate::load_or_create(&config.state_dir, &config.names)?;
        if let Some(pinned) = &spec.coordinator {
            let pinned = pinned
                .fingerprint()
                .map_err(|e| CoordinatorError::Config(e.to_string()))?;
            if pinned != certificate.fingerprint() {
                return Err(CoordinatorError::Config(format!(
                    "the task pins coordinator certificate {}, but {} holds {}; \
                     serve with the state directory whose certificate the task names",
                    hex::encode(pinned),
                    config.state_dir.display(),
                    hex::encode(certificate.fingerprint())
                )));
            }
        }
        let server_config =
            fedstake_quic::server_config(certificate.der.clone(), certificate.key.clone())
                .map_err(|e| CoordinatorError::Config(e.to_string()))?;
        let endpoint = quinn::Endpoint::server(server_config, config.listen).map_err(|source| {
            CoordinatorError::Listen {
                address: config.listen,
                source,
            }
        })?;
        let identity = Identity::from_secret_bytes(&config.signer.to_bytes().0)
            .map_err(|e| CoordinatorError::Config(format!("coordinator key: {e}")))?;
        let frame_limit = task_frame_limit(global.params().len()).ok_or_else(|| {
            CoordinatorError::Config("the model is too large for the wire".into())
        })?;
        let chain_id = ledger.chain().chain_id().await.map_err(LedgerError::from)?;
        let metrics = Arc::new(Metrics::new());
        let (events_tx, events) = mpsc::channel(server::EVENT_QUEUE);
        let shared = Arc::new(Shared::new(
            Arc::clone(&ledger),
            SharedSettings {
                task_id: config.task_id,
                min_stake: task.minStake,
                certificate_sha256: certificate.fingerprint(),
                admission: Admission {
                    spec_toml: spec.to_toml_string(),
                    coordinator: config.signer.address().into_array(),
                    chain_id,
                    contract: ledger.address().into_array(),
                },
                frame_limit,
                join_deadline: spec.deadline(Phase::Join),
                max_clients: config.max_clients,
                max_unadmitted: config.max_unadmitted,
            },
            events_tx,
            Arc::clone(&metrics),
        ));
        let (metrics_address, metrics_task) = match config.metrics {
            Some(address) => {
                let listener = metrics::bind(address)
                    .await
                    .map_err(|source| CoordinatorError::Listen { address, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| CoordinatorError::Listen { address, source })?;
                (
                    Some(bound),
                    Some(tokio::spawn(metrics::serve(listener, metrics))),
                )
            }
            None => (None, None),
        };
        let accept = tokio::spawn(server::accept(endpoint.clone(), Arc::clone(&shared)));
        let driver = Driver {
            shared,
            events,
            store,
            plan,
            state,
            sponsor: SponsorData {
                validation: config.validation,
                root: config.root,
                root_update: None,
            },
            ledger,
            signer: config.signer,
            identity,
            global,
            reports: None,
        };
        Ok(Self {
            endpoint,
            certificate,
            metrics_address,
            driver,
            accept,
            metrics_task,
        })
    }

    /// The UDP address clients connect to.
    pub fn local_addr(&self) -> Result<SocketAddr, CoordinatorError> {
        self.endpoint
            .local_addr()
            .map_err(|e| CoordinatorError::Internal(format!("local address: {e}")))
    }

    /// SHA-256 of the certificate: what clients pin.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.certificate.fingerprint()
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// The coordinator's counters (also served on `/metrics`).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.driver.shared.metrics)
    }

    /// A report per settled round, as the round settles.
    pub fn subscribe(&mut self) -> mpsc::UnboundedReceiver<RoundReport> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.driver.reports = Some(sender);
        receiver
    }

    /// Runs the remaining rounds; returns every settled round.
    pub async fn run(self) -> Result<Vec<StoredRound>, CoordinatorError> {
        let result = self.driver.run().await;
        self.endpoint.close(0u32.into(), b"task finished");
        self.endpoint.wait_idle().await;
        self.accept.abort();
        if let Some(task) = self.metrics_task {
            task.abort();
        }
        result
    }
}

/// The global model after the stored rounds, with the engine's state
/// rebuilt from them.
fn restore(
    store: &Store,
    plan: &Plan,
    state: &mut RoundState<Address>,
    init_seed: u64,
) -> Result<Model, CoordinatorError> {
    let initial = match store.initial_model()? {
        Some(hash) => load_model(store, &hash, None)?,
        None => {
            let architecture = plan.architecture();
            let model = Model::new(
                architecture.layout(),
                architecture.init_parameters(init_seed),
            )?;
            store.put_model(&model.content_hash(), &model.to_safetensors()?)?;
            store.set_initial_model(&model.content_hash())?;
            model
        }
    };
    let mut global = initial;
    for stored in store.settled_rounds()? {
        let next = load_model(store, &stored.settled.model_hash, Some(&global))?;
        let aggregate = next
            .params()
            .iter()
            .zip(global.params())
            .map(|(n, g)| n - g)
            .collect();
        state
            .replay(plan, &stored.settled, aggregate)
            .map_err(|e| CoordinatorError::Internal(format!("stored {e}")))?;
        global = next;
    }
    Ok(global)
}

fn load_model(
    store: &Store,
    hash: &[u8; 32],
    like: Option<&Model>,
) -> Result<Model, CoordinatorError> {
    let hex = hex::encode(hash);
    let bytes = store
        .model(hash)?
        .ok_or_else(|| CoordinatorError::Internal(format!("model {hex} missing from the store")))?;
    let model = Model::from_safetensors(&bytes, like.map(Model::layout))?;
    if &model.content_hash() != hash {
        return Err(CoordinatorError::Internal(format!(
            "stored model {hex} hashes differently"
        )));
    }
    Ok(model)
}
