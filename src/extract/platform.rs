//! Tokens of accounts authorised to a third-party platform: the platform's component token,
//! and each account's access token from its refresh token.
//!
//! The component token is shared by every account of the platform and lives two hours like an
//! account's token: it is renewed a margin before its `expires_in` runs out, and when
//! `api_authorizer_token` refuses it (40001, 40014, 42001) — dropped only if it is still the
//! current one, then fetched again, for as long as renewing makes progress
//! ([`Renewals`]). A component token given from outside cannot be renewed: the account fails
//! with a message saying so.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::errors::{CallError, Class};
use super::http::ApiClient;
use super::token::{HeldToken, Rejection, Renewals, lifetime, passed_token_check, read_answer, string_field};
use crate::account::{AppId, ComponentCredentials, RefreshToken, Secret};

/// An authorizer access token for `appid`, and its lifetime.
pub(super) async fn authorizer_token(
    api: &ApiClient,
    appid: &AppId,
    component: &ComponentCredentials,
    refresh: &RefreshToken,
) -> Result<(Secret, Duration), CallError> {
    let mut renewals = Renewals::default();
    loop {
        let component_token = component_token(api, component).await?;
        let error = match exchange(api, appid, component, &component_token, refresh).await {
            Err(error) if error.class() == Class::TokenRejected => error,
            done => return done,
        };
        let rejection = match component.access_token {
            Some(_) => Rejection::Given,
            None => component.cache.reject(&component_token).await,
        };
        if let Rejection::Given = rejection {
            return Err(CallError::Token(format!(
                "the component access token given was refused ({error}) and cannot be renewed: pass a fresh one through the [component] section's access_token_env or access_token_file"
            )));
        }
        renewals
            .refused(&rejection)
            .map_err(|why| CallError::Token(format!("the component access token was refused ({error}); {why}")))?;
        if let Rejection::Dropped(_) = rejection {
            tracing::info!(component = %component.appid, error = %error, "component access token refused, renewing it");
        }
    }
}

/// The component access token: given from outside, or the platform's current one, fetched
/// with its secret and verify ticket when there is none or it is due for renewal.
async fn component_token(api: &ApiClient, component: &ComponentCredentials) -> Result<Arc<HeldToken>, CallError> {
    if let Some(token) = &component.access_token {
        return Ok(Arc::new(HeldToken::given(token.clone())));
    }
    component.cache.get_or_fetch(async || fetch_component_token(api, component).await).await
}

async fn fetch_component_token(
    api: &ApiClient,
    component: &ComponentCredentials,
) -> Result<(Secret, Duration), CallError> {
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
    let body = api.post_json("/cgi-bin/component/api_component_token", &[], &request).await?;
    let object = read_answer(&body)?;
    Ok((string_field(&object, "component_access_token")?, lifetime(&object)))
}

/// One `api_authorizer_token` call with the stored refresh token; the rotated refresh token is
/// written back before the access token is used, so a crash cannot lose it.
async fn exchange(
    api: &ApiClient,
    appid: &AppId,
    component: &ComponentCredentials,
    component_token: &Arc<HeldToken>,
    refresh: &RefreshToken,
) -> Result<(Secret, Duration), CallError> {
    let RefreshToken::File(path) = refresh;
    let current = crate::accounts_file::read_file(path).map_err(|e| CallError::Token(format!("refresh token: {e}")))?;
    let request = json!({
        "component_appid": component.appid.as_str(),
        "authorizer_appid": appid.as_str(),
        "authorizer_refresh_token": current.expose(),
    });
    let sending = component_token.send();
    let query = [("component_access_token", component_token.expose())];
    let answer = api
        .post_json("/cgi-bin/component/api_authorizer_token", &query, &request)
        .await
        .and_then(|body| read_answer(&body));
    if passed_token_check(&answer) {
        sending.accepted();
    }
    let object = answer?;
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
    Ok((token, lifetime(&object)))
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
