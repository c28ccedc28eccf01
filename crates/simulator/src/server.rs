//! The simulator's HTTP side: routes, shared state, and the handle that runs it.
//!
//! Answers like `https://api.weixin.qq.com` does, down to the details a client trips over:
//! errors are HTTP 200 with `{"errcode", "errmsg"}` and a `rid:` suffix, checks happen in the
//! real service's order (token, then body, then dates), the body's content type is
//! `application/json; encoding=utf-8`, and rows carry the undocumented `user_source`.
//!
//! Routes:
//! - `POST /cgi-bin/stable_token`, `GET /cgi-bin/token` — access tokens (see [`super::tokens`]);
//! - `POST /cgi-bin/component/api_component_token` and
//!   `POST /cgi-bin/component/api_authorizer_token?component_access_token=…` — a third-party
//!   platform's token and the authorizer tokens it gets for accounts (see [`super::platform`]);
//! - `POST /datacube/{endpoint}?access_token=…` — any endpoint of the registry;
//! - `POST /cgi-bin/openapi/quota/get?access_token=…` — an account's daily quota of a datacube
//!   endpoint, `{"cgi_path":"/datacube/getupstreammsg"}`: `daily_limit` is the `daily_quota`
//!   fault or [`super::inject::DEFAULT_DAILY_LIMIT`], `used` the calls the account made to it
//!   on the simulated Beijing day (since the faults were last set) that got past the limits;
//! - `GET|DELETE /_sim/stats` — what was asked (see [`super::stats`]);
//! - `GET|POST /_sim/faults` — the faults to inject (see [`super::faults`]); a POST replaces
//!   them and answers 400 with the reason for unknown keys or bad values.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::accounts::{self, Accounts};
use super::broken;
use super::data::{self, SimRow, SimValue};
use super::faults::{self, Faults, InvalidFaults};
use super::inject::{Injector, Limit};
use super::platform;
use super::stats::{DatacubeRequest, Recorder, SimStats};
use super::tokens::{Issued, TokenCheck, TokenStore};
use crate::calendar::{self, DATA_FLOOR, DaySpan};
use wxcube_registry::{self as registry, Family, Node, Shape, Table};

/// The simulated wall clock, which decides "yesterday" and whether it is published yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The machine's clock.
    #[default]
    System,
    /// A fixed instant: the simulated time never moves.
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// 12:00 Beijing time on `today`: yesterday is published, and nothing is near a boundary.
    pub fn noon_on(today: NaiveDate) -> Self {
        Clock::Fixed(calendar::noon_on(today))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
        }
    }
}

/// How to run a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub addr: SocketAddr,
    /// Demo accounts `1..=accounts` exist (see [`super::accounts`]). Default 3.
    pub accounts: usize,
    pub clock: Clock,
    /// Lifetime of a new access token. Default 2 hours, as the real service.
    pub token_ttl: Duration,
    /// Lifetime of a new component token, when it should differ from `token_ttl`.
    pub component_token_ttl: Option<Duration>,
    /// How long a classic (`/cgi-bin/token`), authorizer or component token keeps working once
    /// a newer one of its kind is issued. Default 5 minutes, as the real service.
    pub token_overlap: Duration,
    /// Longest span enforced per table, by table or endpoint name, instead of the registry's
    /// `max_span_days` (the documentation disagrees with itself on three tables). Faults may
    /// override it at run time ([`Faults::max_span_days`]).
    pub max_span_days: BTreeMap<String, u32>,
    /// The faults to inject from the start; see [`super::faults`].
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            accounts: 3,
            clock: Clock::System,
            token_ttl: Duration::from_secs(7200),
            component_token_ttl: None,
            token_overlap: Duration::from_secs(300),
            max_span_days: BTreeMap::new(),
            faults: Faults::default(),
        }
    }
}

/// Starts simulators; see [`Simulator::start`].
pub struct Simulator;

impl Simulator {
    /// Binds `config.addr` and serves in the background of the current tokio runtime until the
    /// returned handle is shut down or dropped.
    pub async fn start(config: SimConfig) -> io::Result<RunningSimulator> {
        let state = Arc::new(SimState::new(&config)?);
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                })
                .await
        });
        tracing::debug!(%addr, accounts = config.accounts, "simulator listening");
        Ok(RunningSimulator { addr, state, stop: Some(stop), task: Some(task) })
    }
}

/// A simulator serving in the background. Dropping it stops the server (open requests finish).
pub struct RunningSimulator {
    addr: SocketAddr,
    state: Arc<SimState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl RunningSimulator {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API root to give a client, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the simulator was asked so far.
    pub fn stats(&self) -> SimStats {
        lock(&self.state.stats).snapshot()
    }

    pub fn reset_stats(&self) {
        lock(&self.state.stats).reset();
    }

    /// The faults being injected, with the counts still to use.
    pub fn faults(&self) -> Faults {
        lock(&self.state.inject).faults().clone()
    }

    /// Replaces the faults to inject, from the next request on, and starts afresh: counts,
    /// quotas, token usage and random draws restart from the new values.
    pub fn set_faults(&self, faults: Faults) -> Result<(), InvalidFaults> {
        self.state.set_faults(faults).map(drop)
    }

    /// Every token the simulator has issued, oldest first: access tokens of every kind (stable,
    /// classic, authorizer), component tokens, and the authorizer refresh tokens it handed out.
    /// A test can look for them where they must not appear (logs, files, error messages).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.state.tokens).history().to_vec()
    }

    /// Every credential the simulator handed out or accepted: [`Self::issued_tokens`], then
    /// the demo platform's secret and verify ticket, then the secret and first refresh token of
    /// each account that was given a token (by secret or by refresh token), by account. A
    /// superset of `issued_tokens` for leak scans; the static demo credentials of accounts that
    /// never got a token are not listed (see [`super::accounts`] to derive them).
    pub fn issued_secrets(&self) -> Vec<String> {
        let mut secrets = self.issued_tokens();
        secrets.extend([accounts::demo_component_secret(), accounts::demo_verify_ticket()]);
        for &i in lock(&self.state.known_accounts).iter() {
            secrets.extend([accounts::demo_secret(i), accounts::demo_refresh_token(i)]);
        }
        secrets
    }

    /// The authorizer refresh token `appid` must present next to
    /// `/cgi-bin/component/api_authorizer_token`: its first one
    /// ([`super::accounts::demo_refresh_token`]) until that is used, then the latest one handed
    /// out. `None` if `appid` is not a demo account of this simulator.
    pub fn authorizer_refresh_token(&self, appid: &str) -> Option<String> {
        let i = self.state.accounts.index_of(appid)?;
        let tokens = lock(&self.state.tokens);
        Some(tokens.current_refresh(appid).map_or_else(|| accounts::demo_refresh_token(i), str::to_owned))
    }

