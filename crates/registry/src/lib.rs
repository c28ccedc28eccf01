//! The table registry: every datacube table wxcube knows, as declared in `schemas/*.toml`.
//!
//! Every other part of wxcube asks the registry what a table looks like — its family, its
//! endpoint, its longest request span, its period, its data floor, its columns and labels, and
//! the shape of the API's rows (nested objects, per-day arrays turned into rows, arrays of
//! objects kept as lists) — so a table is a row of data, never a module. The files are embedded at build time (see `build.rs`) and checked when first
//! used: a malformed schema is a build-time bug, caught by the registry's own tests.
//!
//! Plain types only: the connector turns a table into an Arrow schema, the simulator into
//! answers; neither has to know the other.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;
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

/// The datacube's families. A third-party platform is authorised per family (its permission
/// set), so an account may read one family and be refused another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Message,
    User,
    Article,
    Interface,
}

impl Family {
    pub const ALL: [Family; 4] = [Family::Message, Family::User, Family::Article, Family::Interface];

    /// The name `--tables` accepts for the whole family.
    pub fn name(self) -> &'static str {
        match self {
            Family::Message => "message",
            Family::User => "user",
            Family::Article => "article",
            Family::Interface => "interface",
        }
    }

    /// The permission set (权限集) a third-party platform needs for the family, where the
    /// docs give it (the message family's pages do not).
    pub fn permission_set(self) -> Option<u32> {
        match self {
            Family::Message => None,
            Family::User => Some(2),
            Family::Article => Some(7),
            Family::Interface => Some(3),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether Tencent still maintains an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Current,
    /// Marked "stop maintaining": taken only when named (or through `article_legacy`).
    Legacy,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Current => "current",
            Status::Legacy => "legacy",
        }
    }
}

/// Types a column may have. Kept to portable types every reader understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int32,
    Int64,
    Double,
    Bool,
    /// A calendar day (Arrow date32).
    Date,
    /// Microseconds since the epoch, UTC.
    TimestampUsUtc,
    /// A list of structs: an array of objects inside a row, element fields in the API's order.
    List(Vec<ElementField>),
}

/// A field of the objects of a list column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementField {
    pub name: String,
    pub ty: ColumnType,
}

impl ColumnType {
    /// The name `wxcube tables` shows.
    pub fn name(&self) -> String {
        match self {
            ColumnType::String => "string".into(),
            ColumnType::Int32 => "int32".into(),
            ColumnType::Int64 => "int64".into(),
            ColumnType::Double => "double".into(),
            ColumnType::Bool => "bool".into(),
            ColumnType::Date => "date".into(),
            ColumnType::TimestampUsUtc => "timestamp(us, UTC)".into(),
            ColumnType::List(fields) => {
                let inner: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.name, f.ty.name())).collect();
                format!("list<struct<{}>>", inner.join(", "))
            }
        }
    }

    /// How the API sends a value of this type.
    fn kind(&self) -> Kind {
        match self {
            ColumnType::Int32 | ColumnType::Int64 => Kind::Int,
            ColumnType::Double => Kind::Float,
            ColumnType::String => Kind::Text,
            ColumnType::Bool => Kind::Bool,
            ColumnType::Date => Kind::Date,
            ColumnType::TimestampUsUtc => Kind::Text,
            ColumnType::List(fields) => Kind::Structs(fields.iter().map(|f| (f.name.clone(), f.ty.kind())).collect()),
        }
    }
}

/// How the API sends a field's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An integer (a JSON number, or a string of digits).
    Int,
    /// A number, integer or not.
    Float,
    Text,
    Bool,
    /// A `YYYY-MM-DD` string.
    Date,
    /// An array of objects with these fields (name, kind), in this order.
    Structs(Vec<(String, Kind)>),
}

/// A field the API sends in each row, by its path: `msgid`, `detail.read_user` (inside the
/// object `detail`), `details.stat_date` (inside each element of the table's `rows_from` array).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiField {
    pub path: String,
    pub kind: Kind,
    /// May be left out of a row (the column is then null); otherwise its absence fails the window.
    pub optional: bool,
}

