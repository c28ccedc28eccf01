//! `wxcube tables`: the registry, human-readable.

use std::fmt::Write;

use wxcube_registry::{self as registry, Period, Source};

pub fn describe() -> String {
    let mut s = String::new();
    for t in registry::tables() {
        let period = match t.period {
            Period::Day => "one row set per day",
            Period::Hour => "one row set per hour",
            Period::Week => "one row set per week, dated by its Monday",
            Period::Month => "one row set per month, dated by its 1st",
        };
        let _ =
            writeln!(s, "{}  (API: {}, up to {} day(s) per request, {period})", t.name, t.endpoint, t.max_span_days);
        let _ = writeln!(s, "  {}", t.description);
        let _ = writeln!(s, "  {:<22} date  (partition: ref_date=YYYY-MM-DD)", "ref_date");
        for c in &t.columns {
            let ty = c.ty.name();
            let null = if c.nullable { ", nullable" } else { "" };
            let origin = match &c.source {
                Source::AppId => "the account".to_string(),
                Source::ExtractedAt => "when the row was fetched".to_string(),
                Source::Field { field, divide_by: Some(d), .. } => format!("API field {} / {d}", t.api_fields[*field]),
                Source::Field { field, .. } => format!("API field {}", t.api_fields[*field]),
                Source::Label { field } => {
                    let labels = t
                        .labels
                        .get(field)
                        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
                        .unwrap_or_default();
                    format!("label of {}: {labels}", t.api_fields[*field])
                }
            };
            let _ = writeln!(s, "  {:<22} {ty}{null}  ({origin})", c.name);
        }
        s.push('\n');
    }
    s
}
