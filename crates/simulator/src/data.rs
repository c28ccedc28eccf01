//! The simulator's data: deterministic, realistic-looking upstream-message figures.
//!
//! Tests call this module directly to know what a run should have written, so it is a pure
//! function of (table, appid, date): no clock, no state, and the same answer in every process
//! (see `rng.rs`).
//!
//! Everything is derived from one model of an account's traffic, so the tables agree with each
//! other the way the real ones do:
//! - an account has a profile (how busy it is, its weekend habit, its message-type mix, how
//!   many messages a user sends in one go), drawn from a hash of its appid;
//! - a day's expected volume follows the profile, the weekday, the season, a slow trend and
//!   some noise (now and then a spike, or a whole quiet day); it is spread over the hours along
//!   a diurnal curve and over the message types by the mix, then drawn as Poisson counts, so
//!   rare types and night hours are often absent (no row, as the API sends no zero rows);
//! - a day's count per type is the sum of its hours; its users lie between the busiest hour's
//!   and the sum of the hours' (some people write in several hours). Weeks and months combine
//!   days the same way;
//! - a distribution row counts the period's distinct senders (of any type) by how many
//!   messages they sent, split so that the split can produce the period's message total.
//!
//! The generator picks its model from the table's API fields and period, never from its name:
//! `msg_type` makes a message table (`ref_hour` makes it hourly), `count_interval` a
//! distribution table. A new schema that reuses these shapes needs no change here.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};

use super::rng::{self, Rng};
use crate::calendar::{self, DATA_FLOOR, DaySpan};
use crate::families;
use wxcube_registry::{Family, Period, Table};

/// One value of an API row, as the simulator sends it. Ordered and hashable (floats are kept
/// as their JSON text), so that tests can compare rows whole.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimValue {
    /// Left out of the row, as the API leaves some fields out.
    Absent,
    Int(i64),
    /// A JSON string.
    Text(String),
    /// JSON text as sent: a float, an array of objects.
    Raw(String),
}

impl SimValue {
    /// A float as JSON writes it (shortest text that reads back as the same number).
    pub fn float(v: f64) -> Self {
        SimValue::Raw(serde_json::Number::from_f64(v).map_or_else(|| "null".to_string(), |n| n.to_string()))
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            SimValue::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl std::fmt::Display for SimValue {
    /// The value's JSON text (`null` for an absent one, which rows leave out instead).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimValue::Absent => f.write_str("null"),
            SimValue::Int(v) => write!(f, "{v}"),
            SimValue::Text(s) => f.write_str(&serde_json::Value::from(s.as_str()).to_string()),
            SimValue::Raw(s) => f.write_str(s),
        }
    }
}

/// One row of an API answer: `ref_date` and the table's `api_fields`, in the same order. A
/// table that takes its rows from a per-day array (`rows_from`) has one row per element,
/// the enclosing object's fields repeated: the answer nests them back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SimRow {
    pub ref_date: NaiveDate,
    pub fields: Vec<SimValue>,
}

impl SimRow {
    /// The integer value of the API field `name`, if the table has it and it is an integer.
    pub fn get(&self, table: &Table, name: &str) -> Option<i64> {
        table.field_index(name).and_then(|i| self.fields[i].int())
    }
}

/// The rows dated `period_start` for `appid`: one day's rows for day and hour tables, one
/// period's for week and month tables (`period_start` is then the Monday or the 1st; any other
/// date has no rows, like any date before the 2014-12-01 floor).
pub fn rows(table: &Table, appid: &str, period_start: NaiveDate) -> Vec<SimRow> {
    let Some(days) = period_days(table.period, period_start) else {
        return Vec::new();
    };
    let model = Model::new(appid);
    let fields: Vec<Field> = table.api_fields.iter().map(|f| Field::of(&f.path)).collect();
    let mut out = Vec::new();
    match Shape::of(&fields) {
        Shape::Messages { hourly } => model.message_rows(table.period, days, hourly, &fields, &mut out),
        Shape::Distribution => model.distribution_rows(table.period, days, &fields, &mut out),
        Shape::Unknown => {}
    }
    out
}

