//! The table registry: the seven message-analysis tables, as declared in `schemas/*.toml`.
//!
//! Every other part of wxcube asks the registry what a table looks like — its endpoint, its
//! longest request span, its period, its columns and labels — so a table is a row of data,
//! never a module. The files are embedded at build time (see `build.rs`) and checked when first
//! used: a malformed schema is a build-time bug, caught by the registry's own tests.
//!
//! Plain types only: the connector turns a table into an Arrow schema, the simulator into
//! answers; neither has to know the other.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

include!(concat!(env!("OUT_DIR"), "/schemas.rs"));

/// How the API dates a table's rows, which decides how requests are planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// One row set per day.
    Day,
    /// One row set per hour of a day; planned like `Day`.
    Hour,
    /// One row set per ISO week, dated by its Monday, available once the week has ended.
    Week,
    /// One row set per calendar month, dated by its 1st, available once the month has ended.
    Month,
}

impl Period {
    /// The most days from one period's first day to the next one's.
    pub fn longest_days(self) -> u64 {
        match self {
            Period::Day | Period::Hour => 1,
            Period::Week => 7,
            Period::Month => 31,
        }
    }
}

/// Types a column may have. Kept to portable types every reader understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    String,
    Int32,
    Int64,
    /// Microseconds since the epoch, UTC.
    TimestampUsUtc,
}

impl ColumnType {
    /// The name `wxcube tables` shows.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int32 => "int32",
            ColumnType::Int64 => "int64",
            ColumnType::TimestampUsUtc => "timestamp(us, UTC)",
        }
    }
}

/// Where a column's values come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The account the row was fetched for.
    AppId,
    /// When the row was fetched (the run's start, UTC).
    ExtractedAt,
    /// An integer field of the API row, optionally divided by `divide_by` (which must divide it
    /// exactly) and checked against an inclusive `range`.
    Field { field: usize, divide_by: Option<i64>, range: Option<(i64, i64)> },
    /// The label of another field's code; null for codes the registry does not know.
    Label { field: usize },
}

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    pub source: Source,
    /// A count: must be a non-negative integer, or the window fails.
    pub measure: bool,
}

/// One table of the registry.
#[derive(Debug)]
pub struct Table {
    pub name: String,
    pub description: String,
    /// The API name, e.g. `getupstreammsg`; also accepted as an alias on the command line.
    pub endpoint: String,
    pub period: Period,
    /// Longest window one request may cover, in days, both ends inclusive.
    pub max_span_days: u32,
    /// The integer fields read from each API row (besides `ref_date`), in a fixed order.
    pub api_fields: Vec<String>,
    pub columns: Vec<Column>,
    /// Indices into `columns` of the row key, in sort order (after `appid`).
    pub row_key: Vec<usize>,
    /// Code → label, per API field index.
    pub labels: BTreeMap<usize, BTreeMap<i64, String>>,
}

impl Table {
    pub fn field_index(&self, api_field: &str) -> Option<usize> {
        self.api_fields.iter().position(|f| f == api_field)
    }

    /// The label of `code` in API field `field`, if the registry knows it.
    pub fn label(&self, field: usize, code: i64) -> Option<&str> {
        self.labels.get(&field)?.get(&code).map(String::as_str)
    }

    /// Index of the `appid` column.
    pub fn appid_column(&self) -> usize {
        self.columns.iter().position(|c| c.source == Source::AppId).expect("checked when loaded")
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// All tables, in file-name order.
pub fn tables() -> &'static [Arc<Table>] {
    static TABLES: OnceLock<Vec<Arc<Table>>> = OnceLock::new();
    TABLES.get_or_init(|| {
        SCHEMA_FILES
            .iter()
            .map(|(file, text)| Arc::new(parse_table(text).unwrap_or_else(|e| panic!("schemas/{file}: {e}"))))
            .collect()
    })
}

/// Looks a table up by its name or its API endpoint name.
pub fn find(name: &str) -> Option<&'static Arc<Table>> {
    tables().iter().find(|t| t.name == name || t.endpoint == name)
}

/// Resolves a `--tables` value: `all`, or a comma-separated list of names or endpoint aliases.
pub fn select(spec: &str) -> Result<Vec<Arc<Table>>, String> {
    if spec.trim() == "all" {
        return Ok(tables().to_vec());
    }
    let mut chosen: Vec<Arc<Table>> = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let table = find(name).ok_or_else(|| {
            let known: Vec<&str> = tables().iter().map(|t| t.name.as_str()).collect();
            format!("unknown table '{name}': choose from all, {}", known.join(", "))
        })?;
        if !chosen.iter().any(|t| Arc::ptr_eq(t, table)) {
            chosen.push(table.clone());
        }
    }
    if chosen.is_empty() {
        return Err("no table named: use --tables all or a comma-separated list".into());
    }
    Ok(chosen)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    name: String,
    description: String,
    endpoint: String,
    period: Period,
    max_span_days: u32,
    row_key: Vec<String>,
    columns: Vec<ColumnFile>,
    #[serde(default)]
    labels: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    name: String,
    #[serde(rename = "type")]
    ty: ColumnType,
    #[serde(default)]
    nullable: bool,
    from: Option<String>,
    label_of: Option<String>,
    divide_by: Option<i64>,
    range: Option<(i64, i64)>,
    #[serde(default)]
    measure: bool,
}

