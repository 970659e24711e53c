//! A task on an embedded chain, a coordinator on loopback QUIC and staked
//! clients, for the network tests.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use fedstake_client::{Behaviour, ClientOptions, CrashPoint, Reconnect, TrainerFactory};
use fedstake_coordinator::{Coordinator, CoordinatorConfig, CoordinatorError};
use fedstake_ledger::chain::{Chain, EmbeddedChain};
use fedstake_ledger::{Ledger, embedded_defaults, mint_test_token};
use fedstake_protocol::join::JoinChallenge;
use fedstake_protocol::spec::{DEFAULT_CHAIN_ID, TaskSpec};
use fedstake_protocol::wire::{
    ClientMessage, JOIN_FRAME_LIMIT, ServerMessage, decode_server, encode,
};
use fedstake_quic::{FrameReader, FrameWriter};
use fedstake_training::data::{Dataset, SyntheticSpec, synthetic};
use fedstake_training::trainer::{BackendOptions, build_trainer};

/// A secagg task: logistic regression on 10 features and 3 classes, groups
/// of 5 (each tolerates one dropout), short deadlines.
pub fn secagg_spec(rounds: u32, cohort: u32, min: u32) -> TaskSpec {
    TaskSpec::from_toml_str(&format!(
        r#"
name = "network test"
rounds = {rounds}

[model]
kind = "logreg"

[data]
features = 10
classes = 3

[cohort]
size = {cohort}
min = {min}

[deadlines]
join = 10
train = 20
advertise_keys = 5
share_keys = 5
masked_input = 5
consistency = 5
unmasking = 5

[training]
epochs = 1
batch_size = 16
learning_rate = 0.1
max_examples = 100

[training.optimizer]
kind = "sgd"

[update]
clip_norm = 2.0
fractional_bits = 16

[privacy]
mode = "secagg"
group_size = 5
threshold = 3

[aggregation]
rule = "fedavg"

[rewards]
pool = "1_000_000_000_000_000_000_000"
round_budget = "10_000_000_000_000_000_000"
min_stake = "1_000_000_000_000_000_000"
challenge_window = 60

[slashing]
window = 3
min_flags = 2
fraction = 0.1
"#
    ))
    .unwrap()
}

/// The same task in plain mode with the coordinate-wise median and a
/// slashing rule of 2 flags in 3 rounds taking half the stake.
pub fn plain_median_spec(rounds: u32, cohort: u32) -> TaskSpec {
    let text = secagg_spec(rounds, cohort, cohort).to_toml_string();
    let text = text
        .replace(
            "mode = \"secagg\"\ngroup_size = 5\nthreshold = 3\ncorrupt_per_group = 1",
            "mode = \"plain\"",
        )
        .replace("rule = \"fedavg\"", "rule = \"median\"")
        .replace("fraction = 0.1", "fraction = 0.5");
    let spec = TaskSpec::from_toml_str(&text).unwrap();
    assert_eq!(spec.privacy.mode(), "plain", "{text}");
    assert_eq!(spec.aggregation.rule.name(), "median", "{text}");
    spec
}

/// What the tests need of a task.
pub struct Net {
    pub dir: tempfile::TempDir,
    pub ledger: Arc<Ledger<EmbeddedChain>>,
    pub task_id: U256,
    pub spec: TaskSpec,
    pub clients: Vec<PrivateKeySigner>,
    pub data: Vec<Dataset>,
    pub validation: Dataset,
    pub coordinator: PrivateKeySigner,
}

/// Stake per client: twice the minimum.
pub fn stake_amount(spec: &TaskSpec) -> U256 {
    U256::from(spec.rewards.as_ref().unwrap().min_stake) * U256::from(2)
}

