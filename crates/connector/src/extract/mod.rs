//! extract: one async HTTP loop for every table.
//!
//! Takes an account session and a (table, window) from the plan; hands normalize the answer the
//! API returned (checked to be rows, not an error: normalize types the rows), or a
//! [`CellFailure`] saying what went wrong and how far it reaches. This is the only place that
//! knows about tokens, retries and error classes; a table contributes nothing but its endpoint
//! name and span.
//!
//! Per try: take a concurrency permit, get the account's token, POST the window, read the
//! answer. Transient failures back off and retry (bounded); a refused token is renewed for as
//! long as renewing makes progress ([`token::Renewals`]); 45011 waits for the next minute;
//! 61501 halves the window (down to one day) and the narrower span is kept for the rest of the
//! run ([`spans`]); everything else stops at its [`Scope`].
//! A stop request (SIGTERM, Ctrl-C) ends waiting and in-flight requests at once.

pub mod errors;
pub mod http;
mod platform;
pub mod retry;
pub mod spans;
pub mod token;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{NaiveDate, Timelike};
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::account::{Account, AppId};
use crate::dates::DateRange;
use crate::plan;
use errors::{CallError, Class, Scope};
use http::ApiClient;
use retry::RetryPolicy;
use spans::SpanMemory;
use token::{HeldToken, Rejection, Renewals, TokenCache};
use wxcube_registry::{Family, Table};

/// Shared by all requests of a run.
pub struct Extractor {
    api: Arc<ApiClient>,
    retry: RetryPolicy,
    /// Bounds the requests in flight across all accounts and tables.
    permits: Semaphore,
    spans: SpanMemory,
    stop: watch::Receiver<bool>,
}

/// One account during a run.
pub struct AccountSession {
    pub appid: AppId,
    pub tokens: TokenCache,
    /// Bounds this account's requests in flight, so one account cannot take every slot.
    permits: Semaphore,
    /// Set when the account failed as a whole: requests still waiting are not sent.
    pub failed: std::sync::Mutex<Option<String>>,
    /// Tables stopped for this account (45009, 47009), with the reason: their requests still
    /// waiting are not sent either.
    pub stopped_tables: std::sync::Mutex<HashMap<String, String>>,
    /// Families this account may not read (48001), with the reason.
    pub stopped_families: std::sync::Mutex<HashMap<Family, String>>,
}

impl AccountSession {
    /// Why a request of `table` for this account must not be sent, if it must not.
    pub fn skip_reason(&self, table: &Table) -> Option<String> {
        if let Some(why) = self.failed.lock().unwrap().clone() {
            return Some(why);
        }
        if let Some(why) = self.stopped_families.lock().unwrap().get(&table.family).cloned() {
            return Some(why);
        }
        self.stopped_tables.lock().unwrap().get(&table.name).cloned()
    }
}

/// A window that could not be fetched.
#[derive(Debug)]
pub struct CellFailure {
    pub error: CallError,
    pub scope: Scope,
}

/// The answer for one requested window (a part of the planned one, if it had to be split).
pub struct Fetched {
    pub range: DateRange,
    /// The answer exactly as received: rows for normalize to decode, and kept by `--keep-raw`.
    pub body: bytes::Bytes,
}

impl Extractor {
    /// `stop` turning true abandons waiting and in-flight requests.
    pub fn new(api: Arc<ApiClient>, retry: RetryPolicy, concurrency: usize, stop: watch::Receiver<bool>) -> Self {
        Self { api, retry, permits: Semaphore::new(concurrency.max(1)), spans: SpanMemory::default(), stop }
    }

