//! Resolves flags into a validated [`RunConfig`]: dates, tables, credentials, API base, output.
//!
//! Everything a user can get wrong is checked here, before the first request, and reported as
//! one [`UsageError`] line naming the problem and the fix (exit code 2).

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use url::Url;

use crate::accounts_file;
use crate::cli::{AccountArgs, ExtractArgs};
use wxcube_connector::account::{Account, AppId, Credentials, Secret};
use wxcube_connector::dates::{self, DATA_FLOOR, DateRange};
use wxcube_connector::extract::retry::RetryPolicy;
use wxcube_connector::run::{RangeSpec, RunConfig};
use wxcube_connector::write::store::OutputSpec;
use wxcube_registry as registry;

/// Bad usage or configuration: nothing was attempted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage<T>(message: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(message.into()))
}

/// Validates `args` as of `now`.
pub fn resolve(args: &ExtractArgs, now: DateTime<Utc>) -> Result<RunConfig, UsageError> {
    let now = args.today.map_or(now, dates::noon_in_beijing);
    let tables = registry::select(&args.tables).map_err(|e| UsageError(format!("--tables: {e}")))?;
    let latest = dates::latest_complete_day(now);
    let range = if args.incremental {
        let end = args.end.unwrap_or(latest);
        if end > latest {
            return usage(format!(
                "--end {end} is after the latest complete day {latest} (Beijing yesterday, or the day before until 08:00): use --end {latest} or leave --end out"
            ));
        }
        if let Some(start) = args.start_date
            && start > end
        {
            return usage(format!(
                "--start-date {start} is after the end {end}: an incremental run would have nothing to do; give an earlier --start-date"
            ));
        }
        RangeSpec::Incremental { start: args.start_date, lookback_days: args.lookback_days, end }
    } else {
        RangeSpec::Fixed(resolve_range(args, latest)?)
    };
    let output = OutputSpec::parse(&args.output).map_err(UsageError)?;
    let api_base = resolve_api_base(&args.account.api_base)?;
    let accounts = resolve_accounts(&args.account)?;
    Ok(RunConfig {
        tables,
        range,
        latest,
        accounts,
        account_concurrency: usize::from(args.account_concurrency),
        shard: args.shard,
        dry_run: args.dry_run,
        keep_raw: args.keep_raw,
        api_base,
        timeout: Duration::from_secs(args.account.timeout_secs),
        concurrency: usize::from(args.concurrency),
        retry: RetryPolicy { max_retries: args.max_retries, ..RetryPolicy::default() },
        output,
        buckets: args.buckets,
        format: args.format.map(Into::into),
        lease: Duration::from_secs(args.lease_secs),
        lease_wait: Duration::from_secs(args.lease_wait_secs),
    })
}

fn resolve_range(args: &ExtractArgs, latest: chrono::NaiveDate) -> Result<DateRange, UsageError> {
    let Some(begin) = args.begin else {
        return usage("--begin is missing: give the first date to extract, e.g. --begin 2024-03-01");
    };
    let end = args.end.unwrap_or(latest);
    if end > latest {
        return usage(format!(
            "--end {end} is after the latest complete day {latest} (Beijing yesterday, or the day before until 08:00): use --end {latest} or leave --end out"
        ));
    }
    if end < DATA_FLOOR {
        return usage(format!("--end {end} is before {DATA_FLOOR}, the first day the API holds data for"));
    }
    let Some(range) = DateRange::new(begin.max(DATA_FLOOR), end) else {
        return usage(format!("--begin {begin} is after --end {end}: swap them"));
    };
    if begin < DATA_FLOOR {
        tracing::warn!(begin = %begin, "the API holds no data before {DATA_FLOOR}; starting there");
    }
    Ok(range)
}

/// The API root: https, or plain http to a loopback address only (the simulator); never with
/// credentials or a query in it.
pub fn resolve_api_base(s: &str) -> Result<Url, UsageError> {
    let url = Url::parse(s)
        .map_err(|e| UsageError(format!("--api-base '{s}' is not a URL ({e}): use e.g. https://api.weixin.qq.com")))?;
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return usage("--api-base must be a plain https://host[:port][/path] with no credentials or query");
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => return usage(format!("--api-base '{s}' has no host")),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => usage(format!(
            "--api-base {url} is plain http: access tokens would travel in clear text; use https (plain http is allowed only on loopback)"
        )),
        other => usage(format!("--api-base scheme '{other}' is not supported: use https")),
    }
}

/// The accounts of a run: from `--config`, or the one given by flags.
pub fn resolve_accounts(args: &AccountArgs) -> Result<Vec<Account>, UsageError> {
    match &args.config {
        Some(path) => accounts_file::load(path).map_err(UsageError),
        None => Ok(vec![resolve_account(args)?]),
    }
}

fn resolve_account(args: &AccountArgs) -> Result<Account, UsageError> {
    let appid = match args.appid.as_deref() {
        Some(a) => AppId::parse(a.trim()).map_err(|e| UsageError(format!("--appid: {e}")))?,
        None if args.access_token.is_some() => {
            return usage("--access-token needs --appid (or WECHAT_APPID): the account is written in every row");
        }
        None => {
            return usage(
                "no credentials: give --appid with --secret (or WECHAT_APPID and WECHAT_SECRET), --appid with --access-token, or --config accounts.toml",
            );
        }
    };
    let secret = match (&args.secret, &args.secret_file) {
        (Some(_), Some(_)) => {
            return usage(
                "give the app secret once: --secret (WECHAT_SECRET) or --secret-file (WECHAT_SECRET_FILE), not both",
            );
        }
        (Some(s), None) => Some(Secret::new(s.trim())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("--secret-file {}: {e}", path.display())))?;
            Some(Secret::new(text.trim()))
        }
        (None, None) => None,
    };
    let credentials = match (secret, &args.access_token) {
        (Some(_), Some(_)) => {
            return usage("give either an app secret or --access-token (WECHAT_ACCESS_TOKEN), not both");
        }
        (Some(s), None) if s.expose().is_empty() => {
            return usage("the app secret is empty: check --secret, WECHAT_SECRET or --secret-file");
        }
        (Some(s), None) if args.legacy_token_endpoint => Credentials::LegacyToken(s),
        (Some(s), None) => Credentials::StableToken(s),
        (None, Some(t)) if t.trim().is_empty() => return usage("--access-token is empty"),
        (None, Some(t)) => Credentials::AccessToken(Secret::new(t.trim())),
        (None, None) => {
            return usage(format!(
                "no credentials for {appid}: give --secret (or WECHAT_SECRET, or --secret-file) or --access-token"
            ));
        }
    };
    Ok(Account { appid, credentials })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_rules() {
        assert!(resolve_api_base("https://api.weixin.qq.com").is_ok());
        assert!(resolve_api_base("http://127.0.0.1:8080").is_ok());
        assert!(resolve_api_base("http://localhost:1").is_ok());
        assert!(resolve_api_base("http://[::1]:1").is_ok());
        assert!(resolve_api_base("http://10.0.0.1").unwrap_err().0.contains("plain http"));
        assert!(resolve_api_base("http://example.com").unwrap_err().0.contains("plain http"));
        assert!(resolve_api_base("ftp://x").is_err());
        assert!(resolve_api_base("https://u:p@x").is_err());
        assert!(resolve_api_base("not a url").unwrap_err().0.starts_with("--api-base 'not a url' is not a URL"));
    }
}