/// A random sponsor escrows `spec`'s pool in a new task coordinated by
/// `coordinator`, and each of `clients` stakes `stake`; returns the task id.
pub async fn escrow_and_stake<C: Chain>(
    ledger: &Ledger<C>,
    token: Address,
    spec: &TaskSpec,
    coordinator: Address,
    clients: &[PrivateKeySigner],
    stake: U256,
) -> U256 {
    let sponsor = PrivateKeySigner::random();
    let rewards = spec.rewards.as_ref().unwrap();
    let pool = U256::from(rewards.pool);
    mint_test_token(ledger.chain(), &sponsor, token, sponsor.address(), pool)
        .await
        .unwrap();
    ledger.approve(&sponsor, token, pool).await.unwrap();
    let now = ledger.chain().timestamp().await.unwrap();
    let params = fedstake_ledger::task_params(
        spec.spec_hash(),
        rewards,
        token,
        coordinator,
        sponsor.address(),
        now,
    );
    let (task_id, _) = ledger.create_task(&sponsor, params).await.unwrap();
    for client in clients {
        mint_test_token(ledger.chain(), client, token, client.address(), stake)
            .await
            .unwrap();
        ledger.approve(client, token, stake).await.unwrap();
        ledger.stake(client, task_id, stake).await.unwrap();
    }
    task_id
}

/// Creates the task and `clients` staked clients (with 60 examples each of
/// one synthetic dataset).
pub async fn setup(spec: TaskSpec, clients: usize) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(&dir.path().join("chain.sqlite"), DEFAULT_CHAIN_ID).unwrap();
    let (ledger, token) = embedded_defaults(chain).await.unwrap();
    let coordinator = PrivateKeySigner::random();
    let signers: Vec<PrivateKeySigner> = (0..clients).map(|_| PrivateKeySigner::random()).collect();
    let stake = stake_amount(&spec);
    let task_id = escrow_and_stake(
        &ledger,
        token,
        &spec,
        coordinator.address(),
        &signers,
        stake,
    )
    .await;
    let all = synthetic(&SyntheticSpec {
        classes: spec.data.classes as usize,
        dim: spec.data.features as usize,
        examples: clients * 60 + 300,
        separation: 3.0,
        noise: 1.0,
        seed: 5,
    })
    .unwrap();
    let (pool, validation) = all.split(300.0 / all.len() as f64, 5).unwrap();
    let data = (0..clients)
        .map(|i| pool.select(&(i * 60..(i + 1) * 60).collect::<Vec<_>>()))
        .collect();
    Net {
        dir,
        ledger: Arc::new(ledger),
        task_id,
        spec,
        clients: signers,
        data,
        validation,
        coordinator,
    }
}

impl Net {
    pub fn coordinator_state(&self) -> PathBuf {
        self.dir.path().join("coordinator")
    }

    /// The coordinator's configuration on loopback, admitting `max_clients`.
    pub fn config(&self, metrics: bool, max_clients: usize) -> CoordinatorConfig {
        CoordinatorConfig {
            spec: self.spec.clone(),
            task_id: self.task_id,
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics: metrics.then(|| "127.0.0.1:0".parse().unwrap()),
            state_dir: self.coordinator_state(),
            signer: self.coordinator.clone(),
            validation: self.validation.clone(),
            root: None,
            init_seed: 1,
            max_clients,
            max_unadmitted: fedstake_coordinator::server::DEFAULT_MAX_UNADMITTED,
            names: Vec::new(),
        }
    }

    /// Starts the coordinator on loopback, admitting `max_clients` at once.
    pub async fn coordinator(
        &self,
        metrics: bool,
        max_clients: usize,
    ) -> Coordinator<EmbeddedChain> {
        Coordinator::start(self.config(metrics, max_clients), Arc::clone(&self.ledger))
            .await
            .unwrap()
    }

    /// Why the coordinator refuses to start for this task.
    pub async fn start_error(&self) -> CoordinatorError {
        Coordinator::start(self.config(false, 10), Arc::clone(&self.ledger))
            .await
            .expect_err("the coordinator started")
    }