/// What the API answers at `now` for a request of `range`: every day of the range for day and
/// hour tables, and for week and month tables the periods whose first day lies in the range
/// and which have ended. Days after the latest complete day have no rows: before 08:00 Beijing
/// the API answers yesterday with an empty list.
///
/// The tables of the other families come from [`crate::families`]; those whose figures keep
/// growing after their day (an article's running totals) give them as of `latest`.
pub fn window_rows(table: &Table, appid: &str, range: DaySpan, now: DateTime<Utc>) -> Vec<SimRow> {
    let latest = calendar::latest_published_day(now);
    let days =
        range.each().filter(|&d| d >= table.floor && period_days(table.period, d).is_some_and(|p| p.last() <= latest));
    if table.family == Family::Message {
        days.flat_map(|d| rows(table, appid, d)).collect()
    } else {
        days.flat_map(|d| families::rows(table, appid, d, latest)).collect()
    }
}

/// Whether an answer for `range` at `now` says `is_delay: true`: the 2025 article family's
/// figures for the two latest published days are still being revised.
pub fn delayed(range: DaySpan, now: DateTime<Utc>) -> bool {
    let latest = calendar::latest_published_day(now);
    range.last() + Days::new(1) >= latest
}

/// The days of the period that starts on `start`, or `None` if no period starts then.
fn period_days(period: Period, start: NaiveDate) -> Option<DaySpan> {
    if start < DATA_FLOOR {
        return None;
    }
    let end = match period {
        Period::Day | Period::Hour => start,
        Period::Week if start.weekday() == Weekday::Mon => start + Days::new(6),
        Period::Month if start.day() == 1 => calendar::last_of_month(start),
        Period::Week | Period::Month => return None,
    };
    DaySpan::new(start, end)
}

/// The API fields the generator knows how to fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    RefHour,
    MsgType,
    MsgUser,
    MsgCount,
    CountInterval,
    /// A field of a new schema the model has no figure for: sent as 0.
    Other,
}

