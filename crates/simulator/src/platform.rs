//! The third-party platform ("component") token endpoints, as the real service runs them.
//!
//! A platform gets its own token, then an access token for each account that authorised it:
//! - `POST /cgi-bin/component/api_component_token` with `{"component_appid",
//!   "component_appsecret", "component_verify_ticket"}` → `{"component_access_token",
//!   "expires_in"}`. Each call issues a new token; the previous one lives on for the overlap of
//!   classic tokens ([`super::SimConfig::token_overlap`]);
//! - `POST /cgi-bin/component/api_authorizer_token?component_access_token=…` with
//!   `{"component_appid", "authorizer_appid", "authorizer_refresh_token"}` →
//!   `{"authorizer_access_token", "expires_in", "authorizer_refresh_token"}`. The refresh token
//!   **rotates**: the answer carries a new one, and the one presented is refused (61023) from
//!   then on, so a client that does not persist the new one loses the account. The access
//!   token is an ordinary token of that account (see [`super::tokens`]).
//!
//! The demo platform and its credentials are in [`super::accounts`]; every demo account has
//! authorised it. The rotation state lives as long as the simulator process.
//!
//! Errors, in the order they are checked. The codes are the real service's where SDK bug
//! trackers or the official pages show them, otherwise the closest global code, chosen so that
//! a client's handling of the global codes does the right thing:
//! - `api_component_token`: a body that is not a JSON object, or a field that is not a string,
//!   47001 "data format error"; `component_appid` missing 41002, unknown 40013 "invalid appid";
//!   `component_appsecret` missing 41004, wrong 40125 "invalid appsecret" (the codes of the
//!   account token endpoints: configuration errors a client must not retry); a missing, null
//!   or wrong `component_verify_ticket` 61006 "component ticket is invalid" (seen in WxJava's
//!   tracker for a null ticket). The demo ticket never expires, so 61005 "component ticket is
//!   expired" is never answered;
//! - `api_authorizer_token`: `component_access_token` missing 41001; unknown or replaced 40001;
//!   expired 42001 — the codes of access tokens, so the client's "drop the token, fetch again,
//!   retry once" applies; an account's token instead of a component token 61014 "must use
//!   component token for component api" (the real code for that mistake). Then the body as
//!   above (47001); `component_appid` missing 41002, not the token's platform 40013;
//!   `authorizer_appid` missing 41002, not a demo account 61003 "component is not authorized
//!   by this account"; `authorizer_refresh_token` missing, null, used already or another
//!   account's: 61023 "refresh_token is invalid" (the real code, which WxJava's tracker shows
//!   for a null one too).
//!
//! Conversely, a component token presented to a datacube endpoint or to the quota endpoint is
//! refused with 61015 "must use biz account token for not component api".
//!
//! Faults ([`super::faults`]) make `api_authorizer_token` lose its answer after rotating the
//! refresh token (`authorizer_lost`), answer -1 without rotating it (`authorizer_busy`), or
//! find it exchanged by another client first (`refresh_used_elsewhere`, 61023); each call is
//! recorded in [`super::SimStats::authorizer_requests`], with whether it presented a refresh
//! token that had already been exchanged. [`super::SimConfig::component_token_ttl`] gives
//! component tokens a lifetime of their own.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::time::Instant;

use super::accounts;
use super::broken;
use super::faults::FaultKind;
use super::server::{ApiError, SimState, json_response, lock, log_token, query_param};
use super::stats::AuthorizerRequest;
use super::tokens::TokenCheck;

type Request = serde_json::Map<String, Value>;

/// A string field: `None` when absent, null or empty; a field of another type makes the body
/// malformed.
fn text<'a>(request: &'a Request, name: &str) -> Result<Option<&'a str>, ApiError> {
    match request.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) => Ok(Some(v.as_str()).filter(|v| !v.is_empty())),
        Some(_) => Err(ApiError::DataFormat),
    }
}

/// The body as a JSON object, if it is one.
fn parse(body: &[u8]) -> Option<Request> {
    serde_json::from_slice(body).ok()
}

/// The field `name` for the log, if it is a string.
fn logged(request: Option<&Request>, name: &str) -> Option<String> {
    request.and_then(|r| r.get(name)).and_then(Value::as_str).map(str::to_owned)
}

