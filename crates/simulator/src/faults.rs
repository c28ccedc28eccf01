//! Fault injection: what the simulator can do wrong on purpose, as plain data.
//!
//! A client of the real service meets every one of these sooner or later; the simulator makes
//! each reproducible so that a test can prove the client survives it. [`Faults`] comes from the
//! flags of `wxcube simulate`, from [`super::SimConfig::faults`], and at run time from
//! `POST /_sim/faults` (read back with `GET /_sim/faults`) or
//! [`super::RunningSimulator::set_faults`]. Replacing it starts afresh: counts, quotas, token
//! usage and the random stream all restart from the new values.
//!
//! Triggered faults ([`FaultKind`], each with a [`Trigger`]: a rate, or "the next N") strike
//! datacube requests that would otherwise be answered with a list, or `api_authorizer_token`
//! calls (below). A datacube request gets at most one *envelope* fault, which replaces the
//! whole answer:
//! - `busy` — errcode -1 "system error", the real service's "try again later". Like the real
//!   one it sometimes sends the errcode as a string (`"-1"`) or no `errmsg` at all;
//! - `http_5xx` — HTTP 502 or 503 with nginx's HTML error page, as when the gateway in front of
//!   the API loses its upstream;
//! - `bad_json` — HTTP 200 whose body is a valid answer cut short, or not JSON at all;
//! - `drop` — the connection closes halfway through the body, as when a proxy or the network
//!   gives up;
//! - `huge` — HTTP 200 with a list over 8 MiB (the real rows, repeated): a client must bound
//!   what it reads;
//! - `deep` — HTTP 200 with JSON nested ten thousand levels deep: a client must not overflow
//!   its stack;
//! - `absurd` — HTTP 200 with a list whose count cannot be an integer of any width
//!   (`123456789012345678901234567890`, `1e400`, or such a number as a string).
//!
//! A list that escaped those may then get any of the *data* faults, each drawn on its own:
//! - `out_of_window` — an extra row dated years before the requested window, as the real API
//!   has been seen to send;
//! - `unknown_code` — an extra row with `msg_type` 99 (or `count_interval` 9), dated inside the
//!   window and otherwise valid: codes the documentation does not list do appear;
//! - `negative_count` — one row's `msg_user` is negative;
//! - `non_integer_count` — one row's `msg_count` (`msg_user` in distribution tables) is `2.5`
//!   or `"many"`.
//!
//! Faults of `POST /cgi-bin/component/api_authorizer_token`, where a client exchanges an
//! account's refresh token — which WeChat rotates at every use — for an access token. A call
//! gets at most one of them, drawn like envelope faults but from a stream of their own:
//! - `authorizer_lost` — the call is served (a successful one rotates the refresh token), then
//!   the connection is cut halfway through the answer: the client never learns the new refresh
//!   token, and the one it holds is dead;
//! - `authorizer_busy` — errcode -1 "system error" before anything is checked: nothing rotated;
//! - `refresh_used_elsewhere` — another client of the platform (a second process sharing the
//!   account's refresh token) exchanges it first, so the call's refresh token is already
//!   rotated away and answered 61023. [`super::RunningSimulator::authorizer_refresh_token`]
//!   shows the other client's new one. `authorizer_latency_ms` delays every answer of that
//!   endpoint, after the other client's exchange and before the call's own.
//!
//! Stateful limits answer with the real error codes, checked right after the token:
//! `token_expires_after` (42001 once a token has served N calls), `token_overlap_secs` (40001
//! "not latest" once a newer token exists), `unauthorized` (48001), `daily_quota` (45009) and
//! `per_minute_limit` (45011). `latency_ms` delays every datacube answer, and
//! `max_span_days` narrows the span an endpoint accepts (61501 beyond it), as newer
//! documentation pages claim for three tables.
//!
//! Every fault that strikes is counted by name in [`super::SimStats::faults`] and listed on the
//! request in [`super::SimStats::recent`], so a test can assert it really happened.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The faults to inject. The default injects none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub busy: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub http_5xx: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub bad_json: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub drop: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub huge: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub deep: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub absurd: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub out_of_window: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub unknown_code: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub negative_count: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub non_integer_count: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub authorizer_lost: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub authorizer_busy: Trigger,
    #[serde(skip_serializing_if = "Trigger::is_off")]
    pub refresh_used_elsewhere: Trigger,
    /// Added before answering each `api_authorizer_token` call, in milliseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub authorizer_latency_ms: u64,
    /// Added before answering each datacube request, in milliseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub latency_ms: u64,
    /// Up to this many more milliseconds, drawn per request.
    #[serde(skip_serializing_if = "is_zero")]
    pub latency_jitter_ms: u64,
    /// Each access token answers 42001 "access_token expired" once it has served this many
    /// datacube calls; `stable_token` then hands out a fresh one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_expires_after: Option<u64>,
    /// When set, an account has one current token for all its token endpoints (stable,
    /// classic, authorizer), and issuing a newer one (`/cgi-bin/token`,
    /// `api_authorizer_token`, or `stable_token` with `force_refresh`) makes every older one
    /// answer 40001 "not latest" after this many seconds (0: at once). Unset, the endpoints'
    /// tokens are independent, as the official documentation says, and a classic or
    /// authorizer token outlives its successor by [`super::SimConfig::token_overlap`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_overlap_secs: Option<u64>,
    /// Datacube calls allowed per account and endpoint per (simulated, Beijing) day; further
    /// calls answer 45009.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_quota: Option<u64>,
    /// Datacube calls allowed per account within one wall-clock minute (UTC, the machine's
    /// clock even when the simulated date is pinned); further calls answer 45011.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_minute_limit: Option<u64>,
    /// Appids whose datacube calls answer 48001 "api unauthorized".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unauthorized: Vec<String>,
    /// Per family (`message`, `user`, `article`, `interface`), appids whose calls to that
    /// family's endpoints answer 48001: a third-party platform not granted its permission set.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unauthorized_families: BTreeMap<String, Vec<String>>,
    /// Span enforced per table (by table or endpoint name), on top of
    /// [`super::SimConfig::max_span_days`]; wider windows answer 61501.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub max_span_days: BTreeMap<String, u32>,
    /// Seeds the draws of rates and jitter: the same faults and the same sequence of requests
    /// give the same answers.
    #[serde(skip_serializing_if = "is_zero")]
    pub seed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// When a triggered fault strikes: the next `count` eligible requests, then each with