impl Field {
    fn of(name: &str) -> Self {
        match name {
            "ref_hour" => Field::RefHour,
            "msg_type" => Field::MsgType,
            "msg_user" => Field::MsgUser,
            "msg_count" => Field::MsgCount,
            "count_interval" => Field::CountInterval,
            _ => Field::Other,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Messages { hourly: bool },
    Distribution,
    Unknown,
}

impl Shape {
    fn of(fields: &[Field]) -> Self {
        if fields.contains(&Field::MsgType) {
            Shape::Messages { hourly: fields.contains(&Field::RefHour) }
        } else if fields.contains(&Field::CountInterval) {
            Shape::Distribution
        } else {
            Shape::Unknown
        }
    }
}

/// The values one row is made of; `fill` picks those the table asks for.
#[derive(Clone, Copy, Default)]
struct RowValues {
    hour: i64,
    msg_type: i64,
    cell: Cell,
    count_interval: i64,
}

impl RowValues {
    fn fill(&self, fields: &[Field]) -> Vec<SimValue> {
        fields
            .iter()
            .map(|f| {
                SimValue::Int(match f {
                    Field::RefHour => self.hour * 100,
                    Field::MsgType => self.msg_type,
                    Field::MsgUser => self.cell.users as i64,
                    Field::MsgCount => self.cell.count as i64,
                    Field::CountInterval => self.count_interval,
                    Field::Other => 0,
                })
            })
            .collect()
    }
}

/// Message types, in the order of the arrays below: text dominates, link (6) is rarest.
const MSG_TYPES: [i64; 5] = [1, 2, 3, 4, 6];
const N_TYPES: usize = MSG_TYPES.len();
/// Ranges of each type's share of the messages, per account (normalised afterwards).
const TYPE_SHARES: [(f64, f64); N_TYPES] = [(0.65, 0.88), (0.06, 0.18), (0.02, 0.09), (0.004, 0.02), (0.003, 0.03)];
/// Ranges of how many messages of a type a user sends within one hour, per account.
const MSGS_PER_USER: [(f64, f64); N_TYPES] = [(1.3, 2.2), (1.1, 1.6), (1.4, 2.5), (1.0, 1.2), (1.0, 1.15)];

/// Relative traffic per Beijing hour: asleep until six, a morning ramp, a plateau, and the
/// evening peak around nine, when people read and answer their subscriptions.
const DIURNAL: [f64; 24] = [
    0.9, 0.5, 0.3, 0.2, 0.15, 0.2, 0.45, 1.0, 1.7, 2.2, 2.4, 2.5, 2.6, 2.2, 2.2, 2.3, 2.3, 2.2, 2.1, 2.4, 2.8, 3.0,
    2.5, 1.7,
];

// Seed tags, so that the draws of the profile, of a day and of a period never share a stream.
const TAG_PROFILE: u64 = 1;
const TAG_DAY: u64 = 2;
const TAG_PERIOD: u64 = 3;
const TAG_DIST: u64 = 4;

/// A message count and how many distinct users sent those messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cell {
    count: u64,
    users: u64,
}

/// Combines cells of the same thing over several slices of time (hours of a day, days of a
/// week) or several message types: counts add up; users lie between the largest slice's and
/// the sum, as some people come back — `fresh` is the share of the extra users who are new.
fn combine(cells: impl IntoIterator<Item = Cell>, fresh: f64) -> Cell {
    let (count, max, sum) =
        cells.into_iter().fold((0, 0, 0), |(c, m, s), cell| (c + cell.count, m.max(cell.users), s + cell.users));
    Cell { count, users: max + ((sum - max) as f64 * fresh.clamp(0.0, 1.0)).floor() as u64 }
}

/// An account's habits, drawn once from its appid.
struct Profile {
    /// Expected messages on an ordinary weekday.
    scale: f64,
    weekend: f64,
    /// Yearly growth rate of the traffic.
    growth: f64,
    season_phase: f64,
    /// Day-to-day noise (log-normal sigma).
    noise: f64,
    quiet_day: f64,
    shares: [f64; N_TYPES],
    msgs_per_user: [f64; N_TYPES],
    /// Share of the extra users who are new people, when combining hours into a day, days
    /// into a week or a month, and message types into all senders.
    fresh_day: f64,
    fresh_week: f64,
    fresh_month: f64,
    fresh_types: f64,
}

impl Profile {
    fn of(seed: u64) -> Self {
        let mut r = Rng::new(rng::mix(seed, TAG_PROFILE));
        let busyness = r.unit();
        let mut shares = TYPE_SHARES.map(|(lo, hi)| r.between(lo, hi));
        let total: f64 = shares.iter().sum();
        shares.iter_mut().for_each(|s| *s /= total);
        Profile {
            // Log-uniform between ~10 and ~6 000 messages a day: most accounts are small.
            scale: 10f64.powf(1.0 + 2.8 * busyness),
            weekend: r.between(0.55, 1.3),
            growth: r.between(-0.08, 0.25),
            season_phase: r.unit(),
            noise: r.between(0.15, 0.35),
            // Small accounts have more days without a single message.
            quiet_day: 0.005 + 0.03 * (1.0 - busyness),
            shares,
            msgs_per_user: MSGS_PER_USER.map(|(lo, hi)| r.between(lo, hi)),
            fresh_day: r.between(0.45, 0.8),
            fresh_week: r.between(0.4, 0.7),
            fresh_month: r.between(0.25, 0.55),
            fresh_types: r.between(0.2, 0.45),
        }
    }

    /// Expected messages on `date`, before noise.
    fn expected(&self, date: NaiveDate) -> f64 {
        let weekday = match date.weekday() {
            Weekday::Sat | Weekday::Sun => self.weekend,
            _ => 1.0,
        };
        let years = (date - NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date")).num_days() as f64 / 365.25;
        let trend = (self.growth * years).exp().clamp(0.2, 5.0);
        let year_fraction = f64::from(date.ordinal0()) / 365.25;
        let season = 1.0 + 0.12 * (std::f64::consts::TAU * (year_fraction + self.season_phase)).sin();
        self.scale * weekday * trend * season
    }
}

/// One day of one account: cells per hour and type, and per type for the whole day.
struct Day {
    hours: [[Cell; N_TYPES]; 24],
    types: [Cell; N_TYPES],
}

/// The aggregate figures of one period (a day, a week, a month).
struct PeriodCells {
    /// Per hour and type; only filled for hourly tables.
    hours: Option<Box<[[Cell; N_TYPES]; 24]>>,
    types: [Cell; N_TYPES],
}

/// The account model: its seed and profile.
struct Model {
    seed: u64,
    profile: Profile,
}

impl Model {
    fn new(appid: &str) -> Self {
        let seed = rng::fnv1a(appid.as_bytes());
        Model { seed, profile: Profile::of(seed) }
    }

