//! Merge on write: what a bucket file holds after a run replaced its accounts' rows.
//!
//! A bucket file holds the rows of many accounts for one (table, date). Writing it keeps the
//! rows of accounts outside the run as they were, and replaces each of the run's accounts'
//! rows by what the API returned this time. An account whose rows did not change keeps them as
//! they were, `extracted_at` included: that column says when these values were first fetched,
//! decided per account. A file where no account changed is not rewritten at all.

use crate::schema::ArrowSchema;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, TimeUnit};
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
///
/// A stable sort of row indices with one comparator per key column, then one `take`. The
/// keys are never null (the registry refuses a nullable row key, and every row has an appid),
/// and a file holds one day of its accounts (about 10 000 rows for 200 accounts' hour table),
/// so this needs nothing of `arrow-ord`'s sort kernels, a crate that cost a new user's first
/// build 77 s of CPU (README, "Performance").
pub fn sort_rows(table: &Table, batch: &RecordBatch) -> RecordBatch {
    let keys: Vec<&dyn Array> = std::iter::once(table.appid_column())
        .chain(table.row_key.iter().copied())
        .map(|i| batch.column(i).as_ref())
        .collect();
    take_record_batch(batch, &sorted_order(&keys)).expect("indices come from the batch")
}

/// The row indices that put `keys` (columns of one length) in ascending lexicographic order.
fn sorted_order(keys: &[&dyn Array]) -> UInt32Array {
    let comparators: Vec<Comparator> = keys.iter().map(|column| comparator(*column)).collect();
    let rows = keys.first().map_or(0, |k| k.len());
    let rows = u32::try_from(rows).expect("a file holds fewer than 2^32 rows");
    let mut order: Vec<u32> = (0..rows).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        comparators.iter().map(|cmp| cmp(a, b)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    });
    UInt32Array::from(order)
}

/// Compares two rows of one key column.
type Comparator<'a> = Box<dyn Fn(usize, usize) -> Ordering + 'a>;

fn comparator(column: &dyn Array) -> Comparator<'_> {
    debug_assert_eq!(column.null_count(), 0, "sort keys are never null");
    match column.data_type() {
        DataType::Utf8 => {
            let values = column.as_string::<i32>();
            Box::new(move |a, b| values.value(a).cmp(values.value(b)))
        }
        DataType::Boolean => {
            let values = column.as_boolean();
            Box::new(move |a, b| values.value(a).cmp(&values.value(b)))
        }
        // The order arrow's own kernels give doubles: IEEE 754 totalOrder.
        DataType::Float64 => {
            let values = column.as_primitive::<Float64Type>();
            Box::new(move |a, b| values.value(a).total_cmp(&values.value(b)))
        }
        DataType::Int32 => ordered::<Int32Type>(column),
        DataType::Int64 => ordered::<Int64Type>(column),
        DataType::Date32 => ordered::<Date32Type>(column),
        DataType::Timestamp(TimeUnit::Microsecond, _) => ordered::<TimestampMicrosecondType>(column),
        other => unreachable!("the registry has no sort key of type {other}"),
    }
}

fn ordered<T: ArrowPrimitiveType>(column: &dyn Array) -> Comparator<'_>
where
    T::Native: Ord,
{
    let values = column.as_primitive::<T>();
    Box::new(move |a, b| values.value(a).cmp(&values.value(b)))
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
    fn rows_are_sorted_by_appid_then_row_key() {
        let rows = batch(&[("wxb", 2, 1, 1), ("wxa", 3, 1, 1), ("wxb", 1, 1, 1), ("wxa", 1, 1, 1)], 100);
        let sorted = sort_rows(table(), &rows);
        let msg_type = table().columns.iter().position(|c| c.name == "msg_type").unwrap();
        let msg_type = sorted.column(msg_type).as_primitive::<Int32Type>();
        let order: Vec<(&str, i32)> =
            (0..sorted.num_rows()).map(|i| (appids(table(), &sorted).value(i), msg_type.value(i))).collect();
        assert_eq!(order, [("wxa", 1), ("wxa", 3), ("wxb", 1), ("wxb", 2)]);
    }

    mod against_arrow_sort {
        use super::super::sorted_order;
        use arrow_array::{
            Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, StringArray,
            TimestampMicrosecondArray,
        };
        use arrow_ord::sort::{SortColumn, lexsort_to_indices};
        use arrow_select::take::take;
        use proptest::prelude::*;
        use std::sync::Arc;

        /// A key column of `rows` values of one of the types a row key can have, drawn from a
        /// few values so that ties, decided by the next column, are common.
        fn column(kind: u8, rows: usize) -> impl Strategy<Value = ArrayRef> {
            let few = proptest::collection::vec(0u8..4, rows);
            few.prop_map(move |v| -> ArrayRef {
                match kind % 7 {
                    0 => Arc::new(StringArray::from_iter_values(v.iter().map(|x| ["b", "a", "ab", ""][*x as usize]))),
                    1 => Arc::new(Int32Array::from_iter_values(v.iter().map(|x| i32::from(*x) - 2))),
                    2 => Arc::new(Int64Array::from_iter_values(v.iter().map(|x| i64::MAX - i64::from(*x)))),
                    3 => {
                        Arc::new(Float64Array::from_iter_values(v.iter().map(|x| [-0.0, 0.0, 1.5, -7.0][*x as usize])))
                    }
                    4 => Arc::new(BooleanArray::from_iter(v.iter().map(|x| Some(*x % 2 == 0)))),
                    5 => Arc::new(Date32Array::from_iter_values(v.iter().map(|x| 19_000 + i32::from(*x)))),
                    _ => Arc::new(
                        TimestampMicrosecondArray::from_iter_values(v.iter().map(|x| i64::from(*x) * 1_000_000))
                            .with_timezone("UTC"),
                    ),
                }
            })
        }

        fn keys() -> impl Strategy<Value = Vec<ArrayRef>> {
            (0usize..40, proptest::collection::vec(any::<u8>(), 1..4))
                .prop_flat_map(|(rows, kinds)| kinds.into_iter().map(|k| column(k, rows)).collect::<Vec<_>>())
        }

        proptest! {
            /// Ties may come out in either order, so what is compared is the sorted keys.
            #[test]
            fn the_keys_come_out_in_arrows_order(keys in keys()) {
                let refs: Vec<&dyn Array> = keys.iter().map(|k| k.as_ref()).collect();
                let ours = sorted_order(&refs);
                let sort_columns: Vec<SortColumn> =
                    keys.iter().map(|k| SortColumn { values: k.clone(), options: None }).collect();
                let arrows = lexsort_to_indices(&sort_columns, None).unwrap();
                for key in &keys {
                    let (ours, arrows) = (take(key, &ours, None).unwrap(), take(key, &arrows, None).unwrap());
                    prop_assert_eq!(&ours, &arrows);
                }
            }
        }
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