/// probability `rate`. `count` goes down as it is used ([`super::RunningSimulator::faults`]
/// shows what is left).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Trigger {
    /// Probability per eligible request, from 0 to 1.
    #[serde(skip_serializing_if = "is_zero_rate")]
    pub rate: f64,
    /// The next this-many eligible requests get the fault, before any rate applies.
    #[serde(skip_serializing_if = "is_zero")]
    pub count: u64,
}

fn is_zero_rate(r: &f64) -> bool {
    *r == 0.0
}

impl Trigger {
    /// Strikes each eligible request with probability `rate`.
    pub fn rate(rate: f64) -> Self {
        Self { rate, count: 0 }
    }

    /// Strikes the next `count` eligible requests.
    pub fn count(count: u64) -> Self {
        Self { rate: 0.0, count }
    }

    /// Strikes every eligible request.
    pub fn always() -> Self {
        Self::rate(1.0)
    }

    pub fn is_off(&self) -> bool {
        self.rate == 0.0 && self.count == 0
    }
}

/// The triggered faults, by the name used in JSON, flags and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Busy,
    Http5xx,
    BadJson,
    Drop,
    Huge,
    Deep,
    Absurd,
    OutOfWindow,
    UnknownCode,
    NegativeCount,
    NonIntegerCount,
    AuthorizerLost,
    AuthorizerBusy,
    RefreshUsedElsewhere,
}

impl FaultKind {
    /// Faults that replace the whole answer; a request gets at most one of them.
    pub const ENVELOPE: [FaultKind; 7] = [
        FaultKind::Busy,
        FaultKind::Http5xx,
        FaultKind::BadJson,
        FaultKind::Drop,
        FaultKind::Huge,
        FaultKind::Deep,
        FaultKind::Absurd,
    ];
    /// Faults that alter the rows of a list; each is drawn on its own.
    pub const DATA: [FaultKind; 4] =
        [FaultKind::OutOfWindow, FaultKind::UnknownCode, FaultKind::NegativeCount, FaultKind::NonIntegerCount];
    /// Faults of `api_authorizer_token` calls; a call gets at most one of them.
    pub const AUTHORIZER: [FaultKind; 3] =
        [FaultKind::AuthorizerLost, FaultKind::AuthorizerBusy, FaultKind::RefreshUsedElsewhere];

    pub fn all() -> impl Iterator<Item = FaultKind> {
        Self::datacube().chain(Self::AUTHORIZER)
    }

