//! Access tokens: fetched once per account, shared by all of its requests, renewed before they
//! expire and when the API refuses them.
//!
//! Concurrent requests of one account wait on the same fetch, so a token is fetched once, not
//! once per request. A token the API refuses is dropped only if it is still the current one —
//! another request may already have replaced it — and the request retries with the next one.
//!
//! How long a request keeps renewing is bounded by progress and by time, not by a count of
//! renewals ([`Renewals`]): when tokens expire every few calls (a busy account sharing its
//! quota of calls per token, a short-lived token service), renewing is progress and must go on
//! for as long as the run does; when every new token is refused before it served a single call,
//! or refusals go on for minutes, renewing is not helping and the request gives up.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::errors::{CallError, Class};
use super::http::ApiClient;
use super::retry::RetryPolicy;
use crate::account::{Account, Credentials, Secret};
use crate::answer::{api_error, parse_object};

/// Renew this long before the token's stated expiry, so a token never lapses mid-request.
const RENEW_MARGIN: Duration = Duration::from_secs(300);

/// A request gives up once this many tokens it replaced were refused before serving any call:
/// new tokens are being refused as they come, and more of them will not help.
const MAX_DEAD_ON_ARRIVAL: usize = 3;

/// A request gives up once its token has been refused for this long. A renewal takes one
/// token call and one retry, well under a second, so tokens expiring every few calls are
/// renewed many times over within it; refusals that go on for five minutes come from a token
/// war (another service renewing the account's token as fast as wxcube does) or an outage, and
/// the cell is better failed — and filled by the next run — than retried for hours.
const RENEWAL_TIME_LIMIT: Duration = Duration::from_secs(300);

/// A token as wxcube holds it: the value, when to renew it, and what the API made of it.
pub struct HeldToken {
    secret: Secret,
    /// `None` for a token given from outside, which is never renewed here.
    renew_at: Option<Instant>,
    /// Set once the API accepted the token for a call.
    accepted: AtomicBool,
    /// Requests sent with this token whose answer has not been read yet.
    in_flight: AtomicUsize,
}

impl HeldToken {
    /// A token fetched now that lives `lifetime`: renewed a margin before it expires (at most
    /// half its life, for short-lived tokens).
    pub fn fetched(secret: Secret, lifetime: Duration) -> Self {
        let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_MARGIN.min(lifetime / 2));
        Self::new(secret, Some(renew_at))
    }

    /// A token given from outside, used as is.
    pub fn given(secret: Secret) -> Self {
        Self::new(secret, None)
    }

    fn new(secret: Secret, renew_at: Option<Instant>) -> Self {
        Self { secret, renew_at, accepted: AtomicBool::new(false), in_flight: AtomicUsize::new(0) }
    }

    /// The value, for the request that carries it. Never format it.
    pub fn expose(&self) -> &str {
        self.secret.expose()
    }

    fn is_due(&self, now: Instant) -> bool {
        self.renew_at.is_some_and(|at| now >= at)
    }

    /// Counts a request sent with this token until the returned guard is dropped; the guard
    /// says whether the API accepted the token.
    pub fn send(self: &Arc<Self>) -> Sending {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Sending(self.clone())
    }

    /// Whether the API refused this token before it ever served a call. Only known once no
    /// request sent with it is still waiting for its answer: one of those may be its first
    /// success, read after a refusal that came in later but was answered sooner.
    pub fn never_worked(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.accepted.load(Ordering::Acquire)
    }
}

impl fmt::Debug for HeldToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeldToken(***)")
    }
}

/// A request under way with a token; see [`HeldToken::send`].
pub struct Sending(Arc<HeldToken>);

impl Sending {
    /// The API accepted the token: it answered something other than a token refusal.
    pub fn accepted(self) {
        self.0.accepted.store(true, Ordering::Release);
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What became of a refused token.
#[derive(Debug)]
pub enum Rejection {
    /// Another request had already dropped or replaced it: retrying costs nothing.
    AlreadyReplaced,
    /// This request dropped it; the next one to ask fetches a new token.
    Dropped(Arc<HeldToken>),
    /// A token given from outside: it cannot be renewed here.
    Given,
}

/// The current token of one holder — an account, or a platform whose component token all its
/// accounts share. Concurrent callers wait on one fetch.
#[derive(Default)]
pub struct TokenSlot(Mutex<Option<Arc<HeldToken>>>);

impl TokenSlot {
    /// The current token, or one from `fetch` if there is none or it is due for renewal.
    pub async fn get_or_fetch(
        &self,
        fetch: impl AsyncFnOnce() -> Result<(Secret, Duration), CallError>,
    ) -> Result<Arc<HeldToken>, CallError> {
        let mut current = self.0.lock().await;
        if let Some(token) = current.as_ref()
            && !token.is_due(Instant::now())
        {
            return Ok(token.clone());
        }
        let (secret, lifetime) = fetch().await?;
        let token = Arc::new(HeldToken::fetched(secret, lifetime));
        *current = Some(token.clone());
        Ok(token)
    }

    /// Drops `token`, which the API refused, if it is still the current one; a newer token is
    /// kept.
    pub async fn reject(&self, token: &Arc<HeldToken>) -> Rejection {
        let mut current = self.0.lock().await;
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, token)) {
            *current = None;
            Rejection::Dropped(token.clone())
        } else {
            Rejection::AlreadyReplaced
        }
    }
}