    /// Stops accepting connections, lets open requests finish, and waits for the server.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A datacube endpoint: its table and the span the simulator enforces.
struct Endpoint {
    table: Arc<Table>,
    max_span_days: u32,
}

pub(super) struct SimState {
    pub(super) accounts: Accounts,
    clock: Clock,
    endpoints: HashMap<String, Endpoint>,
    pub(super) tokens: Mutex<TokenStore>,
    pub(super) stats: Mutex<Recorder>,
    pub(super) inject: Mutex<Injector>,
    /// Accounts that were given a token, for [`RunningSimulator::issued_secrets`].
    pub(super) known_accounts: Mutex<BTreeSet<usize>>,
}

impl SimState {
    fn new(config: &SimConfig) -> io::Result<Self> {
        let invalid = |e: InvalidFaults| io::Error::new(io::ErrorKind::InvalidInput, e);
        let mut endpoints: HashMap<String, Endpoint> = registry::tables()
            .iter()
            .map(|t| (t.endpoint.clone(), Endpoint { table: t.clone(), max_span_days: t.max_span_days }))
            .collect();
        for (name, span) in faults::canonical_spans(&config.max_span_days).map_err(invalid)? {
            let table = registry::find(&name).expect("checked above");
            endpoints.get_mut(&table.endpoint).expect("every table has an endpoint").max_span_days = span;
        }
        Ok(Self {
            accounts: Accounts::new(config.accounts),
            clock: config.clock,
            endpoints,
            tokens: Mutex::new(
                TokenStore::new(config.token_ttl, config.token_overlap)
                    .with_component_ttl(config.component_token_ttl.unwrap_or(config.token_ttl)),
            ),
            stats: Mutex::new(Recorder::default()),
            inject: Mutex::new(Injector::new(config.faults.clone().validated().map_err(invalid)?)),
            known_accounts: Mutex::new(BTreeSet::new()),
        })
    }

    /// Validates and installs `faults`; returns them as installed (table names normalised).
    fn set_faults(&self, faults: Faults) -> Result<Faults, InvalidFaults> {
        let faults = faults.validated()?;
        lock(&self.tokens).reset_uses();
        *lock(&self.inject) = Injector::new(faults.clone());
        Ok(faults)
    }

    /// Remembers that account `appid` was given a token.
    pub(super) fn know(&self, appid: &str) {
        if let Some(i) = self.accounts.index_of(appid) {
            lock(&self.known_accounts).insert(i);
        }
    }
}

/// A poisoned lock only means another request panicked; the counters are still usable.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/cgi-bin/token", get(classic_token))
        .route("/cgi-bin/component/api_component_token", post(platform::component_token))
        .route("/cgi-bin/component/api_authorizer_token", post(platform::authorizer_token))
        .route("/datacube/{endpoint}", post(datacube))
        .route("/cgi-bin/openapi/quota/get", post(quota))
        .route("/_sim/stats", get(get_stats).delete(reset_stats))
        .route("/_sim/faults", get(get_faults).post(set_faults))
        .with_state(state)
}

/// The errors the simulator answers with, and their texts on the real service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ApiError {
    /// -1, the real service's "try again later".
    SystemBusy,
    InvalidCredential,
    InvalidGrantType,
    InvalidAppid,
    InvalidSecret,
    AccessTokenMissing,
    AppidMissing,
    SecretMissing,
    TokenExpired,
    DailyQuota,
    MinuteQuota,
    DataFormat,
    ApiUnauthorized,
    DateFormat,
    DateRange,
    /// The account did not authorise the platform (or is not one the simulator knows).
    ComponentUnauthorized,
    ComponentTicketInvalid,
    /// An account's token presented to a component API.
    ComponentTokenRequired,
    /// A component token presented to an account's API.
    AccountTokenRequired,
    RefreshTokenInvalid,
    CgiPathNotFound,
}

impl From<Limit> for ApiError {
    fn from(limit: Limit) -> Self {
        match limit {
            Limit::Unauthorized => ApiError::ApiUnauthorized,
            Limit::DailyQuota => ApiError::DailyQuota,
            Limit::PerMinute => ApiError::MinuteQuota,
        }
    }
}

impl ApiError {
    pub(super) fn code(self) -> i64 {
        match self {
            ApiError::SystemBusy => -1,
            ApiError::InvalidCredential => 40001,
            ApiError::InvalidGrantType => 40002,
            ApiError::InvalidAppid => 40013,
            ApiError::InvalidSecret => 40125,
            ApiError::AccessTokenMissing => 41001,
            ApiError::AppidMissing => 41002,
            ApiError::SecretMissing => 41004,
            ApiError::TokenExpired => 42001,
            ApiError::DailyQuota => 45009,
            ApiError::MinuteQuota => 45011,
            ApiError::DataFormat => 47001,
            ApiError::ApiUnauthorized => 48001,
            ApiError::DateFormat => 61500,
            ApiError::DateRange => 61501,
            ApiError::ComponentUnauthorized => 61003,
            ApiError::ComponentTicketInvalid => 61006,
            ApiError::ComponentTokenRequired => 61014,
            ApiError::AccountTokenRequired => 61015,
            ApiError::RefreshTokenInvalid => 61023,
            ApiError::CgiPathNotFound => 76021,
        }
    }

    fn message(self) -> &'static str {
        match self {
            ApiError::SystemBusy => "system error",
            ApiError::InvalidCredential => "invalid credential, access_token is invalid or not latest",
            ApiError::InvalidGrantType => "invalid grant_type",
            ApiError::InvalidAppid => "invalid appid",
            ApiError::InvalidSecret => "invalid appsecret",
            ApiError::AccessTokenMissing => "access_token missing",
            ApiError::AppidMissing => "appid missing",
            ApiError::SecretMissing => "appsecret missing",
            ApiError::TokenExpired => "access_token expired",
            ApiError::DailyQuota => "reach max api daily quota limit",
            ApiError::MinuteQuota => "api minute-quota reach limit mustslower retry next minute",
            ApiError::DataFormat => "data format error",
            ApiError::ApiUnauthorized => "api unauthorized",
            ApiError::DateFormat => "date format error",
            ApiError::DateRange => "date range error",
            ApiError::ComponentUnauthorized => "component is not authorized by this account",
            ApiError::ComponentTicketInvalid => "component ticket is invalid",
            ApiError::ComponentTokenRequired => "must use component token for component api",
            ApiError::AccountTokenRequired => "must use biz account token for not component api",
            ApiError::RefreshTokenInvalid => "refresh_token is invalid",
            ApiError::CgiPathNotFound => "cgi_path not found, please check",
        }
    }
}

