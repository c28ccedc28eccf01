//! normalize: API answers → validated rows → Arrow record batches.
//!
//! Takes the answer extract received for one (table, account, window), as bytes; hands write
//! one [`RecordBatch`] per date with exactly the registry's columns. Flat rows (the message,
//! user and interface tables) are typed straight from the bytes as they stream by; a nested
//! value (an object such as `detail`, the per-day array a table takes its rows from, an array
//! of objects kept as a list) is read whole and then typed. Decoding is tolerant where the
//! API is sloppy (integers sent as strings, undocumented extra fields, which are skipped and
//! counted, optional fields left out, which are null) and strict where a wrong value would
//! corrupt the table:
//! - a row dated outside the requested window is dropped and counted, never written;
//! - an unknown code keeps its row and raw code, gets a null label, and is counted;
//! - a count that is negative or not an integer, a required field missing, or an impossible
//!   `ref_hour` fails the whole window with a message naming the row and field.
//!
//! A field given twice in a row counts with its last value, as in any JSON object.

use crate::schema::{ArrowSchema, arrow_type};
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, Int32Array, Int64Array, ListArray, RecordBatch, StructArray, TimestampMicrosecondArray};
use arrow_schema::DataType;
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use crate::answer::{ApiError, ByShape, EnvelopeError, ListReader, Skip, drain_map, parse_answer};
use crate::dates::{DateRange, parse_date};
use wxcube_registry::{ApiField, ColumnType, Kind, Node, Shape, Source, Table};

/// One typed value of an API field.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Left out, or sent as null (only where the field is optional).
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    Date(NaiveDate),
    /// An array of objects: each element's fields in the list type's order.
    Structs(Vec<Vec<Cell>>),
}

impl Cell {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Cell::Int(v) => Some(*v),
            _ => None,
        }
    }
}

/// One validated API row: its date, the table's `api_fields` in order, and whether the API
/// said its answer is not final yet (`is_delay`).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub ref_date: NaiveDate,
    pub values: Vec<Cell>,
    pub delayed: bool,
}

/// What decoding noticed without failing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Rows dated outside the requested window, dropped.
    pub out_of_window: u64,
    /// Code values with no label in the registry, kept with a null label.
    pub unknown_codes: u64,
    /// Fields the rows carried that the table does not declare, with the number of rows that
    /// carried each (in the order first seen: a handful at most). Nested ones by their path.
    pub unknown_fields: Vec<(String, u64)>,
    /// Whether an answer said `is_delay: true`: its figures are not final yet.
    pub delayed: bool,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Self) {
        self.out_of_window += o.out_of_window;
        self.unknown_codes += o.unknown_codes;
        self.delayed |= o.delayed;
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
        elements: None,
        rows_from: table.shape.keys.iter().any(|(_, n)| matches!(n, Node::Rows(_))),
        made: Vec::new(),
    };
    let answer = parse_answer(body, reader)?.map_err(DecodeError::Api)?;
    let mut read = answer.rows;
    if let Some(e) = read.error {
        return Err(e.into());
    }
    if answer.delayed {
        read.rows.iter_mut().for_each(|r| r.delayed = true);
        read.counters.delayed = true;
    }
    *counters += read.counters;
    Ok(read.rows)
}

/// A field as read: `None` when the row has not (yet) given it.
type Read = Option<Result<Cell, String>>;

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
    /// The current row's api fields as read, reused from row to row.
    fields: Vec<Read>,
    /// The current row's `rows_from` elements, each with its own fields (`None`: not given).
    elements: Option<Result<Vec<Vec<Read>>, String>>,
    /// Whether the table takes its rows from an array in each object (`rows_from`).
    rows_from: bool,
    /// The rows the current object makes, before the window check: reused from row to row.
    made: Vec<Row>,
}

