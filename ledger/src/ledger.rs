//! The reward contract as Rust calls: one [`Ledger`] over any [`Chain`], so
//! the embedded EVM and a JSON-RPC node run exactly the same code.
//!
//! Every call is ABI-encoded with the `sol!` bindings of
//! [`fedstake_contracts`]; a revert is decoded back into the contract's
//! custom error (or the token's), and the failures a user is most likely to
//! hit — not enough tokens, no allowance, the wrong chain, an address that is
//! not a `FederatedRewards` — are checked first and reported as such.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolCall, SolEvent, SolInterface};
use fedstake_contracts::{FederatedRewards, TestToken};

use crate::chain::{Chain, ChainError, Receipt};

pub use fedstake_contracts::FederatedRewards::{Evidence, SignedSubmission, TaskParams, TaskView};

/// Where a posted round stands, as of the latest block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundState {
    /// Never posted.
    NotPosted,
    /// Posted and inside its challenge window.
    Pending,
    /// Its window passed without a veto: claims may use its root.
    Final,
    /// Vetoed by the arbiter, directly or by a veto of an earlier round.
    Vetoed,
}

/// Why a ledger operation failed. Nothing on chain changed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The chain could not be reached or refused the transaction.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The contract refused the call; `error` is its decoded custom error.
    #[error("{function} was refused by the contract: {error}")]
    Refused {
        /// The Solidity function called.
        function: &'static str,
        /// The decoded revert reason, e.g. `InsufficientStake { available: 5, requested: 9 }`.
        error: String,
    },
    /// A return value or event that does not decode as the ABI says.
    #[error("{function} returned data that does not match the contract ABI: {reason}")]
    BadReturn {
        /// The Solidity function or event.
        function: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The account holds fewer tokens than the operation moves.
    #[error(
        "{account} holds {available} of token {token} but {needed} are needed; get more tokens first"
    )]
    InsufficientBalance {
        /// The token contract.
        token: Address,
        /// Whose balance.
        account: Address,
        /// What the operation moves.
        needed: U256,
        /// What the account holds.
        available: U256,
    },
    /// The account has not approved the reward contract to move enough tokens.
    #[error(
        "{owner} allows the reward contract {spender} to move {approved} of token {token} but \
         {needed} are needed; approve it first"
    )]
    MissingAllowance {
        /// The token contract.
        token: Address,
        /// The token owner.
        owner: Address,
        /// The reward contract.
        spender: Address,
        /// What the operation moves.
        needed: U256,
        /// What is approved.
        approved: U256,
    },
    /// The chain is not the one the task or keys are bound to.
    #[error("{chain} has chain id {found}, expected {expected}")]
    WrongChainId {
        /// The chain.
        chain: String,
        /// The id the caller expected.
        expected: u64,
        /// The id the chain reports.
        found: u64,
    },
    /// The address holds no contract, or one that is not `FederatedRewards`.
    #[error("{address} on {chain} is not a FederatedRewards contract: {reason}")]
    NotOurContract {
        /// The address given.
        address: Address,
        /// The chain.
        chain: String,
        /// What was found instead.
        reason: String,
    },
}

/// Decodes a revert payload into a readable error: the reward contract's
/// custom errors, then the token's (OpenZeppelin ERC-20 errors bubble up
/// through SafeERC20), then `Error(string)` / `Panic(uint256)`.
fn decode_revert(data: &[u8]) -> String {
    if let Ok(error) = FederatedRewards::FederatedRewardsErrors::abi_decode(data) {
        return format!("{error:?}");
    }
    if let Ok(error) = TestToken::TestTokenErrors::abi_decode(data) {
        return format!("{error:?}");
    }
    alloy::sol_types::decode_revert_reason(data)
        .unwrap_or_else(|| format!("unknown revert data 0x{}", alloy::hex::encode(data)))
}

/// The `FederatedRewards` contract at one address on one chain.
#[derive(Debug)]
pub struct Ledger<C> {
    chain: C,
    contract: Address,
    domain: Eip712Domain,
}