/// Where in a row object each API field lies: the tree of its keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Key → what it holds, in declaration order.
    pub keys: Vec<(String, Node)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// The API field with this index in `Table::api_fields`.
    Field(usize),
    /// An object whose keys hold more fields (`detail`).
    Object(Shape),
    /// The table's `rows_from` array: each element object makes one row, with the fields of the
    /// enclosing row repeated.
    Rows(Shape),
}

impl Shape {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, n)| n)
    }

    fn insert(&mut self, path: &[&str], field: usize, rows_from: Option<&str>) -> Result<(), String> {
        let (first, rest) = path.split_first().expect("a path has a segment");
        if rest.is_empty() {
            if self.get(first).is_some() {
                return Err(format!("field {first} is both a value and an object"));
            }
            self.keys.push((first.to_string(), Node::Field(field)));
            return Ok(());
        }
        let is_rows = rows_from == Some(*first);
        if self.get(first).is_none() {
            let node = if is_rows { Node::Rows(Shape::default()) } else { Node::Object(Shape::default()) };
            self.keys.push((first.to_string(), node));
        }
        match self.keys.iter_mut().find(|(k, _)| k == first).map(|(_, n)| n) {
            // Only the top level has the rows array; deeper keys of the same name are objects.
            Some(Node::Object(inner) | Node::Rows(inner)) => inner.insert(rest, field, None),
            _ => Err(format!("field {first} is both a value and an object")),
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
    /// The answer's top-level `is_delay`: whether the API says the data is not final yet.
    Delayed,
    /// An API field, optionally divided by `divide_by` (which must divide it exactly) and
    /// checked against an inclusive `range` (integers only).
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
    pub family: Family,
    pub status: Status,
    /// The API name, e.g. `getupstreammsg`; also accepted as an alias on the command line.
    pub endpoint: String,
    pub period: Period,
    /// Longest window one request may cover, in days, both ends inclusive.
    pub max_span_days: u32,
    /// Where the span comes from when the docs do not settle it (shown by `wxcube tables`).
    pub span_note: Option<String>,
    /// The first day the API has data for.
    pub floor: NaiveDate,
    /// Days an incremental run fetches again because the API keeps changing them (at least
    /// `--lookback-days`).
    pub lookback_days: u32,
    /// What `ref_date` means, when it is not the day the figures are for.
    pub ref_date_is: Option<String>,
    /// The fields read from each API row (besides `ref_date`), in a fixed order.
    pub api_fields: Vec<ApiField>,
    /// Where each field lies in a row object.
    pub shape: Shape,
    pub columns: Vec<Column>,
    /// Indices into `columns` of the row key, in sort order (after `appid`).
    pub row_key: Vec<usize>,
    /// Code → label, per API field index.
    pub labels: BTreeMap<usize, BTreeMap<i64, String>>,
}

impl Table {
    pub fn field_index(&self, path: &str) -> Option<usize> {
        self.api_fields.iter().position(|f| f.path == path)
    }

    /// The label of `code` in API field `field`, if the registry knows it.
    pub fn label(&self, field: usize, code: i64) -> Option<&str> {
        self.labels.get(&field)?.get(&code).map(String::as_str)
    }

    /// Index of the `appid` column.
    pub fn appid_column(&self) -> usize {
        self.columns.iter().position(|c| c.source == Source::AppId).expect("checked when loaded")
    }

    /// Whether answers carry `is_delay` (a column reads it).
    pub fn reports_delay(&self) -> bool {
        self.columns.iter().any(|c| c.source == Source::Delayed)
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

/// The alias of the legacy article tables, which `all` and `article` leave out.
pub const LEGACY_ARTICLE: &str = "article_legacy";

/// Resolves a `--tables` value: a comma-separated list of `all` (every current table), family
/// names (`message`, `user`, `article`, `interface`: their current tables), `article_legacy`,
/// table names and endpoint names.
pub fn select(spec: &str) -> Result<Vec<Arc<Table>>, String> {
    let mut chosen: Vec<Arc<Table>> = Vec::new();
    let mut add = |table: &Arc<Table>| {
        if !chosen.iter().any(|t| Arc::ptr_eq(t, table)) {
            chosen.push(table.clone());
        }
    };
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let group: Vec<&Arc<Table>> = match name {
            "all" => tables().iter().filter(|t| t.status == Status::Current).collect(),
            LEGACY_ARTICLE => {
                tables().iter().filter(|t| t.family == Family::Article && t.status == Status::Legacy).collect()
            }
            _ => match Family::ALL.iter().find(|f| f.name() == name) {
                Some(family) => {
                    tables().iter().filter(|t| t.family == *family && t.status == Status::Current).collect()
                }
                None => vec![find(name).ok_or_else(|| {
                    let known: Vec<&str> = tables().iter().map(|t| t.name.as_str()).collect();
                    format!(
                        "unknown table '{name}': choose from all, message, user, article, {LEGACY_ARTICLE}, interface, {}",
                        known.join(", ")
                    )
                })?],
            },
        };
        group.into_iter().for_each(&mut add);
    }
    if chosen.is_empty() {
        return Err("no table named: use --tables all, a family (message, user, article, interface) or a comma-separated list of tables".into());
    }
    Ok(chosen)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    name: String,
    description: String,
    family: Family,
    #[serde(default = "current")]
    status: Status,
    endpoint: String,
    period: Period,
    max_span_days: u32,
    span_note: Option<String>,
    floor: Option<String>,
    #[serde(default)]
    lookback_days: u32,
    ref_date_is: Option<String>,
    rows_from: Option<String>,
    row_key: Vec<String>,
    columns: Vec<ColumnFile>,
    #[serde(default)]
    labels: BTreeMap<String, BTreeMap<String, String>>,
}

fn current() -> Status {
    Status::Current
}

/// The first day of every datacube family but the 2025 article family: "接口侧数据存储始于2014-12-01".
pub const DEFAULT_FLOOR: NaiveDate = match NaiveDate::from_ymd_opt(2014, 12, 1) {
    Some(d) => d,
    None => panic!("a real date"),
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    name: String,
    #[serde(rename = "type")]
    ty: ColumnTypeFile,
    #[serde(default)]
    nullable: bool,
    from: Option<String>,
    label_of: Option<String>,
    divide_by: Option<i64>,
    range: Option<(i64, i64)>,
    #[serde(default)]
    measure: bool,
    /// The element fields of a `list` column.
    #[serde(default)]
    fields: Vec<ElementFile>,
}

/// A column type as written in a schema: a name; a list's element fields are given beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ColumnTypeFile {
    String,
    Int32,
    Int64,
    Double,
    Bool,
    Date,
    TimestampUsUtc,
    List,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ElementFile {
    name: String,
    #[serde(rename = "type")]
    ty: ColumnTypeFile,
}

fn column_type(ty: ColumnTypeFile, fields: &[ElementFile]) -> Result<ColumnType, String> {
    Ok(match ty {
        ColumnTypeFile::String => ColumnType::String,
        ColumnTypeFile::Int32 => ColumnType::Int32,
        ColumnTypeFile::Int64 => ColumnType::Int64,
        ColumnTypeFile::Double => ColumnType::Double,
        ColumnTypeFile::Bool => ColumnType::Bool,
        ColumnTypeFile::Date => ColumnType::Date,
        ColumnTypeFile::TimestampUsUtc => ColumnType::TimestampUsUtc,
        ColumnTypeFile::List => {
            if fields.is_empty() {
                return Err("a list column names its element `fields`".into());
            }
            let fields = fields
                .iter()
                .map(|f| match f.ty {
                    ColumnTypeFile::Int64 | ColumnTypeFile::Double | ColumnTypeFile::String => {
                        Ok(ElementField { name: f.name.clone(), ty: column_type(f.ty, &[])? })
                    }
                    _ => Err(format!("list element field {}: int64, double or string", f.name)),
                })
                .collect::<Result<Vec<_>, String>>()?;
            ColumnType::List(fields)
        }
    })
}

fn parse_table(text: &str) -> Result<Table, String> {
    let file: TableFile = toml::from_str(text).map_err(|e| e.to_string())?;
    if file.max_span_days == 0 {
        return Err("max_span_days must be at least 1".into());
    }
    let floor = match &file.floor {
        Some(f) => NaiveDate::parse_from_str(f, "%Y-%m-%d").map_err(|_| format!("floor {f} is not YYYY-MM-DD"))?,
        None => DEFAULT_FLOOR,
    };
    // API fields are numbered in the order the columns first name them.
    let mut api_fields: Vec<ApiField> = Vec::new();
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
    let mut shape = Shape::default();
    for (i, f) in api_fields.iter().enumerate() {
        let path: Vec<&str> = f.path.split('.').collect();
        shape.insert(&path, i, file.rows_from.as_deref())?;
    }
    if let Some(rows) = &file.rows_from
        && !matches!(shape.get(rows), Some(Node::Rows(_)))
    {
        return Err(format!("rows_from {rows}: no column reads a field of its elements"));
    }
    let labels = parse_labels(&file.labels, &api_fields)?;
    let row_key = file
        .row_key
        .iter()
        .map(|k| {
            let i = columns.iter().position(|c| &c.name == k).ok_or_else(|| format!("row_key {k} is not a column"))?;
            if columns[i].nullable || matches!(columns[i].ty, ColumnType::List(_)) {
                return Err(format!("row_key {k} must be a column that is never null, and not a list"));
            }
            Ok(i)
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Table {
        name: file.name,
        description: file.description,
        family: file.family,
        status: file.status,
        endpoint: file.endpoint,
        period: file.period,
        max_span_days: file.max_span_days,
        span_note: file.span_note,
        floor,
        lookback_days: file.lookback_days,
        ref_date_is: file.ref_date_is,
        api_fields,
        shape,
        columns,
        row_key,
        labels,
    })
}

/// One column: where its values come from, checked against its declared type.
fn parse_column(c: &ColumnFile, api_fields: &mut Vec<ApiField>) -> Result<Column, String> {
    let ty = column_type(c.ty, &c.fields).map_err(|e| format!("column {}: {e}", c.name))?;
    if !matches!(ty, ColumnType::List(_)) && !c.fields.is_empty() {
        return Err(format!("column {}: only list columns have `fields`", c.name));
    }
    let mut field_of = |path: &str, kind: Kind| -> Result<usize, String> {
        match api_fields.iter().position(|f| f.path == path) {
            Some(i) if api_fields[i].kind == kind => {
                api_fields[i].optional &= c.nullable;
                Ok(i)
            }
            Some(_) => Err(format!("column {}: field {path} is read as two different types", c.name)),
            None => {
                api_fields.push(ApiField { path: path.to_string(), kind, optional: c.nullable });
                Ok(api_fields.len() - 1)
            }
        }
    };
    let source = match (c.from.as_deref(), c.label_of.as_deref()) {
        (Some("@appid"), None) => Source::AppId,
        (Some("@extracted_at"), None) => Source::ExtractedAt,
        (Some("@is_delay"), None) => Source::Delayed,
        (Some(f), None) if !f.starts_with('@') && f != "ref_date" && !f.is_empty() => {
            Source::Field { field: field_of(f, ty.kind())?, divide_by: c.divide_by, range: c.range }
        }
        (None, Some(f)) => Source::Label { field: field_of(f, Kind::Int)? },
        _ => {
            return Err(format!(
                "column {}: give exactly one of `from` (an API field, @appid, @extracted_at or @is_delay) and `label_of`",
                c.name
            ));
        }
    };
    let expected_type = match source {
        Source::AppId | Source::Label { .. } => Some(ColumnType::String),
        Source::ExtractedAt => Some(ColumnType::TimestampUsUtc),
        Source::Delayed => Some(ColumnType::Bool),
        Source::Field { .. } if ty == ColumnType::TimestampUsUtc => {
            return Err(format!("column {}: API fields are not timestamps", c.name));
        }
        Source::Field { .. } => None,
    };
    if let Some(expected) = expected_type
        && ty != expected
    {
        return Err(format!("column {}: type must be {}", c.name, expected.name()));
    }
    let is_int = matches!(ty, ColumnType::Int32 | ColumnType::Int64);
    if (c.divide_by.is_some() || c.range.is_some() || c.measure) && !is_int {
        return Err(format!("column {}: divide_by, range and measure are for integer columns", c.name));
    }
    match source {
        Source::Label { .. } if !c.nullable => {
            return Err(format!("column {}: label columns are nullable (unknown codes)", c.name));
        }
        Source::AppId | Source::ExtractedAt | Source::Delayed if c.nullable => {
            return Err(format!("column {}: @ columns are never null", c.name));
        }
        _ => {}
    }
    Ok(Column { name: c.name.clone(), ty, nullable: c.nullable, source, measure: c.measure })
}

/// Code → label maps, keyed by the index of the API field they label.
fn parse_labels(
    labels: &BTreeMap<String, BTreeMap<String, String>>,
    api_fields: &[ApiField],
) -> Result<BTreeMap<usize, BTreeMap<i64, String>>, String> {
    let mut parsed = BTreeMap::new();
    for (field, map) in labels {
        let idx = api_fields
            .iter()
            .position(|f| f.path == *field && f.kind == Kind::Int)
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
    fn families_and_the_legacy_alias() {
        let names = |spec: &str| -> Vec<String> { select(spec).unwrap().iter().map(|t| t.name.clone()).collect() };
        assert_eq!(names("user"), ["user_cumulate", "user_summary"]);
        assert_eq!(names("interface"), ["interface_summary", "interface_summary_hour"]);
        assert_eq!(names("article"), ["article_read", "article_share", "article_total_detail", "biz_summary"]);
        assert_eq!(
            names("article_legacy"),
            ["article_summary", "article_total", "user_read", "user_read_hour", "user_share", "user_share_hour"]
        );
        assert_eq!(names("message").len(), 7);
        // `all` is every current table; a legacy one joins when named.
        assert_eq!(names("all").len(), 15);
        assert_eq!(names("all,getuserread").len(), 16);
        assert_eq!(tables().len(), 21);
    }

    #[test]
    fn nested_fields_form_the_row_shape() {
        let t = find("getarticletotaldetail").unwrap();
        let Some(Node::Rows(element)) = t.shape.get("detail_list") else { panic!("detail_list makes the rows") };
        let Some(Node::Field(i)) = element.get("read_jump_position") else { panic!("a list field of the element") };
        assert_eq!(t.api_fields[*i].path, "detail_list.read_jump_position");
        assert!(matches!(&t.api_fields[*i].kind, Kind::Structs(f) if f[0].0 == "position" && f[1].1 == Kind::Float));
        let b = find("biz_summary").unwrap();
        assert!(matches!(b.shape.get("detail"), Some(Node::Object(_))));
        assert!(b.reports_delay());
        assert_eq!(b.floor, NaiveDate::from_ymd_opt(2025, 11, 1).unwrap());
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
family = "user"
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
        let column = |text: &str| parse_table(&format!("{base}[[columns]]\nname = \"x\"\n{text}\n"));
        assert!(column("type = \"string\"\nfrom = \"x\"").is_ok());
        assert!(column("type = \"string\"\nfrom = \"x\"\nmeasure = true").is_err(), "measures are integers");
        assert!(column("type = \"int64\"\nfrom = \"x\"\nnullable = true").is_err(), "row keys are never null");
        assert!(column("type = \"list\"\nfrom = \"x\"").is_err(), "a list names its fields");
        assert!(column("type = \"timestamp_us_utc\"\nfrom = \"x\"").is_err());
        assert!(parse_table(base).is_err(), "row key must name a column");
        assert!(parse_table(&base.replace("max_span_days = 1", "max_span_days = 0")).is_err());
    }
}
