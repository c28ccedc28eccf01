//! normalize: API answers → validated rows → Arrow record batches.
//!
//! Takes the answer extract received for one (table, account, window), as bytes; hands write
//! one [`RecordBatch`] per date with exactly the registry's columns. Rows are typed straight
//! from the bytes as they stream by (no JSON tree per row). Decoding is tolerant where the API
//! is sloppy (integers sent as strings, undocumented extra fields, which are skipped) and
//! strict where a wrong value would corrupt the table:
//! - a row dated outside the requested window is dropped and counted, never written;
//! - an unknown code keeps its row and raw code, gets a null label, and is counted;
//! - a count that is negative or not an integer, a missing field, or an impossible `ref_hour`
//!   fails the whole window with a message naming the row and field.
//!
//! A field given twice in a row counts with its last value, as in any JSON object.

use crate::schema::ArrowSchema;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::NaiveDate;
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use crate::answer::{ApiError, ByShape, EnvelopeError, ListReader, Skip, drain_map, parse_answer};
use crate::dates::{DateRange, parse_date};
use wxcube_registry::{ColumnType, Source, Table};

/// One validated API row: its date and the table's `api_fields`, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub ref_date: NaiveDate,
    pub values: Vec<i64>,
}

/// What decoding noticed without failing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Rows dated outside the requested window, dropped.
    pub out_of_window: u64,
    /// Code values with no label in the registry, kept with a null label.
    pub unknown_codes: u64,
    /// Fields the rows carried that the table does not declare, with the number of rows that
    /// carried each (in the order first seen: a handful at most).
    pub unknown_fields: Vec<(String, u64)>,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Self) {
        self.out_of_window += o.out_of_window;
        self.unknown_codes += o.unknown_codes;
        for (name, rows) in o.unknown_fields {
            count_field(&mut self.unknown_fields, &name, rows);
        }
    }
}

/// Adds `rows` to the count of the field `name`.
fn count_field(fields: &mut Vec<(String, u64)>, name: &str, rows: u64) {
    match fields.iter_mut().find(|(n, _)| n == name) {
        Some((_, n)) => *n += rows,
        None => fields.push((name.to_string(), rows)),
    }
}

/// Why a window's rows cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("row {row}: {problem}")]
pub struct RowError {
    /// 1-based position in the response's `list`.
    pub row: usize,
    pub problem: String,
}

/// Why an answer gave no rows. Extract has already refused answers of the first two kinds
/// during a run; a stored answer (rebuild) may be of any kind.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("{0}")]
    Api(ApiError),
    #[error(transparent)]
    Row(#[from] RowError),
}

/// Checks and types the rows of one answer (the response body) for `window`.
pub fn decode(table: &Table, body: &[u8], window: DateRange, counters: &mut Counters) -> Result<Vec<Row>, DecodeError> {
    let reader = Rows {
        table,
        window,
        rows: Vec::new(),
        seen: 0,
        counters: Counters::default(),
        error: None,
        fields: Vec::new(),
    };
    let read = parse_answer(body, reader)?.map_err(DecodeError::Api)?;
    if let Some(e) = read.error {
        return Err(e.into());
    }
    *counters += read.counters;
    Ok(read.rows)
}

/// Types rows as the envelope reads them. The first bad row is remembered rather than
/// returned, so that an errcode after `list` still decides what the answer is.
#[derive(Clone)]
struct Rows<'t> {
    table: &'t Table,
    window: DateRange,
    rows: Vec<Row>,
    /// Row objects read so far.
    seen: usize,
    counters: Counters,
    error: Option<RowError>,
    /// The current row's api fields as read (`None`: not seen), reused from row to row.
    fields: Vec<Option<Result<i64, String>>>,
}

impl<'de> ListReader<'de> for Rows<'_> {
    fn row<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        self.seen += 1;
        if self.error.is_some() {
            // The window is refused already; the rest is only read through.
            return drain_map(map);
        }
        self.fields.clear();
        self.fields.resize(self.table.api_fields.len(), None);
        let mut ref_date = None;
        let unknown = &mut self.counters.unknown_fields;
        while let Some(key) = map.next_key_seed(RowKey { fields: &self.table.api_fields, unknown: &mut *unknown })? {
            match key {
                Key::RefDate => ref_date = Some(map.next_value_seed(Typed(PhantomData))?),
                Key::Field(i) => self.fields[i] = Some(map.next_value_seed(Typed(PhantomData))?),
                Key::Other => map.next_value_seed(ByShape(Skip))?,
            }
        }
        match self.typed(ref_date) {
            Ok(row) if !self.window.contains(row.ref_date) => self.counters.out_of_window += 1,
            Ok(row) => {
                let table = self.table;
                self.counters.unknown_codes += table
                    .columns
                    .iter()
                    .filter(|c| matches!(c.source, Source::Label { field } if table.label(field, row.values[field]).is_none()))
                    .count() as u64;
                self.rows.push(row);
            }
            Err(problem) => self.error = Some(RowError { row: self.seen, problem }),
        }
        Ok(())
    }
}