impl fmt::Debug for TokenSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSlot")
    }
}

/// How far one request (or one token exchange) goes on renewing refused tokens: until
/// [`MAX_DEAD_ON_ARRIVAL`] of the tokens it replaced never served a call, or
/// [`RENEWAL_TIME_LIMIT`] after its first refusal. A refusal of a token another request already
/// replaced, or of one that served calls before it expired, costs nothing but time.
#[derive(Debug, Default)]
pub struct Renewals {
    /// Tokens this request dropped that had not served a call when it did.
    dropped: Vec<Arc<HeldToken>>,
    first_refusal: Option<Instant>,
}

impl Renewals {
    /// Records a refusal; `Err` says why renewing is over.
    pub fn refused(&mut self, rejection: &Rejection) -> Result<(), String> {
        self.refused_at(rejection, Instant::now())
    }

    fn refused_at(&mut self, rejection: &Rejection, now: Instant) -> Result<(), String> {
        let since = *self.first_refusal.get_or_insert(now);
        if let Rejection::Dropped(token) = rejection
            && !token.accepted.load(Ordering::Acquire)
        {
            self.dropped.push(token.clone());
        }
        let dead = self.dropped.iter().filter(|t| t.never_worked()).count();
        if dead >= MAX_DEAD_ON_ARRIVAL {
            return Err(format!("{dead} new tokens were refused before serving a single call"));
        }
        if now - since >= RENEWAL_TIME_LIMIT {
            return Err(format!(
                "tokens were still refused after {} minutes of renewing",
                RENEWAL_TIME_LIMIT.as_secs() / 60
            ));
        }
        Ok(())
    }
}

pub struct TokenCache {
    account: Account,
    api: Arc<ApiClient>,
    retry: RetryPolicy,
    slot: TokenSlot,
    /// The token given from outside (`--access-token`), if the account has one.
    given: Option<Arc<HeldToken>>,
    /// Why the given token was refused: it cannot be renewed here.
    given_refused: std::sync::Mutex<Option<String>>,
}

impl TokenCache {
    pub fn new(account: Account, api: Arc<ApiClient>, retry: RetryPolicy) -> Self {
        let given = match &account.credentials {
            Credentials::AccessToken(token) => Some(Arc::new(HeldToken::given(token.clone()))),
            _ => None,
        };
        Self { account, api, retry, slot: TokenSlot::default(), given, given_refused: Default::default() }
    }

    /// A valid token, fetching one if there is none or it is about to expire.
    pub async fn get(&self) -> Result<Arc<HeldToken>, CallError> {
        if let Some(given) = &self.given {
            if let Some(why) = self.given_refused.lock().unwrap().as_ref() {
                return Err(CallError::Token(given_cannot_be_renewed(why)));
            }
            return Ok(given.clone());
        }
        self.slot.get_or_fetch(async || self.fetch().await).await
    }

    /// Drops `token`, refused for `why`, if it is still the current one; a newer token is kept.
    pub async fn reject(&self, token: &Arc<HeldToken>, why: &str) -> Rejection {
        if self.given.is_some() {
            self.given_refused.lock().unwrap().get_or_insert_with(|| why.to_string());
            return Rejection::Given;
        }
        self.slot.reject(token).await
    }