impl ApiError {
    /// The answer's body: `{"errcode", "errmsg"}` with a request id, as the real service sends.
    pub(super) fn body(self) -> String {
        format!(r#"{{"errcode":{},"errmsg":"{} rid: {}"}}"#, self.code(), self.message(), rid())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.body())
    }
}

/// HTTP 200 with a JSON body, labelled as the real service labels it.
pub(super) fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json; encoding=utf-8")], body).into_response()
}

/// A request id like the real service's: the time in hex, then two random words.
pub(super) fn rid() -> String {
    let secs = Utc::now().timestamp() as u32;
    format!("{secs:08x}-{:08x}-{:08x}", fastrand::u32(..), fastrand::u32(..))
}

fn token_response(issued: &Issued) -> Response {
    json_response(format!(r#"{{"access_token":"{}","expires_in":{}}}"#, issued.token, issued.expires_in))
}

/// Checks credentials in the real service's order; returns the appid.
fn authenticate(
    accounts: &Accounts,
    grant_type: Option<&str>,
    appid: Option<&str>,
    secret: Option<&str>,
) -> Result<String, ApiError> {
    if grant_type != Some("client_credential") {
        return Err(ApiError::InvalidGrantType);
    }
    let appid = appid.filter(|s| !s.is_empty()).ok_or(ApiError::AppidMissing)?;
    let secret = secret.filter(|s| !s.is_empty()).ok_or(ApiError::SecretMissing)?;
    let account = accounts.index_of(appid).ok_or(ApiError::InvalidAppid)?;
    if !accounts.secret_matches(account, secret) {
        return Err(ApiError::InvalidSecret);
    }
    Ok(appid.to_string())
}

/// Logs a token call's outcome: never the secret, nor the token.
pub(super) fn log_token<T>(kind: &str, appid: Option<&str>, outcome: &Result<T, ApiError>) {
    let errcode = outcome.as_ref().err().map_or(0, |e| e.code());
    tracing::debug!(kind, appid = appid.unwrap_or("-"), errcode, "token request");
}

async fn stable_token(State(s): State<Arc<SimState>>, body: Bytes) -> Response {
    lock(&s.stats).stable_token();
    let request: Option<serde_json::Map<String, Value>> = serde_json::from_slice(&body).ok();
    let appid = request.as_ref().and_then(|r| r.get("appid")).and_then(Value::as_str).map(str::to_owned);
    let outcome = request.ok_or(ApiError::DataFormat).and_then(|r| stable_token_answer(&s, &r));
    log_token("stable_token", appid.as_deref(), &outcome);
    outcome.unwrap_or_else(IntoResponse::into_response)
}

fn stable_token_answer(s: &SimState, request: &serde_json::Map<String, Value>) -> Result<Response, ApiError> {
    // An absent (or null) field is "missing"; one of the wrong type makes the body malformed.
    let text = |name: &str| match request.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) => Ok(Some(v.as_str())),
        Some(_) => Err(ApiError::DataFormat),
    };
    let force_refresh = match request.get("force_refresh") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::DataFormat),
    };
    let appid = authenticate(&s.accounts, text("grant_type")?, text("appid")?, text("secret")?)?;
    let rules = lock(&s.inject).token_rules();
    let issued = lock(&s.tokens).stable(&appid, force_refresh, Instant::now(), rules);
    s.know(&appid);
    Ok(token_response(&issued))
}

