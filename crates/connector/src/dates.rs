//! Beijing calendar dates and inclusive date ranges.
//!
//! The API speaks in Beijing dates (UTC+8, no daylight saving); every date in wxcube is one.
//! Yesterday's figures are ready only after 08:00 Beijing time, which decides the latest day
//! a run may ask for.

use std::fmt;

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, Timelike, Utc, Weekday};

/// The first day the API holds data for; anything earlier is documented as unreliable.
pub const DATA_FLOOR: NaiveDate = match NaiveDate::from_ymd_opt(2014, 12, 1) {
    Some(d) => d,
    None => unreachable!(),
};

/// Beijing time has been UTC+8 without daylight saving since 1991.
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// The Beijing calendar date of an instant.
pub fn beijing_date(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&beijing()).date_naive()
}

/// The most recent day whose figures are complete at `now`: yesterday in Beijing, or the day
/// before while it is still before 08:00 in Beijing (the API publishes yesterday at 08:00).
pub fn latest_complete_day(now: DateTime<Utc>) -> NaiveDate {
    let local = now.with_timezone(&beijing());
    let back = if local.hour() < 8 { 2 } else { 1 };
    local.date_naive() - Days::new(back)
}

/// 12:00 Beijing time on `day`, as an instant.
pub fn noon_in_beijing(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(12, 0, 0)
        .expect("noon exists")
        .and_local_timezone(beijing())
        .single()
        .expect("no DST")
        .with_timezone(&Utc)
}

/// Parses `YYYY-MM-DD` strictly (four-digit year, two-digit month and day).
///
/// By hand rather than with chrono's format parser: it runs for every row of every answer.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let b = s.as_bytes();
    let well_formed = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    let number = |digits: &[u8]| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'));
    let parsed =
        well_formed.then(|| NaiveDate::from_ymd_opt(number(&b[..4]) as i32, number(&b[5..7]), number(&b[8..])));
    parsed.flatten().ok_or_else(|| format!("'{s}' is not a date: write it as YYYY-MM-DD, e.g. 2024-03-01"))
}

/// The Monday that starts the ISO week containing `d`.
pub fn week_start(d: NaiveDate) -> NaiveDate {
    d - Days::new(d.weekday().num_days_from_monday() as u64)
}

/// The first day of the month containing `d`.
pub fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("every month has a 1st")
}

/// The last day of the month containing `d`.
pub fn month_end(d: NaiveDate) -> NaiveDate {
    let first = month_start(d);
    let next = first.checked_add_months(chrono::Months::new(1)).expect("date within range");
    next - Days::new(1)
}

pub fn is_monday(d: NaiveDate) -> bool {
    d.weekday() == Weekday::Mon
}

/// A non-empty range of Beijing dates, both ends inclusive (the API's own convention).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateRange {
    begin: NaiveDate,
    end: NaiveDate,
}

impl DateRange {
    /// `None` when `end` is before `begin`: an inverted range is an error, never an empty no-op.
    pub fn new(begin: NaiveDate, end: NaiveDate) -> Option<Self> {
        (begin <= end).then_some(Self { begin, end })
    }

    pub fn day(d: NaiveDate) -> Self {
        Self { begin: d, end: d }
    }

    pub fn begin(&self) -> NaiveDate {
        self.begin
    }

    pub fn end(&self) -> NaiveDate {
        self.end
    }

    /// Number of days, counting both ends.
    pub fn days(&self) -> u32 {
        (self.end - self.begin).num_days() as u32 + 1
    }

    pub fn contains(&self, d: NaiveDate) -> bool {
        self.begin <= d && d <= self.end
    }

    /// The part of `self` that lies inside `other`, if any.
    pub fn intersect(&self, other: &DateRange) -> Option<DateRange> {
        DateRange::new(self.begin.max(other.begin), self.end.min(other.end))
    }

    pub fn iter_days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let end = self.end;
        self.begin.iter_days().take_while(move |d| *d <= end)
    }
}

impl fmt::Display for DateRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.begin, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn latest_complete_day_turns_at_eight_beijing() {
        // 07:59 Beijing on 2024-03-10 is 23:59 UTC on 2024-03-09.
        assert_eq!(latest_complete_day(utc("2024-03-09T23:59:59Z")), d("2024-03-08"));
        // 08:00 Beijing on 2024-03-10.
        assert_eq!(latest_complete_day(utc("2024-03-10T00:00:00Z")), d("2024-03-09"));
        // Late evening UTC is already the next Beijing day.
        assert_eq!(latest_complete_day(utc("2024-03-10T16:30:00Z")), d("2024-03-09"));
        assert_eq!(latest_complete_day(utc("2024-03-11T00:00:00Z")), d("2024-03-10"));
    }

    #[test]
    fn parse_date_is_strict() {
        assert_eq!(d("2024-02-29"), NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
        for bad in [
            "2023-02-29",
            "2024-2-01",
            "20240201",
            "2024/02/01",
            "",
            "2024-02-01T00:00",
            "+2024-02-0",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-01-00",
            "2024-01-0٣",
        ] {
            let err = parse_date(bad).unwrap_err();
            assert!(err.contains("YYYY-MM-DD"), "{bad}: {err}");
        }
    }

    #[test]
    fn periods() {
        assert_eq!(week_start(d("2024-03-03")), d("2024-02-26")); // a Sunday
        assert_eq!(week_start(d("2024-02-26")), d("2024-02-26"));
        assert_eq!(month_end(d("2024-02-10")), d("2024-02-29"));
        assert_eq!(month_end(d("2023-02-10")), d("2023-02-28"));
        assert_eq!(month_end(d("2024-12-31")), d("2024-12-31"));
        assert_eq!(month_start(d("2024-12-31")), d("2024-12-01"));
    }

    #[test]
    fn ranges() {
        assert!(DateRange::new(d("2024-01-02"), d("2024-01-01")).is_none());
        let r = DateRange::new(d("2023-12-30"), d("2024-01-02")).unwrap();
        assert_eq!(r.days(), 4);
        assert_eq!(r.iter_days().count(), 4);
        assert_eq!(r.to_string(), "2023-12-30..2024-01-02");
        assert_eq!(DateRange::day(d("2024-01-01")).days(), 1);
    }
}
