//! normalize: raw API rows → validated rows → Arrow record batches.
//!
//! Takes the JSON rows extract received for one (table, account, window); hands write one
//! [`RecordBatch`] per date with exactly the registry's columns. Decoding is tolerant where the
//! API is sloppy (integers sent as strings, undocumented extra fields) and strict where a wrong
//! value would corrupt the table:
//! - a row dated outside the requested window is dropped and counted, never written;
//! - an unknown code keeps its row and raw code, gets a null label, and is counted;
//! - a count that is negative or not an integer, a missing field, or an impossible `ref_hour`
//!   fails the whole window with a message naming the row and field.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::NaiveDate;
use serde_json::{Map, Value};

use crate::dates::{DateRange, parse_date};
use crate::registry::{ColumnType, Source, Table};

/// One validated API row: its date and the table's `api_fields`, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub ref_date: NaiveDate,
    pub values: Vec<i64>,
}

/// What decoding noticed without failing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Rows dated outside the requested window, dropped.
    pub out_of_window: u64,
    /// Code values with no label in the registry, kept with a null label.
    pub unknown_codes: u64,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Self) {
        self.out_of_window += o.out_of_window;
        self.unknown_codes += o.unknown_codes;
    }
}

/// Why a window's rows cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("row {row}: {problem}")]
pub struct RowError {
    /// 1-based position in the response's `list`.
    pub row: usize,
    pub problem: String,
}

/// Checks and types the rows of one response for `window`.
pub fn decode(
    table: &Table,
    raw: &[Map<String, Value>],
    window: DateRange,
    counters: &mut Counters,
) -> Result<Vec<Row>, RowError> {
    let mut rows = Vec::with_capacity(raw.len());
    for (i, object) in raw.iter().enumerate() {
        let fail = |problem: String| RowError { row: i + 1, problem };
        let ref_date = match object.get("ref_date") {
            Some(Value::String(s)) => parse_date(s).map_err(|e| fail(format!("ref_date {e}")))?,
            Some(other) => return Err(fail(format!("ref_date {} is not a date string", short(other)))),
            None => return Err(fail("ref_date is missing".into())),
        };
        let values = table
            .api_fields
            .iter()
            .map(|f| integer(object.get(f)).map_err(|e| fail(format!("{f} {e}"))))
            .collect::<Result<Vec<i64>, _>>()?;
        check(table, &values).map_err(fail)?;
        if !window.contains(ref_date) {
            counters.out_of_window += 1;
            continue;
        }
        counters.unknown_codes += table
            .columns
            .iter()
            .filter(|c| matches!(c.source, Source::Label { field } if table.label(field, values[field]).is_none()))
            .count() as u64;
        rows.push(Row { ref_date, values });
    }
    Ok(rows)
}

/// An integer from a JSON number or a string of digits; floats, huge numbers and anything
/// else are refused.
fn integer(v: Option<&Value>) -> Result<i64, String> {
    match v {
        None | Some(Value::Null) => Err("is missing".into()),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("is {n}, not an integer in range")),
        Some(Value::String(s)) => {
            s.trim().parse::<i64>().map_err(|_| format!("is {}, not an integer", short(&Value::String(s.clone()))))
        }
        Some(other) => Err(format!("is {}, not an integer", short(other))),
    }
}

/// The registry's rules for column values: counts are non-negative, derived values divide
/// exactly and stay in range, 32-bit columns fit.
fn check(table: &Table, values: &[i64]) -> Result<(), String> {
    for c in &table.columns {
        let Source::Field { field, divide_by, range } = c.source else { continue };
        let raw = values[field];
        let name = &table.api_fields[field];
        if c.measure && raw < 0 {
            return Err(format!("{name} is {raw}: counts must be non-negative integers"));
        }
        let value = match divide_by {
            Some(d) if raw % d != 0 => return Err(format!("{name} is {raw}, not a multiple of {d}")),
            Some(d) => raw / d,
            None => raw,
        };
        if let Some((lo, hi)) = range
            && !(lo..=hi).contains(&value)
        {
            return Err(format!(
                "{name} is {raw}, outside {}..={}",
                lo * divide_by.unwrap_or(1),
                hi * divide_by.unwrap_or(1)
            ));
        }
        if c.ty == ColumnType::Int32 && i32::try_from(value).is_err() {
            return Err(format!("{name} is {raw}, too large for a 32-bit column"));
        }
    }
    Ok(())
}