impl<'de> ListReader<'de> for Rows<'_> {
    fn row<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        self.seen += 1;
        if self.error.is_some() {
            // The window is refused already; the rest is only read through.
            return drain_map(map);
        }
        let table = self.table;
        self.fields.clear();
        self.fields.resize(table.api_fields.len(), None);
        self.elements = None;
        let mut ref_date = None;
        let unknown = &mut self.counters.unknown_fields;
        while let Some(key) = map.next_key_seed(RowKey { shape: &table.shape, unknown: &mut *unknown })? {
            match key {
                Key::RefDate => ref_date = Some(map.next_value_seed(DateSeed)?),
                Key::Node(_, Node::Field(i)) => {
                    self.fields[*i] = Some(map.next_value_seed(CellSeed(&table.api_fields[*i].kind))?);
                }
                Key::Node(key, Node::Object(inner)) => {
                    let value = map.next_value::<Value>()?;
                    read_object(table, inner, &format!("{key}."), value, &mut self.fields, unknown);
                }
                Key::Node(key, Node::Rows(inner)) => {
                    let value = map.next_value::<Value>()?;
                    self.elements = Some(read_elements(table, inner, key, value, unknown));
                }
                Key::Other => map.next_value_seed(ByShape(Skip))?,
            }
        }
        match self.typed(ref_date) {
            Ok(()) => {
                let mut made = std::mem::take(&mut self.made);
                for row in made.drain(..) {
                    if !self.window.contains(row.ref_date) {
                        self.counters.out_of_window += 1;
                        continue;
                    }
                    self.counters.unknown_codes += table
                        .columns
                        .iter()
                        .filter(|c| match c.source {
                            Source::Label { field } => {
                                row.values[field].as_int().is_some_and(|code| table.label(field, code).is_none())
                            }
                            _ => false,
                        })
                        .count() as u64;
                    self.rows.push(row);
                }
                self.made = made;
            }
            Err(problem) => self.error = Some(RowError { row: self.seen, problem }),
        }
        Ok(())
    }
}

impl Rows<'_> {
    /// Makes the rows of the object just read (one, or one per `rows_from` element) into
    /// `made`, if every required field is there and passes [`check`]; problems are reported
    /// in a fixed order (date, then fields in order), whatever the order of the keys.
    fn typed(&mut self, ref_date: Option<Result<NaiveDate, String>>) -> Result<(), String> {
        let table = self.table;
        let ref_date = ref_date.unwrap_or_else(missing).map_err(|e| format!("ref_date {e}"))?;
        if !self.rows_from {
            // One row: the fields as read, moved out (the flat tables' hot path).
            let values = (table.api_fields.iter().zip(&mut self.fields))
                .map(|(f, read)| resolve(f, read.take(), None))
                .collect::<Result<Vec<Cell>, String>>()?;
            check(table, &values)?;
            self.made.push(Row { ref_date, values, delayed: false });
            return Ok(());
        }
        let elements = match self.elements.take() {
            None => Vec::new(),
            Some(elements) => elements?,
        };
        for (n, mut element) in elements.into_iter().enumerate() {
            let mut values = Vec::with_capacity(table.api_fields.len());
            for (i, f) in table.api_fields.iter().enumerate() {
                // An element's own field, else the enclosing object's (repeated on every row).
                let cell = match element[i].take() {
                    Some(read) => resolve(f, Some(read), Some(n)),
                    None => resolve(f, self.fields[i].clone(), None),
                }?;
                values.push(cell);
            }
            check(table, &values)?;
            self.made.push(Row { ref_date, values, delayed: false });
        }
        Ok(())
    }
}

/// The value of API field `f` as read (`None`: not given), or why it cannot be used; `element`
/// is the 0-based `rows_from` element it came from, if any.
fn resolve(f: &ApiField, read: Read, element: Option<usize>) -> Result<Cell, String> {
    match read {
        None | Some(Ok(Cell::Null)) if f.optional => Ok(Cell::Null),
        None | Some(Ok(Cell::Null)) => Err(format!("{} is missing", f.path)),
        Some(Ok(cell)) => Ok(cell),
        Some(Err(e)) => match element {
            Some(n) => Err(format!("{} (element {}) {e}", f.path, n + 1)),
            None => Err(format!("{} {e}", f.path)),
        },
    }
}

/// Reads the fields of a nested object into `fields`; a value that is not an object leaves
/// them unread (missing), unless it is null.
fn read_object(
    table: &Table,
    shape: &Shape,
    path: &str,
    value: Value,
    fields: &mut [Read],
    unknown: &mut Vec<(String, u64)>,
) {
    let Value::Object(object) = value else {
        if !value.is_null() {
            for (_, node) in &shape.keys {
                if let Node::Field(i) = node {
                    fields[*i] = Some(Err(format!("is inside {}, not an object", short(&value))));
                }
            }
        }
        return;
    };
    for (key, value) in object {
        match shape.get(&key) {
            Some(Node::Field(i)) => fields[*i] = Some(cell_of(&table.api_fields[*i].kind, value)),
            Some(Node::Object(inner) | Node::Rows(inner)) => {
                read_object(table, inner, &format!("{path}{key}."), value, fields, unknown)
            }
            None => count_field(unknown, &format!("{path}{key}"), 1),
        }
    }
}

