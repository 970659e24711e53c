//! What every command that touches money shares: which chain, which reward
//! contract, whose key — and the local-chain helpers (`fedstake chain ...`).

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use fedstake_ledger::chain::{AnyChain, Chain, EmbeddedChain, RpcChain};
use fedstake_ledger::{Ledger, embedded_defaults, mint_test_token};
use fedstake_protocol::spec::{ChainEndpoint, DEFAULT_CHAIN_ID, parse_token_amount};

/// Where the embedded chain lives when `--chain` is not given.
pub const DEFAULT_EMBEDDED_STORE: &str = "fedstake-chain.db";

/// The chain and reward contract to use.
#[derive(Debug, Clone, clap::Args)]
pub struct ChainArgs {
    /// `embedded:<path>` (an in-process EVM whose state is kept in that SQLite
    /// file) or an http:// / https:// JSON-RPC endpoint.
    #[arg(
        long,
        env = "FEDSTAKE_CHAIN",
        default_value = "embedded:fedstake-chain.db"
    )]
    pub chain: String,
    /// The chain id to expect (EIP-155); a chain with another id is refused.
    #[arg(long, env = "FEDSTAKE_CHAIN_ID", default_value_t = DEFAULT_CHAIN_ID)]
    pub chain_id: u64,
    /// The FederatedRewards contract. Required with a JSON-RPC endpoint; the
    /// embedded chain deploys its own on first use.
    #[arg(long, env = "FEDSTAKE_CONTRACT")]
    pub contract: Option<Address>,
}

/// A ledger ready to use, and the embedded chain's own test token if that
/// is where it is.
pub struct Connected {
    /// The reward contract on the chosen chain.
    pub ledger: Ledger<AnyChain>,
    /// The embedded chain's test token (`None` on a JSON-RPC chain or with
    /// an explicit `--contract`).
    pub local_token: Option<Address>,
}

impl ChainArgs {
    /// Opens the chain and checks the contract (and chain id).
    pub async fn connect(&self) -> anyhow::Result<Connected> {
        let endpoint = ChainEndpoint::parse(&self.chain)
            .map_err(|reason| anyhow::anyhow!("--chain: {reason}"))?;
        match endpoint {
            ChainEndpoint::Embedded { path } => {
                let path = path.unwrap_or_else(|| PathBuf::from(DEFAULT_EMBEDDED_STORE));
                let chain =
                    AnyChain::Embedded(Box::new(EmbeddedChain::open(&path, self.chain_id)?));
                match self.contract {
                    Some(contract) => {
                        let ledger = Ledger::attach(chain, contract, Some(self.chain_id)).await?;
                        Ok(Connected {
                            ledger,
                            local_token: None,
                        })
                    }
                    None => {
                        let (ledger, token) = embedded_defaults(chain).await?;
                        Ok(Connected {
                            ledger,
                            local_token: Some(token),
                        })
                    }
                }
            }
            ChainEndpoint::JsonRpc { url } => {
                let Some(contract) = self.contract else {
                    bail!("--contract is required with a JSON-RPC chain ({url})");
                };
                let chain = AnyChain::Rpc(RpcChain::connect(&url)?);
                let ledger = Ledger::attach(chain, contract, Some(self.chain_id)).await?;
                Ok(Connected {
                    ledger,
                    local_token: None,
                })
            }
        }
    }
}

/// Whose key signs: an encrypted JSON keystore (as `fedstake keys new`
/// writes and other Ethereum tools read).
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// The keystore file.
    #[arg(long, env = "FEDSTAKE_KEY")]
    pub key: PathBuf,
    /// A file whose first line is the keystore password. Without it the
    /// password is taken from $FEDSTAKE_PASSWORD, else asked on the terminal.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

impl KeyArgs {
    /// Decrypts the key.
    pub fn signer(&self) -> anyhow::Result<PrivateKeySigner> {
        let password = password(self.password_file.as_deref(), false)?;
        PrivateKeySigner::decrypt_keystore(&self.key, password).with_context(|| {
            format!(
                "cannot open keystore {} (wrong password or not a keystore)",
                self.key.display()
            )
        })
    }
}

/// The keystore password: from a file, the environment, or the terminal
/// (asked twice when `confirm`, for a new key).
pub fn password(file: Option<&Path>, confirm: bool) -> anyhow::Result<String> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read password file {}", file.display()))?;
        return Ok(text.lines().next().unwrap_or_default().to_owned());
    }
    if let Ok(password) = std::env::var("FEDSTAKE_PASSWORD") {
        return Ok(password);
    }
    let password = rpassword::prompt_password("keystore password: ")
        .context("no --password-file, no $FEDSTAKE_PASSWORD and no terminal to ask on")?;
    if confirm && rpassword::prompt_password("again: ")? != password {
        bail!("the two passwords differ");
    }
    Ok(password)
}

/// A token amount in base units: an integer, `_` separators allowed.
pub fn parse_amount(text: &str) -> Result<U256, String> {
    let amount = parse_token_amount(text)?;
    Ok(U256::from(amount))
}

/// Runs an async command body on a fresh runtime (multi-threaded: the
/// coordinator aggregates and the client trains while connections are
/// served).
pub fn block_on<T>(
    body: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(body)
}

/// `fedstake chain mint`: mints the test token (local chains only).
pub async fn mint(
    chain: &ChainArgs,
    key: &KeyArgs,
    to: Address,
    amount: U256,
    token: Option<Address>,
) -> anyhow::Result<()> {
    let connected = chain.connect().await?;
    let Some(token) = token.or(connected.local_token) else {
        bail!("--token is required unless the chain is the embedded chain with its own token");
    };
    let signer = key.signer()?;
    let ledger = &connected.ledger;
    mint_test_token(ledger.chain(), &signer, token, to, amount).await?;
    let balance = ledger.balance_of(token, to).await?;
    println!("minted {amount} of token {token} to {to}; balance {balance}");
    Ok(())
}

/// `fedstake chain advance`: moves the block clock (embedded chain, anvil).
pub async fn advance(chain: &ChainArgs, seconds: u64) -> anyhow::Result<()> {
    let connected = chain.connect().await?;
    let ledger = &connected.ledger;
    ledger.chain().advance_time(seconds).await?;
    println!("block time is now {}", ledger.chain().timestamp().await?);
    Ok(())
}