impl Rows<'_> {
    /// The row just read, if every field is there and passes [`check`]; problems are reported
    /// in a fixed order (date, then fields in order), whatever the order of the keys.
    fn typed(&mut self, ref_date: Option<Result<NaiveDate, String>>) -> Result<Row, String> {
        let ref_date = ref_date.unwrap_or_else(missing).map_err(|e| format!("ref_date {e}"))?;
        let values = (self.table.api_fields.iter().zip(&mut self.fields))
            .map(|(f, v)| v.take().unwrap_or_else(missing).map_err(|e| format!("{f} {e}")))
            .collect::<Result<Vec<i64>, _>>()?;
        check(self.table, &values)?;
        Ok(Row { ref_date, values })
    }
}

fn missing<T>() -> Result<T, String> {
    Err("is missing".into())
}

/// A key of a row object.
enum Key {
    RefDate,
    /// Position in the table's `api_fields`.
    Field(usize),
    /// A field the table does not declare: counted, then skipped.
    Other,
}

/// Reads a row's key against the table's fields (a handful: a scan is fastest), counting
/// the keys it does not know.
struct RowKey<'n> {
    fields: &'n [String],
    unknown: &'n mut Vec<(String, u64)>,
}

impl<'de> DeserializeSeed<'de> for RowKey<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Key, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for RowKey<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        if key == "ref_date" {
            return Ok(Key::RefDate);
        }
        match self.fields.iter().position(|f| f == key) {
            Some(i) => Ok(Key::Field(i)),
            None => {
                count_field(self.unknown, key, 1);
                Ok(Key::Other)
            }
        }
    }
}

/// What a field accepts, by the JSON type of its value.
trait FieldType: Sized {
    fn text(s: &str) -> Result<Self, String>;
    /// An integer of any size, or a float.
    fn number(n: Number) -> Result<Self, String>;
    /// Anything else, null included.
    fn other(v: Value) -> Result<Self, String>;
}

/// An integer from a JSON number or a string of digits; floats, huge numbers and anything
/// else are refused.
impl FieldType for i64 {
    fn text(s: &str) -> Result<i64, String> {
        s.trim().parse::<i64>().map_err(|_| format!("is {}, not an integer", short(&Value::String(s.into()))))
    }

    fn number(n: Number) -> Result<i64, String> {
        n.as_i64().ok_or_else(|| format!("is {n}, not an integer in range"))
    }

    fn other(v: Value) -> Result<i64, String> {
        match v {
            Value::Null => Err("is missing".into()),
            other => Err(format!("is {}, not an integer", short(&other))),
        }
    }
}

impl FieldType for NaiveDate {
    fn text(s: &str) -> Result<NaiveDate, String> {
        parse_date(s)
    }

    fn number(n: Number) -> Result<NaiveDate, String> {
        Self::other(Value::Number(n))
    }

    fn other(v: Value) -> Result<NaiveDate, String> {
        Err(format!("{} is not a date string", short(&v)))
    }
}

/// Reads one field's value as `T`, or says what is wrong with it. Scalars are read in place;
/// only an object or array (always an error) is built as a `Value`, to be quoted.
struct Typed<T>(PhantomData<T>);

