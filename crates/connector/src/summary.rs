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
    /// Failed (account, window) cells.
    pub failures: u64,
    pub out_of_window_rows: u64,
    pub unknown_codes: u64,
    /// Fields the answers carried that the table does not declare: name → rows carrying it.
    pub unknown_fields: BTreeMap<String, u64>,
    /// `--format delta`: the table's version when the run ended, its commits included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_version: Option<u64>,
}

/// A (table, account, window) cell that was not written. The run's record under
/// `_wxcube/runs/` lists every one; the summary groups them ([`FailedGroup`]).
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct FailedCell {
    pub table: String,
    pub appid: String,
    pub begin: String,
    pub end: String,
    /// Why, without the window (the cell carries it).
    pub error: String,
}

/// Failed cells of one (account, table) that failed for the same reason.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FailedGroup {
    pub table: String,
    pub appid: String,
    /// The reason, as the first of these cells gave it (the API's per-request `rid:` aside).
    pub error: String,
    /// Cells in the group.
    pub cells: u64,
    /// The dates the cells cover, adjacent windows joined: `[begin, end]` pairs.
    pub ranges: Vec<[String; 2]>,
    /// Ranges left out of `ranges` to keep the summary short (all are in the run's record).
    #[serde(skip_serializing_if = "is_zero")]
    pub ranges_omitted: u64,
}

/// Groups listed in a summary, and ranges listed per group: enough to see what failed, small
/// enough for a scheduler to keep (Airflow's XCom) whatever fails.
pub const MAX_GROUPS: usize = 50;
pub const MAX_RANGES: usize = 10;

/// Groups `cells` by (account, table, reason), joining consecutive windows into ranges;
/// returns at most [`MAX_GROUPS`] groups (the largest first) and how many were left out.
/// `period_days(table)` is the most days between the first days of two periods of the table:
/// windows of week and month tables cover only the periods' first days, so consecutive ones
/// are that far apart.
pub fn group_failures(cells: &[FailedCell], period_days: impl Fn(&str) -> u64) -> (Vec<FailedGroup>, u64) {
    let mut groups: BTreeMap<(&str, &str, String), Vec<&FailedCell>> = BTreeMap::new();
    for c in cells {
        groups.entry((c.appid.as_str(), c.table.as_str(), without_request_id(&c.error))).or_default().push(c);
    }
    let mut out: Vec<FailedGroup> = groups
        .into_iter()
        .map(|((appid, table, error), mut members)| {
            members.sort_by(|a, b| (&a.begin, &a.end).cmp(&(&b.begin, &b.end)));
            let ranges = join_ranges(&members, period_days(table));
            let omitted = ranges.len().saturating_sub(MAX_RANGES) as u64;
            FailedGroup {
                table: table.to_string(),
                appid: appid.to_string(),
                error,
                cells: members.len() as u64,
                ranges: ranges.into_iter().take(MAX_RANGES).collect(),
                ranges_omitted: omitted,
            }
        })
        .collect();
    out.sort_by(|a, b| b.cells.cmp(&a.cells).then_with(|| (&a.appid, &a.table).cmp(&(&b.appid, &b.table))));
    let omitted = out.len().saturating_sub(MAX_GROUPS) as u64;
    out.truncate(MAX_GROUPS);
    (out, omitted)
}

/// Windows sorted by begin, consecutive or overlapping ones joined: a window that begins at most
/// `gap` days after the last one ends continues it.
fn join_ranges(cells: &[&FailedCell], gap: u64) -> Vec<[String; 2]> {
    let mut ranges: Vec<(chrono::NaiveDate, chrono::NaiveDate)> = Vec::new();
    for c in cells {
        let (Ok(b), Ok(e)) = (crate::dates::parse_date(&c.begin), crate::dates::parse_date(&c.end)) else { continue };
        match ranges.last_mut() {
            Some(last) if b <= last.1 + chrono::Days::new(gap) => last.1 = last.1.max(e),
            _ => ranges.push((b, e)),
        }
    }
    ranges.into_iter().map(|(b, e)| [b.to_string(), e.to_string()]).collect()
}

