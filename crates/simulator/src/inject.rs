//! The live side of fault injection: which fault strikes which request.
//!
//! [`Injector`] holds the current [`Faults`] and everything they need to remember — counts
//! still to use, per-account quota and per-minute call counts, how often each kind has struck
//! (which picks its variant), and the seeded random streams behind rates and jitter. The server
//! keeps it behind one mutex and asks it, at fixed points of each datacube request:
//! 1. [`Injector::latency`] on arrival;
//! 2. [`Injector::token_rules`] when checking the token;
//! 3. [`Injector::limit`] once the token names the account (48001, 45009, 45011);
//! 4. [`Injector::max_span`] when checking the dates;
//! 5. [`Injector::envelope`], then, if none struck, [`Injector::data`] for an answer that
//!    would be a list.
//!
//! For `api_authorizer_token` calls it is asked once, on arrival: [`Injector::authorizer`] and
//! [`Injector::authorizer_latency`].
//!
//! It also counts each account's calls per endpoint and day, with or without a quota, for the
//! quota endpoint ([`Injector::daily_used`]).
//!
//! Only triggers with a rate draw from the random stream, so the same faults and the same
//! sequence of requests give the same answers, and a simulator without faults draws nothing.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::NaiveDate;

use super::faults::{FaultKind, Faults};
use super::rng::{self, Rng};
use super::tokens::TokenRules;

/// A triggered fault striking a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strike {
    pub kind: FaultKind,
    /// How many times this kind struck before, since the faults were set: picks the variant,
    /// so that a few strikes in a row show every variant.
    pub nth: u64,
}

/// A stateful limit an account ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// 48001: the account is not allowed to call datacube endpoints.
    Unauthorized,
    /// 45009: the account used its calls of this endpoint for today.
    DailyQuota,
    /// 45011: the account made too many calls this minute.
    PerMinute,
}

impl Limit {
    /// The name counted in [`super::SimStats::faults`].
    pub fn name(self) -> &'static str {
        match self {
            Limit::Unauthorized => "unauthorized",
            Limit::DailyQuota => "daily_quota",
            Limit::PerMinute => "per_minute_limit",
        }
    }
}

/// The `daily_limit` the quota endpoint reports when no `daily_quota` fault is set. No datacube
/// quota is documented; this is the order of magnitude the real service reports for APIs of
/// this kind. It is reported, not enforced: without the fault, calls beyond it are answered
/// (and `remain` stays at 0).
pub const DEFAULT_DAILY_LIMIT: u64 = 5000;

/// Seed tags, so that jitter draws never shift which requests get a fault.
const TAG_RATES: u64 = 1;
const TAG_JITTER: u64 = 2;
/// Authorizer calls draw from their own stream, so they never shift which datacube requests
/// get a fault.
const TAG_AUTHORIZER: u64 = 3;

#[derive(Debug)]
pub struct Injector {
    faults: Faults,
    rates: Rng,
    jitter: Rng,
    authorizer_rates: Rng,
    struck: BTreeMap<FaultKind, u64>,
    /// Calls per (appid, endpoint) on the given day that the daily quota let through.
    daily_calls: HashMap<(String, String), (NaiveDate, u64)>,
    /// Calls per appid in the given minute (minutes since the Unix epoch).
    minute_calls: HashMap<String, (i64, u64)>,
}

impl Injector {
    /// Starts injecting `faults`, which must be [validated](Faults::validated).
    pub fn new(faults: Faults) -> Self {
        Self {
            rates: Rng::new(rng::mix(faults.seed, TAG_RATES)),
            jitter: Rng::new(rng::mix(faults.seed, TAG_JITTER)),
            authorizer_rates: Rng::new(rng::mix(faults.seed, TAG_AUTHORIZER)),
            faults,
            struck: BTreeMap::new(),
            daily_calls: HashMap::new(),
            minute_calls: HashMap::new(),
        }
    }