    /// The faults of datacube requests.
    pub fn datacube() -> impl Iterator<Item = FaultKind> {
        Self::ENVELOPE.into_iter().chain(Self::DATA)
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Busy => "busy",
            FaultKind::Http5xx => "http_5xx",
            FaultKind::BadJson => "bad_json",
            FaultKind::Drop => "drop",
            FaultKind::Huge => "huge",
            FaultKind::Deep => "deep",
            FaultKind::Absurd => "absurd",
            FaultKind::OutOfWindow => "out_of_window",
            FaultKind::UnknownCode => "unknown_code",
            FaultKind::NegativeCount => "negative_count",
            FaultKind::NonIntegerCount => "non_integer_count",
            FaultKind::AuthorizerLost => "authorizer_lost",
            FaultKind::AuthorizerBusy => "authorizer_busy",
            FaultKind::RefreshUsedElsewhere => "refresh_used_elsewhere",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::all().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::all().map(FaultKind::name).collect();
            format!("'{s}' is not a fault: use one of {}", names.join(", "))
        })
    }
}

impl Faults {
    pub fn trigger(&self, kind: FaultKind) -> &Trigger {
        match kind {
            FaultKind::Busy => &self.busy,
            FaultKind::Http5xx => &self.http_5xx,
            FaultKind::BadJson => &self.bad_json,
            FaultKind::Drop => &self.drop,
            FaultKind::Huge => &self.huge,
            FaultKind::Deep => &self.deep,
            FaultKind::Absurd => &self.absurd,
            FaultKind::OutOfWindow => &self.out_of_window,
            FaultKind::UnknownCode => &self.unknown_code,
            FaultKind::NegativeCount => &self.negative_count,
            FaultKind::NonIntegerCount => &self.non_integer_count,
            FaultKind::AuthorizerLost => &self.authorizer_lost,
            FaultKind::AuthorizerBusy => &self.authorizer_busy,
            FaultKind::RefreshUsedElsewhere => &self.refresh_used_elsewhere,
        }
    }

    pub fn trigger_mut(&mut self, kind: FaultKind) -> &mut Trigger {
        match kind {
            FaultKind::Busy => &mut self.busy,
            FaultKind::Http5xx => &mut self.http_5xx,
            FaultKind::BadJson => &mut self.bad_json,
            FaultKind::Drop => &mut self.drop,
            FaultKind::Huge => &mut self.huge,
            FaultKind::Deep => &mut self.deep,
            FaultKind::Absurd => &mut self.absurd,
            FaultKind::OutOfWindow => &mut self.out_of_window,
            FaultKind::UnknownCode => &mut self.unknown_code,
            FaultKind::NegativeCount => &mut self.negative_count,
            FaultKind::NonIntegerCount => &mut self.non_integer_count,
            FaultKind::AuthorizerLost => &mut self.authorizer_lost,
            FaultKind::AuthorizerBusy => &mut self.authorizer_busy,
            FaultKind::RefreshUsedElsewhere => &mut self.refresh_used_elsewhere,
        }
    }

    /// Checks the values and spells table names as the registry does (`getupstreammsgweek` →
    /// `upstream_msg_week`), so that the same span is not set twice under two names.
    pub fn validated(mut self) -> Result<Faults, InvalidFaults> {
        for kind in FaultKind::all() {
            let rate = self.trigger(kind).rate;
            if !(0.0..=1.0).contains(&rate) {
                return Err(InvalidFaults(format!(
                    "{kind} rate {rate} is not a probability: use a number from 0 to 1 (or a count for the next N requests)"
                )));
            }
        }
        for group in [&FaultKind::ENVELOPE[..], &FaultKind::AUTHORIZER[..]] {
            let sum: f64 = group.iter().map(|&k| self.trigger(k).rate).sum();
            if sum > 1.0 + 1e-9 {
                let names: Vec<&str> = group.iter().map(|k| k.name()).collect();
                return Err(InvalidFaults(format!(
                    "the rates of {} add up to {sum}: a request gets at most one of them, so they must add up to at most 1",
                    names.join(", ")
                )));
            }
        }
        if self.unauthorized.iter().any(|a| a.trim().is_empty()) {
            return Err(InvalidFaults(
                "an unauthorized appid is empty: name the account, e.g. wxdemo000000000002".into(),
            ));
        }
        for family in self.unauthorized_families.keys() {
            if !wxcube_registry::Family::ALL.iter().any(|f| f.name() == family) {
                return Err(InvalidFaults(format!(
                    "unauthorized_families: unknown family '{family}': use message, user, article or interface"
                )));
            }
        }
        self.max_span_days = canonical_spans(&self.max_span_days)?;
        Ok(self)
    }

