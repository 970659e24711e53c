//! What a client keeps on disk between runs: every attempt it took part in,
//! and what each round paid it.
//!
//! The attempt record is written *before* the client sends anything for the
//! attempt, and an attempt is entered at most once: a client that restarts,
//! or meets a coordinator that restarted and announces an attempt again,
//! declines instead of submitting a second time. In SecAgg+ that means fresh
//! keys and masks for every submission, never a mask reused; in both modes
//! it means a client never signs two updates for one attempt (which the
//! reward contract would slash as equivocation).
//!
//! Under secure aggregation the history also records every masked input,
//! *before* it is sent, and allows one per round ([`History::spend_input`]):
//! a coordinator that runs a round again never obtains the same update in a
//! second sum it could subtract from the first
//! (`fedstake_round::SpentInputs` is the coordinator's side of the rule).

use std::path::Path;

use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

/// Why the history could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// SQLite failed.
    #[error("client history {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// The error.
        source: rusqlite::Error,
    },
    /// The state directory could not be created.
    #[error("client state directory {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// One finished round, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedResult {
    /// Round.
    pub round: u64,
    /// Attempt that completed.
    pub attempt: u32,
    /// Validation accuracy of the new model.
    pub accuracy: f64,
    /// Paid this round (base units).
    pub payout: u128,
    /// Paid so far (base units).
    pub cumulative: u128,
}

/// The client's history database (`history.sqlite` in its state directory).
#[derive(Debug)]
pub struct History {
    connection: Mutex<Connection>,
    path: String,
}