    /// The faults, with the counts still to use.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn token_rules(&self) -> TokenRules {
        TokenRules {
            shared_overlap: self.faults.token_overlap_secs.map(Duration::from_secs),
            max_uses: self.faults.token_expires_after,
        }
    }

    /// How long to hold back this answer, if at all.
    pub fn latency(&mut self) -> Option<Duration> {
        let (base, jitter) = (self.faults.latency_ms, self.faults.latency_jitter_ms);
        if base == 0 && jitter == 0 {
            return None;
        }
        let extra = if jitter == 0 { 0 } else { self.jitter.next_u64() % (jitter + 1) };
        Some(Duration::from_millis(base.saturating_add(extra)))
    }

    /// Whether `appid` may not call the endpoints of `family` (48001).
    pub fn unauthorized_for(&self, appid: &str, family: wxcube_registry::Family) -> bool {
        self.faults.unauthorized_families.get(family.name()).is_some_and(|ids| ids.iter().any(|a| a == appid))
    }

    /// The limit a call of `appid` to `endpoint` runs into, if any; counts the call. `today`
    /// is the simulated Beijing date, `minute` the machine's minutes since the epoch. A call
    /// counts against the per-minute limit once past the daily quota, and against the daily
    /// quota (and in [`Self::daily_used`]) once past both.
    pub fn limit(&mut self, appid: &str, endpoint: &str, today: NaiveDate, minute: i64) -> Option<Limit> {
        if self.faults.unauthorized.iter().any(|a| a == appid) {
            return Some(Limit::Unauthorized);
        }
        let key = (appid.to_string(), endpoint.to_string());
        if let Some(quota) = self.faults.daily_quota
            && self.daily_used(&key.0, &key.1, today) >= quota
        {
            return Some(Limit::DailyQuota);
        }
        if let Some(limit) = self.faults.per_minute_limit
            && count_call(self.minute_calls.entry(appid.to_string()).or_insert((minute, 0)), minute) > limit
        {
            return Some(Limit::PerMinute);
        }
        count_call(self.daily_calls.entry(key).or_insert((today, 0)), today);
        None
    }

    /// The calls `appid` made to `endpoint` on `today` that got past every limit, since the
    /// faults were last set.
    pub fn daily_used(&self, appid: &str, endpoint: &str, today: NaiveDate) -> u64 {
        // Keyed by owned strings; a lookup allocates, which the quota endpoint can afford.
        match self.daily_calls.get(&(appid.to_string(), endpoint.to_string())) {
            Some(&(day, calls)) if day == today => calls,
            _ => 0,
        }
    }

    /// The calls allowed per account, endpoint and day: the `daily_quota` fault, else
    /// [`DEFAULT_DAILY_LIMIT`].
    pub fn daily_limit(&self) -> u64 {
        self.faults.daily_quota.unwrap_or(DEFAULT_DAILY_LIMIT)
    }

    /// The span enforced for `table` at run time, if the faults set one.
    pub fn max_span(&self, table: &str) -> Option<u32> {
        self.faults.max_span_days.get(table).copied()
    }

    /// The envelope fault replacing this answer, if one strikes: the first kind with a count
    /// left, else one drawn by rate (the rates add up to at most 1, so each kind strikes with
    /// exactly its rate).
    pub fn envelope(&mut self) -> Option<Strike> {
        let kind = match FaultKind::ENVELOPE.into_iter().find(|&k| self.take_count(k)) {
            Some(kind) => kind,
            None => self.draw_envelope()?,
        };
        Some(self.strike(kind))
    }

    /// The fault striking this `api_authorizer_token` call, if one does: the first kind with a
    /// count left, else one drawn by rate.
    pub fn authorizer(&mut self) -> Option<Strike> {
        let kind = match FaultKind::AUTHORIZER.into_iter().find(|&k| self.take_count(k)) {
            Some(kind) => kind,
            None => one_by_rate(&self.faults, &FaultKind::AUTHORIZER, &mut self.authorizer_rates)?,
        };
        Some(self.strike(kind))
    }

    /// How long to hold back this `api_authorizer_token` answer, if at all.
    pub fn authorizer_latency(&self) -> Option<Duration> {
        let ms = self.faults.authorizer_latency_ms;
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// The data faults altering this list, each by its own count or draw.
    pub fn data(&mut self) -> Vec<Strike> {
        let mut strikes = Vec::new();
        for kind in FaultKind::DATA {
            if self.take_count(kind) || self.draw(kind) {
                strikes.push(self.strike(kind));
            }
        }
        strikes
    }

    fn take_count(&mut self, kind: FaultKind) -> bool {
        let trigger = self.faults.trigger_mut(kind);
        let left = trigger.count > 0;
        trigger.count = trigger.count.saturating_sub(1);
        left
    }

    fn draw(&mut self, kind: FaultKind) -> bool {
        let rate = self.faults.trigger(kind).rate;
        rate > 0.0 && self.rates.chance(rate)
    }

    fn draw_envelope(&mut self) -> Option<FaultKind> {
        one_by_rate(&self.faults, &FaultKind::ENVELOPE, &mut self.rates)
    }

    fn strike(&mut self, kind: FaultKind) -> Strike {
        let struck = self.struck.entry(kind).or_default();
        *struck += 1;
        Strike { kind, nth: *struck - 1 }
    }
}