/// Reads the `rows_from` array: one field vector per element object.
fn read_elements(
    table: &Table,
    shape: &Shape,
    key: &str,
    value: Value,
    unknown: &mut Vec<(String, u64)>,
) -> Result<Vec<Vec<Read>>, String> {
    let path = format!("{key}.");
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(format!("{key} is {}, not an array of objects", short(&other))),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(n, item)| {
            if !item.is_object() {
                return Err(format!("{key} element {} is {}, not an object", n + 1, short(&item)));
            }
            let mut fields = vec![None; table.api_fields.len()];
            read_object(table, shape, &path, item, &mut fields, unknown);
            Ok(fields)
        })
        .collect()
}

fn missing<T>() -> Result<T, String> {
    Err("is missing".into())
}

/// A key of a row object.
enum Key<'s> {
    RefDate,
    /// A declared field, or an object or array holding declared fields; with its key.
    Node(&'s str, &'s Node),
    /// A field the table does not declare: counted, then skipped.
    Other,
}

/// Reads a row's key against the table's shape (a handful of keys: a scan is fastest),
/// counting the keys it does not know.
struct RowKey<'s, 'u> {
    shape: &'s Shape,
    unknown: &'u mut Vec<(String, u64)>,
}

impl<'de, 's> DeserializeSeed<'de> for RowKey<'s, '_> {
    type Value = Key<'s>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Key<'s>, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de, 's> Visitor<'de> for RowKey<'s, '_> {
    type Value = Key<'s>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Key<'s>, E> {
        if key == "ref_date" {
            return Ok(Key::RefDate);
        }
        match self.shape.keys.iter().find(|(k, _)| k == key) {
            Some((key, node)) => Ok(Key::Node(key, node)),
            None => {
                count_field(self.unknown, key, 1);
                Ok(Key::Other)
            }
        }
    }
}

/// A value of `kind` from a JSON number.
fn from_number(kind: &Kind, n: Number) -> Result<Cell, String> {
    match kind {
        Kind::Int => n.as_i64().map(Cell::Int).ok_or_else(|| format!("is {n}, not an integer in range")),
        Kind::Float => n.as_f64().map(Cell::Float).ok_or_else(|| format!("is {n}, not a number")),
        // A number where text is expected (an msgid, a title) is kept as its digits.
        Kind::Text => Ok(Cell::Text(n.to_string())),
        _ => from_other(kind, Value::Number(n)),
    }
}

/// A value of `kind` from a JSON string.
fn from_text(kind: &Kind, s: &str) -> Result<Cell, String> {
    let quoted = || short(&Value::String(s.into()));
    match kind {
        Kind::Int => s.trim().parse::<i64>().map(Cell::Int).map_err(|_| format!("is {}, not an integer", quoted())),
        Kind::Float => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Cell::Float(v)),
            _ => Err(format!("is {}, not a number", quoted())),
        },
        Kind::Text => Ok(Cell::Text(s.to_string())),
        Kind::Date => parse_date(s).map(Cell::Date),
        Kind::Bool | Kind::Structs(_) => from_other(kind, Value::String(s.into())),
    }
}