impl<'de, T: FieldType> DeserializeSeed<'de> for Typed<T> {
    type Value = Result<T, String>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de, T: FieldType> Visitor<'de> for Typed<T> {
    type Value = Result<T, String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(T::other(Value::Null))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(T::other(Value::Bool(b)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(T::number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(T::number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        // As serde_json builds a `Value`: a float that is not finite becomes null.
        Ok(Number::from_f64(n).map_or_else(|| T::other(Value::Null), T::number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(T::text(s))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(T::other(Value::deserialize(MapAccessDeserializer::new(map))?))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Ok(T::other(Value::deserialize(SeqAccessDeserializer::new(seq))?))
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
    crate::text::truncate(&v.to_string(), 40)
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
    use arrow_array::Array;
    use serde_json::json;
    use wxcube_registry as registry;

    /// The body of an answer with these rows.
    fn raw(rows: Value) -> Vec<u8> {
        json!({ "list": rows }).to_string().into_bytes()
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
        assert_eq!(
            counters,
            Counters { out_of_window: 0, unknown_codes: 1, unknown_fields: vec![("user_source".into(), 1)] }
        );
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
    fn rows_are_read_whatever_the_key_order_and_extra_fields() {
        let t = registry::find("upstream_msg").unwrap();
        let body = br#"{"list":[{"msg_count":" 3 ","extra":{"a":[1,2.5,null]},"msg_user":2,"msg_type":"1","ref_date":"2024-03-01","more":"x"}]}"#;
        let decoded = decode(t, body, window("2024-03-01", "2024-03-01"), &mut Counters::default()).unwrap();
        assert_eq!(decoded, vec![Row { ref_date: parse_date("2024-03-01").unwrap(), values: vec![1, 2, 3] }]);
    }

    #[test]
    fn a_repeated_field_counts_with_its_last_value() {
        let t = registry::find("upstream_msg").unwrap();
        let w = window("2024-03-01", "2024-03-01");
        let body = br#"{"list":[{"ref_date":"2019-01-01","msg_type":1,"msg_user":"many","msg_count":null,"msg_user":2,"msg_count":3,"ref_date":"2024-03-01"}]}"#;
        let decoded = decode(t, body, w, &mut Counters::default()).unwrap();
        assert_eq!(decoded[0].values, vec![1, 2, 3]);
        let body = br#"{"list":[{"ref_date":"2024-03-01","msg_type":1,"msg_user":2,"msg_count":3,"msg_count":null}]}"#;
        assert_eq!(
            decode(t, body, w, &mut Counters::default()).unwrap_err().to_string(),
            "row 1: msg_count is missing"
        );
    }

    #[test]
    fn an_api_error_after_the_list_wins_over_a_bad_row() {
        let t = registry::find("upstream_msg").unwrap();
        let w = window("2024-03-01", "2024-03-01");
        let err = |body: &str| decode(t, body.as_bytes(), w, &mut Counters::default()).unwrap_err();
        assert!(matches!(
            err(r#"{"list":[{"bad":1}],"errcode":45009}"#),
            DecodeError::Api(ApiError { code: 45009, .. })
        ));
        assert!(matches!(err(r#"{"list":[{"bad":1}],"errcode":0}"#), DecodeError::Row(RowError { row: 1, .. })));
        // The first bad row is the one reported, the rest is still read.
        let e = err(r#"{"list":[{"ref_date":"2024-03-01","msg_type":1,"msg_user":1,"msg_count":1},{},{"x":[}]}"#);
        assert!(matches!(e, DecodeError::Envelope(EnvelopeError::NotJson(_))), "{e}");
        let e = err(r#"{"list":[{"ref_date":"2024-03-01","msg_type":1,"msg_user":1,"msg_count":1},{},5]}"#);
        assert!(matches!(e, DecodeError::Envelope(EnvelopeError::BadList)), "{e}");
        let e =
            err(r#"{"list":[{"ref_date":"2024-03-01","msg_type":1,"msg_user":1,"msg_count":1},{"ref_date":null},{}]}"#);
        assert_eq!(e.to_string(), "row 2: ref_date null is not a date string");
    }

    #[test]
    fn bad_values_are_quoted_as_json() {
        let t = registry::find("upstream_msg").unwrap();
        let w = window("2024-03-01", "2024-03-01");
        let err = |date: &str, user: &str| {
            let body = format!(r#"{{"list":[{{"ref_date":{date},"msg_type":1,"msg_user":{user},"msg_count":1}}]}}"#);
            decode(t, body.as_bytes(), w, &mut Counters::default()).unwrap_err().to_string()
        };
        assert_eq!(err(r#""2024-03-01""#, r#"[1, {"a": "b"}]"#), r#"row 1: msg_user is [1,{"a":"b"}], not an integer"#);
        assert_eq!(err(r#""2024-03-01""#, "true"), "row 1: msg_user is true, not an integer");
        assert_eq!(err(r#""2024-03-01""#, "1e20"), "row 1: msg_user is 1e+20, not an integer in range");
        assert_eq!(err(r#""2024-03-01""#, "100.0"), "row 1: msg_user is 100.0, not an integer in range");
        assert_eq!(err(r#""2024-03-01""#, r#""a\"b""#), r#"row 1: msg_user is "a\"b", not an integer"#);
        assert_eq!(err("20240301", "1"), "row 1: ref_date 20240301 is not a date string");
        assert_eq!(err(r#"{"d":1}"#, "1"), r#"row 1: ref_date {"d":1} is not a date string"#);
        assert_eq!(
            err(r#""2024-02-30""#, "1"),
            "row 1: ref_date '2024-02-30' is not a date: write it as YYYY-MM-DD, e.g. 2024-03-01"
        );
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
        use crate::answer::check;
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
            let envelope = check(body);
            let window = DateRange::new(parse_date("2024-02-26").unwrap(), parse_date("2024-03-10").unwrap()).unwrap();
            for t in registry::tables() {
                match decode(t, body, window, &mut Counters::default()) {
                    Ok(decoded) => {
                        assert_eq!(envelope, Ok(Ok(())));
                        let pairs: Vec<(&str, &Row)> = decoded.iter().map(|r| ("wxa", r)).collect();
                        let batch = to_batch(t, &pairs, 0);
                        assert_eq!(batch.num_rows(), decoded.len());
                    }
                    // Extract's check and the full decode agree on what the answer is.
                    Err(DecodeError::Row(_)) => assert_eq!(envelope, Ok(Ok(()))),
                    Err(DecodeError::Api(e)) => assert_eq!(envelope, Ok(Err(e))),
                    Err(DecodeError::Envelope(e)) => assert_eq!(envelope, Err(e)),
                }
            }
        }

        proptest! {
            /// Arbitrary bytes never panic the envelope check or the decoder.
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
