//! The simulator's own calendar: Beijing days, the 08:00 publication rule, and runs of days.
//!
//! Written apart from the connector's date logic on purpose: the tests take their expected rows
//! from the simulator, so a mistake in wxcube's idea of "yesterday" or of a period must not be
//! repeated here, where it would agree with itself and pass.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

/// The first day the API holds data for.
pub const DATA_FLOOR: NaiveDate = NaiveDate::from_ymd_opt(2014, 12, 1).expect("a real date");

/// Beijing is UTC+8 all year round (no daylight saving).
const BEIJING_OFFSET_HOURS: i64 = 8;

/// The API publishes a day at 08:00 Beijing the next morning.
const PUBLISHED_AT_HOUR: u32 = 8;

/// The calendar day in Beijing at `now`.
pub fn beijing_day(now: DateTime<Utc>) -> NaiveDate {
    (now + Duration::hours(BEIJING_OFFSET_HOURS)).date_naive()
}

/// The latest day whose figures are published at `now`: yesterday in Beijing from 08:00 on,
/// the day before yesterday until then.
pub fn latest_published_day(now: DateTime<Utc>) -> NaiveDate {
    let beijing = (now + Duration::hours(BEIJING_OFFSET_HOURS)).naive_utc();
    let back =
        if beijing.time() < chrono::NaiveTime::from_hms_opt(PUBLISHED_AT_HOUR, 0, 0).expect("08:00") { 2 } else { 1 };
    beijing.date() - Duration::days(back)
}

/// 12:00 Beijing on `day`, as UTC: a pinned "now" well after that day's publication hour.
pub fn noon_on(day: NaiveDate) -> DateTime<Utc> {
    let noon_utc = day.and_hms_opt(12, 0, 0).expect("12:00") - Duration::hours(BEIJING_OFFSET_HOURS);
    noon_utc.and_utc()
}

/// `YYYY-MM-DD`, and nothing looser: the real API refuses other forms (61500).
pub fn parse_day(s: &str) -> Result<NaiveDate, String> {
    let ok = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
    ok.then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| format!("'{s}' is not a YYYY-MM-DD date"))
}

/// The last day of `day`'s month.
pub fn last_of_month(day: NaiveDate) -> NaiveDate {
    let (y, m) = if day.month() == 12 { (day.year() + 1, 1) } else { (day.year(), day.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).expect("a first of month") - Duration::days(1)
}

/// Consecutive days, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DaySpan {
    first: NaiveDate,
    last: NaiveDate,
}

impl DaySpan {
    /// `None` when `last` comes before `first`.
    pub fn new(first: NaiveDate, last: NaiveDate) -> Option<Self> {
        (first <= last).then_some(Self { first, last })
    }

    pub fn first(&self) -> NaiveDate {
        self.first
    }

    pub fn last(&self) -> NaiveDate {
        self.last
    }

    pub fn count(&self) -> u32 {
        (self.last - self.first).num_days() as u32 + 1
    }

    pub fn each(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let (first, count) = (self.first, self.count());
        (0..count).map(move |i| first + Duration::days(i64::from(i)))
    }
}

impl fmt::Display for DaySpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_day_is_published_at_eight_in_beijing() {
        let day = |s| parse_day(s).unwrap();
        // 2024-03-12 07:59 Beijing = 2024-03-11 23:59 UTC: the 10th is the latest.
        assert_eq!(latest_published_day(Utc.with_ymd_and_hms(2024, 3, 11, 23, 59, 0).unwrap()), day("2024-03-10"));
        // 08:00 Beijing: the 11th is out.
        assert_eq!(latest_published_day(Utc.with_ymd_and_hms(2024, 3, 12, 0, 0, 0).unwrap()), day("2024-03-11"));
        assert_eq!(beijing_day(Utc.with_ymd_and_hms(2024, 3, 11, 16, 0, 0).unwrap()), day("2024-03-12"));
        assert_eq!(latest_published_day(noon_on(day("2024-03-12"))), day("2024-03-11"));
    }

    #[test]
    fn days_and_months() {
        let day = |s| parse_day(s).unwrap();
        assert_eq!(last_of_month(day("2024-02-10")), day("2024-02-29"));
        assert_eq!(last_of_month(day("2023-12-31")), day("2023-12-31"));
        let march = DaySpan::new(day("2024-03-01"), day("2024-03-07")).unwrap();
        assert_eq!((march.count(), march.each().last()), (7, Some(day("2024-03-07"))));
        assert!(DaySpan::new(day("2024-03-02"), day("2024-03-01")).is_none());
        assert!(parse_day("2024-3-01").is_err() && parse_day("2024-02-30").is_err());
    }
}
