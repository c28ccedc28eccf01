//! `wxcube tables`: the registry, human-readable.

use std::fmt::Write;

use wxcube_registry::{self as registry, Period, Source, Status};

pub fn describe() -> String {
    let mut s = String::new();
    for t in registry::tables() {
        let period = match t.period {
            Period::Day => "one row set per day",
            Period::Hour => "one row set per hour",
            Period::Week => "one row set per week, dated by its Monday",
            Period::Month => "one row set per month, dated by its 1st",
        };
        let status = match t.status {
            Status::Current => "current".to_string(),
            Status::Legacy => format!("legacy: taken when named or through --tables {}", registry::LEGACY_ARTICLE),
        };
        let _ = writeln!(s, "{}  (family {}, API {}, {status})", t.name, t.family, t.endpoint);
        let _ = writeln!(s, "  {}", t.description);
        let _ = writeln!(s, "  span: up to {} day(s) per request, {period}", t.max_span_days);
        if let Some(note) = &t.span_note {
            let _ = writeln!(s, "    ({note})");
        }
        let lookback = match t.lookback_days {
            0 => "--lookback-days".to_string(),
            n => format!("{n} days (or --lookback-days if longer): the API keeps changing them"),
        };
        let _ = writeln!(s, "  data from {}; an incremental run fetches again the last {lookback}", t.floor);
        let ref_date = t.ref_date_is.as_deref().unwrap_or("the day of the figures");
        let _ = writeln!(s, "  {:<26} date  (partition ref_date=YYYY-MM-DD: {ref_date})", "ref_date");
        for c in &t.columns {
            let ty = c.ty.name();
            let null = if c.nullable { ", nullable" } else { "" };
            let origin = match &c.source {
                Source::AppId => "the account".to_string(),
                Source::ExtractedAt => "when the row was fetched".to_string(),
                Source::Delayed => "the answer's is_delay".to_string(),
                Source::Field { field, divide_by: Some(d), .. } => {
                    format!("API field {} / {d}", t.api_fields[*field].path)
                }
                Source::Field { field, .. } => format!("API field {}", t.api_fields[*field].path),
                Source::Label { field } => {
                    let labels = t
                        .labels
                        .get(field)
                        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
                        .unwrap_or_default();
                    format!("label of {}: {labels}", t.api_fields[*field].path)
                }
            };
            let _ = writeln!(s, "  {:<26} {ty}{null}  ({origin})", c.name);
        }
        s.push('\n');
    }
    s
}