    fn day(&self, date: NaiveDate) -> Day {
        let p = &self.profile;
        let mut r = Rng::new(rng::mix(rng::mix(self.seed, TAG_DAY), rng::date_part(date)));
        let mut day = Day { hours: [[Cell::default(); N_TYPES]; 24], types: [Cell::default(); N_TYPES] };
        if r.chance(p.quiet_day) {
            return day;
        }
        let spike = if r.chance(0.01) { r.between(2.0, 4.0) } else { 1.0 };
        let noise = (p.noise * r.normal() - p.noise * p.noise / 2.0).exp();
        let volume = p.expected(date) * spike * noise;
        let diurnal_total: f64 = DIURNAL.iter().sum();
        for (hour, cells) in day.hours.iter_mut().enumerate() {
            let hour_volume = volume * DIURNAL[hour] / diurnal_total * (0.2 * r.normal() - 0.02).exp();
            for (t, cell) in cells.iter_mut().enumerate() {
                let count = r.poisson(hour_volume * p.shares[t]);
                *cell = Cell { count, users: hour_users(count, p.msgs_per_user[t], &mut r) };
            }
        }
        for t in 0..N_TYPES {
            let fresh = p.fresh_day + r.between(-0.05, 0.05);
            day.types[t] = combine(day.hours.iter().map(|h| h[t]), fresh);
        }
        day
    }

    /// Combines the days of a period. A one-day period is the day itself.
    fn period(&self, period: Period, days: DaySpan, hourly: bool) -> PeriodCells {
        if days.count() == 1 {
            let day = self.day(days.first());
            return PeriodCells { hours: hourly.then(|| Box::new(day.hours)), types: day.types };
        }
        let all: Vec<Day> = days.each().map(|d| self.day(d)).collect();
        let base = if period == Period::Month { self.profile.fresh_month } else { self.profile.fresh_week };
        let mut r = Rng::new(rng::mix(rng::mix(self.seed, TAG_PERIOD), rng::date_part(days.first())));
        let mut fresh = || base + r.between(-0.05, 0.05);
        let types = std::array::from_fn(|t| combine(all.iter().map(|d| d.types[t]), fresh()));
        let hours = hourly.then(|| {
            Box::new(std::array::from_fn(|h| {
                std::array::from_fn(|t| combine(all.iter().map(|d| d.hours[h][t]), fresh()))
            }))
        });
        PeriodCells { hours, types }
    }

    fn message_rows(&self, period: Period, days: DaySpan, hourly: bool, fields: &[Field], out: &mut Vec<SimRow>) {
        let cells = self.period(period, days, hourly);
        let mut push = |hour: usize, t: usize, cell: Cell| {
            if cell.count > 0 {
                let values = RowValues { hour: hour as i64, msg_type: MSG_TYPES[t], cell, ..RowValues::default() };
                out.push(SimRow { ref_date: days.first(), fields: values.fill(fields) });
            }
        };
        match &cells.hours {
            Some(hours) => {
                for (h, types) in hours.iter().enumerate() {
                    types.iter().enumerate().for_each(|(t, &cell)| push(h, t, cell));
                }
            }
            None => cells.types.iter().enumerate().for_each(|(t, &cell)| push(0, t, cell)),
        }
    }

