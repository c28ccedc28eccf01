//! extract: one async HTTP loop for every table.
//!
//! Takes an account session and a (table, window) from the plan; hands normalize the raw rows
//! the API returned, or a [`CellFailure`] saying what went wrong and how far it reaches. This is
//! the only place that knows about tokens, retries and error classes; a table contributes
//! nothing but its endpoint name.
//!
//! Per try: take a concurrency permit, get the account's token, POST the window, read the
//! answer. Transient failures back off and retry (bounded); a rejected token is renewed once;
//! 45011 waits for the next minute; everything else stops at its [`Scope`].

pub mod errors;
pub mod http;
pub mod response;
pub mod retry;
pub mod token;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Timelike;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::account::{Account, AppId};
use crate::dates::DateRange;
use crate::registry::Table;
use errors::{CallError, Class, Scope};
use http::ApiClient;
use response::RawRows;
use retry::RetryPolicy;
use token::TokenCache;

/// Shared by all requests of a run.
pub struct Extractor {
    api: Arc<ApiClient>,
    retry: RetryPolicy,
    /// Bounds the requests in flight across all accounts and tables.
    permits: Semaphore,
}

/// One account during a run.
pub struct AccountSession {
    pub appid: AppId,
    pub tokens: TokenCache,
}

/// A window that could not be fetched.
#[derive(Debug)]
pub struct CellFailure {
    pub error: CallError,
    pub scope: Scope,
}

impl Extractor {
    pub fn new(api: Arc<ApiClient>, retry: RetryPolicy, concurrency: usize) -> Self {
        Self { api, retry, permits: Semaphore::new(concurrency.max(1)) }
    }

    pub fn api(&self) -> &Arc<ApiClient> {
        &self.api
    }

    pub fn session(&self, account: Account) -> AccountSession {
        AccountSession { appid: account.appid.clone(), tokens: TokenCache::new(account, self.api.clone(), self.retry) }
    }

    /// Fetches one window of one table for one account, retrying as the error classes say.
    /// Every request sent, retries included, is counted in `requests`.
    pub async fn fetch(
        &self,
        session: &AccountSession,
        table: &Table,
        window: DateRange,
        requests: &AtomicU64,
    ) -> Result<RawRows, CellFailure> {
        let mut retries = 0;
        let mut token_renewed = false;
        loop {
            let error = match self.try_once(session, table, window, requests).await {
                Ok(rows) => return Ok(rows),
                Err(e) => e,
            };
            let class = error.class();
            let wait = match class {
                Class::TokenRejected if session.tokens.is_given() => {
                    let error = CallError::Token(format!(
                        "{error}; the access token given cannot be renewed: pass a fresh one with --access-token or WECHAT_ACCESS_TOKEN"
                    ));
                    return Err(CellFailure { error, scope: Scope::Account });
                }
                Class::TokenRejected if !token_renewed => {
                    token_renewed = true;
                    tracing::info!(appid = %session.appid, table = %table, window = %window, "access token rejected, renewing it once");
                    None
                }
                Class::Transient | Class::RateLimited if retries < self.retry.max_retries => {
                    let wait =
                        error.wait_hint(chrono::Utc::now().second()).unwrap_or_else(|| self.retry.backoff(retries));
                    retries += 1;
                    tracing::warn!(appid = %session.appid, table = %table, window = %window, retry = retries, wait_ms = wait.as_millis() as u64, error = %error, "request failed, retrying");
                    Some(wait)
                }
                Class::Transient | Class::RateLimited | Class::TokenRejected | Class::RangeTooWide => {
                    return Err(CellFailure { error, scope: Scope::Cell });
                }
                Class::Permanent(scope) => return Err(CellFailure { error, scope }),
            };
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
        }
    }

    async fn try_once(
        &self,
        session: &AccountSession,
        table: &Table,
        window: DateRange,
        requests: &AtomicU64,
    ) -> Result<RawRows, CallError> {
        // The token cache retries its own transient failures; what comes out of it is final for
        // the account.
        let token = session
            .tokens
            .get()
            .await
            .map_err(|e| CallError::Token(format!("access token for {}: {e}", session.appid)))?;
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        requests.fetch_add(1, Ordering::Relaxed);
        let body = json!({"begin_date": window.begin().to_string(), "end_date": window.end().to_string()});
        let path = format!("/datacube/{}", table.endpoint);
        let bytes = self.api.post_json(&path, &[("access_token", token.expose())], &body).await;
        let parsed = bytes.and_then(|b| response::parse_rows(&b).map_err(|e| CallError::Body(e.to_string())));
        match parsed {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(api_error)) => {
                let error = CallError::Api(api_error);
                if error.class() == Class::TokenRejected {
                    session.tokens.reject(&token, &error.to_string()).await;
                }
                Err(error)
            }
            Err(e) => Err(e),
        }
    }
}