    /// Applies one `--fault KIND=…` flag: a rate replaces the rate, a count the count.
    pub fn apply(&mut self, kind: FaultKind, spec: TriggerSpec) {
        let trigger = self.trigger_mut(kind);
        match spec {
            TriggerSpec::Rate(rate) => trigger.rate = rate,
            TriggerSpec::Count(count) => trigger.count = count,
        }
    }
}

/// Spans keyed by registry table name, each at least a day.
pub(crate) fn canonical_spans(spans: &BTreeMap<String, u32>) -> Result<BTreeMap<String, u32>, InvalidFaults> {
    let mut out = BTreeMap::new();
    for (name, &days) in spans {
        let table = wxcube_registry::find(name).ok_or_else(|| {
            InvalidFaults(format!("max span for '{name}', which is not a table: see `wxcube tables`"))
        })?;
        if days == 0 {
            return Err(InvalidFaults(format!("max span for '{name}' is 0: a window has at least 1 day")));
        }
        if out.insert(table.name.clone(), days).is_some_and(|before| before != days) {
            return Err(InvalidFaults(format!("max span for '{}' is given twice, with different values", table.name)));
        }
    }
    Ok(out)
}

/// Why a [`Faults`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid faults: {0}")]
pub struct InvalidFaults(pub String);

/// The value of `--fault KIND=…`: `0.2` (a rate) or `x3` (the next 3 requests).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TriggerSpec {
    Rate(f64),
    Count(u64),
}

/// Parses `KIND=RATE` or `KIND=xN`.
pub fn parse_fault_flag(s: &str) -> Result<(FaultKind, TriggerSpec), String> {
    let (kind, value) =
        s.split_once('=').ok_or_else(|| format!("'{s}' is not KIND=RATE or KIND=xN, e.g. busy=0.2 or busy=x3"))?;
    let kind: FaultKind = kind.trim().parse()?;
    let value = value.trim();
    if let Some(count) = value.strip_prefix('x') {
        let count =
            count.parse().map_err(|_| format!("'{value}' is not a count: write {kind}=x3 for the next 3 requests"))?;
        return Ok((kind, TriggerSpec::Count(count)));
    }
    match value.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok((kind, TriggerSpec::Rate(rate))),
        _ => Err(format!(
            "'{value}' is not a rate from 0 to 1: write {kind}=0.2 for one request in five, or {kind}=x3 for the next 3"
        )),
    }
}