    fn distribution_rows(&self, period: Period, days: DaySpan, fields: &[Field], out: &mut Vec<SimRow>) {
        let cells = self.period(period, days, false);
        let senders = combine(cells.types, self.profile.fresh_types);
        let mut r = Rng::new(rng::mix(rng::mix(self.seed, TAG_DIST), rng::date_part(days.first())));
        for (interval, users) in split_by_interval(senders, &mut r).into_iter().enumerate() {
            if users > 0 {
                let values = RowValues {
                    cell: Cell { count: 0, users },
                    count_interval: interval as i64,
                    ..RowValues::default()
                };
                out.push(SimRow { ref_date: days.first(), fields: values.fill(fields) });
            }
        }
    }
}

/// Distinct senders of `count` messages of one type within an hour: at least one, at most one
/// per message, around `per_user` messages each.
fn hour_users(count: u64, per_user: f64, r: &mut Rng) -> u64 {
    if count <= 1 {
        return count;
    }
    let users = (count as f64 / (per_user * r.between(0.8, 1.25))).round() as u64;
    users.clamp(1, count)
}

/// The period's `senders.users` distinct senders by count_interval (index 0 "0", 1 "1-5",
/// 2 "6-10", 3 ">10"), given that they sent `senders.count` messages between them.
///
/// The split follows [`interval_shares`] for the observed mean, so a period with more messages
/// per sender puts more of them in the higher intervals. The rounded split is then nudged, one
/// sender at a time between neighbouring intervals, until it could really have produced the
/// total: the intervals' minimums (1, 6, 11 messages) fit in it, and without anyone above ten
/// the maximums (5, 10) reach it. Now and then a few senders land in interval 0, as the real
/// API occasionally reports.
fn split_by_interval(senders: Cell, r: &mut Rng) -> [u64; 4] {
    let (total, messages) = (senders.users, senders.count);
    if total == 0 {
        return [0; 4];
    }
    let zero = if total >= 3 && r.chance(0.05) { 1 + (r.unit() * (total / 10).min(3) as f64) as u64 } else { 0 };
    let users = total - zero;
    let [_, six_to_ten, above_ten] = interval_shares(messages as f64 / users as f64);
    let above_ten = (users as f64 * above_ten).round() as u64;
    let six_to_ten = ((users as f64 * six_to_ten).round() as u64).min(users - above_ten);
    let mut n = [users - six_to_ten - above_ten, six_to_ten, above_ten];
    for _ in 0..10_000 {
        let least = n[0] + 6 * n[1] + 11 * n[2];
        let most = 5 * n[0] + 10 * n[1];
        if least > messages {
            let from = if n[2] > 0 { 2 } else { 1 };
            n[from] -= 1;
            n[from - 1] += 1;
        } else if n[2] == 0 && most < messages {
            let from = if n[1] > 0 { 1 } else { 0 };
            n[from] -= 1;
            n[from + 1] += 1;
        } else {
            break;
        }
    }
    [zero, n[0], n[1], n[2]]
}

/// Shares of senders in 1-5, 6-10 and >10 messages when they send `mean` each on average.
///
/// Senders are a mix, as on any account: most are casual (about two messages, geometric), a
/// minority are regulars who carry the rest of the mean. A single geometric law would put far
/// too many senders above ten once the mean grows (a month), where real accounts keep most
/// senders in 1-5.
fn interval_shares(mean: f64) -> [f64; 3] {
    const CASUAL: f64 = 0.7;
    let casual_mean = mean.min(2.0);
    let regular_mean = (mean - CASUAL * casual_mean) / (1.0 - CASUAL);
    // A geometric law on 1, 2, … with mean m has P(X > k) = (1 - 1/m)^k.
    let shares = |m: f64| {
        let q = 1.0 - 1.0 / m.max(1.0);
        [1.0 - q.powi(5), q.powi(5) - q.powi(10), q.powi(10)]
    };
    let (c, g) = (shares(casual_mean), shares(regular_mean));
    std::array::from_fn(|i| CASUAL * c[i] + (1.0 - CASUAL) * g[i])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::accounts::demo_appid;
    use crate::testing::d;
    use wxcube_registry as registry;

    fn table(name: &str) -> &'static Table {
        registry::find(name).unwrap()
    }

    /// A few accounts of very different sizes: the demo ones and some arbitrary appids.
    fn appids() -> Vec<String> {
        let mut ids: Vec<String> = (1..=5).map(demo_appid).collect();
        ids.extend(["wx1234567890abcdef", "wxffffffffffffffff", "x"].map(String::from));
        ids
    }

    /// (msg_type or count_interval, plus ref_hour for hourly tables) → (msg_count, msg_user).
    fn by_key(t: &Table, rows: &[SimRow], key: &[&str]) -> BTreeMap<Vec<i64>, (i64, i64)> {
        rows.iter()
            .map(|r| {
                let k = key.iter().map(|f| r.get(t, f).unwrap()).collect();
                (k, (r.get(t, "msg_count").unwrap_or(0), r.get(t, "msg_user").unwrap()))
            })
            .collect()
    }

