//! Access tokens: fetched once per account per run, shared by all of its requests.
//!
//! Concurrent requests of one account wait on the same lock, so a token is fetched once, not
//! once per request. A token the API rejects is dropped only if it is still the current one —
//! another request may already have replaced it — and the caller retries once with the new one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::errors::{CallError, Class};
use super::http::ApiClient;
use super::response::{api_error, parse_object};
use super::retry::RetryPolicy;
use crate::account::{Account, Credentials, Secret};

/// Renew this long before the token's stated expiry, so a token never lapses mid-request.
const RENEW_MARGIN: Duration = Duration::from_secs(300);

pub struct TokenCache {
    account: Account,
    api: Arc<ApiClient>,
    retry: RetryPolicy,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    current: Option<(Secret, Instant)>,
    /// Why a token given from outside was refused: it cannot be renewed here.
    given_rejected: Option<String>,
}

impl TokenCache {
    pub fn new(account: Account, api: Arc<ApiClient>, retry: RetryPolicy) -> Self {
        Self { account, api, retry, state: Mutex::new(State::default()) }
    }

    /// A valid token, fetching one if there is none or it is about to expire.
    pub async fn get(&self) -> Result<Secret, CallError> {
        let mut state = self.state.lock().await;
        if let Credentials::AccessToken(token) = &self.account.credentials {
            if let Some(why) = &state.given_rejected {
                return Err(CallError::Token(format!(
                    "{why}; the access token given cannot be renewed: pass a fresh one with --access-token or WECHAT_ACCESS_TOKEN"
                )));
            }
            return Ok(token.clone());
        }
        if let Some((token, renew_at)) = &state.current
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_MARGIN.min(lifetime / 2));
        state.current = Some((token.clone(), renew_at));
        Ok(token)
    }

    /// Drops `token`, refused for `why`, if it is still the current one; a newer token is kept.
    pub async fn reject(&self, token: &Secret, why: &str) {
        let mut state = self.state.lock().await;
        match &self.account.credentials {
            Credentials::AccessToken(given) if given == token => state.given_rejected = Some(why.to_string()),
            _ => {
                if state.current.as_ref().is_some_and(|(t, _)| t == token) {
                    state.current = None;
                }
            }
        }
    }

    /// Whether the token comes from outside, so a rejected one cannot be replaced.
    pub fn is_given(&self) -> bool {
        matches!(self.account.credentials, Credentials::AccessToken(_))
    }

    async fn fetch(&self) -> Result<(Secret, Duration), CallError> {
        let mut retry = 0;
        loop {
            match self.fetch_once().await {
                Ok(t) => return Ok(t),
                Err(e) if e.class() == Class::Transient && retry < self.retry.max_retries => {
                    tracing::warn!(appid = %self.account.appid, retry = retry + 1, error = %e, "token request failed, retrying");
                    tokio::time::sleep(self.retry.backoff(retry)).await;
                    retry += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn fetch_once(&self) -> Result<(Secret, Duration), CallError> {
        let appid = self.account.appid.as_str();
        let body = match &self.account.credentials {
            Credentials::AccessToken(_) => unreachable!("given tokens are never fetched"),
            Credentials::StableToken(secret) => {
                let request = json!({"grant_type": "client_credential", "appid": appid, "secret": secret.expose(), "force_refresh": false});
                self.api.post_json("/cgi-bin/stable_token", &[], &request).await?
            }
            Credentials::LegacyToken(secret) => {
                let query = [("grant_type", "client_credential"), ("appid", appid), ("secret", secret.expose())];
                self.api.get("/cgi-bin/token", &query).await?
            }
        };
        let object = parse_object(&body).map_err(|e| CallError::Body(e.to_string()))?;
        if let Some(err) = api_error(&object).map_err(|e| CallError::Body(e.to_string()))? {
            return Err(CallError::Api(err));
        }
        let token = object.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty());
        let lifetime = object.get("expires_in").and_then(Value::as_u64).unwrap_or(7200);
        match token {
            Some(t) => Ok((Secret::new(t), Duration::from_secs(lifetime))),
            None => Err(CallError::Body("token response has no access_token".into())),
        }
    }
}