async fn classic_token(State(s): State<Arc<SimState>>, RawQuery(query): RawQuery) -> Response {
    lock(&s.stats).token();
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let param = |name: &str| params.get(name).map(String::as_str);
    let rules = lock(&s.inject).token_rules();
    let outcome = authenticate(&s.accounts, param("grant_type"), param("appid"), param("secret")).map(|appid| {
        let issued = lock(&s.tokens).classic(&appid, Instant::now(), rules);
        s.know(&appid);
        token_response(&issued)
    });
    log_token("token", param("appid"), &outcome);
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// How a datacube request was answered, before any envelope or data fault.
enum Answer {
    List(Vec<SimRow>, DaySpan),
    Error(ApiError),
}

async fn datacube(
    State(s): State<Arc<SimState>>,
    Path(endpoint): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(ep) = s.endpoints.get(&endpoint) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut seen = DatacubeRequest {
        appid: None,
        endpoint,
        begin: None,
        end: None,
        errcode: 0,
        rows: 0,
        status: 200,
        faults: Vec::new(),
    };
    let latency = lock(&s.inject).latency();
    if let Some(latency) = latency {
        seen.faults.push("latency".into());
        tokio::time::sleep(latency).await;
    }
    let response = match answer_datacube(&s, ep, query.as_deref(), &body, &mut seen) {
        Answer::List(rows, range) => {
            let delayed = ep.table.reports_delay().then(|| data::delayed(range, s.clock.now()));
            list_response(&s, &ep.table, rows, range, delayed, &mut seen)
        }
        Answer::Error(e) => {
            seen.errcode = e.code();
            e.into_response()
        }
    };
    tracing::debug!(
        endpoint = %seen.endpoint,
        appid = seen.appid.as_deref().unwrap_or("-"),
        begin = seen.begin.as_deref().unwrap_or("-"),
        end = seen.end.as_deref().unwrap_or("-"),
        errcode = seen.errcode,
        rows = seen.rows,
        faults = ?seen.faults,
        "datacube request"
    );
    lock(&s.stats).datacube(seen);
    response
}

/// Runs the real service's checks in its order, filling in what was seen along the way.
fn answer_datacube(
    s: &SimState,
    ep: &Endpoint,
    query: Option<&str>,
    body: &[u8],
    seen: &mut DatacubeRequest,
) -> Answer {
    let Some(token) = query_param(query, "access_token") else {
        return Answer::Error(ApiError::AccessTokenMissing);
    };
    let appid = match check_token(s, &token, seen) {
        Ok(appid) => appid,
        Err(e) => return Answer::Error(e),
    };
    seen.appid = Some(appid.clone());
    let now = s.clock.now();
    let minute = Utc::now().timestamp().div_euclid(60);
    if lock(&s.inject).unauthorized_for(&appid, ep.table.family) {
        seen.faults.push("unauthorized_family".into());
        return Answer::Error(Limit::Unauthorized.into());
    }
    let limit = lock(&s.inject).limit(&appid, &ep.table.endpoint, calendar::beijing_day(now), minute);
    if let Some(limit) = limit {
        seen.faults.push(limit.name().into());
        return Answer::Error(limit.into());
    }
    let request: Option<serde_json::Map<String, Value>> = serde_json::from_slice(body).ok();
    let date = |name: &str| request.as_ref().and_then(|r| r.get(name)).and_then(Value::as_str).map(str::to_owned);
    (seen.begin, seen.end) = (date("begin_date"), date("end_date"));
    let (Some(begin), Some(end)) = (&seen.begin, &seen.end) else {
        return Answer::Error(ApiError::DataFormat);
    };
    let (Ok(begin), Ok(end)) = (calendar::parse_day(begin), calendar::parse_day(end)) else {
        return Answer::Error(ApiError::DateFormat);
    };
    let span = lock(&s.inject).max_span(&ep.table.name).unwrap_or(ep.max_span_days);
    match check_range(begin, end, span, now, ep.table.floor) {
        Some(range) => Answer::List(data::window_rows(&ep.table, &appid, range, now), range),
        None => {
            if check_range(begin, end, ep.table.max_span_days, now, ep.table.floor).is_some() {
                seen.faults.push("max_span".into());
            }
            Answer::Error(ApiError::DateRange)
        }
    }
}

/// A non-empty query parameter.
pub(super) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// The account of a token presented to a datacube endpoint, counting the call against it.
fn check_token(s: &SimState, token: &str, seen: &mut DatacubeRequest) -> Result<String, ApiError> {
    let rules = lock(&s.inject).token_rules();
    let check = lock(&s.tokens).use_token(token, Instant::now(), rules);
    account_of(check).map_err(|(e, fault)| {
        seen.faults.extend(fault.map(str::to_owned));
        e
    })
}

/// The account a token check found, or the error to answer with and the fault that caused it,
/// if one did. A component token is refused with 61015, as the real service does when a
/// platform calls an account's API with its own token instead of the authorizer's.
fn account_of(check: TokenCheck) -> Result<String, (ApiError, Option<&'static str>)> {
    match check {
        TokenCheck::Valid(appid) => Ok(appid),
        TokenCheck::Invalid => Err((ApiError::InvalidCredential, None)),
        TokenCheck::NotLatest => Err((ApiError::InvalidCredential, Some("token_not_latest"))),
        TokenCheck::Expired => Err((ApiError::TokenExpired, None)),
        TokenCheck::UsedUp => Err((ApiError::TokenExpired, Some("token_expired"))),
        TokenCheck::WrongHolder => Err((ApiError::AccountTokenRequired, None)),
    }
}

/// `/cgi-bin/openapi/quota/get`. Token checks as for datacube (without counting a use), then
/// the body. Only the simulated datacube endpoints have a quota here: any other `cgi_path` is
/// answered 76021, the real code for a path the service does not know.
async fn quota(State(s): State<Arc<SimState>>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    lock(&s.stats).quota();
    let outcome = quota_answer(&s, query.as_deref(), &body);
    let errcode = outcome.as_ref().err().map_or(0, |e| e.code());
    tracing::debug!(errcode, "quota request");
    outcome.unwrap_or_else(IntoResponse::into_response)
}

fn quota_answer(s: &SimState, query: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
    let token = query_param(query, "access_token").ok_or(ApiError::AccessTokenMissing)?;
    let rules = lock(&s.inject).token_rules();
    let appid = account_of(lock(&s.tokens).peek_token(&token, Instant::now(), rules)).map_err(|(e, _)| e)?;
    let request: serde_json::Map<String, Value> = serde_json::from_slice(body).map_err(|_| ApiError::DataFormat)?;
    let Some(Value::String(cgi_path)) = request.get("cgi_path") else {
        return Err(ApiError::DataFormat);
    };
    let endpoint = cgi_path
        .strip_prefix("/datacube/")
        .and_then(|name| s.endpoints.get(name))
        .map(|ep| ep.table.endpoint.as_str())
        .ok_or(ApiError::CgiPathNotFound)?;
    let today = calendar::beijing_day(s.clock.now());
    let (limit, used) = {
        let inject = lock(&s.inject);
        (inject.daily_limit(), inject.daily_used(&appid, endpoint, today))
    };
    // By hand, to keep the real service's field order.
    let remain = limit.saturating_sub(used);
    Ok(json_response(format!(
        r#"{{"errcode":0,"errmsg":"ok","quota":{{"daily_limit":{limit},"used":{used},"remain":{remain}}}}}"#
    )))
}

/// The answer for `rows`: the list itself, unless an envelope fault replaces it or data faults
/// alter it.
fn list_response(
    s: &SimState,
    table: &Table,
    rows: Vec<SimRow>,
    range: DaySpan,
    delayed: Option<bool>,
    seen: &mut DatacubeRequest,
) -> Response {
    let (envelope, data) = {
        let mut inject = lock(&s.inject);
        match inject.envelope() {
            Some(strike) => (Some(strike), Vec::new()),
            None => (None, inject.data()),
        }
    };
    if let Some(strike) = envelope {
        let response = broken::envelope(strike, table, &rows, range, delayed);
        seen.faults.push(strike.kind.name().into());
        (seen.errcode, seen.status) = (-1, response.status().as_u16());
        return response;
    }
    if data.is_empty() {
        seen.rows = rows.len();
        return json_response(list_json(table, &rows, delayed));
    }
    seen.faults.extend(data.iter().map(|strike| strike.kind.name().to_string()));
    let (body, rows) = broken::altered_list(&data, table, rows, range, delayed);
    seen.rows = rows;
    json_response(body)
}

/// The range, if the service accepts it: not inverted, not before the table's data floor, not
/// after yesterday in Beijing (yesterday itself is accepted even before it is published), and
/// at most `max_span_days` days, both ends counted.
fn check_range(
    begin: NaiveDate,
    end: NaiveDate,
    max_span_days: u32,
    now: DateTime<Utc>,
    floor: NaiveDate,
) -> Option<DaySpan> {
    let yesterday = calendar::beijing_day(now) - Days::new(1);
    let range = DaySpan::new(begin, end)?;
    (begin >= floor.max(DATA_FLOOR) && end <= yesterday && range.count() <= max_span_days).then_some(range)
}

/// A row as [`list_json`] writes it: its date and the table's API fields, in order.
pub(super) trait ListRow {
    fn ref_date(&self) -> NaiveDate;
    /// Appends API field `i`'s JSON text to `out`; false (and nothing appended) when the row
    /// leaves the field out.
    fn write_value(&self, i: usize, out: &mut String) -> bool;
}

impl ListRow for SimRow {
    fn ref_date(&self) -> NaiveDate {
        self.ref_date
    }

    fn write_value(&self, i: usize, out: &mut String) -> bool {
        match &self.fields[i] {
            SimValue::Absent => return false,
            SimValue::Int(v) => {
                let _ = write!(out, "{v}");
            }
            other => {
                let _ = write!(out, "{other}");
            }
        }
        true
    }
}

impl<R: ListRow> ListRow for &R {
    fn ref_date(&self) -> NaiveDate {
        (*self).ref_date()
    }

    fn write_value(&self, i: usize, out: &mut String) -> bool {
        (*self).write_value(i, out)
    }
}

/// `{"list":[…]}` with each row's fields where the registry's shape puts them, in its order
/// (a message table's rows then get `user_source`, as the real service sends it), and the
/// 2025 article family's `is_delay` when `delayed` says. Written by hand: it is the hot path
/// of benchmarks.
pub(super) fn list_json<R: ListRow>(table: &Table, rows: &[R], delayed: Option<bool>) -> String {
    let extra = if table.family == Family::Message && table.field_index("user_source").is_none() {
        r#","user_source":0"#
    } else {
        ""
    };
    let nested = table.shape.keys.iter().any(|(_, n)| !matches!(n, Node::Field(_)));
    let mut out = String::with_capacity(16 + rows.len() * (32 + 16 * table.api_fields.len()));
    out.push_str(r#"{"list":["#);
    if nested {
        // Consecutive rows with the same enclosing object (an article and its days) are one.
        let heads: Vec<Vec<String>> =
            rows.iter().map(|row| object_parts(&table.shape, std::slice::from_ref(row), false)).collect();
        let mut start = 0;
        while start < rows.len() {
            let end = (start..rows.len()).find(|&k| heads[k] != heads[start]).unwrap_or(rows.len());
            if start > 0 {
                out.push(',');
            }
            let _ = write!(out, r#"{{"ref_date":"{}""#, rows[start].ref_date());
            for part in object_parts(&table.shape, &rows[start..end], true) {
                out.push(',');
                out.push_str(&part);
            }
            out.push('}');
            start = end;
        }
    } else {
        let keys: Vec<(String, usize)> = table
            .shape
            .keys
            .iter()
            .filter_map(|(k, n)| match n {
                Node::Field(i) => Some((Value::from(k.as_str()).to_string(), *i)),
                _ => None,
            })
            .collect();
        for (n, row) in rows.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let _ = write!(out, r#"{{"ref_date":"{}""#, row.ref_date());
            for (key, i) in &keys {
                let mark = out.len();
                let _ = write!(out, ",{key}:");
                if !row.write_value(*i, &mut out) {
                    out.truncate(mark);
                }
            }
            out.push_str(extra);
            out.push('}');
        }
    }
    out.push(']');
    if let Some(delayed) = delayed {
        let _ = write!(out, r#","is_delay":{delayed}"#);
    }
    out.push('}');
    out
}

/// The `"key":value` texts of `shape` for `rows`, which share every value outside the rows
/// array: those are taken from the first. `with_rows`: include the rows array, one object per
/// row. Fields a row leaves out are left out.
fn object_parts<R: ListRow>(shape: &Shape, rows: &[R], with_rows: bool) -> Vec<String> {
    let mut parts = Vec::with_capacity(shape.keys.len());
    for (key, node) in &shape.keys {
        let key = Value::from(key.as_str()).to_string();
        match node {
            Node::Field(i) => {
                let mut value = String::new();
                if rows[0].write_value(*i, &mut value) {
                    parts.push(format!("{key}:{value}"));
                }
            }
            Node::Object(inner) => {
                parts.push(format!("{key}:{{{}}}", object_parts(inner, &rows[..1], false).join(",")))
            }
            Node::Rows(inner) if with_rows => {
                let elements: Vec<String> = rows
                    .iter()
                    .map(|row| format!("{{{}}}", object_parts(inner, std::slice::from_ref(row), false).join(",")))
                    .collect();
                parts.push(format!("{key}:[{}]", elements.join(",")));
            }
            Node::Rows(_) => {}
        }
    }
    parts
}

async fn get_stats(State(s): State<Arc<SimState>>) -> Response {
    axum::Json(lock(&s.stats).snapshot()).into_response()
}

async fn reset_stats(State(s): State<Arc<SimState>>) -> StatusCode {
    lock(&s.stats).reset();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(s): State<Arc<SimState>>) -> Response {
    axum::Json(lock(&s.inject).faults().clone()).into_response()
}

/// Replaces the faults; answers them as installed, or 400 with the reason.
async fn set_faults(State(s): State<Arc<SimState>>, body: Bytes) -> Response {
    let installed = serde_json::from_slice::<Faults>(&body)
        .map_err(|e| InvalidFaults(e.to_string()))
        .and_then(|faults| s.set_faults(faults));
    match installed {
        Ok(faults) => axum::Json(faults).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::accounts::{demo_appid, demo_refresh_token, demo_secret};
    use crate::testing::{Client, assert_error, config, d};

    #[tokio::test]
    async fn stable_token_is_reused_until_forced() {
        let c = Client::start(config()).await;
        let first = c.stable_token(1, false).await;
        let token = first["access_token"].as_str().unwrap();
        assert_eq!(token.len(), 136);
        assert_eq!(first["expires_in"], 7200);
        assert!(first.get("errcode").is_none());
        assert_eq!(c.stable_token(1, false).await["access_token"], token);
        let forced = c.stable_token(1, true).await;
        assert_ne!(forced["access_token"], token);
        let old = c.datacube("getupstreammsg", token, "2024-03-11", "2024-03-11").await;
        assert_error(&old, 40001, "invalid credential, access_token is invalid or not latest");
        let new = forced["access_token"].as_str().unwrap();
        assert!(c.datacube("getupstreammsg", new, "2024-03-11", "2024-03-11").await["list"].is_array());
    }

    #[tokio::test]
    async fn token_errors() {
        let c = &Client::start(config()).await;
        let stable = |body: Value| c.post("/cgi-bin/stable_token", body.to_string());
        let good = json!({"grant_type": "client_credential", "appid": demo_appid(2), "secret": demo_secret(2)});
        let with = |k: &str, v: Value| {
            let mut b = good.clone();
            b[k] = v;
            b
        };
        let without = |k: &str| {
            let mut b = good.clone();
            b.as_object_mut().unwrap().remove(k);
            b
        };
        assert!(stable(good.clone()).await["access_token"].is_string());
        assert_error(&stable(with("appid", json!(demo_appid(4)))).await, 40013, "invalid appid");
        assert_error(&stable(with("secret", json!(demo_secret(1)))).await, 40125, "invalid appsecret");
        assert_error(&stable(with("grant_type", json!("password"))).await, 40002, "invalid grant_type");
        assert_error(&stable(without("appid")).await, 41002, "appid missing");
        assert_error(&stable(without("secret")).await, 41004, "appsecret missing");
        assert_error(&stable(with("appid", json!(7))).await, 47001, "data format error");
        assert_error(&stable(with("force_refresh", json!("yes"))).await, 47001, "data format error");
        assert_error(&c.post("/cgi-bin/stable_token", "{not json").await, 47001, "data format error");
        assert_error(&c.post("/cgi-bin/stable_token", "[1]").await, 47001, "data format error");

        let classic = |q: String| async move { c.get(&format!("/cgi-bin/token?{q}")).await };
        let (id, secret) = (demo_appid(1), demo_secret(1));
        assert_error(
            &classic(format!("grant_type=client_credential&appid=wx0&secret={secret}")).await,
            40013,
            "invalid appid",
        );
        assert_error(
            &classic(format!("grant_type=client_credential&appid={id}&secret=x")).await,
            40125,
            "invalid appsecret",
        );
        assert_error(&classic(format!("appid={id}&secret={secret}")).await, 40002, "invalid grant_type");
        assert_error(&classic(format!("grant_type=client_credential&secret={secret}")).await, 41002, "appid missing");
        assert_error(&classic(format!("grant_type=client_credential&appid={id}")).await, 41004, "appsecret missing");
    }

    #[tokio::test]
    async fn classic_tokens_replace_each_other_after_an_overlap() {
        let overlap = Duration::from_millis(300);
        let c = Client::start(SimConfig { token_overlap: overlap, ..config() }).await;
        let first = c.classic_token(1).await;
        assert_eq!(first["expires_in"], 7200);
        let second = c.classic_token(1).await;
        let (old, new) = (first["access_token"].as_str().unwrap(), second["access_token"].as_str().unwrap());
        assert_ne!(old, new);
        let call = |t| c.datacube("getupstreammsgdist", t, "2024-03-01", "2024-03-11");
        assert!(call(old).await["list"].is_array(), "the old token works during the overlap");
        tokio::time::sleep(overlap + Duration::from_millis(50)).await;
        assert_error(&call(old).await, 40001, "invalid credential, access_token is invalid or not latest");
        assert!(call(new).await["list"].is_array());
    }

    #[tokio::test]
    async fn expired_tokens_are_refused_then_replaced() {
        let c = Client::start(SimConfig { token_ttl: Duration::from_millis(1200), ..config() }).await;
        let first = c.stable_token(3, false).await;
        assert_eq!(first["expires_in"], 1);
        let token = first["access_token"].as_str().unwrap();
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_error(
            &c.datacube("getupstreammsg", token, "2024-03-11", "2024-03-11").await,
            42001,
            "access_token expired",
        );
        assert_ne!(c.stable_token(3, false).await["access_token"], token, "a new token once the old one expired");
    }

    #[tokio::test]
    async fn datacube_checks_come_in_the_real_order() {
        let c = &Client::start(config()).await;
        let token = c.token(1).await;
        let raw = |path: String, body: &'static str| async move { c.post(&path, body).await };
        let good = r#"{"begin_date":"2024-03-11","end_date":"2024-03-11"}"#;
        assert_error(&raw("/datacube/getupstreammsg".into(), good).await, 41001, "access_token missing");
        assert_error(&raw("/datacube/getupstreammsg?access_token=".into(), good).await, 41001, "access_token missing");
        // A bad token wins over a bad body.
        assert_error(
            &raw("/datacube/getupstreammsg?access_token=nope".into(), "{").await,
            40001,
            "invalid credential, access_token is invalid or not latest",
        );
        let with_token = format!("/datacube/getupstreammsg?access_token={token}");
        assert_error(&raw(with_token.clone(), "not json").await, 47001, "data format error");
        assert_error(&raw(with_token.clone(), r#"{"begin_date":"2024-03-11"}"#).await, 47001, "data format error");
        assert_error(
            &raw(with_token.clone(), r#"{"begin_date":20240311,"end_date":"2024-03-11"}"#).await,
            47001,
            "data format error",
        );
        let dates = |b: &'static str, e: &'static str| c.datacube("getupstreammsg", &token, b, e);
        assert_error(&dates("2024-3-11", "2024-03-11").await, 61500, "date format error");
        assert_error(&dates("2024-03-11", "2024/03/11").await, 61500, "date format error");
        assert_error(&dates("2024-02-30", "2024-03-01").await, 61500, "date format error");
        for (b, e, why) in [
            ("2024-03-11", "2024-03-10", "inverted"),
            ("2024-03-12", "2024-03-12", "today"),
            ("2024-03-10", "2024-03-12", "ends today"),
            ("2014-11-30", "2014-12-01", "before the floor"),
            ("2024-03-01", "2024-03-08", "8 days on a 7-day span"),
        ] {
            let answer = dates(b, e).await;
            assert_eq!(answer["errcode"], 61501, "{why}: {answer}");
            assert!(answer["errmsg"].as_str().unwrap().starts_with("date range error rid: "), "{why}: {answer}");
        }
        assert!(!dates("2024-03-05", "2024-03-11").await["list"].as_array().unwrap().is_empty(), "7 days are fine");
        assert!(dates("2014-12-01", "2014-12-01").await["list"].is_array(), "the floor itself is fine");
        assert_error(
            &c.datacube("getupstreammsghour", &token, "2024-03-10", "2024-03-11").await,
            61501,
            "date range error",
        );
    }

    #[tokio::test]
    async fn unknown_endpoints_are_not_found() {
        let c = Client::start(config()).await;
        let token = c.token(1).await;
        for path in ["/datacube/getupstreammsgyear", "/datacube/upstream_msg", "/cgi-bin/nothing"] {
            let response = c.http.post(c.url(&format!("{path}?access_token={token}"))).body("{}").send().await.unwrap();
            assert_eq!(response.status(), 404, "{path}");
        }
    }

    #[tokio::test]
    async fn lists_are_the_generated_rows_of_the_tokens_account() {
        let c = Client::start(config()).await;
        let now = c.sim.state.clock.now();
        for account in [1, 2] {
            let token = c.token(account).await;
            for table in registry::tables().iter().filter(|t| t.family == Family::Message) {
                let (begin, end) = ("2024-02-01", "2024-02-07");
                let end = if table.max_span_days == 1 { begin } else { end };
                let response = c
                    .http
                    .post(c.url(&format!("/datacube/{}?access_token={token}", table.endpoint)))
                    .body(json!({"begin_date": begin, "end_date": end}).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json; encoding=utf-8");
                let answer: Value = response.json().await.unwrap();
                let expected =
                    data::window_rows(table, &demo_appid(account), DaySpan::new(d(begin), d(end)).unwrap(), now);
                let list = answer["list"].as_array().unwrap();
                assert_eq!(list.len(), expected.len(), "{table}");
                assert!(!list.is_empty(), "{table}");
                for (row, want) in list.iter().zip(&expected) {
                    assert_eq!(row["ref_date"], want.ref_date.to_string());
                    assert_eq!(row["user_source"], 0);
                    for (field, value) in table.api_fields.iter().zip(&want.fields) {
                        assert_eq!(row[&field.path], value.int().unwrap(), "{table} {}", field.path);
                    }
                    assert_eq!(row.as_object().unwrap().len(), table.api_fields.len() + 2);
                }
            }
        }
    }

    #[tokio::test]
    async fn yesterday_is_accepted_but_empty_before_eight() {
        // 07:30 Beijing on 2024-03-12.
        let early = DateTime::parse_from_rfc3339("2024-03-12T07:30:00+08:00").unwrap().with_timezone(&Utc);
        let c = Client::start(SimConfig { clock: Clock::Fixed(early), ..config() }).await;
        let token = c.token(1).await;
        let answer = c.datacube("getupstreammsg", &token, "2024-03-10", "2024-03-11").await;
        let dates: Vec<&str> =
            answer["list"].as_array().unwrap().iter().map(|r| r["ref_date"].as_str().unwrap()).collect();
        assert!(!dates.is_empty() && dates.iter().all(|&d| d == "2024-03-10"), "{dates:?}");
        // The week ending on Sunday the 10th counts as ended, but Monday the 11th's week does not.
        let weeks = c.datacube("getupstreammsgweek", &token, "2024-03-04", "2024-03-11").await;
        assert!(weeks["list"].as_array().unwrap().iter().all(|r| r["ref_date"] == "2024-03-04"));
    }

    #[tokio::test]
    async fn spans_can_be_narrowed() {
        let spans = BTreeMap::from([("getupstreammsgweek".to_string(), 1), ("upstream_msg".to_string(), 2)]);
        let c = Client::start(SimConfig { max_span_days: spans, ..config() }).await;
        let token = c.token(1).await;
        assert_error(
            &c.datacube("getupstreammsgweek", &token, "2024-03-04", "2024-03-05").await,
            61501,
            "date range error",
        );
        assert!(c.datacube("getupstreammsgweek", &token, "2024-03-04", "2024-03-04").await["list"].is_array());
        assert_error(
            &c.datacube("getupstreammsg", &token, "2024-03-01", "2024-03-03").await,
            61501,
            "date range error",
        );
        let unknown = BTreeMap::from([("nope".to_string(), 1)]);
        assert!(Simulator::start(SimConfig { max_span_days: unknown, ..config() }).await.is_err());
    }

    #[tokio::test]
    async fn stats_record_what_was_asked() {
        let c = Client::start(config()).await;
        let empty = c.get("/_sim/stats").await;
        assert_eq!(serde_json::from_value::<SimStats>(empty).unwrap(), SimStats::default());
        let token = c.token(2).await;
        c.classic_token(2).await;
        c.datacube("getupstreammsg", &token, "2024-03-01", "2024-03-07").await;
        c.datacube("getupstreammsg", &token, "2024-03-08", "2024-03-20").await;
        c.datacube("getupstreammsghour", "bad", "2024-03-08", "2024-03-08").await;
        let stats: SimStats = serde_json::from_value(c.get("/_sim/stats").await).unwrap();
        assert_eq!(stats, c.sim.stats());
        assert_eq!(stats.datacube_requests, 3);
        assert_eq!(
            stats.per_endpoint,
            BTreeMap::from([("getupstreammsg".into(), 2), ("getupstreammsghour".into(), 1)])
        );
        assert_eq!((stats.token_calls.stable_token, stats.token_calls.token), (1, 1));
        let first = &stats.recent[0];
        assert_eq!(first.appid.as_deref(), Some(demo_appid(2).as_str()));
        assert_eq!(
            (first.begin.as_deref(), first.end.as_deref(), first.errcode),
            (Some("2024-03-01"), Some("2024-03-07"), 0)
        );
        assert!(first.rows > 0);
        assert_eq!((stats.recent[1].errcode, stats.recent[1].rows), (61501, 0));
        assert_eq!((stats.recent[2].appid.as_deref(), stats.recent[2].errcode), (None, 40001));
        let response = c.http.delete(c.url("/_sim/stats")).send().await.unwrap();
        assert_eq!(response.status(), 204);
        assert_eq!(c.sim.stats(), SimStats::default());
    }

    #[tokio::test]
    async fn quota_counts_the_accounts_calls_of_today() {
        let c = Client::start(config()).await;
        let token = c.token(1).await;
        let path = "/datacube/getupstreammsg";
        let quota = |limit: u64, used: u64| json!({"errcode": 0, "errmsg": "ok", "quota": {"daily_limit": limit, "used": used, "remain": limit - used}});
        assert_eq!(c.quota(&token, path).await, quota(5000, 0));
        c.datacube("getupstreammsg", &token, "2024-03-05", "2024-03-11").await;
        c.datacube("getupstreammsg", &token, "2024-03-01", "2024-03-11").await; // 61501, but a call all the same
        c.datacube("getupstreammsg", "nope", "2024-03-05", "2024-03-11").await; // refused before it counts
        c.datacube("getupstreammsghour", &token, "2024-03-11", "2024-03-11").await;
        c.datacube("getupstreammsg", &c.token(2).await, "2024-03-05", "2024-03-11").await;
        // The same account through a third-party platform: the same quota.
        let component = c.component().await;
        let answer = c.authorizer_token(&component, 1, &demo_refresh_token(1)).await;
        let authorizer = answer["authorizer_access_token"].as_str().unwrap();
        c.datacube("getupstreammsg", authorizer, "2024-03-05", "2024-03-11").await;
        assert_eq!(c.quota(&token, path).await, quota(5000, 3));
        assert_eq!(c.quota(authorizer, path).await, quota(5000, 3));
        assert_eq!(c.quota(&token, "/datacube/getupstreammsghour").await, quota(5000, 1));
        assert_eq!(c.quota(&token, "/datacube/getupstreammsgdist").await, quota(5000, 0));
        assert_eq!(c.quota(&c.token(2).await, path).await, quota(5000, 1));
        // The field order of the real service.
        let raw = c.http.post(c.url(&format!("/cgi-bin/openapi/quota/get?access_token={token}")));
        let text = raw.body(json!({"cgi_path": path}).to_string()).send().await.unwrap().text().await.unwrap();
        assert_eq!(text, r#"{"errcode":0,"errmsg":"ok","quota":{"daily_limit":5000,"used":3,"remain":4997}}"#);
        assert_eq!(c.sim.stats().quota_requests, 7);
    }

    #[tokio::test]
    async fn quota_honours_the_daily_quota_fault() {
        let c = Client::start(config()).await;
        let token = c.token(2).await;
        let used = |answer: Value| {
            (answer["quota"]["daily_limit"].clone(), answer["quota"]["used"].clone(), answer["quota"]["remain"].clone())
        };
        let call = || c.datacube("getupstreammsgdist", &token, "2024-03-01", "2024-03-11");
        call().await;
        c.sim.set_faults(Faults { daily_quota: Some(3), ..Faults::default() }).unwrap();
        let path = "/datacube/getupstreammsgdist";
        assert_eq!(used(c.quota(&token, path).await), (json!(3), json!(0), json!(3)), "counts restart with the faults");
        for n in 1..=3 {
            assert!(call().await["list"].is_array());
            assert_eq!(used(c.quota(&token, path).await), (json!(3), json!(n), json!(3 - n)));
        }
        assert_error(&call().await, 45009, "reach max api daily quota limit");
        assert_eq!(used(c.quota(&token, path).await), (json!(3), json!(3), json!(0)), "a refused call is not used");
    }

    #[tokio::test]
    async fn quota_errors() {
        let c = &Client::start(config()).await;
        let token = c.token(1).await;
        let path = "/datacube/getupstreammsg";
        let raw = |query: String, body: &'static str| async move {
            c.post(&format!("/cgi-bin/openapi/quota/get{query}"), body).await
        };
        let good = r#"{"cgi_path":"/datacube/getupstreammsg"}"#;
        assert_error(&raw(String::new(), good).await, 41001, "access_token missing");
        assert_error(&raw("?access_token=".into(), good).await, 41001, "access_token missing");
        let bad = "invalid credential, access_token is invalid or not latest";
        assert_error(&c.quota("nope", path).await, 40001, bad);
        assert_error(&raw("?access_token=nope".into(), "{").await, 40001, bad);
        let component = c.component().await;
        assert_error(&c.quota(&component, path).await, 61015, "must use biz account token for not component api");
        let with_token = format!("?access_token={token}");
        assert_error(&raw(with_token.clone(), "{").await, 47001, "data format error");
        assert_error(&raw(with_token.clone(), "{}").await, 47001, "data format error");
        assert_error(&raw(with_token.clone(), r#"{"cgi_path":7}"#).await, 47001, "data format error");
        for unknown in [
            "/datacube/getupstreammsgyear",
            "datacube/getupstreammsg",
            "/datacube/upstream_msg",
            "/cgi-bin/stable_token",
            "",
        ] {
            assert_error(&c.quota(&token, unknown).await, 76021, "cgi_path not found, please check");
        }
        // Quota calls do not use up a token, but a used-up token is refused.
        c.sim.set_faults(Faults { token_expires_after: Some(1), ..Faults::default() }).unwrap();
        for _ in 0..3 {
            assert_eq!(c.quota(&token, path).await["errcode"], 0);
        }
        assert!(c.datacube("getupstreammsg", &token, "2024-03-11", "2024-03-11").await["list"].is_array());
        assert_error(&c.quota(&token, path).await, 42001, "access_token expired");
    }

    #[tokio::test]
    async fn faults_round_trip() {
        let c = Client::start(config()).await;
        assert_eq!(c.get("/_sim/faults").await, json!({}));
        assert_eq!(c.post("/_sim/faults", "{}").await, json!({}));
        let response = c.http.post(c.url("/_sim/faults")).body(r#"{"no_such_fault":1}"#).send().await.unwrap();
        assert_eq!(response.status(), 400);
        c.sim.set_faults(Faults::default()).unwrap();
        assert_eq!(c.sim.faults(), Faults::default());
    }

    #[tokio::test]
    async fn shutdown_stops_serving() {
        let sim = Simulator::start(config()).await.unwrap();
        let url = format!("{}/_sim/stats", sim.base_url());
        assert!(reqwest::get(&url).await.unwrap().status().is_success());
        sim.shutdown().await.unwrap();
        assert!(reqwest::get(&url).await.is_err());
    }

    #[test]
    fn list_json_keeps_the_field_order() {
        let t = registry::find("upstream_msg_hour").unwrap();
        let fields = [2300, 1, 2, 3].map(SimValue::Int).to_vec();
        let rows = [SimRow { ref_date: d("2024-03-11"), fields }];
        assert_eq!(
            list_json(t, &rows, None),
            r#"{"list":[{"ref_date":"2024-03-11","ref_hour":2300,"msg_type":1,"msg_user":2,"msg_count":3,"user_source":0}]}"#
        );
        assert_eq!(list_json::<SimRow>(t, &[], None), r#"{"list":[]}"#);
    }

    #[test]
    fn nested_tables_nest_their_rows_back() {
        let t = registry::find("article_total_detail").unwrap();
        let row = |stat_date: &str, read_user: i64| {
            let mut fields = vec![SimValue::Absent; t.api_fields.len()];
            let mut set = |path: &str, v: SimValue| fields[t.field_index(path).unwrap()] = v;
            set("msgid", SimValue::Text("2247483720_1".into()));
            set("publish_type", SimValue::Int(0));
            set("detail_list.stat_date", SimValue::Text(stat_date.into()));
            set("detail_list.read_user", SimValue::Int(read_user));
            set("detail_list.read_finish_rate", SimValue::float(0.666666686535));
            set("detail_list.read_jump_position", SimValue::Raw(r#"[{"position":1,"rate":1}]"#.into()));
            SimRow { ref_date: d("2026-03-09"), fields }
        };
        let body = list_json(t, &[row("2026-03-09", 3), row("2026-03-10", 5)], Some(false));
        let expected = r#"{"list":[{"ref_date":"2026-03-09","msgid":"2247483720_1","publish_type":0,"detail_list":[{"stat_date":"2026-03-09","read_user":3,"read_finish_rate":0.666666686535,"read_jump_position":[{"position":1,"rate":1}]},{"stat_date":"2026-03-10","read_user":5,"read_finish_rate":0.666666686535,"read_jump_position":[{"position":1,"rate":1}]}]}],"is_delay":false}"#;
        assert_eq!(body, expected);
        let b = registry::find("article_share").unwrap();
        let fields = vec![SimValue::Text("2247490098_1".into()), SimValue::Int(366)];
        let body = list_json(b, &[SimRow { ref_date: d("2025-11-01"), fields }], Some(true));
        assert_eq!(
            body,
            r#"{"list":[{"ref_date":"2025-11-01","msgid":"2247490098_1","detail":{"share_user":366}}],"is_delay":true}"#
        );
    }

    #[test]
    fn noon_is_noon_in_beijing() {
        assert_eq!(Clock::noon_on(d("2024-03-12")).now().to_rfc3339(), "2024-03-12T04:00:00+00:00");
    }
}