fn short(v: &Value) -> String {
    crate::extract::response::truncate(&v.to_string(), 40)
}

/// Builds the batch for `rows`, each paired with the account it was fetched for. Values must
/// have passed [`decode`].
pub fn to_batch(table: &Table, rows: &[(&str, &Row)], extracted_at_micros: i64) -> RecordBatch {
    let columns: Vec<ArrayRef> = table
        .columns
        .iter()
        .map(|c| -> ArrayRef {
            match &c.source {
                Source::AppId => Arc::new(StringArray::from_iter_values(rows.iter().map(|(a, _)| *a))),
                Source::ExtractedAt => Arc::new(
                    TimestampMicrosecondArray::from(vec![extracted_at_micros; rows.len()]).with_timezone("UTC"),
                ),
                Source::Field { field, divide_by, .. } => {
                    let values = rows.iter().map(|(_, r)| r.values[*field] / divide_by.unwrap_or(1));
                    match c.ty {
                        ColumnType::Int32 => Arc::new(Int32Array::from_iter_values(values.map(|v| v as i32))),
                        _ => Arc::new(Int64Array::from_iter_values(values)),
                    }
                }
                Source::Label { field } => {
                    Arc::new(StringArray::from_iter(rows.iter().map(|(_, r)| table.label(*field, r.values[*field]))))
                }
            }
        })
        .collect();
    RecordBatch::try_new(table.schema(), columns).expect("columns are built from the table's own schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;
    use arrow::array::Array;
    use serde_json::json;

    fn raw(v: Value) -> Vec<Map<String, Value>> {
        v.as_array().unwrap().iter().map(|o| o.as_object().unwrap().clone()).collect()
    }

    fn window(a: &str, b: &str) -> DateRange {
        DateRange::new(parse_date(a).unwrap(), parse_date(b).unwrap()).unwrap()
    }

    #[test]
    fn hour_rows_become_labelled_columns() {
        let t = registry::find("upstream_msg_hour").unwrap();
        let rows = raw(json!([
            {"ref_date": "2024-03-01", "ref_hour": 2300, "msg_type": 1, "msg_user": 3, "msg_count": 4, "user_source": 0},
            {"ref_date": "2024-03-01", "ref_hour": "100", "msg_type": 7, "msg_user": "0", "msg_count": 0},
        ]));
        let mut counters = Counters::default();
        let decoded = decode(t, &rows, window("2024-03-01", "2024-03-01"), &mut counters).unwrap();
        assert_eq!(counters, Counters { out_of_window: 0, unknown_codes: 1 });
        let pairs: Vec<(&str, &Row)> = decoded.iter().map(|r| ("wxa", r)).collect();
        let batch = to_batch(t, &pairs, 1_700_000_000_000_000);
        assert_eq!(batch.schema(), t.schema());
        let col = |n: &str| batch.column_by_name(n).unwrap().clone();
        let hour = col("hour");
        let hour = hour.as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(hour.values(), &[23, 1]);
        let label = col("msg_type_label");
        let label = label.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(label.value(0), "text");
        assert!(label.is_null(1), "unknown code 7 keeps its row with a null label");
        assert_eq!(col("ref_hour").as_any().downcast_ref::<Int32Array>().unwrap().values(), &[2300, 100]);
    }

    #[test]
    fn rows_outside_the_window_are_dropped_and_counted() {
        let t = registry::find("upstream_msg").unwrap();
        let rows = raw(json!([
            {"ref_date": "2019-01-01", "msg_type": 1, "msg_user": 1, "msg_count": 1},
            {"ref_date": "2024-03-02", "msg_type": 1, "msg_user": 1, "msg_count": 1},
            {"ref_date": "2024-03-08", "msg_type": 1, "msg_user": 1, "msg_count": 1},
        ]));
        let mut counters = Counters::default();
        let decoded = decode(t, &rows, window("2024-03-01", "2024-03-07"), &mut counters).unwrap();
        assert_eq!(decoded.len(), 1);
        assert_eq!(counters.out_of_window, 2);
    }

    #[test]
    fn bad_values_fail_the_window() {
        let t = registry::find("upstream_msg_hour").unwrap();
        let w = window("2024-03-01", "2024-03-01");
        let err = |row: Value| decode(t, &raw(json!([row])), w, &mut Counters::default()).unwrap_err().to_string();
        let base = json!({"ref_date": "2024-03-01", "ref_hour": 100, "msg_type": 1, "msg_user": 1, "msg_count": 1});
        let with = |k: &str, v: Value| {
            let mut o = base.clone();
            o[k] = v;
            o
        };
        assert_eq!(err(with("msg_count", json!(-5))), "row 1: msg_count is -5: counts must be non-negative integers");
        assert_eq!(err(with("msg_user", json!(1.5))), "row 1: msg_user is 1.5, not an integer in range");
        assert_eq!(err(with("msg_user", json!("many"))), "row 1: msg_user is \"many\", not an integer");
        assert_eq!(
            err(with("msg_user", json!(u64::MAX))),
            format!("row 1: msg_user is {}, not an integer in range", u64::MAX)
        );
        assert_eq!(err(with("ref_hour", json!(150))), "row 1: ref_hour is 150, not a multiple of 100");
        assert_eq!(err(with("ref_hour", json!(2400))), "row 1: ref_hour is 2400, outside 0..=2300");
        assert_eq!(
            err(with("msg_type", json!(1i64 << 40))),
            format!("row 1: msg_type is {}, too large for a 32-bit column", 1i64 << 40)
        );
        assert_eq!(err(with("ref_date", json!("03/01/2024"))).split(':').next().unwrap(), "row 1");
        let mut missing = base.clone();
        missing.as_object_mut().unwrap().remove("msg_count");
        assert_eq!(err(missing), "row 1: msg_count is missing");
    }

    #[test]
    fn distribution_labels() {
        let t = registry::find("upstream_msg_dist_week").unwrap();
        let rows = raw(json!([{"ref_date": "2024-03-04", "count_interval": 3, "msg_user": 9}]));
        let decoded = decode(t, &rows, window("2024-03-04", "2024-03-04"), &mut Counters::default()).unwrap();
        let batch = to_batch(t, &[("wxa", &decoded[0])], 0);
        let label = batch.column_by_name("count_interval_label").unwrap();
        assert_eq!(label.as_any().downcast_ref::<StringArray>().unwrap().value(0), ">10");
    }

    mod props {
        use super::*;
        use crate::extract::response::parse_rows;
        use proptest::prelude::*;

        /// Arbitrary JSON, biased towards the shapes the API uses.
        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "[0-9a-z:. -]{0,12}".prop_map(Value::String),
                Just(Value::String("2024-03-01".into())),
            ];
            leaf.prop_recursive(4, 64, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop_oneof![
                            Just("ref_date".to_string()),
                            Just("msg_type".to_string()),
                            Just("msg_user".to_string()),
                            Just("msg_count".to_string()),
                            Just("ref_hour".to_string()),
                            Just("count_interval".to_string()),
                            Just("list".to_string()),
                            Just("errcode".to_string()),
                            "[a-z_]{1,8}",
                        ],
                        inner,
                        0..7,
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn decode_all(body: &[u8]) {
            if let Ok(Ok(rows)) = parse_rows(body) {
                let window =
                    DateRange::new(parse_date("2024-02-26").unwrap(), parse_date("2024-03-10").unwrap()).unwrap();
                for t in registry::tables() {
                    if let Ok(decoded) = decode(t, &rows, window, &mut Counters::default()) {
                        let pairs: Vec<(&str, &Row)> = decoded.iter().map(|r| ("wxa", r)).collect();
                        let batch = to_batch(t, &pairs, 0);
                        assert_eq!(batch.num_rows(), decoded.len());
                    }
                }
            }
        }

        proptest! {
            /// Arbitrary bytes never panic the envelope parser or the decoder.
            #[test]
            fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
                decode_all(&body);
            }

            /// Arbitrary JSON (rows with any fields and values) never panics either, and what
            /// decodes always builds a batch of the table's schema.
            #[test]
            fn arbitrary_json_never_panics(rows in prop::collection::vec(json_value(), 0..8), wrap in any::<bool>()) {
                let body = if wrap { serde_json::json!({"list": rows}) } else { Value::Array(rows) };
                decode_all(body.to_string().as_bytes());
            }
        }
    }
}
