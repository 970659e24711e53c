//! The coordinator's SQLite store (WAL, `synchronous = FULL`): everything it
//! must not forget, written before it is acted on.
//!
//! - `meta`: the task id and spec hash the store belongs to;
//! - `models`: every global model by content hash (safetensors bytes);
//! - `attempts`: each round attempt, recorded *before* it is announced, so a
//!   restarted coordinator never runs an attempt number twice and clients
//!   never see a context (and so never derive masks) twice;
//! - `submissions`: the clients' signed submissions, the evidence slashes need;
//! - `rounds`: each settled round — model, accuracy, payouts, the payout
//!   tree, and the slashing observations and group results the next rounds'
//!   policy state is rebuilt from — in one transaction;
//! - `chain_txs`: what was sent to the reward contract for a round (round
//!   post, slashes), so a restart neither posts twice nor forgets to post.

use std::path::{Path, PathBuf};

use std::sync::{Mutex, MutexGuard};

use alloy::primitives::Address;
use fedstake_rewards::PayoutTree;
use fedstake_round::{SettledRound, SignedSubmission};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// The format of the records this coordinator writes and reads (the
/// engine's typed rounds since format 2).
const SCHEMA: &str = "2";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("coordinator store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// The store belongs to another task.
    #[error(
        "coordinator store {path} belongs to task {stored} (spec {stored_spec}), not task {task} (spec {spec})"
    )]
    OtherTask {
        /// The database file.
        path: PathBuf,
        /// Task recorded in the store.
        stored: String,
        /// Spec hash recorded in the store.
        stored_spec: String,
        /// Task asked for.
        task: String,
        /// Spec hash asked for.
        spec: String,
    },
    /// There is no store at the path.
    #[error("no coordinator store at {path} (is it the coordinator's --state directory?)")]
    Missing {
        /// The database file.
        path: PathBuf,
    },
    /// The store was written in another format (by an older coordinator).
    #[error(
        "coordinator store {path} is in format {found}, this coordinator reads format {SCHEMA}; \
         serve the task from a new --state directory"
    )]
    Schema {
        /// The database file.
        path: PathBuf,
        /// The format found.
        found: String,
    },
    /// A stored row could not be decoded.
    #[error("coordinator store {path}: corrupt {what}: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which record.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// A settled round as the coordinator keeps it: the engine's record and
/// the cumulative payout tree after it (what claimers need).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRound {
    /// What the round paid, showed and slashed.
    pub settled: SettledRound<Address>,
    /// The cumulative payout tree after the round, posted on chain; `None`
    /// for a skipped round, which changes nothing and is never posted.
    pub payout_tree: Option<PayoutTree>,
}

impl StoredRound {
    /// The payout tree of the last round in `rounds` that has one: what
    /// claims are proven against.
    pub fn latest_tree(rounds: &[StoredRound]) -> Option<&PayoutTree> {
        rounds.iter().rev().find_map(|r| r.payout_tree.as_ref())
    }
}

/// The JSON form of a [`StoredRound`] in the `rounds` table.
#[derive(Serialize, Deserialize)]
struct RoundRecord {
    settled: SettledRound<Address>,
    /// OpenZeppelin `standard-v1` JSON; absent for a skipped round.
    payout_tree: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// It settled its round.
    Completed,
    /// It gave nothing usable, for this reason; the round ran again.
    Abandoned(String),
}

impl AttemptOutcome {
    const COMPLETED: &str = "completed";
    const ABANDONED: &str = "abandoned: ";

    fn to_sql(&self) -> String {
        match self {
            AttemptOutcome::Completed => Self::COMPLETED.into(),
            AttemptOutcome::Abandoned(reason) => format!("{}{reason}", Self::ABANDONED),
        }
    }

    fn from_sql(text: &str) -> Option<Self> {
        if text == Self::COMPLETED {
            return Some(AttemptOutcome::Completed);
        }
        text.strip_prefix(Self::ABANDONED)
            .map(|reason| AttemptOutcome::Abandoned(reason.into()))
    }
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The round.
    pub round: u64,
    /// The attempt.
    pub attempt: u32,
    /// How it ended; `None` while running, or when the coordinator died
    /// during it.
    pub outcome: Option<AttemptOutcome>,
}