impl<C: Chain> Ledger<C> {
    /// Deploys a new `FederatedRewards` from `deployer`.
    pub async fn deploy(chain: C, deployer: &PrivateKeySigner) -> Result<Ledger<C>, LedgerError> {
        let receipt = chain
            .send(deployer, None, FederatedRewards::BYTECODE.clone())
            .await?;
        let contract = receipt
            .contract_address
            .ok_or_else(|| LedgerError::BadReturn {
                function: "constructor",
                reason: "the deployment created no contract".into(),
            })?;
        Ledger::attach(chain, contract, None).await
    }

    /// The contract at `contract`, after checking that it is a
    /// `FederatedRewards` (its EIP-712 domain names it, EIP-5267) and, when
    /// `expected_chain_id` is given, that the chain is that one.
    pub async fn attach(
        chain: C,
        contract: Address,
        expected_chain_id: Option<u64>,
    ) -> Result<Ledger<C>, LedgerError> {
        let chain_id = chain.chain_id().await?;
        if let Some(expected) = expected_chain_id.filter(|expected| *expected != chain_id) {
            return Err(LedgerError::WrongChainId {
                chain: chain.describe(),
                expected,
                found: chain_id,
            });
        }
        let not_ours = |reason: String| LedgerError::NotOurContract {
            address: contract,
            chain: chain.describe(),
            reason,
        };
        if chain.code(contract).await?.is_empty() {
            return Err(not_ours("there is no contract at that address".into()));
        }
        let input = FederatedRewards::eip712DomainCall {}.abi_encode();
        let output = chain
            .call(Address::ZERO, contract, input.into())
            .await
            .map_err(|e| not_ours(format!("it does not answer eip712Domain() ({e})")))?;
        let domain = FederatedRewards::eip712DomainCall::abi_decode_returns(&output)
            .map_err(|e| not_ours(format!("its eip712Domain() is malformed ({e})")))?;
        if domain.name != "FederatedRewards" || domain.version != "1" {
            return Err(not_ours(format!(
                "its EIP-712 domain is {:?} version {:?}",
                domain.name, domain.version
            )));
        }
        if domain.chainId != U256::from(chain_id) || domain.verifyingContract != contract {
            return Err(not_ours(
                "its EIP-712 domain names another chain or address".into(),
            ));
        }
        let domain = fedstake_protocol::submission_domain(chain_id, contract);
        Ok(Ledger {
            chain,
            contract,
            domain,
        })
    }

    /// The chain the contract lives on.
    pub fn chain(&self) -> &C {
        &self.chain
    }

    /// The contract's address.
    pub fn address(&self) -> Address {
        self.contract
    }

    /// The EIP-712 domain clients sign their submissions in.
    pub fn domain(&self) -> &Eip712Domain {
        &self.domain
    }

    async fn view<T: SolCall>(&self, to: Address, call: T) -> Result<T::Return, LedgerError> {
        let output = self
            .chain
            .call(Address::ZERO, to, call.abi_encode().into())
            .await
            .map_err(|e| refused(T::SIGNATURE, e))?;
        T::abi_decode_returns(&output).map_err(|e| LedgerError::BadReturn {
            function: T::SIGNATURE,
            reason: e.to_string(),
        })
    }

    async fn transact<T: SolCall>(
        &self,
        signer: &PrivateKeySigner,
        to: Address,
        call: T,
    ) -> Result<Receipt, LedgerError> {
        self.chain
            .send(signer, Some(to), call.abi_encode().into())
            .await
            .map_err(|e| refused(T::SIGNATURE, e))
    }

    // ----- tokens -------------------------------------------------------------

    /// `account`'s balance of `token`.
    pub async fn balance_of(&self, token: Address, account: Address) -> Result<U256, LedgerError> {
        self.view(token, TestToken::balanceOfCall { account }).await
    }

    /// What `owner` allows the reward contract to move of `token`.
    pub async fn allowance(&self, token: Address, owner: Address) -> Result<U256, LedgerError> {
        self.view(
            token,
            TestToken::allowanceCall {
                owner,
                spender: self.contract,
            },
        )
        .await
    }

    /// Lets the reward contract move `amount` of `owner`'s `token`.
    pub async fn approve(
        &self,
        owner: &PrivateKeySigner,
        token: Address,
        amount: U256,
    ) -> Result<Receipt, LedgerError> {
        let call = TestToken::approveCall {
            spender: self.contract,
            value: amount,
        };
        self.transact(owner, token, call).await
    }