pub(super) async fn component_token(State(s): State<Arc<SimState>>, body: Bytes) -> Response {
    lock(&s.stats).component_token();
    let request = parse(&body);
    let outcome = request.as_ref().ok_or(ApiError::DataFormat).and_then(|r| component_token_answer(&s, r));
    log_token("component_token", logged(request.as_ref(), "component_appid").as_deref(), &outcome);
    outcome.unwrap_or_else(IntoResponse::into_response)
}

fn component_token_answer(s: &SimState, request: &Request) -> Result<Response, ApiError> {
    let appid = text(request, "component_appid")?;
    let secret = text(request, "component_appsecret")?;
    let ticket = text(request, "component_verify_ticket")?;
    let appid = appid.ok_or(ApiError::AppidMissing)?;
    if appid != accounts::demo_component_appid() {
        return Err(ApiError::InvalidAppid);
    }
    if secret.ok_or(ApiError::SecretMissing)? != accounts::demo_component_secret() {
        return Err(ApiError::InvalidSecret);
    }
    if ticket != Some(accounts::demo_verify_ticket().as_str()) {
        return Err(ApiError::ComponentTicketInvalid);
    }
    let issued = lock(&s.tokens).component(appid, Instant::now());
    Ok(json_response(format!(r#"{{"component_access_token":"{}","expires_in":{}}}"#, issued.token, issued.expires_in)))
}

pub(super) async fn authorizer_token(
    State(s): State<Arc<SimState>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    lock(&s.stats).authorizer_token();
    let request = parse(&body);
    let appid = logged(request.as_ref(), "authorizer_appid");
    let (strike, latency) = {
        let mut inject = lock(&s.inject);
        (inject.authorizer().map(|strike| strike.kind), inject.authorizer_latency())
    };
    let mut seen = AuthorizerRequest { appid: None, errcode: 0, stale_refresh_token: false, faults: Vec::new() };
    seen.faults.extend(strike.map(|kind| kind.name().to_string()));
    if strike == Some(FaultKind::RefreshUsedElsewhere) {
        exchange_elsewhere(&s, appid.as_deref());
    }
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    let outcome = match strike {
        Some(FaultKind::AuthorizerBusy) => Err(ApiError::SystemBusy),
        _ => authorizer_token_answer(&s, query.as_deref(), request.as_ref(), &mut seen),
    };
    log_token("authorizer_token", appid.as_deref(), &outcome);
    seen.errcode = outcome.as_ref().err().map_or(0, |e| e.code());
    lock(&s.stats).authorizer(seen);
    let body = outcome.unwrap_or_else(ApiError::body);
    match strike {
        Some(FaultKind::AuthorizerLost) => broken::dropped(body),
        _ => json_response(body),
    }
}

/// Another client of the platform — a second process holding the same refresh token —
/// exchanges `appid`'s refresh token first: it is rotated, and the new one is the other
/// client's.
fn exchange_elsewhere(s: &SimState, appid: Option<&str>) {
    let Some((appid, account)) = appid.and_then(|a| Some((a, s.accounts.index_of(a)?))) else {
        return;
    };
    let first = accounts::demo_refresh_token(account);
    let rules = lock(&s.inject).token_rules();
    let mut tokens = lock(&s.tokens);
    let current = tokens.current_refresh(appid).unwrap_or(&first).to_string();
    tokens.authorizer(appid, &current, &first, Instant::now(), rules);
}

/// The body of a served call, or the error to answer with.
fn authorizer_token_answer(
    s: &SimState,
    query: Option<&str>,
    request: Option<&Request>,
    seen: &mut AuthorizerRequest,
) -> Result<String, ApiError> {
    let token = query_param(query, "component_access_token").ok_or(ApiError::AccessTokenMissing)?;
    let component = match lock(&s.tokens).check_component(&token, Instant::now()) {
        TokenCheck::Valid(component) => component,
        TokenCheck::Invalid | TokenCheck::NotLatest => return Err(ApiError::InvalidCredential),
        TokenCheck::Expired | TokenCheck::UsedUp => return Err(ApiError::TokenExpired),
        TokenCheck::WrongHolder => return Err(ApiError::ComponentTokenRequired),
    };
    let request = request.ok_or(ApiError::DataFormat)?;
    let component_appid = text(request, "component_appid")?;
    let appid = text(request, "authorizer_appid")?;
    let refresh_token = text(request, "authorizer_refresh_token")?;
    if component_appid.ok_or(ApiError::AppidMissing)? != component {
        return Err(ApiError::InvalidAppid);
    }
    let appid = appid.ok_or(ApiError::AppidMissing)?;
    let account = s.accounts.index_of(appid).ok_or(ApiError::ComponentUnauthorized)?;
    seen.appid = Some(appid.to_string());
    let refresh_token = refresh_token.ok_or(ApiError::RefreshTokenInvalid)?;
    let rules = lock(&s.inject).token_rules();
    let first = accounts::demo_refresh_token(account);
    let mut tokens = lock(&s.tokens);
    let Some((issued, next)) = tokens.authorizer(appid, refresh_token, &first, Instant::now(), rules) else {
        seen.stale_refresh_token = tokens.was_exchanged(refresh_token);
        return Err(ApiError::RefreshTokenInvalid);
    };
    drop(tokens);
    s.know(appid);
    Ok(format!(
        r#"{{"authorizer_access_token":"{}","expires_in":{},"authorizer_refresh_token":"{next}"}}"#,
        issued.token, issued.expires_in
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::super::accounts::{
        demo_appid, demo_component_appid, demo_component_secret, demo_refresh_token, demo_secret, demo_verify_ticket,
    };
    use super::super::faults::{Faults, Trigger};
    use super::super::testing::{Client, assert_error, config};
    use super::super::{SimConfig, Simulator};

    const COMPONENT: &str = "/cgi-bin/component/api_component_token";

    fn authorizer_path(component_token: &str) -> String {
        format!("/cgi-bin/component/api_authorizer_token?component_access_token={component_token}")
    }

    fn str_of<'a>(answer: &'a Value, key: &str) -> &'a str {
        answer[key].as_str().unwrap_or_else(|| panic!("no {key} in {answer}"))
    }

    /// An authorizer access token for `account` and the refresh token to use next.
    async fn authorize(c: &Client, component: &str, account: usize) -> (String, String) {
        let refresh = c.sim.authorizer_refresh_token(&demo_appid(account)).unwrap();
        let answer = c.authorizer_token(component, account, &refresh).await;
        (
            str_of(&answer, "authorizer_access_token").to_string(),
            str_of(&answer, "authorizer_refresh_token").to_string(),
        )
    }

    #[tokio::test]
    async fn component_tokens_for_the_demo_platform() {
        let c = Client::start(config()).await;
        let first = c.component_token().await;
        assert_eq!(first.as_object().unwrap().len(), 2, "{first}");
        assert_eq!(first["expires_in"], 7200);
        let token = str_of(&first, "component_access_token");
        assert_eq!(token.len(), 136);
        let second = c.component_token().await;
        assert_ne!(str_of(&second, "component_access_token"), token, "each call issues a new one");
        assert_eq!(c.sim.stats().token_calls.component_token, 2);
    }

    #[tokio::test]
    async fn component_token_errors() {
        let c = &Client::start(config()).await;
        let good = json!({"component_appid": demo_component_appid(), "component_appsecret": demo_component_secret(),
            "component_verify_ticket": demo_verify_ticket()});
        let with = |k: &str, v: Value| {
            let mut b = good.clone();
            b[k] = v;
            c.post(COMPONENT, b.to_string())
        };
        let without = |k: &str| {
            let mut b = good.clone();
            b.as_object_mut().unwrap().remove(k);
            c.post(COMPONENT, b.to_string())
        };
        assert_error(&with("component_appid", json!(demo_appid(1))).await, 40013, "invalid appid");
        assert_error(&without("component_appid").await, 41002, "appid missing");
        assert_error(&with("component_appsecret", json!(demo_secret(1))).await, 40125, "invalid appsecret");
        assert_error(&with("component_appsecret", json!("")).await, 41004, "appsecret missing");
        assert_error(&without("component_appsecret").await, 41004, "appsecret missing");
        let ticket = "component ticket is invalid";
        assert_error(&with("component_verify_ticket", json!("ticket@@@stale")).await, 61006, ticket);
        assert_error(&with("component_verify_ticket", Value::Null).await, 61006, ticket);
        assert_error(&without("component_verify_ticket").await, 61006, ticket);
        assert_error(&with("component_verify_ticket", json!(7)).await, 47001, "data format error");
        assert_error(&c.post(COMPONENT, "{").await, 47001, "data format error");
        // The appid is checked first, then the secret, then the ticket.
        let all_wrong = json!({"component_appid": "wx0", "component_appsecret": "x", "component_verify_ticket": "y"});
        assert_error(&c.post(COMPONENT, all_wrong.to_string()).await, 40013, "invalid appid");
        assert_eq!(c.sim.stats().token_calls.component_token, 11);
        assert!(c.sim.issued_tokens().is_empty(), "no token for a refused call");
        let stable = c.post(COMPONENT, good.to_string()).await;
        assert!(stable["component_access_token"].is_string());
    }

    #[tokio::test]
    async fn authorizer_tokens_serve_the_accounts_data() {
        let c = Client::start(config()).await;
        let component = c.component().await;
        let first = demo_refresh_token(2);
        assert_eq!(c.sim.authorizer_refresh_token(&demo_appid(2)).as_deref(), Some(first.as_str()));
        let answer = c.authorizer_token(&component, 2, &first).await;
        assert_eq!(answer.as_object().unwrap().len(), 3, "{answer}");
        assert_eq!(answer["expires_in"], 7200);
        let access = str_of(&answer, "authorizer_access_token");
        let refresh = str_of(&answer, "authorizer_refresh_token");
        assert_eq!(access.len(), 136);
        assert!(refresh.starts_with("refreshtoken@@@") && refresh != first, "{refresh}");
        for endpoint in ["getupstreammsg", "getupstreammsgdist"] {
            let via_platform = c.datacube(endpoint, access, "2024-03-05", "2024-03-11").await;
            let direct = c.datacube(endpoint, &c.token(2).await, "2024-03-05", "2024-03-11").await;
            assert!(!via_platform["list"].as_array().unwrap().is_empty());
            assert_eq!(via_platform, direct, "{endpoint}: the same account's rows");
            let other = c.datacube(endpoint, &c.token(1).await, "2024-03-05", "2024-03-11").await;
            assert_ne!(via_platform, other, "{endpoint}: not another account's");
        }
        let stats = c.sim.stats();
        assert_eq!((stats.token_calls.component_token, stats.token_calls.authorizer_token), (1, 1));
        assert_eq!(stats.recent[0].appid.as_deref(), Some(demo_appid(2).as_str()));
        assert_eq!(stats.per_endpoint["getupstreammsg"], 3);
    }

    #[tokio::test]
    async fn refresh_tokens_rotate_at_every_use() {
        let c = Client::start(config()).await;
        let component = c.component().await;
        let appid = demo_appid(1);
        let first = demo_refresh_token(1);
        let answer = c.authorizer_token(&component, 1, &first).await;
        let second = str_of(&answer, "authorizer_refresh_token").to_string();
        assert_eq!(c.sim.authorizer_refresh_token(&appid), Some(second.clone()));
        // The old one is refused at once, and refusing it changes nothing.
        let refused = "refresh_token is invalid";
        assert_error(&c.authorizer_token(&component, 1, &first).await, 61023, refused);
        assert_eq!(c.sim.authorizer_refresh_token(&appid), Some(second.clone()));
        let answer = c.authorizer_token(&component, 1, &second).await;
        let third = str_of(&answer, "authorizer_refresh_token").to_string();
        assert_ne!(third, second);
        assert_error(&c.authorizer_token(&component, 1, &second).await, 61023, refused);
        assert_eq!(c.sim.authorizer_refresh_token(&appid), Some(third.clone()));
        // Accounts rotate independently, and one's token does not open another.
        assert_error(&c.authorizer_token(&component, 2, &third).await, 61023, refused);
        assert_eq!(c.sim.authorizer_refresh_token(&demo_appid(2)), Some(demo_refresh_token(2)));
        assert!(c.authorizer_token(&component, 2, &demo_refresh_token(2)).await["authorizer_access_token"].is_string());
        // A newer component token does not reset anything either.
        let newer = c.component().await;
        assert!(c.authorizer_token(&newer, 1, &third).await["authorizer_access_token"].is_string());
        assert_eq!(c.sim.authorizer_refresh_token(&demo_appid(4)), None, "not an account of this simulator");
        assert_eq!(c.sim.authorizer_refresh_token("wxcomponent0000001"), None);
    }

    #[tokio::test]
    async fn a_refresh_token_serves_one_of_two_concurrent_calls() {
        let c = Client::start(config()).await;
        let component = c.component().await;
        let first = demo_refresh_token(3);
        let (a, b) = tokio::join!(c.authorizer_token(&component, 3, &first), c.authorizer_token(&component, 3, &first));
        let won: Vec<&Value> = [&a, &b].into_iter().filter(|x| x["authorizer_refresh_token"].is_string()).collect();
        assert_eq!(won.len(), 1, "{a} {b}");
        let lost = if a["errcode"].is_null() { &b } else { &a };
        assert_error(lost, 61023, "refresh_token is invalid");
        assert_eq!(
            c.sim.authorizer_refresh_token(&demo_appid(3)).as_deref(),
            won[0]["authorizer_refresh_token"].as_str()
        );
    }

    #[tokio::test]
    async fn authorizer_token_errors() {
        let c = &Client::start(config()).await;
        let component = c.component().await;
        let good = json!({"component_appid": demo_component_appid(), "authorizer_appid": demo_appid(1),
            "authorizer_refresh_token": demo_refresh_token(1)});
        let call = |token: &str, body: Value| {
            let path = authorizer_path(token);
            async move { c.post(&path, body.to_string()).await }
        };
        let with = |k: &str, v: Value| {
            let mut b = good.clone();
            b[k] = v;
            call(&component, b)
        };
        let without = |k: &str| {
            let mut b = good.clone();
            b.as_object_mut().unwrap().remove(k);
            call(&component, b)
        };
        let bad_token = "invalid credential, access_token is invalid or not latest";
        assert_error(
            &c.post("/cgi-bin/component/api_authorizer_token", good.to_string()).await,
            41001,
            "access_token missing",
        );
        assert_error(&call("", good.clone()).await, 41001, "access_token missing");
        assert_error(&call("nope", good.clone()).await, 40001, bad_token);
        let account_token = c.token(1).await;
        assert_error(&call(&account_token, good.clone()).await, 61014, "must use component token for component api");
        // The token is checked before the body.
        assert_error(&c.post(&authorizer_path("nope"), "{").await, 40001, bad_token);
        assert_error(&c.post(&authorizer_path(&component), "{").await, 47001, "data format error");
        assert_error(&with("authorizer_appid", json!(1)).await, 47001, "data format error");
        assert_error(&without("component_appid").await, 41002, "appid missing");
        assert_error(&with("component_appid", json!("wxcomponent0000002")).await, 40013, "invalid appid");
        assert_error(&without("authorizer_appid").await, 41002, "appid missing");
        let unauthorized = "component is not authorized by this account";
        assert_error(&with("authorizer_appid", json!(demo_appid(4))).await, 61003, unauthorized);
        assert_error(&with("authorizer_appid", json!(demo_component_appid())).await, 61003, unauthorized);
        let refused = "refresh_token is invalid";
        assert_error(&without("authorizer_refresh_token").await, 61023, refused);
        assert_error(&with("authorizer_refresh_token", Value::Null).await, 61023, refused);
        assert_error(&with("authorizer_refresh_token", json!(demo_secret(1))).await, 61023, refused);
        assert_error(&with("authorizer_refresh_token", json!(demo_refresh_token(2))).await, 61023, refused);
        assert_eq!(c.sim.authorizer_refresh_token(&demo_appid(1)), Some(demo_refresh_token(1)), "nothing rotated");
        assert!(call(&component, good.clone()).await["authorizer_access_token"].is_string());
        assert_eq!(c.sim.stats().token_calls.authorizer_token, 17);
    }

    #[tokio::test]
    async fn component_tokens_expire_and_are_replaced() {
        let overlap = Duration::from_millis(300);
        let c = Client::start(SimConfig { token_ttl: Duration::from_millis(2500), token_overlap: overlap, ..config() })
            .await;
        let old = c.component().await;
        let new = c.component().await;
        let refresh = c.sim.authorizer_refresh_token(&demo_appid(1)).unwrap();
        assert!(c.authorizer_token(&old, 1, &refresh).await["authorizer_access_token"].is_string(), "in the overlap");
        tokio::time::sleep(overlap + Duration::from_millis(50)).await;
        let refresh = c.sim.authorizer_refresh_token(&demo_appid(1)).unwrap();
        let answer = c.authorizer_token(&old, 1, &refresh).await;
        assert_error(&answer, 40001, "invalid credential, access_token is invalid or not latest");
        assert!(c.authorizer_token(&new, 1, &refresh).await["authorizer_access_token"].is_string());
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let refresh = c.sim.authorizer_refresh_token(&demo_appid(1)).unwrap();
        assert_error(&c.authorizer_token(&new, 1, &refresh).await, 42001, "access_token expired");
        assert_eq!(c.sim.authorizer_refresh_token(&demo_appid(1)), Some(refresh), "a refused call rotates nothing");
    }

    #[tokio::test]
    async fn authorizer_access_tokens_are_account_tokens() {
        let overlap = Duration::from_millis(300);
        let c = Client::start(SimConfig { token_overlap: overlap, ..config() }).await;
        let component = c.component().await;
        let (old, _) = authorize(&c, &component, 1).await;
        let (new, _) = authorize(&c, &component, 1).await;
        let call = |t: &str| {
            let t = t.to_string();
            let c = &c;
            async move { c.datacube("getupstreammsg", &t, "2024-03-11", "2024-03-11").await }
        };
        assert!(call(&old).await["list"].is_array(), "the previous one works during the overlap");
        tokio::time::sleep(overlap + Duration::from_millis(50)).await;
        assert_error(&call(&old).await, 40001, "invalid credential, access_token is invalid or not latest");
        assert!(call(&new).await["list"].is_array());
        // Faults apply to them as to any account token.
        c.sim.set_faults(Faults { token_expires_after: Some(1), ..Faults::default() }).unwrap();
        assert!(call(&new).await["list"].is_array());
        assert_error(&call(&new).await, 42001, "access_token expired");
        assert_eq!(c.sim.stats().faults["token_expired"], 1);
        // A component token is not an account's.
        let refused = c.datacube("getupstreammsg", &component, "2024-03-11", "2024-03-11").await;
        assert_error(&refused, 61015, "must use biz account token for not component api");
        assert_eq!(c.sim.stats().recent.last().unwrap().appid, None);
    }

    #[tokio::test]
    async fn every_credential_handed_out_is_listed() {
        let c = Client::start(config()).await;
        let stable = c.token(1).await;
        let component = c.component().await;
        let answer = c.authorizer_token(&component, 2, &demo_refresh_token(2)).await;
        let (access, refresh) =
            (str_of(&answer, "authorizer_access_token"), str_of(&answer, "authorizer_refresh_token"));
        let again = c.authorizer_token(&component, 2, refresh).await;
        let (access2, refresh2) =
            (str_of(&again, "authorizer_access_token"), str_of(&again, "authorizer_refresh_token"));
        let tokens = c.sim.issued_tokens();
        assert_eq!(tokens, [stable.as_str(), &component, access, refresh, access2, refresh2]);
        let secrets = c.sim.issued_secrets();
        assert_eq!(&secrets[..tokens.len()], tokens.as_slice());
        for expected in [
            demo_component_secret(),
            demo_verify_ticket(),
            demo_secret(1),
            demo_refresh_token(1),
            demo_secret(2),
            demo_refresh_token(2),
        ] {
            assert!(secrets.contains(&expected), "{expected} missing");
        }
        assert!(!secrets.contains(&demo_secret(3)), "account 3 was never given a token");
        assert_eq!(secrets.len(), tokens.len() + 6);
    }

    /// `api_authorizer_token` for demo account 1 with `refresh`, whatever comes back: the
    /// answer, or `None` when the connection broke.
    async fn raw_authorizer(c: &Client, component: &str, refresh: &str) -> Option<Value> {
        let body = json!({"component_appid": demo_component_appid(), "authorizer_appid": demo_appid(1),
            "authorizer_refresh_token": refresh});
        let response = c.http.post(c.url(&authorizer_path(component))).body(body.to_string()).send().await.ok()?;
        serde_json::from_slice(&response.bytes().await.ok()?).ok()
    }

    #[tokio::test]
    async fn a_lost_answer_has_rotated_the_refresh_token_all_the_same() {
        let c = Client::start(SimConfig {
            faults: Faults { authorizer_lost: Trigger::count(1), ..Faults::default() },
            ..config()
        })
        .await;
        let component = c.component().await;
        let first = demo_refresh_token(1);
        assert_eq!(raw_authorizer(&c, &component, &first).await, None, "the connection is cut");
        let rotated = c.sim.authorizer_refresh_token(&demo_appid(1)).unwrap();
        assert_ne!(rotated, first, "the call was served");
        // The client that lost the answer only has the dead one.
        assert_error(&c.authorizer_token(&component, 1, &first).await, 61023, "refresh_token is invalid");
        assert!(c.authorizer_token(&component, 1, &rotated).await["authorizer_access_token"].is_string());
        let stats = c.sim.stats();
        assert_eq!(stats.faults["authorizer_lost"], 1);
        let seen: Vec<(i64, bool)> =
            stats.authorizer_requests.iter().map(|r| (r.errcode, r.stale_refresh_token)).collect();
        assert_eq!(seen, [(0, false), (61023, true), (0, false)]);
        assert_eq!(stats.authorizer_requests[0].faults, ["authorizer_lost"]);
        assert_eq!(stats.authorizer_requests[0].appid.as_deref(), Some(demo_appid(1).as_str()));
    }

    #[tokio::test]
    async fn a_busy_answer_rotates_nothing() {
        let c = Client::start(SimConfig {
            faults: Faults { authorizer_busy: Trigger::count(1), ..Faults::default() },
            ..config()
        })
        .await;
        let component = c.component().await;
        let first = demo_refresh_token(1);
        let busy = c.authorizer_token(&component, 1, &first).await;
        assert_error(&busy, -1, "system error");
        assert_eq!(c.sim.authorizer_refresh_token(&demo_appid(1)), Some(first.clone()));
        assert!(c.authorizer_token(&component, 1, &first).await["authorizer_access_token"].is_string());
        assert_eq!(c.sim.stats().faults["authorizer_busy"], 1);
    }

    #[tokio::test]
    async fn another_client_may_exchange_the_refresh_token_first() {
        let faults =
            Faults { refresh_used_elsewhere: Trigger::count(1), authorizer_latency_ms: 300, ..Faults::default() };
        let c = Client::start(SimConfig { faults, ..config() }).await;
        let component = c.component().await;
        let first = demo_refresh_token(1);
        let call = c.authorizer_token(&component, 1, &first);
        let watch = async {
            // The other client's exchange is visible while the call's answer is held back.
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.sim.authorizer_refresh_token(&demo_appid(1)).unwrap()
        };
        let (answer, theirs) = tokio::join!(call, watch);
        assert_error(&answer, 61023, "refresh_token is invalid");
        assert_ne!(theirs, first);
        assert_eq!(c.sim.authorizer_refresh_token(&demo_appid(1)), Some(theirs.clone()), "the refusal rotates nothing");
        assert!(c.authorizer_token(&component, 1, &theirs).await["authorizer_access_token"].is_string());
        let stats = c.sim.stats();
        assert_eq!(stats.authorizer_requests[0].faults, ["refresh_used_elsewhere"]);
        assert!(stats.authorizer_requests[0].stale_refresh_token);
    }

    #[tokio::test]
    async fn component_tokens_may_expire_sooner_than_account_tokens() {
        let c = Client::start(SimConfig { component_token_ttl: Some(Duration::from_secs(1)), ..config() }).await;
        let answer = c.component_token().await;
        assert_eq!(answer["expires_in"], 1);
        let component = str_of(&answer, "component_access_token").to_string();
        let (access, refresh) = authorize(&c, &component, 1).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_error(&c.authorizer_token(&component, 1, &refresh).await, 42001, "access_token expired");
        assert!(c.datacube("getupstreammsg", &access, "2024-03-11", "2024-03-11").await["list"].is_array());
    }

    #[tokio::test]
    async fn the_rotation_lives_as_long_as_the_simulator() {
        let c = Client::start(config()).await;
        let component = c.component().await;
        let (_, refresh) = authorize(&c, &component, 1).await;
        c.sim.set_faults(Faults { daily_quota: Some(1), ..Faults::default() }).unwrap();
        c.sim.reset_stats();
        assert_eq!(c.sim.authorizer_refresh_token(&demo_appid(1)), Some(refresh.clone()), "faults and stats reset");
        // Another simulator starts from the first ones again.
        let other = Simulator::start(config()).await.unwrap();
        assert_eq!(other.authorizer_refresh_token(&demo_appid(1)), Some(demo_refresh_token(1)));
    }
}
