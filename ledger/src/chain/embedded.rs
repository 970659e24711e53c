//! An EVM chain inside the process: revm executes the transactions, SQLite
//! keeps every account, code and storage slot, so a restart (or a crash after
//! a transaction returned) keeps every balance.
//!
//! Each transaction is its own block. A transaction's state changes are
//! written to SQLite in one SQLite transaction *before* they are applied in
//! memory, so memory never holds state the file does not. Gas is priced at
//! zero: accounts need no ether, and gas is still metered and reported.
//!
//! The block clock is the wall clock plus an offset that
//! [`Chain::advance_time`] moves forward (tests pass a challenge window
//! without waiting), and never goes backwards.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use revm::context::TxEnv;
use revm::context::result::{ExecutionResult, Output};
use revm::database::{CacheDB, EmptyDB};
use revm::primitives::hardfork::SpecId;
use revm::state::{AccountInfo, Bytecode, EvmState};
use revm::{Context, DatabaseCommit, ExecuteEvm, MainBuilder, MainContext};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Chain, ChainError, Receipt};

/// Gas limit of every embedded transaction: just under the EIP-7825 cap.
const TX_GAS_LIMIT: u64 = 16_000_000;

/// Tables prefixed `evm_`, so the chain can share a database file with the
/// coordinator's own tables.
const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS evm_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    chain_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    clock_offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS evm_accounts (
    address BLOB PRIMARY KEY,
    balance BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    code_hash BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evm_code (
    hash BLOB PRIMARY KEY,
    code BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evm_storage (
    address BLOB NOT NULL,
    slot BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (address, slot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evm_transactions (
    hash BLOB PRIMARY KEY,
    number INTEGER NOT NULL,
    sender BLOB NOT NULL,
    recipient BLOB,
    gas_used INTEGER NOT NULL,
    logs TEXT NOT NULL
) WITHOUT ROWID;
";

/// The latest block and the clock.
#[derive(Debug, Clone, Copy)]
struct Head {
    chain_id: u64,
    number: u64,
    timestamp: u64,
    /// Seconds added to the wall clock by `advance_time`.
    clock_offset: u64,
}

impl Head {
    /// The timestamp of the next block: the shifted wall clock, but never
    /// before the latest block.
    fn next_timestamp(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.timestamp.max(wall.saturating_add(self.clock_offset))
    }
}

struct State {
    db: CacheDB<EmptyDB>,
    store: Connection,
    head: Head,
}

/// An in-process EVM whose state lives in a SQLite file.
pub struct EmbeddedChain {
    path: PathBuf,
    state: Mutex<State>,
}

impl std::fmt::Debug for EmbeddedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedChain")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedChain {
    /// Opens the chain stored at `path`, creating it with `chain_id` if the
    /// file has no chain yet. An existing chain with another id is refused.
    pub fn open(path: &Path, chain_id: u64) -> Result<EmbeddedChain, ChainError> {
        let describe = path.display().to_string();
        let store_error = |source| ChainError::Store {
            path: describe.clone(),
            source,
        };
        let store = Connection::open(path).map_err(store_error)?;
        store.execute_batch(SCHEMA).map_err(store_error)?;

        let existing = store
            .query_row(
                "SELECT chain_id, number, timestamp, clock_offset FROM evm_head WHERE id = 1",
                [],
                |row| {
                    Ok(Head {
                        chain_id: row.get(0)?,
                        number: row.get(1)?,
                        timestamp: row.get(2)?,
                        clock_offset: row.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(store_error)?;
        let head = match existing {
            Some(head) if head.chain_id != chain_id => {
                return Err(ChainError::CorruptStore {
                    path: describe,
                    reason: format!(
                        "it holds chain id {}, but chain id {chain_id} was asked for",
                        head.chain_id
                    ),
                });
            }
            Some(head) => head,
            None => {
                let genesis = Head {
                    chain_id,
                    number: 0,
                    timestamp: 0,
                    clock_offset: 0,
                };
                let genesis = Head {
                    timestamp: genesis.next_timestamp(),
                    ..genesis
                };
                write_head(&store, &genesis).map_err(store_error)?;
                genesis
            }
        };
        let db = load_state(&store, &describe)?;
        Ok(EmbeddedChain {
            path: path.to_path_buf(),
            state: Mutex::new(State { db, store, head }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave memory ahead of the
        // file (the file is written first), so a poisoned lock is usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn store_error(&self) -> impl Fn(rusqlite::Error) -> ChainError + '_ {
        move |source| ChainError::Store {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Runs `tx` on top of the current state in a block at `head`, without
    /// applying it.
    fn execute(
        db: &mut CacheDB<EmptyDB>,
        head: &Head,
        tx: TxEnv,
    ) -> Result<(ExecutionResult, EvmState), ChainError> {
        let mut evm = Context::mainnet()
            .with_db(db)
            .modify_cfg_chained(|cfg| {
                cfg.chain_id = head.chain_id;
                // Pinned so a revm upgrade cannot change gas or semantics
                // under a running chain; the contract needs Cancun or later.
                cfg.set_spec_and_mainnet_gas_params(SpecId::PRAGUE);
            })
            .modify_block_chained(|block| {
                block.number = U256::from(head.number);
                block.timestamp = U256::from(head.timestamp);
                block.gas_limit = TX_GAS_LIMIT;
                block.basefee = 0;
            })
            .build_mainnet();
        let outcome = evm
            .transact(tx)
            .map_err(|e| ChainError::InvalidTransaction(e.to_string()))?;
        Ok((outcome.result, outcome.state))
    }

    fn transaction(head: &Head, from: Address, kind: TxKind, nonce: u64, input: Bytes) -> TxEnv {
        TxEnv {
            caller: from,
            kind,
            data: input,
            nonce,
            gas_limit: TX_GAS_LIMIT,
            gas_price: 0,
            chain_id: Some(head.chain_id),
            ..TxEnv::default()
        }
    }

    fn pending_head(state: &State) -> Head {
        Head {
            number: state.head.number + 1,
            timestamp: state.head.next_timestamp(),
            ..state.head
        }
    }
}

fn write_head(store: &Connection, head: &Head) -> rusqlite::Result<()> {
    store.execute(
        "INSERT INTO evm_head (id, chain_id, number, timestamp, clock_offset) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET number = ?2, timestamp = ?3, clock_offset = ?4",
        params![head.chain_id, head.number, head.timestamp, head.clock_offset],
    )?;
    Ok(())
}

fn load_state(store: &Connection, path: &str) -> Result<CacheDB<EmptyDB>, ChainError> {
    let store_error = |source| ChainError::Store {
        path: path.into(),
        source,
    };
    let corrupt = |reason: &str| ChainError::CorruptStore {
        path: path.into(),
        reason: reason.into(),
    };
    let mut db = CacheDB::new(EmptyDB::default());

    let mut accounts = store
        .prepare(
            "SELECT a.address, a.balance, a.nonce, a.code_hash, c.code
             FROM evm_accounts a LEFT JOIN evm_code c ON c.hash = a.code_hash",
        )
        .map_err(store_error)?;
    let rows = accounts
        .query_map([], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, u64>(2)?,
                row.get::<_, Vec<u8>>(3)?,
                row.get::<_, Option<Vec<u8>>>(4)?,
            ))
        })
        .map_err(store_error)?;
    for row in rows {
        let (address, balance, nonce, code_hash, code) = row.map_err(store_error)?;
        let address = Address::try_from(address.as_slice()).map_err(|_| corrupt("bad address"))?;
        let balance = U256::try_from_be_slice(&balance).ok_or_else(|| corrupt("bad balance"))?;
        let code_hash =
            B256::try_from(code_hash.as_slice()).map_err(|_| corrupt("bad code hash"))?;
        let code = code.map(|bytes| Bytecode::new_raw(bytes.into()));
        let info = AccountInfo {
            balance,
            nonce,
            code_hash,
            code,
            ..AccountInfo::default()
        };
        db.insert_account_info(address, info);
    }

    let mut storage = store
        .prepare("SELECT address, slot, value FROM evm_storage")
        .map_err(store_error)?;
    let rows = storage
        .query_map([], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })
        .map_err(store_error)?;
    for row in rows {
        let (address, slot, value) = row.map_err(store_error)?;
        let address = Address::try_from(address.as_slice()).map_err(|_| corrupt("bad address"))?;
        let slot = U256::try_from_be_slice(&slot).ok_or_else(|| corrupt("bad slot"))?;
        let value = U256::try_from_be_slice(&value).ok_or_else(|| corrupt("bad value"))?;
        // The empty backing database cannot fail.
        db.insert_account_storage(address, slot, value)
            .map_err(|_| corrupt("storage"))?;
    }
    Ok(db)
}

/// Writes the accounts, code and storage a transaction changed, and the new
/// head, in one SQLite transaction.
fn persist(
    store: &mut Connection,
    head: &Head,
    changes: &EvmState,
    record: (
        &B256,
        Address,
        Option<Address>,
        u64,
        &[alloy::primitives::Log],
    ),
) -> rusqlite::Result<()> {
    let tx = store.transaction()?;
    for (address, account) in changes {
        if !account.is_touched() {
            continue;
        }
        let key = address.as_slice();
        if account.is_selfdestructed() || account.is_created() {
            tx.execute("DELETE FROM evm_storage WHERE address = ?1", [key])?;
        }
        if account.is_selfdestructed() {
            tx.execute("DELETE FROM evm_accounts WHERE address = ?1", [key])?;
            continue;
        }
        let info = &account.info;
        if let Some(code) = info.code.as_ref().filter(|code| !code.is_empty()) {
            tx.execute(
                "INSERT OR IGNORE INTO evm_code (hash, code) VALUES (?1, ?2)",
                params![info.code_hash.as_slice(), code.original_bytes().as_ref()],
            )?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO evm_accounts (address, balance, nonce, code_hash)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                key,
                info.balance.to_be_bytes::<32>(),
                info.nonce,
                info.code_hash.as_slice()
            ],
        )?;
        for (slot, value) in account.changed_storage_slots() {
            let value = value.present_value();
            if value.is_zero() {
                tx.execute(
                    "DELETE FROM evm_storage WHERE address = ?1 AND slot = ?2",
                    params![key, slot.to_be_bytes::<32>()],
                )?;
            } else {
                tx.execute(
                    "INSERT OR REPLACE INTO evm_storage (address, slot, value) VALUES (?1, ?2, ?3)",
                    params![key, slot.to_be_bytes::<32>(), value.to_be_bytes::<32>()],
                )?;
            }
        }
    }
    let (hash, sender, recipient, gas_used, logs) = record;
    let logs = serde_json::to_string(logs).unwrap_or_default();
    tx.execute(
        "INSERT INTO evm_transactions (hash, number, sender, recipient, gas_used, logs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            hash.as_slice(),
            head.number,
            sender.as_slice(),
            recipient.map(|r| r.to_vec()),
            gas_used,
            logs
        ],
    )?;
    write_head(&tx, head)?;
    tx.commit()
}

impl Chain for EmbeddedChain {
    fn describe(&self) -> String {
        format!("embedded:{}", self.path.display())
    }

    async fn chain_id(&self) -> Result<u64, ChainError> {
        Ok(self.lock().head.chain_id)
    }

    async fn timestamp(&self) -> Result<u64, ChainError> {
        Ok(Self::pending_head(&self.lock()).timestamp)
    }

    async fn code(&self, address: Address) -> Result<Bytes, ChainError> {
        let state = self.lock();
        let code = state
            .db
            .cache
            .accounts
            .get(&address)
            .and_then(|account| account.info.code.as_ref().map(|code| code.original_bytes()));
        Ok(code.unwrap_or_default())
    }

    async fn call(&self, from: Address, to: Address, input: Bytes) -> Result<Bytes, ChainError> {
        let mut state = self.lock();
        let head = Self::pending_head(&state);
        let nonce = state
            .db
            .cache
            .accounts
            .get(&from)
            .map_or(0, |a| a.info.nonce);
        let tx = Self::transaction(&head, from, TxKind::Call(to), nonce, input);
        // The changes of a call are dropped: it never touches the store.
        let (result, _) = Self::execute(&mut state.db, &head, tx)?;
        match result {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => Err(ChainError::Reverted { data: output }),
            ExecutionResult::Halt { reason, .. } => Err(ChainError::Halted(format!("{reason:?}"))),
        }
    }

    async fn send(
        &self,
        signer: &PrivateKeySigner,
        to: Option<Address>,
        input: Bytes,
    ) -> Result<Receipt, ChainError> {
        let from = signer.address();
        let mut guard = self.lock();
        let state = &mut *guard;
        let head = Self::pending_head(state);
        let nonce = state
            .db
            .cache
            .accounts
            .get(&from)
            .map_or(0, |a| a.info.nonce);
        let kind = to.map_or(TxKind::Create, TxKind::Call);
        let mut preimage = Vec::with_capacity(8 + 8 + 20 + input.len());
        preimage.extend_from_slice(&head.chain_id.to_be_bytes());
        preimage.extend_from_slice(&head.number.to_be_bytes());
        preimage.extend_from_slice(from.as_slice());
        preimage.extend_from_slice(&nonce.to_be_bytes());
        preimage.extend_from_slice(&input);
        let tx_hash = keccak256(&preimage);

        let tx = Self::transaction(&head, from, kind, nonce, input);
        let (result, changes) = Self::execute(&mut state.db, &head, tx)?;
        let (gas_used, logs, contract_address) = match result {
            ExecutionResult::Success {
                gas, logs, output, ..
            } => {
                let created = match output {
                    Output::Create(_, address) => address,
                    Output::Call(_) => None,
                };
                (gas.total_gas_spent(), logs, created)
            }
            ExecutionResult::Revert { output, .. } => {
                return Err(ChainError::Reverted { data: output });
            }
            ExecutionResult::Halt { reason, .. } => {
                return Err(ChainError::Halted(format!("{reason:?}")));
            }
        };
        persist(
            &mut state.store,
            &head,
            &changes,
            (&tx_hash, from, to, gas_used, &logs),
        )
        .map_err(|source| ChainError::Store {
            path: self.path.display().to_string(),
            source,
        })?;
        state.db.commit(changes);
        state.head = head;
        Ok(Receipt {
            tx_hash,
            gas_used,
            logs,
            contract_address,
        })
    }

    async fn advance_time(&self, seconds: u64) -> Result<(), ChainError> {
        let mut state = self.lock();
        let shifted = Head {
            clock_offset: state.head.clock_offset + seconds,
            ..state.head
        };
        let head = Head {
            number: shifted.number + 1,
            timestamp: shifted.next_timestamp(),
            ..shifted
        };
        write_head(&state.store, &head).map_err(self.store_error())?;
        state.head = head;
        Ok(())
    }
}
