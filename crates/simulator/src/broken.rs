//! What a faulty answer looks like: the bodies and rows of the triggered faults.
//!
//! Each fault imitates something a client of the real service meets (see [`super::faults`]);
//! where the real world has several shapes, the variants take turns ([`Strike::nth`]), so a
//! test that lets a fault strike three times sees them all. Faults that need rows start from
//! the real answer, so everything but the fault itself stays valid; when the real answer is
//! empty, a plausible row dated the window's first day stands in.

use std::io;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Months, NaiveDate};

use super::data::{SimRow, SimValue};
use super::faults::FaultKind;
use super::inject::Strike;
use super::server::{ListRow, json_response, list_json, rid};
use crate::calendar::DaySpan;
use wxcube_registry::Table;
use wxcube_registry::{Kind, Source};

/// `huge` answers at least this many bytes: beyond the 8 MiB a client should accept.
pub const HUGE_BYTES: usize = 9 << 20;
/// `deep` nests its list this many levels.
pub const DEEP_LEVELS: usize = 10_000;
/// The date of the `out_of_window` row when the window starts in 2016 or later.
const LONG_AGO: NaiveDate = match NaiveDate::from_ymd_opt(2015, 1, 1) {
    Some(d) => d,
    None => unreachable!(),
};

/// A row whose values are JSON text, so that they may be anything (`None`: left out).
#[derive(Clone, Debug)]
pub struct RawRow {
    ref_date: NaiveDate,
    fields: Vec<Option<String>>,
}

impl From<&SimRow> for RawRow {
    fn from(row: &SimRow) -> Self {
        let text = |v: &SimValue| (*v != SimValue::Absent).then(|| v.to_string());
        Self { ref_date: row.ref_date, fields: row.fields.iter().map(text).collect() }
    }
}

impl ListRow for RawRow {
    fn ref_date(&self) -> NaiveDate {
        self.ref_date
    }

    fn write_value(&self, i: usize, out: &mut String) -> bool {
        match &self.fields[i] {
            Some(text) => {
                out.push_str(text);
                true
            }
            None => false,
        }
    }
}

/// The answer an envelope fault gives instead of `rows`, the real answer for `range`.
/// `delayed` is the answer's `is_delay`, for the tables that have one.
pub fn envelope(strike: Strike, table: &Table, rows: &[SimRow], range: DaySpan, delayed: Option<bool>) -> Response {
    match strike.kind {
        FaultKind::Busy => busy(strike.nth),
        FaultKind::Http5xx => http_5xx(strike.nth),
        FaultKind::BadJson => bad_json(strike.nth, list_json(table, rows, delayed)),
        FaultKind::Drop => dropped(list_json(table, rows, delayed)),
        FaultKind::Huge => json_response(huge(table, &rows_or_stand_in(table, rows, range), delayed)),
        FaultKind::Deep => json_response(deep()),
        FaultKind::Absurd => json_response(absurd(strike.nth, table, rows, range, delayed)),
        data => unreachable!("{data} is not an envelope fault"),
    }
}