/// The API ends its messages with a request id (`rid: 6620a1b2-…`) that differs every time;
/// it is left out so that the same failure groups as one.
fn without_request_id(error: &str) -> String {
    match error.find(" rid: ") {
        Some(at) => {
            let rest = &error[at + " rid: ".len()..];
            let tail = rest.find(char::is_whitespace).map_or("", |i| &rest[i..]);
            format!("{}{tail}", &error[..at])
        }
        None => error.to_string(),
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    /// Failed cells grouped by (account, table, reason), at most [`MAX_GROUPS`] groups.
    pub failed: Vec<FailedGroup>,
    #[serde(skip_serializing_if = "is_zero")]
    pub failed_groups_omitted: u64,
    /// This run's identity: leases name it, and its record is `_wxcube/runs/<run>.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Where the run's record lists every failed cell, when the output could keep one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_record: Option<String>,
}

impl Summary {
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("summary serialises")
    }
}

/// What `_wxcube/runs/<run>.json` holds: the summary, and every failed cell.
#[derive(Serialize)]
pub struct RunRecord<'a> {
    pub summary: &'a Summary,
    pub failed_cells: &'a [FailedCell],
}

/// The process's peak resident set size in KiB, where the system tells it (Linux).
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(appid: &str, begin: &str, end: &str, error: &str) -> FailedCell {
        FailedCell {
            table: "upstream_msg".into(),
            appid: appid.into(),
            begin: begin.into(),
            end: end.into(),
            error: error.into(),
        }
    }

    #[test]
    fn failures_group_by_account_table_and_reason_with_joined_ranges() {
        let cells = [
            cell("wxa", "2024-01-01", "2024-01-07", "errcode -1 (system busy) rid: 1-2-3"),
            cell("wxa", "2024-01-08", "2024-01-14", "errcode -1 (system busy) rid: 4-5-6"),
            cell("wxa", "2024-01-22", "2024-01-28", "errcode -1 (system busy) rid: 7-8-9"),
            cell("wxa", "2024-01-15", "2024-01-21", "row 1: msg_count is -1"),
            cell("wxb", "2024-01-01", "2024-01-07", "errcode -1 (system busy) rid: 1-1-1"),
        ];
        let (groups, omitted) = group_failures(&cells, |_| 1);
        assert_eq!(omitted, 0);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].appid, "wxa");
        assert_eq!(groups[0].error, "errcode -1 (system busy)");
        assert_eq!(groups[0].cells, 3);
        assert_eq!(
            groups[0].ranges,
            [["2024-01-01".to_string(), "2024-01-14".to_string()], ["2024-01-22".into(), "2024-01-28".into()]]
        );
    }

    #[test]
    fn monthly_windows_a_month_apart_join() {
        let cells = [cell("wxa", "2024-01-01", "2024-01-01", "x"), cell("wxa", "2024-02-01", "2024-03-01", "x")];
        let (groups, _) = group_failures(&cells, |_| 31);
        assert_eq!(groups[0].ranges, [["2024-01-01".to_string(), "2024-03-01".to_string()]]);
        let (groups, _) = group_failures(&cells, |_| 1);
        assert_eq!(groups[0].ranges.len(), 2);
    }

    #[test]
    fn the_summary_stays_small_whatever_fails() {
        // Three years of one account, every window failed alike, plus many accounts failing.
        let mut cells: Vec<FailedCell> = (0..1100)
            .map(|i| {
                let d = crate::dates::parse_date("2021-01-01").unwrap() + chrono::Days::new(i);
                cell("wxa", &d.to_string(), &d.to_string(), "connection refused")
            })
            .collect();
        for i in 0..2000 {
            cells.push(cell(&format!("wx{i:016}"), "2024-01-01", "2024-01-01", "connection refused"));
        }
        let (groups, omitted) = group_failures(&cells, |_| 1);
        assert_eq!((groups.len(), omitted), (MAX_GROUPS, 2001 - MAX_GROUPS as u64));
        assert_eq!(groups[0].cells, 1100);
        assert_eq!(groups[0].ranges.len(), 1);
        assert!(serde_json::to_string(&groups).unwrap().len() < 20_000);
    }
}