    /// Checks that `owner` holds and has approved `needed` of `token`.
    async fn check_funds(
        &self,
        token: Address,
        owner: Address,
        needed: U256,
    ) -> Result<(), LedgerError> {
        let available = self.balance_of(token, owner).await?;
        if available < needed {
            return Err(LedgerError::InsufficientBalance {
                token,
                account: owner,
                needed,
                available,
            });
        }
        let approved = self.allowance(token, owner).await?;
        if approved < needed {
            return Err(LedgerError::MissingAllowance {
                token,
                owner,
                spender: self.contract,
                needed,
                approved,
            });
        }
        Ok(())
    }

    // ----- tasks --------------------------------------------------------------

    /// Creates a task and escrows its pool from `sponsor`; returns the task id.
    pub async fn create_task(
        &self,
        sponsor: &PrivateKeySigner,
        params: TaskParams,
    ) -> Result<(U256, Receipt), LedgerError> {
        self.check_funds(params.token, sponsor.address(), params.pool)
            .await?;
        let receipt = self
            .transact(
                sponsor,
                self.contract,
                FederatedRewards::createTaskCall { params },
            )
            .await?;
        let created = receipt
            .logs
            .iter()
            .find_map(|log| FederatedRewards::TaskCreated::decode_log(log).ok())
            .ok_or_else(|| LedgerError::BadReturn {
                function: "createTask",
                reason: "no TaskCreated event".into(),
            })?;
        Ok((created.data.taskId, receipt))
    }

    /// Everything about a task, as of the latest block.
    pub async fn task(&self, task_id: U256) -> Result<TaskView, LedgerError> {
        self.view(
            self.contract,
            FederatedRewards::getTaskCall { taskId: task_id },
        )
        .await
    }

    /// Sends the unspent pool (and, after the claim deadline, what was never
    /// claimed) back to the sponsor.
    pub async fn reclaim(
        &self,
        sponsor: &PrivateKeySigner,
        task_id: U256,
    ) -> Result<Receipt, LedgerError> {
        self.transact(
            sponsor,
            self.contract,
            FederatedRewards::reclaimCall { taskId: task_id },
        )
        .await
    }

    // ----- stake --------------------------------------------------------------

    /// Adds `amount` to `client`'s active stake in the task.
    pub async fn stake(
        &self,
        client: &PrivateKeySigner,
        task_id: U256,
        amount: U256,
    ) -> Result<Receipt, LedgerError> {
        let token = self.task(task_id).await?.token;
        self.check_funds(token, client.address(), amount).await?;
        let call = FederatedRewards::stakeCall {
            taskId: task_id,
            amount,
        };
        self.transact(client, self.contract, call).await
    }

    /// Moves `amount` of active stake to unbonding (still slashable).
    pub async fn request_unstake(
        &self,
        client: &PrivateKeySigner,
        task_id: U256,
        amount: U256,
    ) -> Result<Receipt, LedgerError> {
        let call = FederatedRewards::requestUnstakeCall {
            taskId: task_id,
            amount,
        };
        self.transact(client, self.contract, call).await
    }

    /// Pays out unbonded stake after the unbonding period.
    pub async fn withdraw(
        &self,
        client: &PrivateKeySigner,
        task_id: U256,
    ) -> Result<Receipt, LedgerError> {
        self.transact(
            client,
            self.contract,
            FederatedRewards::withdrawCall { taskId: task_id },
        )
        .await
    }

    /// `account`'s active stake, unbonding stake and unbonding end.
    pub async fn stake_of(
        &self,
        task_id: U256,
        account: Address,
    ) -> Result<FederatedRewards::stakeOfReturn, LedgerError> {
        self.view(
            self.contract,
            FederatedRewards::stakeOfCall {
                taskId: task_id,
                account,
            },
        )
        .await
    }

    // ----- rounds -------------------------------------------------------------

