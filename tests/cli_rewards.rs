//! A sponsor and a client use the money commands against an embedded chain
//! file, as a user would: keys, escrow, stake, status, claim, and the errors
//! a user is most likely to hit.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use fedstake_ledger::chain::{Chain, EmbeddedChain};
use fedstake_ledger::embedded_defaults;
use fedstake_rewards::PayoutTree;

const PASSWORD: &str = "correct horse battery staple";

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn chain(&self) -> String {
        format!("embedded:{}", self.path("chain.db").display())
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_fedstake"))
            .args(args)
            .env("FEDSTAKE_PASSWORD", PASSWORD)
            .env("FEDSTAKE_CHAIN", self.chain())
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// A new key; returns its keystore path and address.
    fn key(&self, name: &str) -> (String, Address) {
        let out = self.ok(&["keys", "new", "--dir", "keys", "--name", name]);
        let address = out
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("address")
            .trim()
            .parse()
            .unwrap();
        (self.path("keys").join(name).display().to_string(), address)
    }
}

fn demo_spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/task-demo.toml")
}

#[tokio::test(flavor = "multi_thread")]
async fn sponsor_escrows_client_stakes_and_claims_with_the_published_tree() {
    let ws = Workspace::new();
    let (sponsor_key, sponsor) = ws.key("sponsor");
    let (client_key, client) = ws.key("client");
    assert_eq!(
        ws.ok(&["keys", "show", "--key", &client_key]).trim(),
        client.to_string()
    );
    let wrong = ws.run(&[
        "keys",
        "show",
        "--key",
        &client_key,
        "--password-file",
        "/dev/null",
    ]);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong password"));

    let pool = "1_000_000_000_000_000_000_000";
    ws.ok(&[
        "chain",
        "mint",
        "--key",
        &sponsor_key,
        "--to",
        &sponsor.to_string(),
        "--amount",
        pool,
    ]);
    let stake = "20_000_000_000_000_000_000";
    ws.ok(&[
        "chain",
        "mint",
        "--key",
        &sponsor_key,
        "--to",
        &client.to_string(),
        "--amount",
        stake,
    ]);

    let spec = demo_spec().display().to_string();
    let created = ws.ok(&["task", "create", &spec, "--key", &sponsor_key]);
    assert!(
        created.contains("\ntask 1 created on embedded:"),
        "{created}"
    );

    // Without an allowance, or beyond the balance, the client is told why.
    let error = ws.fails(&[
        "client",
        "stake",
        "--task",
        "1",
        "--amount",
        stake,
        "--key",
        &client_key,
        "--no-approve",
    ]);
    assert!(error.contains("approve it first"), "{error}");
    let error = ws.fails(&[
        "client",
        "stake",
        "--task",
        "1",
        "--amount",
        "30_000_000_000_000_000_000",
        "--key",
        &client_key,
    ]);
    assert!(
        error.contains("are needed; get more tokens first"),
        "{error}"
    );
    let staked = ws.ok(&[
        "client",
        "stake",
        "--task",
        "1",
        "--amount",
        stake,
        "--key",
        &client_key,
    ]);
    assert!(staked.contains("20000000000000000000 active"), "{staked}");

    // The coordinator (here the sponsor's key) posts a round paying the client.
    let earned = U256::from(7_000_000_000_000_000_000u128);
    let tree = PayoutTree::new([(client, earned), (sponsor, U256::from(1))]).unwrap();
    tree.save(&ws.path("payouts.json")).unwrap();
    {
        let chain = EmbeddedChain::open(&ws.path("chain.db"), 31337).unwrap();
        let (ledger, _) = embedded_defaults(chain).await.unwrap();
        let coordinator = PrivateKeySigner::decrypt_keystore(&sponsor_key, PASSWORD).unwrap();
        let total = earned + U256::from(1);
        let task = U256::from(1);
        ledger
            .post_round(&coordinator, task, 1, B256::ZERO, tree.root(), total)
            .await
            .unwrap();
        assert!(ledger.chain().timestamp().await.is_ok());
    }
    let error = ws.fails(&[
        "rewards",
        "claim",
        "--task",
        "1",
        "--payouts",
        "payouts.json",
        "--key",
        &client_key,
    ]);
    assert!(error.contains("latest final root"), "{error}");
    ws.ok(&["chain", "advance", "--seconds", "86401"]);

    let status = ws.ok(&[
        "rewards",
        "status",
        "--task",
        "1",
        "--key",
        &client_key,
        "--payouts",
        "payouts.json",
    ]);
    assert!(
        status.contains("claimable now    7000000000000000000"),
        "{status}"
    );
    let claimed = ws.ok(&[
        "rewards",
        "claim",
        "--task",
        "1",
        "--payouts",
        "payouts.json",
        "--key",
        &client_key,
    ]);
    assert!(
        claimed.starts_with("claimed 7000000000000000000"),
        "{claimed}"
    );
    let status = ws.ok(&[
        "rewards",
        "status",
        "--task",
        "1",
        "--account",
        &client.to_string(),
    ]);
    assert!(
        status.contains("claimed          7000000000000000000"),
        "{status}"
    );
}

#[test]
fn wrong_chain_id_and_foreign_contracts_are_refused_by_name() {
    let ws = Workspace::new();
    let (key, address) = ws.key("someone");
    ws.ok(&[
        "chain",
        "mint",
        "--key",
        &key,
        "--to",
        &address.to_string(),
        "--amount",
        "5",
    ]);

    let error = ws.fails(&[
        "rewards",
        "status",
        "--task",
        "1",
        "--account",
        &address.to_string(),
        "--chain-id",
        "1",
    ]);
    assert!(error.contains("chain id 31337"), "{error}");

    // The embedded chain's test token is a contract, but not ours.
    let token = fedstake_ledger::embedded_deployer().address().create(1);
    let error = ws.fails(&[
        "rewards",
        "status",
        "--task",
        "1",
        "--account",
        &address.to_string(),
        "--contract",
        &token.to_string(),
    ]);
    assert!(
        error.contains("is not a FederatedRewards contract"),
        "{error}"
    );

    let error = ws.fails(&[
        "rewards",
        "status",
        "--task",
        "1",
        "--account",
        &address.to_string(),
        "--chain",
        "http://127.0.0.1:9",
    ]);
    assert!(error.contains("--contract is required"), "{error}");
}
