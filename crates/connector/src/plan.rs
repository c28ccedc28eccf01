//! plan: turns a date range and the registry into the fewest API requests.
//!
//! Takes a [`DateRange`], a table and the latest complete Beijing day; hands the run the
//! [`Window`]s that cover the range, which extract then asks for. Pure: no clock, no
//! I/O, so every edge is unit-tested here, and `--dry-run` prints exactly what a run would call.
//!
//! The rules, from the API documentation:
//! - nothing before 2014-12-01 and nothing after the latest complete day is asked for;
//! - a window spans at most the table's `max_span_days`, both ends inclusive;
//! - week and month tables are asked for periods that have ended and whose first day (the
//!   Monday, the 1st) lies in the range; a window only has to contain that first day.
//!
//! Every table is planned the same way: list the days that start a period (every day for day
//! and hour tables), then cover them greedily, each window starting at the first uncovered
//! start and reaching as far as the span allows. Greedy covering of points by fixed-length
//! intervals is optimal, so the plan is the fewest requests.

use chrono::{Days, NaiveDate};

use crate::dates::{self, DATA_FLOOR, DateRange};
use wxcube_registry::{Period, Table};

/// One request window of one table. The same window is asked for every account of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// `begin_date..end_date` of the request.
    pub range: DateRange,
    /// The period start dates this window fetches (every day for day tables, the Mondays or
    /// 1sts for week and month tables): the cells the run replaces.
    pub periods: Vec<NaiveDate>,
}

/// The fewest windows that cover the table's periods starting in `range`.
pub fn plan_table(table: &Table, range: DateRange, latest: NaiveDate) -> Vec<Window> {
    let Some(range) = DateRange::new(range.begin().max(table.floor), range.end()) else {
        return Vec::new();
    };
    cover(&period_starts(table.period, range, latest), table.max_span_days)
}

/// The first days of the periods that start in `range`, lie on or after the datacube's data
/// floor, and have ended by `latest`.
pub fn period_starts(period: Period, range: DateRange, latest: NaiveDate) -> Vec<NaiveDate> {
    let Some(range) = DateRange::new(range.begin().max(DATA_FLOOR), range.end()) else {
        return Vec::new();
    };
    range
        .iter_days()
        .filter(|&d| match period {
            Period::Day | Period::Hour => d <= latest,
            Period::Week => dates::is_monday(d) && d + Days::new(6) <= latest,
            Period::Month => d == dates::month_start(d) && dates::month_end(d) <= latest,
        })
        .collect()
}