    /// Whether the token comes from outside, so a rejected one cannot be replaced.
    pub fn is_given(&self) -> bool {
        self.given.is_some()
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

    /// One try at a token. For an authorised account, a failure that may have cost the
    /// refresh token is never transient (see [`super::platform`]), so retrying is safe.
    async fn fetch_once(&self) -> Result<(Secret, Duration), CallError> {
        let appid = self.account.appid.as_str();
        let body = match &self.account.credentials {
            Credentials::AccessToken(_) => unreachable!("given tokens are never fetched"),
            Credentials::Authorizer { component, refresh } => {
                return super::platform::authorizer_token(&self.api, &self.account.appid, component, refresh).await;
            }
            Credentials::StableToken(secret) => {
                let request = json!({"grant_type": "client_credential", "appid": appid, "secret": secret.expose(), "force_refresh": false});
                self.api.post_json("/cgi-bin/stable_token", &[], &request).await?
            }
            Credentials::LegacyToken(secret) => {
                let query = [("grant_type", "client_credential"), ("appid", appid), ("secret", secret.expose())];
                self.api.get("/cgi-bin/token", &query).await?
            }
        };
        let object = read_answer(&body)?;
        let token = string_field(&object, "access_token")?;
        Ok((token, lifetime(&object)))
    }
}

/// The error line for a refused token given from outside.
pub fn given_cannot_be_renewed(why: &str) -> String {
    format!(
        "{why}; the access token given cannot be renewed: pass a fresh one with --access-token or WECHAT_ACCESS_TOKEN"
    )
}

/// Whether `answer` shows the API accepted the token it was sent with: any answer but a token
/// refusal (40001, 40014, 42001) passed the token check. A broken connection or an unreadable
/// body tells nothing.
pub fn passed_token_check<T>(answer: &Result<T, CallError>) -> bool {
    match answer {
        Ok(_) => true,
        Err(error @ CallError::Api(_)) => error.class() != Class::TokenRejected,
        Err(_) => false,
    }
}

/// An answer's fields, or its error.
pub(super) fn read_answer(body: &[u8]) -> Result<serde_json::Map<String, Value>, CallError> {
    let object = parse_object(body).map_err(|e| CallError::Body(e.to_string()))?;
    match api_error(&object).map_err(|e| CallError::Body(e.to_string()))? {
        Some(err) => Err(CallError::Api(err)),
        None => Ok(object),
    }
}

pub(super) fn string_field(object: &serde_json::Map<String, Value>, name: &str) -> Result<Secret, CallError> {
    match object.get(name).and_then(Value::as_str).filter(|t| !t.is_empty()) {
        Some(t) => Ok(Secret::new(t)),
        None => Err(CallError::Body(format!("answer has no {name}"))),
    }
}

/// A token answer's `expires_in`, two hours if it has none (the documented lifetime).
pub(super) fn lifetime(object: &serde_json::Map<String, Value>) -> Duration {
    Duration::from_secs(object.get("expires_in").and_then(Value::as_u64).unwrap_or(7200))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Arc<HeldToken> {
        Arc::new(HeldToken::fetched(Secret::new("t"), Duration::from_secs(7200)))
    }

    #[test]
    fn tokens_are_renewed_a_margin_before_they_expire() {
        let now = Instant::now();
        let long = HeldToken::fetched(Secret::new("a"), Duration::from_secs(7200));
        assert!(!long.is_due(now + Duration::from_secs(6899)));
        assert!(long.is_due(now + Duration::from_secs(6901)));
        // A short-lived token is renewed half-way through its life.
        let short = HeldToken::fetched(Secret::new("b"), Duration::from_secs(4));
        assert!(!short.is_due(now + Duration::from_millis(1900)));
        assert!(short.is_due(now + Duration::from_millis(2100)));
        assert!(!HeldToken::given(Secret::new("c")).is_due(now + Duration::from_secs(1 << 40)));
        assert_eq!(format!("{long:?}"), "HeldToken(***)");
    }

    #[tokio::test]
    async fn only_the_current_token_is_dropped() {
        let slot = TokenSlot::default();
        let first = slot.get_or_fetch(async || Ok((Secret::new("1"), Duration::from_secs(7200)))).await.unwrap();
        let again = slot.get_or_fetch(async || panic!("the current token is still good")).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(matches!(slot.reject(&first).await, Rejection::Dropped(_)));
        assert!(matches!(slot.reject(&first).await, Rejection::AlreadyReplaced));
        let second = slot.get_or_fetch(async || Ok((Secret::new("1"), Duration::from_secs(7200)))).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &second), "the same value fetched again is a new token");
        assert!(matches!(slot.reject(&first).await, Rejection::AlreadyReplaced));
    }

    #[test]
    fn renewing_goes_on_while_tokens_serve_calls() {
        let mut renewals = Renewals::default();
        for _ in 0..100 {
            let t = token();
            t.send().accepted();
            assert!(renewals.refused(&Rejection::Dropped(t)).is_ok());
            assert!(renewals.refused(&Rejection::AlreadyReplaced).is_ok());
        }
    }

    #[test]
    fn renewing_stops_after_a_few_tokens_refused_on_arrival() {
        let mut renewals = Renewals::default();
        // A token whose other request is still waiting for its answer is not judged yet.
        let pending = token();
        let other = pending.send();
        let refused = pending.send();
        drop(refused);
        assert!(renewals.refused(&Rejection::Dropped(pending.clone())).is_ok());
        for _ in 0..2 {
            let t = token();
            drop(t.send());
            assert!(renewals.refused(&Rejection::Dropped(t)).is_ok());
        }
        // The answer still awaited was an acceptance after all: still only two dead tokens.
        other.accepted();
        let t = token();
        drop(t.send());
        let why = renewals.refused(&Rejection::Dropped(t)).unwrap_err();
        assert_eq!(why, "3 new tokens were refused before serving a single call");
    }

    #[test]
    fn renewing_stops_after_minutes_of_refusals() {
        let mut renewals = Renewals::default();
        let start = Instant::now();
        assert!(renewals.refused_at(&Rejection::AlreadyReplaced, start).is_ok());
        let later = start + RENEWAL_TIME_LIMIT - Duration::from_secs(1);
        assert!(renewals.refused_at(&Rejection::AlreadyReplaced, later).is_ok());
        let why = renewals.refused_at(&Rejection::AlreadyReplaced, start + RENEWAL_TIME_LIMIT).unwrap_err();
        assert_eq!(why, "tokens were still refused after 5 minutes of renewing");
    }
}