impl History {
    /// Opens or creates the history in `dir`.
    pub fn open(dir: &Path) -> Result<Self, HistoryError> {
        let file = dir.join("history.sqlite");
        let path = file.display().to_string();
        let wrap = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|source| HistoryError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let connection = Connection::open(&file).map_err(wrap)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS attempts (
                     task TEXT NOT NULL, round INTEGER NOT NULL, attempt INTEGER NOT NULL,
                     role TEXT NOT NULL, model TEXT NOT NULL,
                     PRIMARY KEY (task, round, attempt));
                 CREATE TABLE IF NOT EXISTS inputs (
                     task TEXT NOT NULL, round INTEGER NOT NULL, attempt INTEGER NOT NULL,
                     model TEXT NOT NULL,
                     PRIMARY KEY (task, round));
                 CREATE TABLE IF NOT EXISTS results (
                     task TEXT NOT NULL, round INTEGER NOT NULL, attempt INTEGER NOT NULL,
                     accuracy REAL NOT NULL, payout TEXT NOT NULL, cumulative TEXT NOT NULL,
                     PRIMARY KEY (task, round));",
            )
            .map_err(wrap)?;
        Ok(Self {
            connection: Mutex::new(connection),
            path,
        })
    }

    /// The connection; a panic while it was held leaves SQLite consistent
    /// (statements are atomic), so a poisoned lock is taken over.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wrap(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Records that the client enters `(task, round, attempt)`; `false` if it
    /// already did (it must then not submit again).
    pub fn enter_attempt(
        &self,
        task: &str,
        round: u64,
        attempt: u32,
        role: &str,
        model: &str,
    ) -> Result<bool, HistoryError> {
        let inserted = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO attempts (task, round, attempt, role, model)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![task, round as i64, attempt, role, model],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(inserted == 1)
    }

    /// The attempt of `round` whose masked input was sent, if any.
    pub fn spent_input(&self, task: &str, round: u64) -> Result<Option<u32>, HistoryError> {
        self.conn()
            .query_row(
                "SELECT attempt FROM inputs WHERE task = ?1 AND round = ?2",
                params![task, round as i64],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// Records that the client sends its masked input of `(task, round,
    /// attempt)`, trained from `model`, before it is sent. `Err` with the
    /// attempt whose input was already sent for the round: the client must
    /// then not send this one.
    pub fn spend_input(
        &self,
        task: &str,
        round: u64,
        attempt: u32,
        model: &str,
    ) -> Result<Result<(), u32>, HistoryError> {
        let inserted = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO inputs (task, round, attempt, model)
                 VALUES (?1, ?2, ?3, ?4)",
                params![task, round as i64, attempt, model],
            )
            .map_err(|e| self.wrap(e))?;
        if inserted == 1 {
            return Ok(Ok(()));
        }
        // The insert was ignored, so the round's row exists.
        Ok(Err(self.spent_input(task, round)?.unwrap_or(attempt)))
    }

    /// Records a round's result (a later attempt's result replaces none: a
    /// round completes once).
    pub fn record_result(&self, task: &str, result: &RecordedResult) -> Result<(), HistoryError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO results (task, round, attempt, accuracy, payout, cumulative)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    task,
                    result.round as i64,
                    result.attempt,
                    result.accuracy,
                    result.payout.to_string(),
                    result.cumulative.to_string()
                ],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(())
    }

    /// Every attempt entered for `task`, as `(round, attempt)`, in order.
    pub fn attempts(&self, task: &str) -> Result<Vec<(u64, u32)>, HistoryError> {
        let connection = self.conn();
        let mut statement = connection
            .prepare("SELECT round, attempt FROM attempts WHERE task = ?1 ORDER BY round, attempt")
            .map_err(|e| self.wrap(e))?;
        let rows = statement
            .query_map([task], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get(1)?))
            })
            .map_err(|e| self.wrap(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.wrap(e))
    }

    /// The latest recorded result for `task`.
    pub fn latest_result(&self, task: &str) -> Result<Option<RecordedResult>, HistoryError> {
        self.conn()
            .query_row(
                "SELECT round, attempt, accuracy, payout, cumulative FROM results
                 WHERE task = ?1 ORDER BY round DESC LIMIT 1",
                [task],
                |row| {
                    let amount = |text: String| text.parse::<u128>().unwrap_or_default();
                    Ok(RecordedResult {
                        round: row.get::<_, i64>(0)? as u64,
                        attempt: row.get(1)?,
                        accuracy: row.get(2)?,
                        payout: amount(row.get(3)?),
                        cumulative: amount(row.get(4)?),
                    })
                },
            )
            .optional()
            .map_err(|e| self.wrap(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_is_entered_once_even_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path()).unwrap();
        assert!(history.enter_attempt("1", 1, 0, "plain", "aa").unwrap());
        assert!(!history.enter_attempt("1", 1, 0, "plain", "aa").unwrap());
        assert!(history.enter_attempt("1", 1, 1, "plain", "aa").unwrap());
        drop(history);
        let history = History::open(dir.path()).unwrap();
        assert!(!history.enter_attempt("1", 1, 1, "plain", "aa").unwrap());
        assert!(history.enter_attempt("2", 1, 1, "plain", "aa").unwrap());
        assert_eq!(history.attempts("1").unwrap(), vec![(1, 0), (1, 1)]);
        let result = RecordedResult {
            round: 1,
            attempt: 1,
            accuracy: 0.5,
            payout: u128::MAX,
            cumulative: u128::MAX,
        };
        history.record_result("1", &result).unwrap();
        assert_eq!(history.latest_result("1").unwrap(), Some(result));
    }

    #[test]
    fn one_masked_input_per_round_even_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path()).unwrap();
        assert_eq!(history.spent_input("1", 3).unwrap(), None);
        assert_eq!(history.spend_input("1", 3, 0, "aa").unwrap(), Ok(()));
        drop(history);
        let history = History::open(dir.path()).unwrap();
        // Another attempt of round 3, whatever its model.
        assert_eq!(history.spend_input("1", 3, 1, "bb").unwrap(), Err(0));
        assert_eq!(history.spent_input("1", 3).unwrap(), Some(0));
        // Another round, and another task, are free.
        assert_eq!(history.spend_input("1", 4, 0, "aa").unwrap(), Ok(()));
        assert_eq!(history.spend_input("2", 3, 0, "aa").unwrap(), Ok(()));
    }
}
