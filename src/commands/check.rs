//! `wxcube check` and `wxcube quota`: what an operator asks before (or instead of) a run.
//!
//! `check` gets each account's token and makes one cheap datacube call (one day of
//! `getupstreammsg`), so a bad secret, a missing IP whitelist entry or a missing permission
//! shows up with its fix before a scheduled run fails on it. `quota` reports each account's
//! daily quota for every table's endpoint (`/cgi-bin/openapi/quota/get`).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::CheckArgs;
use crate::config::{UsageError, resolve_accounts, resolve_api_base};
use crate::exit::{Done, Failure};
use wxcube_connector::answer::{api_error, parse_object};
use wxcube_connector::extract::errors::CallError;
use wxcube_connector::extract::http::ApiClient;
use wxcube_connector::extract::retry::RetryPolicy;
use wxcube_connector::extract::{AccountSession, Extractor};
use wxcube_registry as registry;

#[derive(Serialize)]
struct CheckLine {
    appid: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct QuotaLine {
    appid: String,
    table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    daily_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    used: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remain: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn extractor(args: &CheckArgs) -> Result<(Extractor, Vec<AccountSession>), UsageError> {
    let accounts = resolve_accounts(&args.account)?;
    let base = resolve_api_base(&args.account.api_base)?;
    let api = Arc::new(ApiClient::new(base, Duration::from_secs(args.account.timeout_secs)).map_err(UsageError)?);
    let (_, never) = tokio::sync::watch::channel(false);
    let retry = RetryPolicy { max_retries: 2, ..RetryPolicy::default() };
    let extractor = Extractor::new(api, retry, 8, never);
    let sessions = accounts.into_iter().map(|a| extractor.session(a, 2)).collect();
    Ok((extractor, sessions))
}

/// Prints one line per account and a JSON line last; exit 0 when every account is fine.
pub async fn check(args: &CheckArgs, out: &mut impl Write) -> Result<Done, Failure> {
    let (extractor, sessions) = extractor(args)?;
    let latest = wxcube_connector::dates::latest_complete_day(chrono::Utc::now());
    let table = registry::find("getupstreammsg").expect("the registry has getupstreammsg");
    let lines: Vec<CheckLine> = futures::future::join_all(sessions.iter().map(|s| async {
        let error = match s.tokens.get().await {
            Err(e) => Some(format!("access token: {e}")),
            Ok(_) => extractor
                .fetch_periods(s, table, &[latest], &AtomicU64::new(0))
                .await
                .err()
                .map(|f| format!("{} {latest}: {}", table.endpoint, f.error)),
        };
        CheckLine { appid: s.appid.to_string(), ok: error.is_none(), error }
    }))
    .await;
    for l in &lines {
        match &l.error {
            None => writeln!(out, "{}  ok: token and {} answered", l.appid, table.endpoint)?,
            Some(e) => writeln!(out, "{}  FAILED: {e}", l.appid)?,
        }
    }
    writeln!(out, "{}", json!({ "accounts": lines }))?;
    Ok(if lines.iter().all(|l| l.ok) { Done::Complete } else { Done::Partial })
}

/// Prints each account's quota per table and a JSON line last.
pub async fn quota(args: &CheckArgs, out: &mut impl Write) -> Result<Done, Failure> {
    let (extractor, sessions) = extractor(args)?;
    let mut lines = Vec::new();
    for s in &sessions {
        let token = s.tokens.get().await;
        for t in registry::tables() {
            let mut line = QuotaLine {
                appid: s.appid.to_string(),
                table: t.name.clone(),
                daily_limit: None,
                used: None,
                remain: None,
                error: None,
            };
            match &token {
                Err(e) => line.error = Some(format!("access token: {e}")),
                Ok(token) => match quota_of(&extractor, token.expose(), &t.endpoint).await {
                    Ok(q) => {
                        let field = |k: &str| q.get(k).and_then(Value::as_i64);
                        (line.daily_limit, line.used, line.remain) =
                            (field("daily_limit"), field("used"), field("remain"));
                    }
                    Err(e) => line.error = Some(e.to_string()),
                },
            }
            lines.push(line);
        }
    }
    writeln!(out, "{:<20} {:<26} {:>11} {:>8} {:>8}", "appid", "table", "daily_limit", "used", "remain")?;
    for l in &lines {
        match &l.error {
            None => {
                let n = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
                writeln!(
                    out,
                    "{:<20} {:<26} {:>11} {:>8} {:>8}",
                    l.appid,
                    l.table,
                    n(l.daily_limit),
                    n(l.used),
                    n(l.remain)
                )?
            }
            Some(e) => writeln!(out, "{:<20} {:<26} FAILED: {e}", l.appid, l.table)?,
        }
    }
    writeln!(out, "{}", json!({ "quota": lines }))?;
    Ok(if lines.iter().all(|l| l.error.is_none()) { Done::Complete } else { Done::Partial })
}

async fn quota_of(
    extractor: &Extractor,
    token: &str,
    endpoint: &str,
) -> Result<serde_json::Map<String, Value>, CallError> {
    let body = json!({ "cgi_path": format!("/datacube/{endpoint}") });
    let bytes = extractor.api().post_json("/cgi-bin/openapi/quota/get", &[("access_token", token)], &body).await?;
    let object = parse_object(&bytes).map_err(|e| CallError::Body(e.to_string()))?;
    if let Some(err) = api_error(&object).map_err(|e| CallError::Body(e.to_string()))? {
        return Err(CallError::Api(err));
    }
    match object.get("quota") {
        Some(Value::Object(q)) => Ok(q.clone()),
        _ => Err(CallError::Body("answer has no quota".into())),
    }
}