/// One of `kinds` drawn by their rates (which add up to at most 1, so each strikes with exactly
/// its rate), or none. Draws nothing when no kind has a rate.
fn one_by_rate(faults: &Faults, kinds: &[FaultKind], rng: &mut Rng) -> Option<FaultKind> {
    if kinds.iter().all(|&k| faults.trigger(k).rate == 0.0) {
        return None;
    }
    let u = rng.unit();
    let mut upto = 0.0;
    kinds.iter().copied().find(|&k| {
        upto += faults.trigger(k).rate;
        u < upto
    })
}

/// Counts one call in a `(period, calls)` counter, starting over when the period changed.
fn count_call<P: PartialEq>(counter: &mut (P, u64), now: P) -> u64 {
    if counter.0 != now {
        *counter = (now, 0);
    }
    counter.1 += 1;
    counter.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Trigger;

    fn day(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, n).unwrap()
    }

    fn with(faults: Faults) -> Injector {
        Injector::new(faults.validated().unwrap())
    }

    #[test]
    fn no_faults_strike_nothing() {
        let mut i = with(Faults::default());
        for _ in 0..100 {
            assert_eq!((i.envelope(), i.data().len(), i.latency()), (None, 0, None));
            assert_eq!(i.limit("wxa", "getupstreammsg", day(1), 0), None);
        }
        assert_eq!(i.token_rules(), TokenRules::default());
    }

    #[test]
    fn counts_strike_the_next_n_then_are_used_up() {
        let mut i = with(Faults { busy: Trigger::count(2), drop: Trigger::count(1), ..Faults::default() });
        let kinds: Vec<_> = (0..5).map(|_| i.envelope().map(|s| (s.kind, s.nth))).collect();
        assert_eq!(
            kinds,
            [Some((FaultKind::Busy, 0)), Some((FaultKind::Busy, 1)), Some((FaultKind::Drop, 0)), None, None]
        );
        assert!(i.faults().busy.is_off() && i.faults().drop.is_off());
    }

    #[test]
    fn rates_strike_about_as_often_as_asked_and_reproducibly() {
        let faults = Faults {
            busy: Trigger::rate(0.2),
            http_5xx: Trigger::rate(0.3),
            negative_count: Trigger::rate(0.5),
            seed: 7,
            ..Faults::default()
        };
        let run = || {
            let mut i = with(faults.clone());
            (0..10_000).map(|_| (i.envelope().map(|s| s.kind), i.data().len())).collect::<Vec<_>>()
        };
        let draws = run();
        assert_eq!(draws, run(), "same seed, same strikes");
        let share = |hits: usize| hits as f64 / draws.len() as f64;
        let envelope = |kind| share(draws.iter().filter(|d| d.0 == Some(kind)).count());
        assert!((envelope(FaultKind::Busy) - 0.2).abs() < 0.02);
        assert!((envelope(FaultKind::Http5xx) - 0.3).abs() < 0.02);
        assert!((share(draws.iter().filter(|d| d.1 == 1).count()) - 0.5).abs() < 0.02);
        let other_seed = Faults { seed: 8, ..faults };
        let mut i = with(other_seed);
        let differs = (0..1000).map(|_| i.envelope().map(|s| s.kind)).ne(draws[..1000].iter().map(|d| d.0));
        assert!(differs, "another seed, other strikes");
    }

    #[test]
    fn data_faults_strike_together() {
        let mut i =
            with(Faults { out_of_window: Trigger::always(), unknown_code: Trigger::count(1), ..Faults::default() });
        let kinds = |s: Vec<Strike>| s.into_iter().map(|s| s.kind).collect::<Vec<_>>();
        assert_eq!(kinds(i.data()), [FaultKind::OutOfWindow, FaultKind::UnknownCode]);
        assert_eq!(kinds(i.data()), [FaultKind::OutOfWindow]);
    }

    #[test]
    fn daily_quota_per_account_and_endpoint() {
        let mut i = with(Faults { daily_quota: Some(2), ..Faults::default() });
        let mut call = |appid: &str, endpoint: &str, d: u32| i.limit(appid, endpoint, day(d), 0);
        assert_eq!(call("wxa", "getupstreammsg", 1), None);
        assert_eq!(call("wxa", "getupstreammsg", 1), None);
        assert_eq!(call("wxa", "getupstreammsg", 1), Some(Limit::DailyQuota));
        assert_eq!(call("wxa", "getupstreammsghour", 1), None, "another endpoint");
        assert_eq!(call("wxb", "getupstreammsg", 1), None, "another account");
        assert_eq!(call("wxa", "getupstreammsg", 2), None, "the next day");
    }

    #[test]
    fn calls_are_counted_with_or_without_a_quota() {
        let mut i = with(Faults::default());
        assert_eq!((i.daily_limit(), i.daily_used("wxa", "getupstreammsg", day(1))), (DEFAULT_DAILY_LIMIT, 0));
        for _ in 0..3 {
            assert_eq!(i.limit("wxa", "getupstreammsg", day(1), 0), None);
        }
        i.limit("wxa", "getupstreammsghour", day(1), 0);
        assert_eq!(i.daily_used("wxa", "getupstreammsg", day(1)), 3);
        assert_eq!(i.daily_used("wxb", "getupstreammsg", day(1)), 0);
        assert_eq!(i.daily_used("wxa", "getupstreammsg", day(2)), 0, "a new day");
        // Refused calls are not used calls.
        let mut i = with(Faults { daily_quota: Some(2), per_minute_limit: Some(1), ..Faults::default() });
        assert_eq!(i.daily_limit(), 2);
        assert_eq!(i.limit("wxa", "getupstreammsg", day(1), 0), None);
        assert_eq!(i.limit("wxa", "getupstreammsg", day(1), 0), Some(Limit::PerMinute));
        assert_eq!(i.limit("wxa", "getupstreammsg", day(1), 1), None);
        assert_eq!(i.limit("wxa", "getupstreammsg", day(1), 2), Some(Limit::DailyQuota));
        assert_eq!(i.daily_used("wxa", "getupstreammsg", day(1)), 2);
    }

    #[test]
    fn per_minute_limit_per_account() {
        let mut i = with(Faults { per_minute_limit: Some(1), ..Faults::default() });
        assert_eq!(i.limit("wxa", "getupstreammsg", day(1), 10), None);
        assert_eq!(i.limit("wxa", "getupstreammsghour", day(1), 10), Some(Limit::PerMinute));
        assert_eq!(i.limit("wxb", "getupstreammsg", day(1), 10), None);
        assert_eq!(i.limit("wxa", "getupstreammsg", day(1), 11), None, "the next minute");
    }

    #[test]
    fn unauthorized_accounts_only() {
        let mut i = with(Faults { unauthorized: vec!["wxb".into()], daily_quota: Some(0), ..Faults::default() });
        assert_eq!(i.limit("wxb", "getupstreammsg", day(1), 0), Some(Limit::Unauthorized));
        assert_eq!(i.limit("wxa", "getupstreammsg", day(1), 0), Some(Limit::DailyQuota));
    }

    #[test]
    fn authorizer_faults_strike_authorizer_calls_only() {
        let mut i = with(Faults {
            authorizer_lost: Trigger::count(1),
            refresh_used_elsewhere: Trigger::count(1),
            authorizer_latency_ms: 40,
            ..Faults::default()
        });
        let kinds: Vec<_> = (0..3).map(|_| i.authorizer().map(|s| s.kind)).collect();
        assert_eq!(kinds, [Some(FaultKind::AuthorizerLost), Some(FaultKind::RefreshUsedElsewhere), None]);
        assert_eq!(i.authorizer_latency(), Some(Duration::from_millis(40)));
        assert_eq!((i.envelope(), i.latency()), (None, None), "datacube requests are left alone");
        // Drawing authorizer faults by rate leaves the datacube draws as they were.
        let faults =
            Faults { busy: Trigger::rate(0.5), authorizer_busy: Trigger::rate(0.5), seed: 4, ..Faults::default() };
        let (mut alone, mut mixed) =
            (with(Faults { authorizer_busy: Trigger::default(), ..faults.clone() }), with(faults));
        for _ in 0..200 {
            mixed.authorizer();
            assert_eq!(alone.envelope(), mixed.envelope());
        }
        assert_eq!(with(Faults::default()).authorizer(), None);
    }

    #[test]
    fn latency_with_jitter() {
        let mut i = with(Faults { latency_ms: 100, latency_jitter_ms: 50, ..Faults::default() });
        let delays: Vec<u128> = (0..200).map(|_| i.latency().unwrap().as_millis()).collect();
        assert!(delays.iter().all(|d| (100..=150).contains(d)));
        assert!(delays.iter().any(|&d| d != delays[0]), "jitter varies");
    }
}
