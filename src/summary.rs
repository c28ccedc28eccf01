//! The run summary: one JSON line, last on stdout, for schedulers (Airflow pushes it to XCom)
//! and for people.

use std::collections::BTreeMap;

use serde::Serialize;

/// Per-table figures.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TableSummary {
    /// Requests planned for the run (per account, times accounts).
    pub planned: u64,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Rows written (of the run's accounts).
    pub rows: u64,
    pub files_written: u64,
    pub files_removed: u64,
    /// Failed (account, window) cells.
    pub failures: u64,
    pub out_of_window_rows: u64,
    pub unknown_codes: u64,
}

/// A (table, account, window) cell that was not written.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct FailedCell {
    pub table: String,
    pub appid: String,
    pub begin: String,
    pub end: String,
    pub error: String,
}

/// One account's outcome.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AccountSummary {
    pub appid: String,
    /// `ok`, `partial` (some cells failed), or `failed` (nothing written).
    pub status: &'static str,
    pub rows: u64,
    pub failures: u64,
    /// The first failure's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub wxcube: &'static str,
    /// `ok`: everything asked for was written; `partial`: some cells failed; `stopped`: the run
    /// was interrupted (SIGTERM, Ctrl-C) and did not fetch everything.
    pub status: &'static str,
    pub stopped: bool,
    pub dry_run: bool,
    pub output: String,
    pub begin: String,
    pub end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub accounts: usize,
    pub requests: u64,
    pub rows: u64,
    pub files_written: u64,
    pub failures: u64,
    pub elapsed_ms: u64,
    /// The process's peak resident memory so far (Linux `VmHWM`), for capacity planning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_kb: Option<u64>,
    pub tables: BTreeMap<String, TableSummary>,
    /// One line per account.
    pub per_account: Vec<AccountSummary>,
    pub failed_cells: Vec<FailedCell>,
}

impl Summary {
    pub fn exit_code(&self) -> i32 {
        if self.failures == 0 && !self.stopped { 0 } else { 1 }
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("summary serialises")
    }
}

/// The process's peak resident set size in KiB, where the system tells it (Linux).
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