    /// Posts a round's model hash and cumulative payout root, reserving
    /// `round_total` from the pool (coordinator only).
    pub async fn post_round(
        &self,
        coordinator: &PrivateKeySigner,
        task_id: U256,
        round: u64,
        model_hash: B256,
        cumulative_root: B256,
        round_total: U256,
    ) -> Result<Receipt, LedgerError> {
        let call = FederatedRewards::postRoundCall {
            taskId: task_id,
            round,
            modelHash: model_hash,
            cumulativeRoot: cumulative_root,
            roundTotal: round_total,
        };
        self.transact(coordinator, self.contract, call).await
    }

    /// Vetoes a round and every later one still pending (arbiter only).
    pub async fn veto(
        &self,
        arbiter: &PrivateKeySigner,
        task_id: U256,
        round: u64,
    ) -> Result<Receipt, LedgerError> {
        let call = FederatedRewards::vetoCall {
            taskId: task_id,
            round,
        };
        self.transact(arbiter, self.contract, call).await
    }

    /// Where a round stands.
    pub async fn round_state(&self, task_id: U256, round: u64) -> Result<RoundState, LedgerError> {
        let call = FederatedRewards::roundInfoCall {
            taskId: task_id,
            round,
        };
        let info = self.view(self.contract, call).await?;
        match info.status {
            0 => Ok(RoundState::NotPosted),
            1 => Ok(RoundState::Pending),
            2 => Ok(RoundState::Final),
            3 => Ok(RoundState::Vetoed),
            other => Err(LedgerError::BadReturn {
                function: "roundInfo",
                reason: format!("unknown round status {other}"),
            }),
        }
    }

    // ----- claims -------------------------------------------------------------

    /// Claims `account`'s cumulative payout against the latest final root
    /// (anyone may send it; the tokens go to `account`).
    pub async fn claim(
        &self,
        sender: &PrivateKeySigner,
        task_id: U256,
        account: Address,
        cumulative_amount: U256,
        proof: Vec<B256>,
    ) -> Result<Receipt, LedgerError> {
        let call = FederatedRewards::claimCall {
            taskId: task_id,
            account,
            cumulativeAmount: cumulative_amount,
            proof,
        };
        self.transact(sender, self.contract, call).await
    }

    /// What `account` has claimed so far (cumulative).
    pub async fn claimed(&self, task_id: U256, account: Address) -> Result<U256, LedgerError> {
        self.view(
            self.contract,
            FederatedRewards::claimedCall {
                taskId: task_id,
                account,
            },
        )
        .await
    }

    // ----- slashing -----------------------------------------------------------

    /// Slashes up to `amount` of `client`'s stake with its signed submission
    /// as evidence (coordinator only); returns the slash id.
    pub async fn slash(
        &self,
        coordinator: &PrivateKeySigner,
        task_id: U256,
        client: Address,
        round: u64,
        amount: U256,
        evidence: Evidence,
    ) -> Result<(B256, Receipt), LedgerError> {
        let call = FederatedRewards::slashCall {
            taskId: task_id,
            client,
            round,
            amount,
            evidence,
        };
        let receipt = self.transact(coordinator, self.contract, call).await?;
        let id = self.slash_id(task_id, client, round, false).await?;
        Ok((id, receipt))
    }

    /// Slashes a client that signed two different updates for one round
    /// (anyone may send it); returns the slash id.
    pub async fn slash_equivocation(
        &self,
        sender: &PrivateKeySigner,
        task_id: U256,
        client: Address,
        round: u64,
        first: SignedSubmission,
        second: SignedSubmission,
    ) -> Result<(B256, Receipt), LedgerError> {
        let call = FederatedRewards::slashEquivocationCall {
            taskId: task_id,
            client,
            round,
            a: first,
            b: second,
        };
        let receipt = self.transact(sender, self.contract, call).await?;
        let id = self.slash_id(task_id, client, round, true).await?;
        Ok((id, receipt))
    }

    async fn slash_id(
        &self,
        task_id: U256,
        client: Address,
        round: u64,
        equivocation: bool,
    ) -> Result<B256, LedgerError> {
        let call = FederatedRewards::slashIdOfCall {
            taskId: task_id,
            client,
            round,
            equivocation,
        };
        self.view(self.contract, call).await
    }