/// Parses `--faults-json`: a whole [`Faults`] object, as `GET /_sim/faults` shows it.
pub fn parse_faults_json(s: &str) -> Result<Faults, String> {
    let faults: Faults =
        serde_json::from_str(s).map_err(|e| format!("not a faults object ({e}): see GET /_sim/faults"))?;
    faults.validated().map_err(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_no_fault_and_serialises_empty() {
        assert_eq!(serde_json::to_string(&Faults::default()).unwrap(), "{}");
        assert_eq!(serde_json::from_str::<Faults>("{}").unwrap(), Faults::default());
        assert!(FaultKind::all().all(|k| Faults::default().trigger(k).is_off()));
    }

    #[test]
    fn round_trips_through_json() {
        let faults = Faults {
            busy: Trigger::rate(0.25),
            drop: Trigger::count(2),
            latency_ms: 5,
            token_expires_after: Some(3),
            token_overlap_secs: Some(0),
            unauthorized: vec!["wxdemo000000000002".into()],
            max_span_days: BTreeMap::from([("upstream_msg_week".into(), 1)]),
            seed: 9,
            authorizer_lost: Trigger::count(1),
            authorizer_latency_ms: 500,
            ..Faults::default()
        };
        let json = serde_json::to_value(&faults).unwrap();
        assert_eq!(json["busy"], serde_json::json!({"rate": 0.25}));
        assert_eq!(json["drop"], serde_json::json!({"count": 2}));
        assert_eq!(serde_json::from_value::<Faults>(json).unwrap(), faults);
    }

    #[test]
    fn every_kind_has_its_own_trigger() {
        let mut faults = Faults::default();
        for (i, kind) in FaultKind::all().enumerate() {
            faults.trigger_mut(kind).count = i as u64 + 1;
            assert_eq!(kind.name().parse::<FaultKind>().unwrap(), kind);
        }
        let counts: Vec<u64> = FaultKind::all().map(|k| faults.trigger(k).count).collect();
        assert_eq!(counts, (1..=14).collect::<Vec<_>>());
        let json = serde_json::to_value(&faults).unwrap();
        assert!(FaultKind::all().all(|k| json[k.name()]["count"].is_u64()), "{json}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        for bad in [r#"{"bsy":{"rate":1}}"#, r#"{"busy":{"rate":1,"often":true}}"#, r#"{"busy":0.5}"#] {
            assert!(serde_json::from_str::<Faults>(bad).is_err(), "{bad}");
        }
        let refused = |faults: Faults| faults.validated().unwrap_err().0;
        assert!(refused(Faults { busy: Trigger::rate(1.5), ..Faults::default() }).contains("busy rate 1.5"));
        assert!(refused(Faults { deep: Trigger::rate(f64::NAN), ..Faults::default() }).contains("deep rate"));
        let crowded = Faults { busy: Trigger::rate(0.6), http_5xx: Trigger::rate(0.6), ..Faults::default() };
        assert!(refused(crowded).contains("add up to"));
        let crowded =
            Faults { authorizer_lost: Trigger::rate(0.6), authorizer_busy: Trigger::rate(0.6), ..Faults::default() };
        assert!(refused(crowded).contains("authorizer_lost, authorizer_busy, refresh_used_elsewhere add up to 1.2"));
        // A datacube request and an authorizer call are different requests: their rates need not share.
        let apart = Faults { busy: Trigger::always(), authorizer_busy: Trigger::always(), ..Faults::default() };
        assert!(apart.validated().is_ok());
        // Data faults are drawn on their own: their rates need not share.
        let data = Faults { out_of_window: Trigger::always(), unknown_code: Trigger::always(), ..Faults::default() };
        assert!(data.validated().is_ok());
        assert!(refused(Faults { unauthorized: vec![" ".into()], ..Faults::default() }).contains("empty"));
        let span =
            |name: &str, days| Faults { max_span_days: BTreeMap::from([(name.into(), days)]), ..Faults::default() };
        assert!(refused(span("nope", 1)).contains("not a table"));
        assert!(refused(span("upstream_msg", 0)).contains("at least 1 day"));
        let twice = BTreeMap::from([("getupstreammsgweek".into(), 1), ("upstream_msg_week".into(), 2)]);
        assert!(refused(Faults { max_span_days: twice, ..Faults::default() }).contains("twice"));
    }

    #[test]
    fn spans_are_keyed_by_table_name() {
        let faults = Faults { max_span_days: BTreeMap::from([("getupstreammsgweek".into(), 1)]), ..Faults::default() };
        assert_eq!(faults.validated().unwrap().max_span_days, BTreeMap::from([("upstream_msg_week".into(), 1)]));
    }

    #[test]
    fn fault_flags() {
        assert_eq!(parse_fault_flag("busy=0.2").unwrap(), (FaultKind::Busy, TriggerSpec::Rate(0.2)));
        assert_eq!(parse_fault_flag("http_5xx=x3").unwrap(), (FaultKind::Http5xx, TriggerSpec::Count(3)));
        assert_eq!(parse_fault_flag("drop=1").unwrap(), (FaultKind::Drop, TriggerSpec::Rate(1.0)));
        for (bad, hint) in [
            ("busy", "KIND=RATE"),
            ("bussy=0.2", "not a fault: use one of busy, http_5xx"),
            ("busy=2", "busy=x3"),
            ("busy=-0.1", "from 0 to 1"),
            ("busy=NaN", "from 0 to 1"),
            ("busy=x", "not a count"),
            ("busy=x-1", "not a count"),
            ("busy=20%", "from 0 to 1"),
        ] {
            let e = parse_fault_flag(bad).unwrap_err();
            assert!(e.contains(hint) && !e.contains('\n'), "{bad}: {e}");
        }
        let mut faults = Faults::default();
        faults.apply(FaultKind::Busy, TriggerSpec::Rate(0.1));
        faults.apply(FaultKind::Busy, TriggerSpec::Count(2));
        assert_eq!(faults.busy, Trigger { rate: 0.1, count: 2 });
    }

    #[test]
    fn faults_json_flag() {
        let f = parse_faults_json(r#"{"busy":{"count":2},"max_span_days":{"getupstreammsg":3}}"#).unwrap();
        assert_eq!((f.busy.count, f.max_span_days["upstream_msg"]), (2, 3));
        assert!(parse_faults_json(r#"{"busy":{"rate":2}}"#).unwrap_err().contains("not a probability"));
        assert!(parse_faults_json(r#"{"nope":1}"#).unwrap_err().contains("unknown field `nope`"));
        assert!(!parse_faults_json("{").unwrap_err().contains('\n'));
    }
}
