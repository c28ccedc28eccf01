//! Tokens of accounts authorised to a third-party platform: the platform's component token,
//! and each account's access token from its refresh token.

use std::time::Duration;

use serde_json::json;

use super::errors::CallError;
use super::http::ApiClient;
use super::token::{lifetime, read_answer, string_field};
use crate::account::{AppId, ComponentCredentials, RefreshToken, Secret};

/// The component access token: given from outside, or fetched once per run with the
/// platform's secret and verify ticket and shared by every account of the platform.
async fn component_token(api: &ApiClient, component: &ComponentCredentials) -> Result<Secret, CallError> {
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
    let body = api.post_json("/cgi-bin/component/api_component_token", &[], &request).await?;
    let object = read_answer(&body)?;
    let token = string_field(&object, "component_access_token")?;
    *cache = Some(token.clone());
    Ok(token)
}

/// An authorizer access token, from the stored refresh token; the rotated refresh token is
/// written back before the access token is used, so a crash cannot lose it.
pub(super) async fn authorizer_token(
    api: &ApiClient,
    appid: &AppId,
    component: &ComponentCredentials,
    refresh: &RefreshToken,
) -> Result<(Secret, Duration), CallError> {
    let component_token = component_token(api, component).await?;
    let RefreshToken::File(path) = refresh;
    let current = crate::accounts_file::read_file(path).map_err(|e| CallError::Token(format!("refresh token: {e}")))?;
    let request = json!({
        "component_appid": component.appid.as_str(),
        "authorizer_appid": appid.as_str(),
        "authorizer_refresh_token": current.expose(),
    });
    let query = [("component_access_token", component_token.expose())];
    let body = api.post_json("/cgi-bin/component/api_authorizer_token", &query, &request).await?;
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