    #[test]
    fn same_inputs_give_the_same_rows() {
        for t in registry::tables().iter().filter(|t| t.family == Family::Message) {
            let start = if t.period == Period::Month { d("2024-03-01") } else { d("2024-03-04") };
            let a = rows(t, "wxdemo000000000001", start);
            assert_eq!(a, rows(t, "wxdemo000000000001", start), "{t}");
            assert!(!a.is_empty(), "{t}");
            assert_ne!(a, rows(t, "wxdemo000000000002", start), "{t}: accounts differ");
        }
        // Pinned figures: tests and demos elsewhere rely on them staying put, so a change of
        // model must be deliberate, and update this line.
        let day = rows(table("upstream_msg"), "wxdemo000000000001", d("2024-03-04"));
        let fields: Vec<Vec<i64>> = day.iter().map(|r| r.fields.iter().map(|v| v.int().unwrap()).collect()).collect();
        assert_eq!(fields, [[1, 44, 170], [2, 12, 33], [3, 6, 13], [4, 1, 2], [6, 1, 1]]);
    }

    #[test]
    fn rows_follow_the_field_order_of_the_registry() {
        let t = table("upstream_msg_hour");
        for r in rows(t, "wxdemo000000000001", d("2024-03-04")) {
            assert_eq!(r.ref_date, d("2024-03-04"));
            let hour = r.get(t, "ref_hour").unwrap();
            assert!(hour % 100 == 0 && (0..=2300).contains(&hour), "{r:?}");
            assert!(MSG_TYPES.contains(&r.get(t, "msg_type").unwrap()));
            let (users, count) = (r.get(t, "msg_user").unwrap(), r.get(t, "msg_count").unwrap());
            assert!(1 <= users && users <= count, "{r:?}");
        }
        let dist = table("upstream_msg_dist");
        for r in rows(dist, "wxdemo000000000001", d("2024-03-04")) {
            assert!((0..=3).contains(&r.get(dist, "count_interval").unwrap()));
            assert!(r.get(dist, "msg_user").unwrap() >= 1);
        }
    }

    #[test]
    fn a_day_is_the_sum_of_its_hours() {
        let (day_t, hour_t) = (table("upstream_msg"), table("upstream_msg_hour"));
        for appid in appids() {
            for date in DaySpan::new(d("2024-02-20"), d("2024-03-10")).unwrap().each() {
                let day = by_key(day_t, &rows(day_t, &appid, date), &["msg_type"]);
                let hours = rows(hour_t, &appid, date);
                for (key, &(count, users)) in &day {
                    let of_type: Vec<&SimRow> =
                        hours.iter().filter(|r| r.get(hour_t, "msg_type") == Some(key[0])).collect();
                    let sum = |f| of_type.iter().map(|r| r.get(hour_t, f).unwrap()).sum::<i64>();
                    let max_users = of_type.iter().map(|r| r.get(hour_t, "msg_user").unwrap()).max().unwrap();
                    assert_eq!(count, sum("msg_count"), "{appid} {date} {key:?}");
                    assert!(max_users <= users && users <= sum("msg_user"), "{appid} {date} {key:?}");
                    assert!(1 <= users && users <= count);
                }
                let types_with_hours: std::collections::BTreeSet<i64> =
                    hours.iter().map(|r| r.get(hour_t, "msg_type").unwrap()).collect();
                assert_eq!(types_with_hours.len(), day.len(), "{appid} {date}: a type has hours iff it has a day row");
            }
        }
    }

