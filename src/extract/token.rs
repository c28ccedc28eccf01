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
use crate::account::{Account, ComponentCredentials, Credentials, RefreshToken, Secret};

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
            Credentials::Authorizer { component, refresh } => return self.authorizer_token(component, refresh).await,
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

impl TokenCache {
    /// The component access token: given from outside, or fetched once per run with the
    /// platform's secret and verify ticket and shared by every account of the platform.
    async fn component_token(&self, component: &ComponentCredentials) -> Result<Secret, CallError> {
        if let Some(token) = &component.access_token {
            return Ok(token.clone());
        }
        let mut cache = component.cache.lock().await;
        if let Some(token) = cache.as_ref() {
            return Ok(token.clone());
        }
        let (Some(secret), Some(ticket)) = (&component.secret, &component.verify_ticket) else {
            return Err(CallError::Token(
                "the [component] section needs an access token, or a secret and a verify ticket".into(),
            ));
        };
        let request = json!({
            "component_appid": component.appid.as_str(),
            "component_appsecret": secret.expose(),
            "component_verify_ticket": ticket.expose(),
        });
        let body = self.api.post_json("/cgi-bin/component/api_component_token", &[], &request).await?;
        let object = read_answer(&body)?;
        let token = string_field(&object, "component_access_token")?;
        *cache = Some(token.clone());
        Ok(token)
    }

    /// An authorizer access token, from the stored refresh token; the rotated refresh token is
    /// written back before the access token is used, so a crash cannot lose it.
    async fn authorizer_token(
        &self,
        component: &ComponentCredentials,
        refresh: &RefreshToken,
    ) -> Result<(Secret, Duration), CallError> {
        let component_token = self.component_token(component).await?;
        let RefreshToken::File(path) = refresh;
        let current =
            crate::accounts_file::read_file(path).map_err(|e| CallError::Token(format!("refresh token: {e}")))?;
        let request = json!({
            "component_appid": component.appid.as_str(),
            "authorizer_appid": self.account.appid.as_str(),
            "authorizer_refresh_token": current.expose(),
        });
        let query = [("component_access_token", component_token.expose())];
        let body = self.api.post_json("/cgi-bin/component/api_authorizer_token", &query, &request).await?;
        let object = read_answer(&body)?;
        let token = string_field(&object, "authorizer_access_token")?;
        if let Ok(rotated) = string_field(&object, "authorizer_refresh_token")
            && rotated != current
        {
            write_secret_file(path, &rotated).map_err(|e| {
                CallError::Token(format!(
                    "the rotated refresh token could not be saved to {} ({e}): the account must be authorised again",
                    path.display()
                ))
            })?;
        }
        let lifetime = object.get("expires_in").and_then(Value::as_u64).unwrap_or(7200);
        Ok((token, Duration::from_secs(lifetime)))
    }
}

/// An answer's fields, or its error.
fn read_answer(body: &[u8]) -> Result<serde_json::Map<String, Value>, CallError> {
    let object = parse_object(body).map_err(|e| CallError::Body(e.to_string()))?;
    match api_error(&object).map_err(|e| CallError::Body(e.to_string()))? {
        Some(err) => Err(CallError::Api(err)),
        None => Ok(object),
    }
}

fn string_field(object: &serde_json::Map<String, Value>, name: &str) -> Result<Secret, CallError> {
    match object.get(name).and_then(Value::as_str).filter(|t| !t.is_empty()) {
        Some(t) => Ok(Secret::new(t)),
        None => Err(CallError::Body(format!("answer has no {name}"))),
    }
}

/// Replaces a secret file atomically: write a temporary file readable by its owner only, sync
/// it, rename it over the old one.
fn write_secret_file(path: &std::path::Path, secret: &Secret) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(secret.expose().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
