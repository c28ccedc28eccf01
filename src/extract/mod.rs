//! extract: one async HTTP loop for every table.
//!
//! Takes an account session and a (table, window) from the plan; hands normalize the answer the
//! API returned (checked to be rows, not an error: normalize types the rows), or a
//! [`CellFailure`] saying what went wrong and how far it reaches. This is the only place that
//! knows about tokens, retries and error classes; a table contributes nothing but its endpoint
//! name and span.
//!
//! Per try: get the account's token, take a concurrency permit, POST the window, read the
//! answer. Transient failures back off and retry (bounded); a rejected token is renewed once;
//! 45011 waits for the next minute; 61501 halves the window (down to one day) and the narrower
//! span is kept for the rest of the run ([`spans`]); everything else stops at its [`Scope`].
//! A stop request (SIGTERM, Ctrl-C) ends waiting and in-flight requests at once.

pub mod errors;
pub mod http;
pub mod response;
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

use crate::account::{Account, AppId, Secret};
use crate::dates::DateRange;
use crate::plan;
use crate::registry::Table;
use errors::{CallError, Class, Scope};
use http::ApiClient;
use retry::RetryPolicy;
use spans::SpanMemory;
use token::TokenCache;

/// Renewals of a refused token within one request, across distinct tokens.
const MAX_TOKEN_RENEWALS: u32 = 3;

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
}

impl AccountSession {
    /// Why a request of `table` for this account must not be sent, if it must not.
    pub fn skip_reason(&self, table: &Table) -> Option<String> {
        if let Some(why) = self.failed.lock().unwrap().clone() {
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
        // A refused token is renewed and the request retried once — once per token: a renewed
        // token that later expires too (a long run) earns its own renewal. Bounded all the same.
        let mut renewed_after: Option<Secret> = None;
        let mut renewals = 0;
        loop {
            let (used, error) = match self.until_stopped(self.try_once(session, table, window, requests)).await {
                Some(Ok(answer)) => return Ok(answer),
                Some(Err(e)) => e,
                None => return Err(stopped()),
            };
            let fresh_token = used.is_some() && used != renewed_after && renewals < MAX_TOKEN_RENEWALS;
            let wait = match error.class() {
                Class::TokenRejected if session.tokens.is_given() => {
                    let error = CallError::Token(format!(
                        "{error}; the access token given cannot be renewed: pass a fresh one with --access-token or WECHAT_ACCESS_TOKEN"
                    ));
                    return Err(CellFailure { error, scope: Scope::Account });
                }
                Class::TokenRejected if fresh_token => {
                    renewed_after = used;
                    renewals += 1;
                    tracing::info!(appid = %session.appid, table = %table, window = %window, error = %error, "access token refused, renewing it");
                    Duration::ZERO
                }
                Class::Transient | Class::RateLimited if retries < self.retry.max_retries => {
                    let wait =
                        error.wait_hint(chrono::Utc::now().second()).unwrap_or_else(|| self.retry.backoff(retries));
                    retries += 1;
                    tracing::warn!(appid = %session.appid, table = %table, window = %window, retry = retries, wait_ms = wait.as_millis() as u64, error = %error, "request failed, retrying");
                    wait
                }
                Class::Transient | Class::RateLimited | Class::TokenRejected | Class::RangeTooWide => {
                    return Err(CellFailure { error, scope: Scope::Cell });
                }
                Class::Permanent(scope) => return Err(CellFailure { error, scope }),
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

    /// One request. On failure, also says which token it used (none if it got no token).
    async fn try_once(
        &self,
        session: &AccountSession,
        table: &Table,
        window: DateRange,
        requests: &AtomicU64,
    ) -> Result<bytes::Bytes, (Option<Secret>, CallError)> {
        // The token cache retries its own transient failures; what comes out of it is final for
        // the account.
        let token = session
            .tokens
            .get()
            .await
            .map_err(|e| (None, CallError::Token(format!("access token for {}: {e}", session.appid))))?;
        let _account_permit = session.permits.acquire().await.expect("the semaphore is never closed");
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        // The account, or this table for it, may have failed while this request waited for a slot.
        if let Some(why) = session.failed.lock().unwrap().clone() {
            return Err((None, CallError::Skipped { why, scope: Scope::Account }));
        }
        if let Some(why) = session.stopped_tables.lock().unwrap().get(&table.name).cloned() {
            return Err((None, CallError::Skipped { why, scope: Scope::TableForAccount }));
        }
        requests.fetch_add(1, Ordering::Relaxed);
        let body = json!({"begin_date": window.begin().to_string(), "end_date": window.end().to_string()});
        let path = format!("/datacube/{}", table.endpoint);
        let bytes = self.api.post_json(&path, &[("access_token", token.expose())], &body).await;
        // Only the envelope decides here; normalize reads the rows from the same bytes.
        let parsed = bytes.and_then(|b| Ok((response::check(&b).map_err(|e| CallError::Body(e.to_string()))?, b)));
        match parsed {
            Ok((Ok(()), body)) => Ok(body),
            Ok((Err(api_error), _)) => {
                let error = CallError::Api(api_error);
                if error.class() == Class::TokenRejected {
                    session.tokens.reject(&token, &error.to_string()).await;
                }
                Err((Some(token), error))
            }
            Err(e) => Err((Some(token), e)),
        }
    }
}

/// The failure of a cell abandoned because the run is stopping.
fn stopped() -> CellFailure {
    CellFailure { error: CallError::Stopped, scope: Scope::Cell }
}
