//! Merge on write: what a bucket file holds after a run replaced its accounts' rows.
//!
//! A bucket file holds the rows of many accounts for one (table, date). Writing it keeps the
//! rows of accounts outside the run as they were, and replaces each of the run's accounts'
//! rows by what the API returned this time. An account whose rows did not change keeps them as
//! they were, `extracted_at` included: that column says when these values were first fetched,
//! decided per account. A file where no account changed is not rewritten at all.

use crate::schema::ArrowSchema;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use arrow_array::{Array, BooleanArray, RecordBatch, StringArray};
use arrow_ord::sort::{SortColumn, lexsort_to_indices};
use arrow_select::concat::concat_batches;
use arrow_select::filter::filter_record_batch;
use arrow_select::take::take_record_batch;

use wxcube_registry::{Source, Table};

/// What a bucket file should become.
#[derive(Debug)]
pub enum Merged {
    /// No account's rows change: leave the file as it is (or absent, if it is).
    Unchanged,
    /// The file's new content, sorted by (appid, row key). It may have no rows: a file whose
    /// accounts now have none is kept, empty (see `Dataset::replace`).
    Rows(RecordBatch),
}

/// Replaces the rows of `members` in `old` (the file's rows, if it exists) by `new_rows`,
/// which hold only rows of `members`.
pub fn merge(table: &Table, old: Option<&RecordBatch>, members: &BTreeSet<&str>, new_rows: &RecordBatch) -> Merged {
    let Some(old) = old else {
        return if new_rows.num_rows() == 0 { Merged::Unchanged } else { Merged::Rows(sort_rows(table, new_rows)) };
    };
    let old_members = sort_rows(table, &select_accounts(table, old, |a| members.contains(a)));
    let new_sorted = sort_rows(table, new_rows);
    let (old_runs, new_runs) = (account_runs(table, &old_members), account_runs(table, &new_sorted));
    let mut parts = vec![select_accounts(table, old, |a| !members.contains(a))];
    let mut changed = false;
    for account in members {
        let before = old_runs.get(account).map(|r| old_members.slice(r.start, r.len()));
        let after = new_runs.get(account).map(|r| new_sorted.slice(r.start, r.len()));
        match (before, after) {
            (None, None) => {}
            (Some(before), Some(after)) if same_values(table, &before, &after) => parts.push(before),
            (_, after) => {
                changed = true;
                parts.extend(after);
            }
        }
    }
    if !changed {
        return Merged::Unchanged;
    }
    let merged = concat_batches(&table.schema(), &parts).expect("batches share the table schema");
    Merged::Rows(sort_rows(table, &merged))
}

/// The rows of `batch` whose appid passes `keep`.
pub fn select_accounts(table: &Table, batch: &RecordBatch, keep: impl Fn(&str) -> bool) -> RecordBatch {
    let mask: BooleanArray = appids(table, batch).iter().map(|a| Some(a.is_some_and(&keep))).collect();
    filter_record_batch(batch, &mask).expect("mask has the batch's length")
}

fn appids<'b>(table: &Table, batch: &'b RecordBatch) -> &'b StringArray {
    batch.column(table.appid_column()).as_any().downcast_ref::<StringArray>().expect("appid is a string column")
}

/// Where each account's rows lie in a batch sorted by appid.
fn account_runs<'b>(table: &Table, sorted: &'b RecordBatch) -> HashMap<&'b str, Range<usize>> {
    let ids = appids(table, sorted);
    let mut runs: HashMap<&str, Range<usize>> = HashMap::new();
    for i in 0..ids.len() {
        runs.entry(ids.value(i)).and_modify(|r| r.end = i + 1).or_insert(i..i + 1);
    }
    runs
}

/// Whether two batches sorted alike hold the same rows, `extracted_at` aside.
fn same_values(table: &Table, a: &RecordBatch, b: &RecordBatch) -> bool {
    if a.num_rows() != b.num_rows() {
        return false;
    }
    let values: Vec<usize> =
        (0..table.columns.len()).filter(|&i| table.columns[i].source != Source::ExtractedAt).collect();
    a.project(&values).expect("indices are the table's") == b.project(&values).expect("indices are the table's")
}

/// Sorts by appid, then the table's row key.
pub fn sort_rows(table: &Table, batch: &RecordBatch) -> RecordBatch {
    let keys: Vec<SortColumn> = std::iter::once(table.appid_column())
        .chain(table.row_key.iter().copied())
        .map(|i| SortColumn { values: batch.column(i).clone(), options: None })
        .collect();
    let indices = lexsort_to_indices(&keys, None).expect("sort keys are primitive or string columns");
    take_record_batch(batch, &indices).expect("indices come from the batch")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Cell, Row, to_batch};

    fn table() -> &'static Table {
        wxcube_registry::find("upstream_msg").unwrap()
    }

    /// Rows of (appid, msg_type, msg_user, msg_count) fetched at `at`.
    fn batch(rows: &[(&str, i64, i64, i64)], at: i64) -> RecordBatch {
        let date = crate::dates::parse_date("2024-03-01").unwrap();
        let typed: Vec<(&str, Row)> = rows
            .iter()
            .map(|&(a, t, u, c)| (a, Row { ref_date: date, values: cells(&[t, u, c]), delayed: false }))
            .collect();
        let pairs: Vec<(&str, &Row)> = typed.iter().map(|(a, r)| (*a, r)).collect();
        to_batch(table(), &pairs, at)
    }

    fn cells(values: &[i64]) -> Vec<Cell> {
        values.iter().map(|&v| Cell::Int(v)).collect()
    }

    fn extracted_at(b: &RecordBatch) -> Vec<(String, i64)> {
        let at = b
            .column(table().columns.len() - 1)
            .as_any()
            .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            .unwrap();
        (0..b.num_rows()).map(|i| (appids(table(), b).value(i).to_string(), at.value(i))).collect()
    }

    #[test]
    fn each_account_keeps_its_first_fetch_time_when_its_values_stay() {
        let old = batch(&[("wxa", 1, 5, 9), ("wxb", 1, 2, 2), ("wxc", 2, 1, 1)], 100);
        // wxa's values are the same, wxb's changed; wxc is not in the run.
        let new = batch(&[("wxa", 1, 5, 9), ("wxb", 1, 3, 3)], 200);
        let Merged::Rows(merged) = merge(table(), Some(&old), &BTreeSet::from(["wxa", "wxb"]), &new) else {
            panic!("wxb changed")
        };
        assert_eq!(
            extracted_at(&merged),
            [("wxa".to_string(), 100), ("wxb".to_string(), 200), ("wxc".to_string(), 100)]
        );
    }

    #[test]
    fn nothing_changes_when_no_account_changes() {
        let old = batch(&[("wxa", 1, 5, 9), ("wxb", 2, 2, 2)], 100);
        let new = batch(&[("wxb", 2, 2, 2)], 200);
        assert!(matches!(merge(table(), Some(&old), &BTreeSet::from(["wxb"]), &new), Merged::Unchanged));
        assert!(matches!(merge(table(), None, &BTreeSet::from(["wxb"]), &batch(&[], 1)), Merged::Unchanged));
    }

    #[test]
    fn an_account_with_no_rows_now_loses_its_old_ones() {
        let old = batch(&[("wxa", 1, 5, 9)], 100);
        let Merged::Rows(merged) = merge(table(), Some(&old), &BTreeSet::from(["wxa"]), &batch(&[], 200)) else {
            panic!("wxa's row is gone")
        };
        assert_eq!(merged.num_rows(), 0);
    }
}