/// A value of `kind` from anything else: null, a boolean, an array, an object.
fn from_other(kind: &Kind, v: Value) -> Result<Cell, String> {
    match (kind, v) {
        (_, Value::Null) => Ok(Cell::Null),
        (Kind::Bool, Value::Bool(b)) => Ok(Cell::Bool(b)),
        (Kind::Structs(fields), Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(n, item)| match item {
                Value::Object(mut object) => fields
                    .iter()
                    .map(|(name, kind)| match object.remove(name) {
                        None => Ok(Cell::Null),
                        Some(v) => cell_of(kind, v).map_err(|e| format!("element {} {name} {e}", n + 1)),
                    })
                    .collect(),
                other => Err(format!("element {} is {}, not an object", n + 1, short(&other))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Cell::Structs),
        (Kind::Int, other) => Err(format!("is {}, not an integer", short(&other))),
        (Kind::Float, other) => Err(format!("is {}, not a number", short(&other))),
        (Kind::Text, other) => Err(format!("is {}, not text", short(&other))),
        (Kind::Bool, other) => Err(format!("is {}, not true or false", short(&other))),
        (Kind::Date, other) => Err(format!("{} is not a date string", short(&other))),
        (Kind::Structs(_), other) => Err(format!("is {}, not an array of objects", short(&other))),
    }
}

/// A value of `kind` from a JSON value already read.
fn cell_of(kind: &Kind, v: Value) -> Result<Cell, String> {
    match v {
        Value::Number(n) => from_number(kind, n),
        Value::String(s) => from_text(kind, &s),
        other => from_other(kind, other),
    }
}

/// Reads `ref_date`.
struct DateSeed;

impl<'de> DeserializeSeed<'de> for DateSeed {
    type Value = Result<NaiveDate, String>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        let cell = CellSeed(&Kind::Date).deserialize(de)?;
        Ok(match cell {
            Ok(Cell::Date(d)) => Ok(d),
            Ok(_) => Err("null is not a date string".to_string()),
            Err(e) => Err(e),
        })
    }
}

/// Reads one field's value as `kind`, or says what is wrong with it. Scalars are read in
/// place; an object or array is built as a `Value` first.
struct CellSeed<'k>(&'k Kind);

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = Result<Cell, String>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = Result<Cell, String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(from_other(self.0, Value::Null))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(from_other(self.0, Value::Bool(b)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(from_number(self.0, n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(from_number(self.0, n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        // As serde_json builds a `Value`: a float that is not finite becomes null.
        Ok(Number::from_f64(n).map_or_else(|| from_other(self.0, Value::Null), |n| from_number(self.0, n)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(from_text(self.0, s))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(from_other(self.0, Value::deserialize(MapAccessDeserializer::new(map))?))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Ok(from_other(self.0, Value::deserialize(SeqAccessDeserializer::new(seq))?))
    }
}

/// The registry's rules for column values: counts are non-negative, derived values divide
/// exactly and stay in range, 32-bit columns fit.
fn check(table: &Table, values: &[Cell]) -> Result<(), String> {
    for c in &table.columns {
        let Source::Field { field, divide_by, range } = c.source else { continue };
        let Cell::Int(raw) = values[field] else { continue };
        let name = &table.api_fields[field].path;
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

/// Days since 1970-01-01, as Arrow's date32 counts them.
fn date32(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - 719_163
}

/// Builds the batch for `rows`, each paired with the account it was fetched for. Values must
/// have passed [`decode`].
pub fn to_batch(table: &Table, rows: &[(&str, &Row)], extracted_at_micros: i64) -> RecordBatch {
    let columns: Vec<ArrayRef> = table
        .columns
        .iter()
        .map(|c| -> ArrayRef {
            match &c.source {
                Source::AppId => {
                    let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 18);
                    rows.iter().for_each(|(a, _)| b.append_value(a));
                    Arc::new(b.finish())
                }
                Source::ExtractedAt => Arc::new(
                    TimestampMicrosecondArray::from(vec![extracted_at_micros; rows.len()]).with_timezone("UTC"),
                ),
                Source::Delayed => {
                    let mut b = BooleanBuilder::with_capacity(rows.len());
                    rows.iter().for_each(|(_, r)| b.append_value(r.delayed));
                    Arc::new(b.finish())
                }
                Source::Field { field, divide_by, .. } => {
                    let cells: Vec<&Cell> = rows.iter().map(|(_, r)| &r.values[*field]).collect();
                    array_of(&c.ty, c.nullable, &cells, divide_by.unwrap_or(1))
                }
                Source::Label { field } => {
                    let mut b = StringBuilder::new();
                    for (_, r) in rows {
                        b.append_option(r.values[*field].as_int().and_then(|code| table.label(*field, code)));
                    }
                    Arc::new(b.finish())
                }
            }
        })
        .collect();
    RecordBatch::try_new(table.schema(), columns).expect("columns are built from the table's own schema")
}

/// The Arrow array of one column's cells (integers divided by `divide_by`). A column that is
/// never null (`nullable` false: decode has checked every value is there) is built without a
/// validity buffer.
fn array_of(ty: &ColumnType, nullable: bool, cells: &[&Cell], divide_by: i64) -> ArrayRef {
    let int = |c: &&Cell| c.as_int().unwrap_or_default() / divide_by;
    match ty {
        ColumnType::Int32 if !nullable => Arc::new(Int32Array::from_iter_values(cells.iter().map(|c| int(c) as i32))),
        ColumnType::Int64 if !nullable => Arc::new(Int64Array::from_iter_values(cells.iter().map(int))),
        ColumnType::Int32 => {
            let mut b = Int32Builder::with_capacity(cells.len());
            cells.iter().for_each(|c| b.append_option(c.as_int().map(|v| (v / divide_by) as i32)));
            Arc::new(b.finish())
        }
        ColumnType::Int64 => {
            let mut b = Int64Builder::with_capacity(cells.len());
            cells.iter().for_each(|c| b.append_option(c.as_int().map(|v| v / divide_by)));
            Arc::new(b.finish())
        }
        ColumnType::Double => {
            let mut b = Float64Builder::with_capacity(cells.len());
            for c in cells {
                b.append_option(match c {
                    Cell::Float(v) => Some(*v),
                    Cell::Int(v) => Some(*v as f64),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::String => {
            let mut b = StringBuilder::new();
            cells.iter().for_each(|c| b.append_option(if let Cell::Text(t) = c { Some(t.as_str()) } else { None }));
            Arc::new(b.finish())
        }
        ColumnType::Bool => {
            let mut b = BooleanBuilder::with_capacity(cells.len());
            cells.iter().for_each(|c| b.append_option(if let Cell::Bool(v) = c { Some(*v) } else { None }));
            Arc::new(b.finish())
        }
        ColumnType::Date => {
            let mut b = Date32Builder::with_capacity(cells.len());
            cells.iter().for_each(|c| b.append_option(if let Cell::Date(d) = c { Some(date32(*d)) } else { None }));
            Arc::new(b.finish())
        }
        ColumnType::TimestampUsUtc => unreachable!("the registry refuses timestamp API fields"),
        ColumnType::List(elements) => {
            let DataType::List(item) = arrow_type(ty) else { unreachable!("a list column's Arrow type is a list") };
            let DataType::Struct(struct_fields) = item.data_type().clone() else { unreachable!("of structs") };
            let mut offsets = vec![0i32];
            let mut valid = Vec::with_capacity(cells.len());
            let mut items: Vec<&Vec<Cell>> = Vec::new();
            for c in cells {
                if let Cell::Structs(list) = c {
                    items.extend(list);
                    valid.push(true);
                } else {
                    valid.push(false);
                }
                offsets.push(items.len() as i32);
            }
            let children: Vec<ArrayRef> = elements
                .iter()
                .enumerate()
                .map(|(k, e)| {
                    let field_cells: Vec<&Cell> = items.iter().map(|item| &item[k]).collect();
                    array_of(&e.ty, true, &field_cells, 1)
                })
                .collect();
            let structs = StructArray::new(struct_fields, children, None);
            Arc::new(ListArray::new(
                item,
                arrow_buffer::OffsetBuffer::new(offsets.into()),
                Arc::new(structs),
                Some(valid.into()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, StringArray};
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
            Counters {
                out_of_window: 0,
                unknown_codes: 1,
                unknown_fields: vec![("user_source".into(), 1)],
                delayed: false
            }
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
        let values = vec![Cell::Int(1), Cell::Int(2), Cell::Int(3)];
        assert_eq!(decoded, vec![Row { ref_date: parse_date("2024-03-01").unwrap(), values, delayed: false }]);
    }

    #[test]
    fn a_repeated_field_counts_with_its_last_value() {
        let t = registry::find("upstream_msg").unwrap();
        let w = window("2024-03-01", "2024-03-01");
        let body = br#"{"list":[{"ref_date":"2019-01-01","msg_type":1,"msg_user":"many","msg_count":null,"msg_user":2,"msg_count":3,"ref_date":"2024-03-01"}]}"#;
        let decoded = decode(t, body, w, &mut Counters::default()).unwrap();
        assert_eq!(decoded[0].values, vec![Cell::Int(1), Cell::Int(2), Cell::Int(3)]);
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