    #[test]
    fn weeks_and_months_are_the_sum_of_their_days() {
        let day_t = table("upstream_msg");
        for (period_table, start, days) in
            [("upstream_msg_week", "2024-02-26", 7), ("upstream_msg_month", "2024-02-01", 29)]
        {
            let pt = table(period_table);
            for appid in appids() {
                let start = d(start);
                let period = by_key(pt, &rows(pt, &appid, start), &["msg_type"]);
                let daily: Vec<_> = (0..days)
                    .map(|i| by_key(day_t, &rows(day_t, &appid, start + Days::new(i)), &["msg_type"]))
                    .collect();
                for (key, &(count, users)) in &period {
                    let values: Vec<(i64, i64)> = daily.iter().filter_map(|m| m.get(key).copied()).collect();
                    let sum_count: i64 = values.iter().map(|v| v.0).sum();
                    let max_users = values.iter().map(|v| v.1).max().unwrap();
                    let sum_users: i64 = values.iter().map(|v| v.1).sum();
                    assert_eq!(count, sum_count, "{period_table} {appid} {key:?}");
                    assert!(max_users <= users && users <= sum_users, "{period_table} {appid} {key:?}");
                }
                let types_in_days = daily.iter().flat_map(|m| m.keys()).collect::<std::collections::BTreeSet<_>>();
                assert_eq!(types_in_days.len(), period.len(), "{period_table} {appid}");
            }
        }
    }

    #[test]
    fn distributions_agree_with_the_message_tables() {
        for (msg, dist, start) in [
            ("upstream_msg", "upstream_msg_dist", "2024-03-05"),
            ("upstream_msg_week", "upstream_msg_dist_week", "2024-03-04"),
            ("upstream_msg_month", "upstream_msg_dist_month", "2024-03-01"),
        ] {
            let (mt, dt) = (table(msg), table(dist));
            for appid in appids() {
                let start = d(start);
                let messages = by_key(mt, &rows(mt, &appid, start), &["msg_type"]);
                let split = by_key(dt, &rows(dt, &appid, start), &["count_interval"]);
                let total_messages: i64 = messages.values().map(|v| v.0).sum();
                let max_type_users = messages.values().map(|v| v.1).max().unwrap_or(0);
                let sum_type_users: i64 = messages.values().map(|v| v.1).sum();
                let n = |i: i64| split.get(&vec![i]).map_or(0, |v| v.1);
                let senders = n(0) + n(1) + n(2) + n(3);
                assert!(max_type_users <= senders && senders <= sum_type_users, "{dist} {appid}");
                assert!(senders <= total_messages, "{dist} {appid}");
                // The split could have produced the message total.
                assert!(n(1) + 6 * n(2) + 11 * n(3) <= total_messages, "{dist} {appid}: {split:?} {total_messages}");
                assert!(
                    n(3) > 0 || 5 * n(1) + 10 * n(2) >= total_messages,
                    "{dist} {appid}: {split:?} {total_messages}"
                );
            }
        }
    }

    #[test]
    fn longer_periods_put_more_senders_in_higher_intervals() {
        let share_above_five = |name: &str, start: &str| {
            let t = table(name);
            let split = by_key(t, &rows(t, "wxdemo000000000001", d(start)), &["count_interval"]);
            let n = |i: i64| split.get(&vec![i]).map_or(0, |v| v.1) as f64;
            (n(2) + n(3)) / (n(1) + n(2) + n(3))
        };
        assert!(
            share_above_five("upstream_msg_dist", "2024-03-05")
                < share_above_five("upstream_msg_dist_month", "2024-03-01")
        );
    }

    #[test]
    fn data_is_sparse_and_accounts_differ_in_size() {
        let (day_t, hour_t) = (table("upstream_msg"), table("upstream_msg_hour"));
        let year = DaySpan::new(d("2023-01-01"), d("2023-12-31")).unwrap();
        let mut volumes = Vec::new();
        let (mut quiet_days, mut missing_types, mut missing_cells) = (0, 0, 0);
        for appid in (1..=10).map(demo_appid) {
            let mut volume = 0;
            for date in year.each() {
                let day = rows(day_t, &appid, date);
                quiet_days += usize::from(day.is_empty());
                missing_types += usize::from(!day.is_empty() && day.len() < N_TYPES);
                missing_cells += 24 * N_TYPES - rows(hour_t, &appid, date).len();
                volume += day.iter().map(|r| r.get(day_t, "msg_count").unwrap()).sum::<i64>();
            }
            volumes.push(volume);
        }
        assert!(
            quiet_days > 0 && missing_types > 0 && missing_cells > 0,
            "{quiet_days} {missing_types} {missing_cells}"
        );
        let (min, max) = (volumes.iter().min().unwrap(), volumes.iter().max().unwrap());
        assert!(*max > 20 * *min, "some accounts are busy, some quiet: {volumes:?}");
    }