    /// Client `index`'s options.
    pub fn client(
        &self,
        index: usize,
        coordinator: SocketAddr,
        fingerprint: [u8; 32],
        crash: Option<CrashPoint>,
    ) -> ClientOptions {
        client_options(
            &self.spec,
            self.task_id,
            &self.clients[index],
            &self.data[index],
            &self.dir.path().join(format!("client-{index}")),
            (coordinator, fingerprint),
            client_seed(index),
            crash,
        )
    }
}

/// Client `index`'s shuffling seed.
pub fn client_seed(index: usize) -> u64 {
    100 + index as u64
}

/// The trainer every test client builds (the ndarray backend).
pub fn trainer_factory(seed: u64) -> TrainerFactory {
    Arc::new(move |spec: &TaskSpec| {
        build_trainer(spec, Path::new("."), &BackendOptions::default(), seed)
    })
}

#[allow(clippy::too_many_arguments)]
pub fn client_options(
    spec: &TaskSpec,
    task_id: U256,
    signer: &PrivateKeySigner,
    data: &Dataset,
    state_dir: &Path,
    (coordinator, fingerprint): (SocketAddr, [u8; 32]),
    seed: u64,
    crash: Option<CrashPoint>,
) -> ClientOptions {
    ClientOptions {
        coordinator,
        server_name: "localhost".into(),
        certificate_sha256: fingerprint,
        task_id,
        spec_hash: spec.spec_hash(),
        signer: signer.clone(),
        data: Arc::new(data.clone()),
        trainer: trainer_factory(seed),
        state_dir: state_dir.to_path_buf(),
        reconnect: Reconnect {
            initial: std::time::Duration::from_millis(100),
            max: std::time::Duration::from_secs(1),
            attempts: 100,
        },
        behaviour: Behaviour::Honest,
        crash,
        seed,
    }
}

/// A raw connection that has sent Hello and answered the challenge with a
/// signature by `signer`, claiming `claimed`; returns the coordinator's
/// answer.
pub async fn join_raw(
    coordinator: SocketAddr,
    fingerprint: [u8; 32],
    net: &Net,
    claimed: Address,
    signer: &PrivateKeySigner,
) -> (quinn::Connection, FrameReader, FrameWriter, ServerMessage) {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(fedstake_quic::client_config(fingerprint).unwrap());
    let connection = endpoint
        .connect(coordinator, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (send, recv) = connection.open_bi().await.unwrap();
    let mut writer = FrameWriter::new(send, JOIN_FRAME_LIMIT);
    let mut reader = FrameReader::new(recv, JOIN_FRAME_LIMIT);
    let task_id = net.task_id.to_be_bytes::<32>();
    writer
        .send(&encode(&ClientMessage::Hello {
            task_id,
            address: claimed.into_array(),
        }))
        .await
        .unwrap();
    let ServerMessage::Challenge {
        nonce,
        certificate_sha256,
        ..
    } = decode_server(&reader.next().await.unwrap()).unwrap()
    else {
        panic!("no challenge");
    };
    let challenge = JoinChallenge {
        task_id: net.task_id,
        nonce,
        certificate_sha256,
    };
    let signature = signer
        .sign_message_sync(challenge.text().as_bytes())
        .unwrap();
    writer
        .send(&encode(&ClientMessage::JoinSignature {
            signature: signature.as_bytes().to_vec(),
        }))
        .await
        .unwrap();
    let answer = decode_server(&reader.next().await.unwrap()).unwrap();
    (connection, reader, writer, answer)
}

/// [`join_raw`] claiming the signer's own address.
pub async fn join_as(
    coordinator: SocketAddr,
    fingerprint: [u8; 32],
    net: &Net,
    signer: &PrivateKeySigner,
) -> (quinn::Connection, FrameReader, FrameWriter, ServerMessage) {
    join_raw(coordinator, fingerprint, net, signer.address(), signer).await
}