    /// A session for `account`, with at most `concurrency` requests in flight.
    pub fn session(&self, account: Account, concurrency: usize) -> AccountSession {
        AccountSession {
            appid: account.appid.clone(),
            tokens: TokenCache::new(account, self.api.clone(), self.retry),
            permits: Semaphore::new(concurrency.max(1)),
            failed: std::sync::Mutex::new(None),
            stopped_tables: std::sync::Mutex::new(HashMap::new()),
            stopped_families: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Fetches the periods of one planned window of one table for one account. The window is
    /// cut to the span the server is known to accept, and halved on 61501.
    pub async fn fetch_periods(
        &self,
        session: &AccountSession,
        table: &Table,
        periods: &[NaiveDate],
        requests: &AtomicU64,
    ) -> Result<Vec<Fetched>, CellFailure> {
        let span = self.spans.limit(&table.name).unwrap_or(table.max_span_days);
        let mut pending: VecDeque<Vec<NaiveDate>> = plan::cover(periods, span).into_iter().map(|w| w.periods).collect();
        let mut probe = self.spans.probe(&table.name).await;
        let mut fetched = Vec::new();
        while let Some(part) = pending.pop_front() {
            let range = DateRange::new(part[0], part[part.len() - 1]).expect("periods are sorted");
            // Another request may have learnt a narrower span while this one waited.
            if let Some(limit) = self.spans.limit(&table.name)
                && range.days() > limit
            {
                for w in plan::cover(&part, limit).into_iter().rev() {
                    pending.push_front(w.periods);
                }
                continue;
            }
            match self.fetch(session, table, range, requests).await {
                Ok(body) => {
                    self.spans.confirm(&table.name);
                    probe = None;
                    if self.spans.worked(&table.name, range.days()) {
                        tracing::warn!(table = %table, span_days = range.days(), "{} refuses the registry's {}-day windows (61501); {}-day windows work and are used for the rest of the run", table.endpoint, table.max_span_days, range.days());
                    }
                    fetched.push(Fetched { range, body });
                }
                Err(failure) if failure.error.class() == Class::RangeTooWide && part.len() > 1 => {
                    self.spans.refused(&table.name, range.days());
                    let (a, b) = part.split_at(part.len() / 2);
                    tracing::info!(appid = %session.appid, table = %table, window = %range, "date range refused (61501), splitting the window");
                    pending.push_front(b.to_vec());
                    pending.push_front(a.to_vec());
                }
                Err(failure) => return Err(failure),
            }
        }
        drop(probe);
        Ok(fetched)
    }

    /// Fetches one window of one table for one account, retrying as the error classes say.
    /// Every request sent, retries included, is counted in `requests`.
    async fn fetch(
        &self,
        session: &AccountSession,
        table: &Table,
        window: DateRange,
        requests: &AtomicU64,
    ) -> Result<bytes::Bytes, CellFailure> {
        let mut retries = 0;
        let mut renewals = Renewals::default();
        loop {
            let Failed { error, rejection } =
                match self.until_stopped(self.try_once(session, table, window, requests)).await {
                    Some(Ok(answer)) => return Ok(answer),
                    Some(Err(failed)) => failed,
                    None => return Err(stopped()),
                };
            let wait = match (error.class(), rejection) {
                (Class::TokenRejected, Some(Rejection::Given)) => {
                    let error = CallError::Token(token::given_cannot_be_renewed(&error.to_string()));
                    return Err(CellFailure { error, scope: Scope::Account });
                }
                (Class::TokenRejected, Some(rejection)) => {
                    if let Err(why) = renewals.refused(&rejection) {
                        let error = CallError::Token(format!("{error}; {why}"));
                        return Err(CellFailure { error, scope: Scope::Cell });
                    }
                    if matches!(rejection, Rejection::Dropped(_)) {
                        tracing::info!(appid = %session.appid, table = %table, window = %window, error = %error, "access token refused, renewing it");
                    }
                    Duration::ZERO
                }
                (Class::Transient | Class::RateLimited, _) if retries < self.retry.max_retries => {
                    let wait =
                        error.wait_hint(chrono::Utc::now().second()).unwrap_or_else(|| self.retry.backoff(retries));
                    retries += 1;
                    tracing::warn!(appid = %session.appid, table = %table, window = %window, retry = retries, wait_ms = wait.as_millis() as u64, error = %error, "request failed, retrying");
                    wait
                }
                (Class::Transient | Class::RateLimited | Class::TokenRejected | Class::RangeTooWide, _) => {
                    return Err(CellFailure { error, scope: Scope::Cell });
                }
                (Class::Permanent(scope), _) => return Err(CellFailure { error, scope }),
            };
            if self.until_stopped(tokio::time::sleep(wait)).await.is_none() {
                return Err(stopped());
            }
        }
    }

    /// Runs `work` unless a stop is requested first.
    async fn until_stopped<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let mut stop = self.stop.clone();
        let stopping = async move {
            // A sender that is gone can never ask for a stop.
            if stop.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            out = work => Some(out),
            _ = stopping => None,
        }
    }

    /// One request. The account's permit comes before its token: a token taken while waiting
    /// behind the account's other requests could be used up by them before this one is sent.
    /// The run's permit comes after it, so that a slow token fetch holds up only its account.
    async fn try_once(
        &self,
        session: &AccountSession,
        table: &Table,
        window: DateRange,
        requests: &AtomicU64,
    ) -> Result<bytes::Bytes, Failed> {
        let _account_permit = session.permits.acquire().await.expect("the semaphore is never closed");
        still_wanted(session, table)?;
        // The token cache retries its own transient failures; what comes out of it is final for
        // the account.
        let token = session
            .tokens
            .get()
            .await
            .map_err(|e| CallError::Token(format!("access token for {}: {e}", session.appid)))?;
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        // The account, or this table for it, may have failed while this request waited for a slot.
        still_wanted(session, table)?;
        requests.fetch_add(1, Ordering::Relaxed);
        let error = match self.send(&token, table, window).await {
            Ok(body) => return Ok(body),
            Err(error) => error,
        };
        let rejection = match error.class() {
            Class::TokenRejected => Some(session.tokens.reject(&token, &error.to_string()).await),
            _ => None,
        };
        Err(Failed { error, rejection })
    }

    /// POSTs the window with `token` and checks the answer's envelope; notes whether the API
    /// accepted the token.
    async fn send(&self, token: &Arc<HeldToken>, table: &Table, window: DateRange) -> Result<bytes::Bytes, CallError> {
        let sending = token.send();
        let body = json!({"begin_date": window.begin().to_string(), "end_date": window.end().to_string()});
        let path = format!("/datacube/{}", table.endpoint);
        let bytes = self.api.post_json(&path, &[("access_token", token.expose())], &body).await;
        // Only the envelope decides here; normalize reads the rows from the same bytes.
        let answer = bytes.and_then(|bytes| match crate::answer::check(&bytes) {
            Ok(Ok(())) => Ok(bytes),
            Ok(Err(api_error)) => Err(CallError::Api(api_error)),
            Err(e) => Err(CallError::Body(e.to_string())),
        });
        if token::passed_token_check(&answer) {
            sending.accepted();
        }
        answer
    }
}

/// Fails unless the account, and this table for it, are still to be fetched.
fn still_wanted(session: &AccountSession, table: &Table) -> Result<(), CallError> {
    if let Some(why) = session.failed.lock().unwrap().clone() {
        return Err(CallError::Skipped { why, scope: Scope::Account });
    }
    if let Some(why) = session.stopped_families.lock().unwrap().get(&table.family).cloned() {
        return Err(CallError::Skipped { why, scope: Scope::FamilyForAccount });
    }
    if let Some(why) = session.stopped_tables.lock().unwrap().get(&table.name).cloned() {
        return Err(CallError::Skipped { why, scope: Scope::TableForAccount });
    }
    Ok(())
}

/// A failed try, and what became of its token if the API refused it.
struct Failed {
    error: CallError,
    rejection: Option<Rejection>,
}

impl From<CallError> for Failed {
    fn from(error: CallError) -> Self {
        Self { error, rejection: None }
    }
}

/// The failure of a cell abandoned because the run is stopping.
fn stopped() -> CellFailure {
    CellFailure { error: CallError::Stopped, scope: Scope::Cell }
}