/// Greedy cover of sorted `starts` by windows of at most `span` days.
pub fn cover(starts: &[NaiveDate], span: u32) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut rest = starts;
    while let Some(&first) = rest.first() {
        let reach = first + Days::new(u64::from(span.max(1)) - 1);
        let taken = rest.iter().take_while(|&&d| d <= reach).count();
        let periods = rest[..taken].to_vec();
        let range = DateRange::new(first, *periods.last().expect("taken ≥ 1")).expect("sorted starts");
        windows.push(Window { range, periods });
        rest = &rest[taken..];
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dates::parse_date;
    use wxcube_registry as registry;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    fn r(a: &str, b: &str) -> DateRange {
        DateRange::new(d(a), d(b)).unwrap()
    }

    /// Windows of `table` over a..b as "begin..end" strings, with a generous `latest`.
    fn windows(table: &str, a: &str, b: &str, latest: &str) -> Vec<String> {
        plan_table(registry::find(table).unwrap(), r(a, b), d(latest)).iter().map(|w| w.range.to_string()).collect()
    }

    #[test]
    fn day_table_chunks_by_span() {
        assert_eq!(
            windows("upstream_msg", "2024-02-20", "2024-03-05", "2030-01-01"),
            ["2024-02-20..2024-02-26", "2024-02-27..2024-03-04", "2024-03-05..2024-03-05"]
        );
        // The leap day is an ordinary day: 15 days from Feb 20 end on Mar 5 in 2024, Mar 6 in 2023.
        assert_eq!(windows("upstream_msg_dist", "2024-02-20", "2024-03-05", "2030-01-01"), ["2024-02-20..2024-03-05"]);
        assert_eq!(
            windows("upstream_msg_dist", "2023-02-20", "2023-03-07", "2030-01-01"),
            ["2023-02-20..2023-03-06", "2023-03-07..2023-03-07"]
        );
    }

    #[test]
    fn begin_equals_end_and_year_boundary() {
        assert_eq!(windows("upstream_msg", "2024-01-01", "2024-01-01", "2030-01-01"), ["2024-01-01..2024-01-01"]);
        assert_eq!(windows("upstream_msg", "2023-12-29", "2024-01-02", "2030-01-01"), ["2023-12-29..2024-01-02"]);
        assert_eq!(
            windows("upstream_msg_hour", "2023-12-31", "2024-01-01", "2030-01-01"),
            ["2023-12-31..2023-12-31", "2024-01-01..2024-01-01"]
        );
    }

    #[test]
    fn week_tables_need_the_monday_and_an_ended_week() {
        // Tue..Sun holds no Monday: a range shorter than a week may plan nothing.
        assert!(windows("upstream_msg_week", "2024-03-05", "2024-03-10", "2030-01-01").is_empty());
        // Mon 2024-03-04 in range; its week ends Sun 03-10.
        assert_eq!(windows("upstream_msg_week", "2024-03-04", "2024-03-04", "2024-03-10"), ["2024-03-04..2024-03-04"]);
        assert!(windows("upstream_msg_week", "2024-03-04", "2024-03-04", "2024-03-09").is_empty(), "week not ended");
        // Five Mondays fit a 30-day window (28 days apart); the sixth starts a new one.
        assert_eq!(
            windows("upstream_msg_week", "2024-01-01", "2024-02-29", "2030-01-01"),
            ["2024-01-01..2024-01-29", "2024-02-05..2024-02-26"]
        );
    }

    #[test]
    fn month_tables_need_the_first_and_an_ended_month() {
        // Jan 1 → Feb 1 is 32 days inclusive: two windows. Feb 1 → Mar 1 fits in 30 (29 in 2023).
        assert_eq!(
            windows("upstream_msg_month", "2023-01-01", "2023-03-31", "2030-01-01"),
            ["2023-01-01..2023-01-01", "2023-02-01..2023-03-01"]
        );
        // In a leap year Feb 1 → Mar 1 is exactly 30 days inclusive.
        assert_eq!(windows("upstream_msg_month", "2024-02-01", "2024-03-01", "2030-01-01"), ["2024-02-01..2024-03-01"]);
        // The month must have ended: March 2024 ends on the 31st.
        assert_eq!(windows("upstream_msg_month", "2024-02-01", "2024-03-31", "2024-03-30"), ["2024-02-01..2024-02-01"]);
        assert_eq!(windows("upstream_msg_month", "2024-02-01", "2024-03-31", "2024-03-31"), ["2024-02-01..2024-03-01"]);
        // A range that misses the 1st plans nothing, even if it spans a month's end.
        assert!(windows("upstream_msg_month", "2024-01-15", "2024-01-31", "2030-01-01").is_empty());
        // Year boundary: December and January are 32 days apart.
        assert_eq!(
            windows("upstream_msg_dist_month", "2023-12-01", "2024-01-31", "2030-01-01"),
            ["2023-12-01..2023-12-01", "2024-01-01..2024-01-01"]
        );
    }

    #[test]
    fn nothing_before_the_floor_or_after_latest() {
        assert_eq!(windows("upstream_msg", "2014-11-25", "2014-12-02", "2030-01-01"), ["2014-12-01..2014-12-02"]);
        assert!(windows("upstream_msg", "2014-01-01", "2014-11-30", "2030-01-01").is_empty());
        assert_eq!(windows("upstream_msg", "2024-03-01", "2024-03-10", "2024-03-02"), ["2024-03-01..2024-03-02"]);
    }

    #[test]
    fn the_eight_oclock_boundary_moves_latest() {
        use chrono::{DateTime, Utc};
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let t = registry::find("upstream_msg").unwrap();
        // 07:59 Beijing on Mar 11: Mar 10 is not ready yet.
        let before =
            plan_table(t, r("2024-03-04", "2024-03-10"), dates::latest_complete_day(at("2024-03-10T23:59:00Z")));
        assert_eq!(before[0].range.to_string(), "2024-03-04..2024-03-09");
        let after =
            plan_table(t, r("2024-03-04", "2024-03-10"), dates::latest_complete_day(at("2024-03-11T00:00:00Z")));
        assert_eq!(after[0].range.to_string(), "2024-03-04..2024-03-10");
        // The week of Mar 4 ends on Sunday Mar 10: available only from 08:00 on Mar 11.
        let w = registry::find("upstream_msg_week").unwrap();
        assert!(
            plan_table(w, r("2024-03-04", "2024-03-04"), dates::latest_complete_day(at("2024-03-10T23:59:00Z")))
                .is_empty()
        );
        assert_eq!(
            plan_table(w, r("2024-03-04", "2024-03-04"), dates::latest_complete_day(at("2024-03-11T00:00:00Z"))).len(),
            1
        );
    }

    #[test]
    fn windows_cover_every_period_once_within_span() {
        for t in registry::tables() {
            for (a, b) in [("2014-11-01", "2016-03-31"), ("2023-12-25", "2024-03-03"), ("2024-02-29", "2024-02-29")] {
                let range = r(a, b);
                let ws = plan_table(t, range, d("2024-12-31"));
                let covered: Vec<NaiveDate> = ws.iter().flat_map(|w| w.periods.clone()).collect();
                let mut starts = period_starts(t.period, range, d("2024-12-31"));
                // Nothing before the table's own first day (2025-11-01 for the 2025 article family).
                starts.retain(|&s| s >= t.floor);
                assert_eq!(covered, starts, "{t} {range}");
                for w in &ws {
                    assert!(w.range.days() <= t.max_span_days, "{t} {}", w.range);
                    assert!(w.periods.iter().all(|p| w.range.contains(*p)));
                    assert!(range.contains(w.range.begin()) && range.contains(w.range.end()));
                }
                // Fewest: no two neighbouring windows could have been one.
                for pair in ws.windows(2) {
                    assert!(
                        DateRange::new(pair[0].range.begin(), pair[1].range.end()).unwrap().days() > t.max_span_days
                    );
                }
            }
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn day(offset: u32) -> NaiveDate {
            d("2014-10-01") + Days::new(u64::from(offset))
        }

        proptest! {
            /// Whatever the table, range and clock: the windows cover every period start once,
            /// in order, without gaps or overlaps, each within the span, the range and the
            /// latest complete day, and no two neighbours could have been one request.
            #[test]
            fn windows_cover_without_gaps_or_overlaps(
                table in 0..registry::tables().len(),
                begin in 0u32..6000,
                len in 0u32..800,
                latest in 0u32..7000,
            ) {
                let t = &registry::tables()[table];
                let range = DateRange::new(day(begin), day(begin + len)).unwrap();
                let latest = day(latest);
                let ws = plan_table(t, range, latest);
                let mut starts = period_starts(t.period, range, latest);
                starts.retain(|&s| s >= t.floor);
                let covered: Vec<NaiveDate> = ws.iter().flat_map(|w| w.periods.clone()).collect();
                prop_assert_eq!(&covered, &starts);
                for w in &ws {
                    prop_assert!(w.range.days() <= t.max_span_days);
                    prop_assert!(w.range.begin() >= DATA_FLOOR && w.range.begin() >= t.floor && w.range.begin() >= range.begin());
                    prop_assert!(w.range.end() <= range.end() && w.range.end() <= latest);
                    prop_assert_eq!(w.range.begin(), w.periods[0]);
                    prop_assert_eq!(w.range.end(), *w.periods.last().unwrap());
                }
                for pair in ws.windows(2) {
                    prop_assert!(pair[0].range.end() < pair[1].range.begin(), "no overlap");
                    let merged = DateRange::new(pair[0].range.begin(), pair[1].range.end()).unwrap();
                    prop_assert!(merged.days() > t.max_span_days, "fewest: neighbours could not be one window");
                }
                for s in &starts {
                    match t.period {
                        Period::Week => prop_assert!(dates::is_monday(*s) && *s + Days::new(6) <= latest),
                        Period::Month => prop_assert!(*s == dates::month_start(*s) && dates::month_end(*s) <= latest),
                        Period::Day | Period::Hour => prop_assert!(*s <= latest),
                    }
                }
            }
        }
    }
}