fn parse_table(text: &str) -> Result<Table, String> {
    let file: TableFile = toml::from_str(text).map_err(|e| e.to_string())?;
    if file.max_span_days == 0 {
        return Err("max_span_days must be at least 1".into());
    }
    // API fields are numbered in the order the columns first name them.
    let mut api_fields: Vec<String> = Vec::new();
    let mut columns: Vec<Column> = Vec::new();
    for c in &file.columns {
        let column = parse_column(c, &mut api_fields)?;
        if columns.iter().any(|x| x.name == c.name) || c.name == "ref_date" {
            return Err(format!("column {} is declared twice (ref_date is the partition)", c.name));
        }
        columns.push(column);
    }
    for required in [Source::AppId, Source::ExtractedAt] {
        if !columns.iter().any(|c| c.source == required) {
            return Err(format!("a {required:?} column is required"));
        }
    }
    let labels = parse_labels(&file.labels, &api_fields)?;
    let row_key = file
        .row_key
        .iter()
        .map(|k| columns.iter().position(|c| &c.name == k).ok_or_else(|| format!("row_key {k} is not a column")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Table {
        name: file.name,
        description: file.description,
        endpoint: file.endpoint,
        period: file.period,
        max_span_days: file.max_span_days,
        api_fields,
        columns,
        row_key,
        labels,
    })
}

/// One column: where its values come from, checked against its declared type.
fn parse_column(c: &ColumnFile, api_fields: &mut Vec<String>) -> Result<Column, String> {
    let mut field_of = |name: &str| -> usize {
        api_fields.iter().position(|f| f == name).unwrap_or_else(|| {
            api_fields.push(name.to_string());
            api_fields.len() - 1
        })
    };
    let source = match (c.from.as_deref(), c.label_of.as_deref()) {
        (Some("@appid"), None) => Source::AppId,
        (Some("@extracted_at"), None) => Source::ExtractedAt,
        (Some(f), None) if !f.starts_with('@') && f != "ref_date" => {
            Source::Field { field: field_of(f), divide_by: c.divide_by, range: c.range }
        }
        (None, Some(f)) => Source::Label { field: field_of(f) },
        _ => {
            return Err(format!(
                "column {}: give exactly one of `from` (an API field, @appid or @extracted_at) and `label_of`",
                c.name
            ));
        }
    };
    let expected = match source {
        Source::AppId | Source::Label { .. } => ColumnType::String,
        Source::ExtractedAt => ColumnType::TimestampUsUtc,
        Source::Field { .. } if c.ty == ColumnType::Int32 || c.ty == ColumnType::Int64 => c.ty,
        Source::Field { .. } => return Err(format!("column {}: API fields are integers", c.name)),
    };
    if c.ty != expected {
        return Err(format!("column {}: type must be {expected:?}", c.name));
    }
    if matches!(source, Source::Label { .. }) != c.nullable {
        return Err(format!("column {}: label columns, and only they, are nullable", c.name));
    }
    Ok(Column { name: c.name.clone(), ty: c.ty, nullable: c.nullable, source, measure: c.measure })
}

/// Code → label maps, keyed by the index of the API field they label.
fn parse_labels(
    labels: &BTreeMap<String, BTreeMap<String, String>>,
    api_fields: &[String],
) -> Result<BTreeMap<usize, BTreeMap<i64, String>>, String> {
    let mut parsed = BTreeMap::new();
    for (field, map) in labels {
        let idx = api_fields
            .iter()
            .position(|f| f == field)
            .ok_or_else(|| format!("labels.{field}: no column reads that field"))?;
        let codes = map
            .iter()
            .map(|(code, label)| {
                let code = code.parse::<i64>().map_err(|_| format!("labels.{field}: code {code} is not an integer"))?;
                Ok((code, label.clone()))
            })
            .collect::<Result<BTreeMap<_, _>, String>>()?;
        parsed.insert(idx, codes);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_schemas_load_with_unique_names() {
        let ts = tables();
        assert_eq!(ts.len(), SCHEMA_FILES.len());
        for (t, (file, _)) in ts.iter().zip(SCHEMA_FILES) {
            assert_eq!(format!("{}.toml", t.name), *file, "file is named after its table");
            assert_eq!(ts.iter().filter(|o| o.name == t.name || o.endpoint == t.endpoint).count(), 1);
        }
    }

    #[test]
    fn lookup_by_name_or_endpoint() {
        assert_eq!(find("getupstreammsghour").unwrap().name, "upstream_msg_hour");
        assert_eq!(select("upstream_msg, getupstreammsg").unwrap().len(), 1);
        let err = select("upstream_msgs").unwrap_err();
        assert!(err.starts_with("unknown table 'upstream_msgs': choose from all, "), "{err}");
        assert!(select(" , ").is_err());
    }

    #[test]
    fn labels_follow_the_registry() {
        let t = find("upstream_msg").unwrap();
        let f = t.field_index("msg_type").unwrap();
        assert_eq!(t.label(f, 6), Some("link"));
        assert_eq!(t.label(f, 5), None);
        let d = find("upstream_msg_dist").unwrap();
        assert_eq!(d.label(d.field_index("count_interval").unwrap(), 3), Some(">10"));
    }

    #[test]
    fn malformed_schemas_are_refused() {
        let base = r#"name = "t"
description = "d"
endpoint = "e"
period = "day"
max_span_days = 1
row_key = ["x"]
[[columns]]
name = "appid"
type = "string"
from = "@appid"
[[columns]]
name = "extracted_at"
type = "timestamp_us_utc"
from = "@extracted_at"
"#;
        assert!(parse_table(&format!("{base}[[columns]]\nname = \"x\"\ntype = \"int32\"\nfrom = \"x\"\n")).is_ok());
        assert!(parse_table(&format!("{base}[[columns]]\nname = \"x\"\ntype = \"string\"\nfrom = \"x\"\n")).is_err());
        assert!(parse_table(base).is_err(), "row key must name a column");
        assert!(parse_table(&base.replace("max_span_days = 1", "max_span_days = 0")).is_err());
    }
}