/// A transaction the coordinator sends for a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainTx {
    /// `postRound`.
    Post,
    /// `slash` of this client.
    Slash(Address),
}

impl ChainTx {
    fn to_sql(self) -> String {
        match self {
            ChainTx::Post => "post".into(),
            ChainTx::Slash(address) => format!("slash:{address}"),
        }
    }
}

/// Where a chain transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainTxState {
    /// About to be sent: on restart, ask the contract whether it landed.
    Intent,
    /// Landed (or found on chain).
    Done,
    /// Not sent, for want of evidence.
    Skipped,
    /// The contract refused it.
    Refused,
}

impl ChainTxState {
    /// Its name, as stored and shown (`intent`, `done`, `skipped`,
    /// `refused`).
    pub fn name(self) -> &'static str {
        match self {
            ChainTxState::Intent => "intent",
            ChainTxState::Done => "done",
            ChainTxState::Skipped => "skipped",
            ChainTxState::Refused => "refused",
        }
    }

    fn from_sql(text: &str) -> Option<Self> {
        [
            ChainTxState::Intent,
            ChainTxState::Done,
            ChainTxState::Skipped,
            ChainTxState::Refused,
        ]
        .into_iter()
        .find(|state| state.name() == text)
    }
}

/// The coordinator's database.
#[derive(Debug)]
pub struct Store {
    connection: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store at `path` for `task` with `spec_hash`;
    /// refuses a store that belongs to another task.
    pub fn open(path: &Path, task: &str, spec_hash: &str) -> Result<Self, StoreError> {
        let connection = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Self {
            connection: Mutex::new(connection),
            path: path.to_path_buf(),
        };
        store
            .conn()
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS models (hash TEXT PRIMARY KEY, bytes BLOB NOT NULL);
                 CREATE TABLE IF NOT EXISTS attempts (
                     round INTEGER NOT NULL, attempt INTEGER NOT NULL, started_at INTEGER NOT NULL,
                     cohort TEXT NOT NULL, outcome TEXT,
                     PRIMARY KEY (round, attempt));
                 CREATE TABLE IF NOT EXISTS submissions (
                     round INTEGER NOT NULL, attempt INTEGER NOT NULL, address TEXT NOT NULL,
                     update_hash BLOB NOT NULL, signature BLOB NOT NULL,
                     PRIMARY KEY (round, attempt, address));
                 CREATE TABLE IF NOT EXISTS rounds (
                     round INTEGER PRIMARY KEY, record TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS chain_txs (
                     round INTEGER NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
                     detail TEXT NOT NULL, PRIMARY KEY (round, kind));",
            )
            .map_err(|e| store.wrap(e))?;
        let stored: Option<(String, String)> = store
            .conn()
            .query_row(
                "SELECT (SELECT value FROM meta WHERE key = 'task'),
                        (SELECT value FROM meta WHERE key = 'spec')",
                [],
                |row| {
                    Ok((
                        row.get::<_, Option<String>>(0)?,
                        row.get::<_, Option<String>>(1)?,
                    ))
                },
            )
            .map(|(t, s)| t.zip(s))
            .map_err(|e| store.wrap(e))?;
        match stored {
            None => {
                store
                    .conn()
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ('task', ?1), ('spec', ?2), \
                         ('schema', ?3)",
                        params![task, spec_hash, SCHEMA],
                    )
                    .map_err(|e| store.wrap(e))?;
            }
            Some((stored, stored_spec)) if stored != task || stored_spec != spec_hash => {
                return Err(StoreError::OtherTask {
                    path: path.to_path_buf(),
                    stored,
                    stored_spec,
                    task: task.to_string(),
                    spec: spec_hash.to_string(),
                });
            }
            Some(_) => store.check_schema()?,
        }
        Ok(store)
    }

    /// Refuses a store whose records this coordinator cannot read.
    fn check_schema(&self) -> Result<(), StoreError> {
        let schema = self.meta("schema")?;
        if schema.as_deref() == Some(SCHEMA) {
            return Ok(());
        }
        Err(StoreError::Schema {
            path: self.path.clone(),
            found: schema.unwrap_or_else(|| "1".into()),
        })
    }

    /// Opens an existing store for reading whatever task it belongs to;
    /// returns it with its task id and spec hash.
    pub fn inspect(path: &Path) -> Result<(Self, String, String), StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        let connection =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(
                |source| StoreError::Sqlite {
                    path: path.to_path_buf(),
                    source,
                },
            )?;
        let store = Self {
            connection: Mutex::new(connection),
            path: path.to_path_buf(),
        };
        let task = store.meta("task")?;
        let spec = store.meta("spec")?;
        match task.zip(spec) {
            Some((task, spec)) => {
                store.check_schema()?;
                Ok((store, task, spec))
            }
            None => Err(store.corrupt("meta", "no task recorded")),
        }
    }

    /// The connection; a panic while it was held leaves SQLite consistent
    /// (statements are atomic), so a poisoned lock is taken over.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wrap(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: &'static str, reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what,
            reason: reason.to_string(),
        }
    }

    /// Saves a model's safetensors bytes under its content hash.
    pub fn put_model(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO models (hash, bytes) VALUES (?1, ?2)",
                params![hex::encode(hash), bytes],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(())
    }

    /// A model's safetensors bytes.
    pub fn model(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn()
            .query_row(
                "SELECT bytes FROM models WHERE hash = ?1",
                [hex::encode(hash)],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// The initial model's hash, recorded once.
    pub fn initial_model(&self) -> Result<Option<[u8; 32]>, StoreError> {
        self.meta("initial_model")?
            .map(|text| {
                hex::decode(&text)
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| self.corrupt("meta", format!("initial model hash {text:?}")))
            })
            .transpose()
    }

    /// Records the initial model's hash.
    pub fn set_initial_model(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('initial_model', ?1)",
                [hex::encode(hash)],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// Records a new attempt of `round` with `cohort` and returns its number:
    /// one more than any attempt of the round ever recorded.
    pub fn begin_attempt(
        &self,
        round: u64,
        cohort: &[Address],
        now: u64,
    ) -> Result<u32, StoreError> {
        let attempt: u32 = self
            .conn()
            .query_row(
                "SELECT COALESCE(MAX(attempt) + 1, 0) FROM attempts WHERE round = ?1",
                [round as i64],
                |row| row.get(0),
            )
            .map_err(|e| self.wrap(e))?;
        self.conn()
            .execute(
                "INSERT INTO attempts (round, attempt, started_at, cohort) VALUES (?1, ?2, ?3, ?4)",
                params![
                    round as i64,
                    attempt,
                    now as i64,
                    cohort
                        .iter()
                        .map(Address::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(attempt)
    }

    /// Records how an attempt ended.
    pub fn end_attempt(
        &self,
        round: u64,
        attempt: u32,
        outcome: &AttemptOutcome,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE attempts SET outcome = ?3 WHERE round = ?1 AND attempt = ?2",
                params![round as i64, attempt, outcome.to_sql()],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(())
    }

    /// Every attempt, in order.
    pub fn attempts(&self) -> Result<Vec<AttemptRecord>, StoreError> {
        let connection = self.conn();
        let mut statement = connection
            .prepare("SELECT round, attempt, outcome FROM attempts ORDER BY round, attempt")
            .map_err(|e| self.wrap(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)? as u64,
                    row.get::<_, u32>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            })
            .map_err(|e| self.wrap(e))?;
        let mut attempts = Vec::new();
        for row in rows {
            let (round, attempt, outcome) = row.map_err(|e| self.wrap(e))?;
            let outcome = outcome
                .map(|text| {
                    AttemptOutcome::from_sql(&text)
                        .ok_or_else(|| self.corrupt("attempt", format!("outcome {text:?}")))
                })
                .transpose()?;
            attempts.push(AttemptRecord {
                round,
                attempt,
                outcome,
            });
        }
        Ok(attempts)
    }

    /// Keeps a client's signed submission.
    pub fn put_submission(
        &self,
        round: u64,
        address: Address,
        submission: &SignedSubmission,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO submissions (round, attempt, address, update_hash, signature)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    round as i64,
                    submission.attempt,
                    address.to_string(),
                    submission.update_hash.as_slice(),
                    submission.signature
                ],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(())
    }

    /// A client's submission in `(round, attempt)`.
    pub fn submission(
        &self,
        round: u64,
        attempt: u32,
        address: Address,
    ) -> Result<Option<SignedSubmission>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .conn()
            .query_row(
                "SELECT update_hash, signature FROM submissions
                 WHERE round = ?1 AND attempt = ?2 AND address = ?3",
                params![round as i64, attempt, address.to_string()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.wrap(e))?;
        row.map(|(hash, signature)| {
            let update_hash = <[u8; 32]>::try_from(hash)
                .map_err(|_| self.corrupt("submission", "update hash is not 32 bytes"))?;
            Ok(SignedSubmission {
                attempt,
                update_hash: update_hash.into(),
                signature,
            })
        })
        .transpose()
    }

    /// Records a settled round and its new model in one transaction.
    pub fn settle_round(&mut self, stored: &StoredRound, model: &[u8]) -> Result<(), StoreError> {
        let settled = &stored.settled;
        let record = serde_json::to_string(&RoundRecord {
            settled: settled.clone(),
            payout_tree: stored.payout_tree.as_ref().map(PayoutTree::to_json),
        })
        .map_err(|e| self.corrupt("round", e))?;
        let mut connection = self.conn();
        let transaction = connection.transaction().map_err(|e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let wrap = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        transaction
            .execute(
                "INSERT OR IGNORE INTO models (hash, bytes) VALUES (?1, ?2)",
                params![hex::encode(settled.model_hash), model],
            )
            .map_err(wrap)?;
        transaction
            .execute(
                "INSERT INTO rounds (round, record) VALUES (?1, ?2)",
                params![settled.round as i64, record],
            )
            .map_err(wrap)?;
        transaction
            .execute(
                "UPDATE attempts SET outcome = ?3 WHERE round = ?1 AND attempt = ?2",
                params![
                    settled.round as i64,
                    settled.attempt,
                    AttemptOutcome::Completed.to_sql()
                ],
            )
            .map_err(wrap)?;
        transaction.commit().map_err(wrap)
    }

    /// Every settled round, in order.
    pub fn settled_rounds(&self) -> Result<Vec<StoredRound>, StoreError> {
        let connection = self.conn();
        let mut statement = connection
            .prepare("SELECT record FROM rounds ORDER BY round")
            .map_err(|e| self.wrap(e))?;
        let rows = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| self.wrap(e))?;
        let mut rounds = Vec::new();
        for row in rows {
            let text = row.map_err(|e| self.wrap(e))?;
            let record: RoundRecord =
                serde_json::from_str(&text).map_err(|e| self.corrupt("round", e))?;
            let payout_tree = record
                .payout_tree
                .map(|json| PayoutTree::from_json(&json, "stored round"))
                .transpose()
                .map_err(|e| self.corrupt("round", e))?;
            rounds.push(StoredRound {
                settled: record.settled,
                payout_tree,
            });
        }
        Ok(rounds)
    }

    /// Where chain transaction `tx` of `round` stands, with its detail.
    pub fn chain_tx(
        &self,
        round: u64,
        tx: ChainTx,
    ) -> Result<Option<(ChainTxState, String)>, StoreError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT state, detail FROM chain_txs WHERE round = ?1 AND kind = ?2",
                params![round as i64, tx.to_sql()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.wrap(e))?;
        row.map(|(state, detail)| {
            let state = ChainTxState::from_sql(&state)
                .ok_or_else(|| self.corrupt("chain transaction", format!("state {state:?}")))?;
            Ok((state, detail))
        })
        .transpose()
    }

    /// Records where chain transaction `tx` of `round` stands (an intent
    /// before sending, done with the transaction hash after).
    pub fn set_chain_tx(
        &self,
        round: u64,
        tx: ChainTx,
        state: ChainTxState,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO chain_txs (round, kind, state, detail) VALUES (?1, ?2, ?3, ?4)",
                params![round as i64, tx.to_sql(), state.name(), detail],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedstake_rewards::CumulativePayouts;

    fn stored(round: u64) -> StoredRound {
        let payee = Address::repeat_byte(1);
        let mut payouts = CumulativePayouts::new();
        payouts.credit_round([(payee, 5)]).unwrap();
        StoredRound {
            settled: SettledRound {
                round,
                attempt: 1,
                model_hash: [round as u8; 32],
                accuracy: 0.5,
                loss: 1.0,
                accepted: 2,
                rejected: 0,
                aggregator_inputs: 2,
                payouts: vec![(payee, 5)],
                dust: 0,
                observations: Vec::new(),
                groups: Vec::new(),
                slashes: Vec::new(),
            },
            payout_tree: Some(PayoutTree::from_payouts(&payouts).unwrap()),
        }
    }

    #[test]
    fn attempts_never_repeat_and_rounds_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let mut store = Store::open(&path, "1", "aa").unwrap();
        let cohort = [Address::repeat_byte(0xa)];
        assert_eq!(store.begin_attempt(1, &cohort, 0).unwrap(), 0);
        store
            .end_attempt(
                1,
                0,
                &AttemptOutcome::Abandoned("no group completed".into()),
            )
            .unwrap();
        assert_eq!(store.begin_attempt(1, &cohort, 0).unwrap(), 1);
        store.settle_round(&stored(1), b"model").unwrap();
        // A round settles once.
        assert!(store.settle_round(&stored(1), b"model").is_err());
        drop(store);
        let store = Store::open(&path, "1", "aa").unwrap();
        assert_eq!(store.begin_attempt(1, &[], 0).unwrap(), 2);
        assert_eq!(store.settled_rounds().unwrap(), vec![stored(1)]);
        assert_eq!(
            store.model(&stored(1).settled.model_hash).unwrap().unwrap(),
            b"model"
        );
        let outcomes: Vec<Option<AttemptOutcome>> = store
            .attempts()
            .unwrap()
            .into_iter()
            .map(|a| a.outcome)
            .collect();
        assert_eq!(
            outcomes,
            [
                Some(AttemptOutcome::Abandoned("no group completed".into())),
                Some(AttemptOutcome::Completed),
                None
            ]
        );
    }

    #[test]
    fn chain_transaction_states_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.sqlite"), "1", "aa").unwrap();
        let slash = ChainTx::Slash(Address::repeat_byte(7));
        assert_eq!(store.chain_tx(3, slash).unwrap(), None);
        store
            .set_chain_tx(3, slash, ChainTxState::Refused, "NoEvidence")
            .unwrap();
        store
            .set_chain_tx(3, ChainTx::Post, ChainTxState::Intent, "")
            .unwrap();
        assert_eq!(
            store.chain_tx(3, slash).unwrap(),
            Some((ChainTxState::Refused, "NoEvidence".into()))
        );
        assert_eq!(
            store.chain_tx(3, ChainTx::Post).unwrap(),
            Some((ChainTxState::Intent, String::new()))
        );
    }

    #[test]
    fn a_store_in_an_older_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        Store::open(&path, "1", "aa").unwrap();
        Connection::open(&path)
            .unwrap()
            .execute("DELETE FROM meta WHERE key = 'schema'", [])
            .unwrap();
        let error = Store::open(&path, "1", "aa").unwrap_err();
        assert!(
            error.to_string().contains("format 1") && error.to_string().contains("new --state"),
            "{error}"
        );
        assert!(matches!(
            Store::inspect(&path),
            Err(StoreError::Schema { .. })
        ));
    }

    #[test]
    fn a_store_of_another_task_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        Store::open(&path, "1", "aa").unwrap();
        let error = Store::open(&path, "2", "aa").unwrap_err();
        assert!(error.to_string().contains("belongs to task 1"), "{error}");
    }
}