    /// Vetoes a pending slash (arbiter only).
    pub async fn veto_slash(
        &self,
        arbiter: &PrivateKeySigner,
        task_id: U256,
        slash_id: B256,
    ) -> Result<Receipt, LedgerError> {
        let call = FederatedRewards::vetoSlashCall {
            taskId: task_id,
            slashId: slash_id,
        };
        self.transact(arbiter, self.contract, call).await
    }

    /// Makes a slash final after its window; the stake goes to the pool.
    pub async fn finalize_slash(
        &self,
        sender: &PrivateKeySigner,
        task_id: U256,
        slash_id: B256,
    ) -> Result<Receipt, LedgerError> {
        let call = FederatedRewards::finalizeSlashCall {
            taskId: task_id,
            slashId: slash_id,
        };
        self.transact(sender, self.contract, call).await
    }
}

/// Maps a chain error of `function` to a ledger error, decoding reverts.
fn refused(function: &'static str, error: ChainError) -> LedgerError {
    match error {
        ChainError::Reverted { data } => LedgerError::Refused {
            function,
            error: decode_revert(&data),
        },
        other => LedgerError::Chain(other),
    }
}

/// The key that deploys the embedded chain's own contracts. It is public on
/// purpose: the embedded chain is a local ledger, and anyone must be able to
/// find its contracts at the same addresses.
pub fn embedded_deployer() -> PrivateKeySigner {
    let secret = alloy::primitives::keccak256(b"fedstake embedded chain deployer");
    // A fixed input whose hash is a valid secp256k1 scalar (tests use it).
    PrivateKeySigner::from_bytes(&secret).expect("the embedded deployer key is a valid scalar")
}

/// The embedded chain's own reward contract and test token, deployed by
/// [`embedded_deployer`] on first use (nonces 0 and 1) and found at the
/// same addresses afterwards.
pub async fn embedded_defaults<C: Chain>(chain: C) -> Result<(Ledger<C>, Address), LedgerError> {
    let deployer = embedded_deployer();
    let rewards = deployer.address().create(0);
    let token = deployer.address().create(1);
    if chain.code(rewards).await?.is_empty() {
        let ledger = Ledger::deploy(chain, &deployer).await?;
        let deployed = deploy_test_token(ledger.chain(), &deployer).await?;
        debug_assert_eq!((ledger.address(), deployed), (rewards, token));
        return Ok((ledger, deployed));
    }
    Ok((Ledger::attach(chain, rewards, None).await?, token))
}

/// Deploys the `TestToken` ERC-20 (public mint, for local chains and tests).
pub async fn deploy_test_token<C: Chain>(
    chain: &C,
    deployer: &PrivateKeySigner,
) -> Result<Address, LedgerError> {
    let receipt = chain
        .send(deployer, None, TestToken::BYTECODE.clone())
        .await?;
    receipt
        .contract_address
        .ok_or_else(|| LedgerError::BadReturn {
            function: "TestToken constructor",
            reason: "the deployment created no contract".into(),
        })
}

/// Mints `amount` of a `TestToken` to `to`.
pub async fn mint_test_token<C: Chain>(
    chain: &C,
    sender: &PrivateKeySigner,
    token: Address,
    to: Address,
    amount: U256,
) -> Result<Receipt, LedgerError> {
    let input: Bytes = TestToken::mintCall { to, amount }.abi_encode().into();
    chain
        .send(sender, Some(token), input)
        .await
        .map_err(|e| refused("mint", e))
}

/// The on-chain parameters of a task created now (`now`: the chain's
/// timestamp) for a spec hashing to `spec_hash` with `rewards`: what
/// `task create`, the demo and the tests escrow.
pub fn task_params(
    spec_hash: [u8; 32],
    rewards: &fedstake_protocol::spec::RewardsSpec,
    token: Address,
    coordinator: Address,
    arbiter: Address,
    now: u64,
) -> TaskParams {
    let end_time = now + rewards.duration;
    TaskParams {
        specHash: B256::from(spec_hash),
        token,
        coordinator,
        arbiter,
        pool: U256::from(rewards.pool),
        minStake: U256::from(rewards.min_stake),
        roundBudgetCap: U256::from(rewards.round_budget),
        challengeWindow: rewards.challenge_window,
        unbondingPeriod: rewards.unbonding_period,
        endTime: end_time,
        claimDeadline: end_time + rewards.claim_period,
    }
}