/// errcode -1, as the real service sends it: usually a number with a message, sometimes a
/// string, sometimes without `errmsg`.
fn busy(nth: u64) -> Response {
    json_response(match nth % 3 {
        0 => format!(r#"{{"errcode":-1,"errmsg":"system error rid: {}"}}"#, rid()),
        1 => format!(r#"{{"errcode":"-1","errmsg":"system error rid: {}"}}"#, rid()),
        _ => r#"{"errcode":-1}"#.to_string(),
    })
}

/// nginx's own error page for a lost upstream: 502, then 503.
fn http_5xx(nth: u64) -> Response {
    let status = if nth.is_multiple_of(2) { StatusCode::BAD_GATEWAY } else { StatusCode::SERVICE_UNAVAILABLE };
    let title = match status {
        StatusCode::BAD_GATEWAY => "502 Bad Gateway",
        _ => "503 Service Temporarily Unavailable",
    };
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}

/// HTTP 200, labelled JSON, but not JSON: the real answer cut in half, an empty body, or an
/// HTML page.
fn bad_json(nth: u64, real: String) -> Response {
    json_response(match nth % 3 {
        0 => cut_short(real),
        1 => String::new(),
        _ => "<html><body>system error, please try again later</body></html>".to_string(),
    })
}

/// The first half of a body. A strict prefix of a JSON object is never valid JSON: its closing
/// brace is missing.
fn cut_short(mut body: String) -> String {
    body.truncate(body.len() / 2);
    body
}

/// HTTP 200 and the first half of the body, then the connection breaks: the body stream
/// fails, so the server aborts the connection instead of finishing the response.
pub(super) fn dropped(real: String) -> Response {
    let half = Bytes::from(cut_short(real));
    let parts: [io::Result<Bytes>; 2] =
        [Ok(half), Err(io::Error::new(io::ErrorKind::ConnectionAborted, "simulated dropped connection"))];
    let body = Body::from_stream(futures::stream::iter(parts));
    ([(header::CONTENT_TYPE, "application/json; encoding=utf-8")], body).into_response()
}

/// A valid list of at least [`HUGE_BYTES`]: `rows` over and over.
fn huge(table: &Table, rows: &[SimRow], delayed: Option<bool>) -> String {
    let per_copy = list_json(table, rows, None).len() - r#"{"list":[]}"#.len() + 1;
    let times = HUGE_BYTES / per_copy + 1;
    let repeated: Vec<&SimRow> = rows.iter().cycle().take(rows.len() * times).collect();
    list_json(table, &repeated, delayed)
}

/// A list nested [`DEEP_LEVELS`] deep: valid JSON that a recursive parser may choke on.
fn deep() -> String {
    format!(r#"{{"list":{}{}}}"#, "[".repeat(DEEP_LEVELS), "]".repeat(DEEP_LEVELS))
}

/// The real list with one count no integer type holds: past u64, past f64, or such a number as
/// a string.
fn absurd(nth: u64, table: &Table, rows: &[SimRow], range: DaySpan, delayed: Option<bool>) -> String {
    const ABSURD: [&str; 3] = ["123456789012345678901234567890", "1e400", r#""123456789012345678901234567890""#];
    let mut rows: Vec<RawRow> = rows_or_stand_in(table, rows, range).iter().map(RawRow::from).collect();
    set(&mut rows[0], count_field(table), ABSURD[(nth % 3) as usize]);
    list_json(table, &rows, delayed)
}

/// The real list altered by the data faults in `strikes`; returns it with its number of rows.
/// Rows are added as copies of the first row, before `negative_count` alters that row and
/// `non_integer_count` the last row of the real list (the same row when there is only one).
pub fn altered_list(
    strikes: &[Strike],
    table: &Table,
    mut rows: Vec<SimRow>,
    range: DaySpan,
    delayed: Option<bool>,
) -> (String, usize) {
    let struck = |kind: FaultKind| strikes.iter().find(|s| s.kind == kind);
    let alters = struck(FaultKind::NegativeCount).or(struck(FaultKind::NonIntegerCount));
    if rows.is_empty() && alters.is_some() {
        rows.push(stand_in(table, range.first()));
    }
    let real = rows.len();
    if struck(FaultKind::OutOfWindow).is_some() {
        rows.push(out_of_window(table, &rows, range));
    }
    if struck(FaultKind::UnknownCode).is_some() {
        rows.extend(unknown_code(table, &rows, range));
    }
    if struck(FaultKind::NegativeCount).is_some() {
        negative_count(table, &mut rows[0]);
    }
    let mut raw: Vec<RawRow> = rows.iter().map(RawRow::from).collect();
    if let Some(strike) = struck(FaultKind::NonIntegerCount) {
        set(&mut raw[real - 1], count_field(table), if strike.nth.is_multiple_of(2) { "2.5" } else { r#""many""# });
    }
    (list_json(table, &raw, delayed), raw.len())
}

/// A copy of the first row, dated long before the window.
fn out_of_window(table: &Table, rows: &[SimRow], range: DaySpan) -> SimRow {
    let begin = range.first();
    let date = if begin.year() >= 2016 { LONG_AGO } else { begin - Months::new(36) };
    SimRow { ref_date: date, ..first_or_stand_in(table, rows, range) }
}

/// A copy of the first row with a code the documentation does not list: `msg_type` 99,
/// `count_interval` 9, or 99 in another table's first coded field. Nothing for a table
/// without codes.
fn unknown_code(table: &Table, rows: &[SimRow], range: DaySpan) -> Option<SimRow> {
    let (field, code) = match (table.field_index("msg_type"), table.field_index("count_interval")) {
        (Some(i), _) => (i, 99),
        (None, Some(i)) => (i, 9),
        (None, None) => (*table.labels.keys().next()?, 99),
    };
    let mut row = first_or_stand_in(table, rows, range);
    row.fields[field] = SimValue::Int(code);
    Some(row)
}

/// The fields of the table's counts, in column order (`msg_user` before `msg_count`).
fn measures(table: &Table) -> impl Iterator<Item = usize> + '_ {
    table.columns.iter().filter(|c| c.measure).filter_map(|c| match c.source {
        Source::Field { field, .. } => Some(field),
        _ => None,
    })
}

/// Makes a row's first count (`msg_user` in the message tables) negative.
fn negative_count(table: &Table, row: &mut SimRow) {
    if let Some(field) = measures(table).next() {
        let v = row.fields[field].int().unwrap_or(0);
        row.fields[field] = SimValue::Int(-v.max(1));
    }
}

/// The count a non-integer or absurd value replaces: the last one (`msg_count`, or
/// `msg_user` in the distributions).
fn count_field(table: &Table) -> Option<usize> {
    measures(table).last()
}

fn set(row: &mut RawRow, field: Option<usize>, json: &str) {
    if let Some(i) = field {
        row.fields[i] = Some(json.to_string());
    }
}

fn first_or_stand_in(table: &Table, rows: &[SimRow], range: DaySpan) -> SimRow {
    rows.first().cloned().unwrap_or_else(|| stand_in(table, range.first()))
}

fn rows_or_stand_in(table: &Table, rows: &[SimRow], range: DaySpan) -> Vec<SimRow> {
    if rows.is_empty() { vec![stand_in(table, range.first())] } else { rows.to_vec() }
}

/// A plausible row dated `date`: counts of one, the first documented code, midnight (hour
/// fields 0), an article `1000000001_1` with one day of figures, and so on.
fn stand_in(table: &Table, date: NaiveDate) -> SimRow {
    let counts: Vec<usize> = measures(table).collect();
    let fields = table
        .api_fields
        .iter()
        .enumerate()
        .map(|(i, f)| match &f.kind {
            Kind::Int if counts.contains(&i) => SimValue::Int(1),
            Kind::Int => SimValue::Int(table.labels.get(&i).and_then(|l| l.keys().next().copied()).unwrap_or(0)),
            Kind::Float => SimValue::float(0.5),
            Kind::Text => SimValue::Text("1000000001_1".into()),
            Kind::Date => SimValue::Text(date.to_string()),
            Kind::Bool => SimValue::Raw("false".into()),
            Kind::Structs(_) => SimValue::Raw("[]".into()),
        })
        .collect();
    SimRow { ref_date: date, fields }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::testing::d;
    use wxcube_registry as registry;

    fn strike(kind: FaultKind, nth: u64) -> Strike {
        Strike { kind, nth }
    }

    fn msg() -> &'static Table {
        registry::find("upstream_msg").unwrap()
    }

    fn dist() -> &'static Table {
        registry::find("upstream_msg_dist").unwrap()
    }

    fn row(table: &Table, date: &str, fields: &[i64]) -> SimRow {
        assert_eq!(fields.len(), table.api_fields.len());
        SimRow { ref_date: d(date), fields: fields.iter().map(|&v| SimValue::Int(v)).collect() }
    }

    fn march() -> DaySpan {
        DaySpan::new(d("2024-03-01"), d("2024-03-07")).unwrap()
    }

    fn list(body: &str) -> Vec<Value> {
        serde_json::from_str::<Value>(body).unwrap()["list"].as_array().unwrap().clone()
    }

    #[test]
    fn data_faults_alter_a_copy_of_the_first_row() {
        let rows = vec![row(msg(), "2024-03-02", &[1, 10, 20]), row(msg(), "2024-03-02", &[2, 3, 4])];
        let strikes = [
            strike(FaultKind::OutOfWindow, 0),
            strike(FaultKind::UnknownCode, 0),
            strike(FaultKind::NegativeCount, 0),
            strike(FaultKind::NonIntegerCount, 0),
        ];
        let (body, n) = altered_list(&strikes, msg(), rows, march(), None);
        let list = list(&body);
        assert_eq!(n, 4);
        assert_eq!(
            list[0],
            serde_json::json!({"ref_date":"2024-03-02","msg_type":1,"msg_user":-10,"msg_count":20,"user_source":0})
        );
        assert_eq!(
            list[1],
            serde_json::json!({"ref_date":"2024-03-02","msg_type":2,"msg_user":3,"msg_count":2.5,"user_source":0})
        );
        assert_eq!(
            list[2],
            serde_json::json!({"ref_date":"2015-01-01","msg_type":1,"msg_user":10,"msg_count":20,"user_source":0})
        );
        assert_eq!(
            list[3],
            serde_json::json!({"ref_date":"2024-03-02","msg_type":99,"msg_user":10,"msg_count":20,"user_source":0})
        );
    }

    #[test]
    fn data_faults_work_on_empty_lists_too() {
        let early = DaySpan::new(d("2015-02-02"), d("2015-02-08")).unwrap();
        let (body, n) = altered_list(&[strike(FaultKind::OutOfWindow, 0)], msg(), Vec::new(), early, None);
        assert_eq!((n, list(&body)[0]["ref_date"].as_str()), (1, Some("2012-02-02")));
        let (body, _) = altered_list(&[strike(FaultKind::UnknownCode, 0)], dist(), Vec::new(), march(), None);
        assert_eq!(list(&body)[0]["count_interval"], 9);
        let (body, _) = altered_list(&[strike(FaultKind::NonIntegerCount, 1)], dist(), Vec::new(), march(), None);
        assert_eq!(list(&body)[0]["msg_user"], "many");
        let (body, _) = altered_list(&[strike(FaultKind::NegativeCount, 0)], dist(), Vec::new(), march(), None);
        assert_eq!(list(&body)[0]["msg_user"], -1);
    }

    #[test]
    fn absurd_counts_fit_no_integer() {
        let rows = [row(dist(), "2024-03-02", &[1, 5])];
        let bodies: Vec<String> = (0..3).map(|nth| absurd(nth, dist(), &rows, march(), None)).collect();
        assert!(bodies[0].contains(r#""msg_user":123456789012345678901234567890,"#), "{}", bodies[0]);
        assert!(bodies[1].contains(r#""msg_user":1e400,"#), "{}", bodies[1]);
        assert!(bodies[2].contains(r#""msg_user":"123456789012345678901234567890","#), "{}", bodies[2]);
        assert!(serde_json::from_str::<Value>(&bodies[1]).is_err(), "1e400 overflows f64");
    }

    #[test]
    fn huge_and_deep_bodies() {
        let rows = [row(msg(), "2024-03-02", &[1, 10, 20])];
        let body = huge(msg(), &rows, None);
        assert!(body.len() > HUGE_BYTES && body.len() < HUGE_BYTES + 1024, "{}", body.len());
        assert!(list(&body).iter().all(|r| r["msg_count"] == 20));
        let deep = deep();
        assert!(deep.starts_with(r#"{"list":[[[["#) && deep.ends_with("]]]}"));
        assert!(serde_json::from_str::<Value>(&deep).is_err(), "past serde_json's recursion limit");
    }

    #[test]
    fn bodies_cut_short_are_never_json() {
        for real in [r#"{"list":[]}"#, r#"{"list":[{"ref_date":"2024-03-02","msg_type":1}]}"#] {
            assert!(serde_json::from_str::<Value>(&cut_short(real.to_string())).is_err());
        }
    }
}