    #[test]
    fn weekends_and_hours_vary() {
        let t = table("upstream_msg_hour");
        let mut per_hour = [0i64; 24];
        for date in DaySpan::new(d("2024-01-01"), d("2024-01-28")).unwrap().each() {
            for r in rows(t, "wxdemo000000000002", date) {
                per_hour[(r.get(t, "ref_hour").unwrap() / 100) as usize] += r.get(t, "msg_count").unwrap();
            }
        }
        assert!(per_hour[21] > 3 * per_hour[4], "{per_hour:?}");
    }

    #[test]
    fn periods_start_on_their_first_day_and_respect_the_floor() {
        assert!(rows(table("upstream_msg_week"), "wxdemo000000000001", d("2024-03-05")).is_empty());
        assert!(rows(table("upstream_msg_month"), "wxdemo000000000001", d("2024-03-02")).is_empty());
        assert!(rows(table("upstream_msg"), "wxdemo000000000001", d("2014-11-30")).is_empty());
        assert!(!rows(table("upstream_msg_month"), "wxdemo000000000001", d("2014-12-01")).is_empty());
    }

    #[test]
    fn windows_hold_ended_periods_and_ready_days_only() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let (day_t, week_t, month_t) = (table("upstream_msg"), table("upstream_msg_week"), table("upstream_msg_month"));
        let id = "wxdemo000000000001";
        let range = DaySpan::new(d("2024-03-04"), d("2024-03-10")).unwrap();
        // Monday 2024-03-11, 07:00 Beijing: Sunday the 10th is not published yet, so neither is
        // its week; at 09:00 both are.
        let early = utc("2024-03-10T23:00:00Z");
        let late = utc("2024-03-11T01:00:00Z");
        let dates = |rows: Vec<SimRow>| rows.iter().map(|r| r.ref_date).collect::<std::collections::BTreeSet<_>>();
        assert_eq!(dates(window_rows(day_t, id, range, early)).last(), Some(&d("2024-03-09")));
        assert_eq!(dates(window_rows(day_t, id, range, late)).last(), Some(&d("2024-03-10")));
        assert!(window_rows(week_t, id, range, early).is_empty());
        assert_eq!(window_rows(week_t, id, range, late), rows(week_t, id, d("2024-03-04")));
        // A monthly request only has to contain the 1st (the API page's own example).
        let nov = DaySpan::new(d("2024-11-01"), d("2024-11-05")).unwrap();
        assert_eq!(window_rows(month_t, id, nov, utc("2024-12-01T04:00:00Z")), rows(month_t, id, d("2024-11-01")));
        assert!(window_rows(month_t, id, nov, utc("2024-11-30T04:00:00Z")).is_empty());
    }

    #[test]
    fn unknown_shapes_and_fields_are_handled() {
        assert_eq!(Shape::of(&[Field::Other]), Shape::Unknown);
        assert_eq!(Shape::of(&[Field::RefHour, Field::MsgType]), Shape::Messages { hourly: true });
        assert_eq!(
            RowValues::default().fill(&[Field::Other, Field::CountInterval]),
            [SimValue::Int(0), SimValue::Int(0)]
        );
    }

    #[test]
    fn interval_shares_shift_up_with_the_mean() {
        let mut previous = [1.0, 0.0, 0.0];
        for mean in [1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0] {
            let s = interval_shares(mean);
            assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{mean}: {s:?}");
            assert!(s[0] <= previous[0] && s[2] >= previous[2], "{mean}: {s:?} after {previous:?}");
            previous = s;
        }
        assert_eq!(interval_shares(1.0), [1.0, 0.0, 0.0]);
        assert!(interval_shares(10.0)[0] > 0.6, "casual senders stay the majority");
    }

    #[test]
    fn interval_split_is_always_feasible() {
        let mut r = Rng::new(3);
        for messages in 1..300u64 {
            for users in 1..=messages.min(60) {
                let [z, a, b, c] = split_by_interval(Cell { count: messages, users }, &mut r);
                assert_eq!(z + a + b + c, users);
                assert!(a + 6 * b + 11 * c <= messages, "{messages} {users}");
                assert!(c > 0 || 5 * a + 10 * b >= messages, "{messages} {users}: {a} {b} {c}");
            }
        }
    }
}
