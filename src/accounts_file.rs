//! `--config accounts.toml`: the accounts of a run and how each authenticates.
//!
//! Secrets are never written in the file: each account names the environment variable or the
//! file that holds its secret, and the file is refused if it holds one itself.
//!
//! ```toml
//! [[account]]                      # app secret, through stable_token
//! appid = "wx1234567890abcdef"
//! secret_env = "WX_SECRET_MAIN"    # or secret_file = "/run/secrets/wx_main"
//!
//! [[account]]                      # a token from a central token service
//! appid = "wxfedcba0987654321"
//! access_token_env = "WX_TOKEN_SHOP"   # or access_token_file
//!
//! [[account]]                      # authorised to a third-party platform
//! appid = "wx00aa11bb22cc33dd"
//! refresh_token_file = "/var/lib/wxcube/wx00aa11bb22cc33dd.refresh"   # rewritten on rotation
//!
//! [component]                      # the third-party platform itself
//! appid = "wxcomponent0000001"
//! secret_env = "COMPONENT_SECRET"
//! verify_ticket_env = "COMPONENT_VERIFY_TICKET"   # or access_token_env = "COMPONENT_TOKEN"
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use wxcube_connector::account::{Account, AppId, ComponentCredentials, Credentials, RefreshToken, Secret};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    account: Vec<AccountEntry>,
    component: Option<ComponentEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    appid: String,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    access_token_env: Option<String>,
    access_token_file: Option<PathBuf>,
    refresh_token_env: Option<String>,
    refresh_token_file: Option<PathBuf>,
    #[serde(default)]
    legacy_token_endpoint: bool,
    // Recognised only to refuse them with a useful message.
    secret: Option<toml::Value>,
    access_token: Option<toml::Value>,
    refresh_token: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentEntry {
    appid: String,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    verify_ticket_env: Option<String>,
    verify_ticket_file: Option<PathBuf>,
    access_token_env: Option<String>,
    access_token_file: Option<PathBuf>,
    secret: Option<toml::Value>,
}

/// Reads and checks the accounts file: every account's secret must be available now.
pub fn load(path: &Path) -> Result<Vec<Account>, String> {
    let where_ = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config {where_}: {e}"))?;
    let file: ConfigFile = toml::from_str(&text)
        .map_err(|e| format!("--config {where_}: {}", wxcube_connector::text::one_line(&e.to_string())))?;
    if file.account.is_empty() {
        return Err(format!("--config {where_}: no [[account]] entries"));
    }
    let component = file
        .component
        .map(|c| component(&c))
        .transpose()
        .map_err(|e| format!("--config {where_}: [component]: {e}"))?;
    let mut seen = BTreeSet::new();
    let mut accounts = Vec::new();
    for entry in &file.account {
        let appid = AppId::parse(entry.appid.trim()).map_err(|e| format!("--config {where_}: {e}"))?;
        if !seen.insert(appid.clone()) {
            return Err(format!("--config {where_}: account {appid} is listed twice"));
        }
        let credentials =
            credentials(entry, component.as_ref()).map_err(|e| format!("--config {where_}: account {appid}: {e}"))?;
        accounts.push(Account { appid, credentials });
    }
    Ok(accounts)
}

fn credentials(e: &AccountEntry, component: Option<&Arc<ComponentCredentials>>) -> Result<Credentials, String> {
    if e.secret.is_some() || e.access_token.is_some() || e.refresh_token.is_some() {
        return Err("secrets are never written in the config: use secret_env or secret_file (likewise access_token_*, refresh_token_*)".into());
    }
    let secret = one_of("secret", &e.secret_env, &e.secret_file)?;
    let token = one_of("access_token", &e.access_token_env, &e.access_token_file)?;
    let refresh = (e.refresh_token_env.is_some() || e.refresh_token_file.is_some()).then_some(());
    match (secret, token, refresh) {
        (Some(s), None, None) if e.legacy_token_endpoint => Ok(Credentials::LegacyToken(s)),
        (Some(s), None, None) => Ok(Credentials::StableToken(s)),
        (None, Some(t), None) => Ok(Credentials::AccessToken(t)),
        (None, None, Some(())) => {
            let component = component.ok_or("a refresh token needs a [component] section (the third-party platform)")?;
            let refresh = match &e.refresh_token_file {
                Some(path) => {
                    read_file(path)?;
                    RefreshToken::File(path.clone())
                }
                // The rotated token must be written back somewhere it survives the run.
                None => return Err("use refresh_token_file: the refresh token rotates on every use, and wxcube writes the new one back to that file".into()),
            };
            Ok(Credentials::Authorizer { component: component.clone(), refresh })
        }
        (None, None, None) => Err("no credentials: give secret_env or secret_file, access_token_env or access_token_file, or refresh_token_file".into()),
        _ => Err("give one way to authenticate: an app secret, an access token, or a refresh token".into()),
    }
}

fn component(c: &ComponentEntry) -> Result<Arc<ComponentCredentials>, String> {
    if c.secret.is_some() {
        return Err("secrets are never written in the config: use secret_env or secret_file".into());
    }
    let appid = AppId::parse(c.appid.trim())?;
    let secret = one_of("secret", &c.secret_env, &c.secret_file)?;
    let ticket = one_of("verify_ticket", &c.verify_ticket_env, &c.verify_ticket_file)?;
    let token = one_of("access_token", &c.access_token_env, &c.access_token_file)?;
    if token.is_none() && (secret.is_none() || ticket.is_none()) {
        return Err("give access_token_env/_file (a component access token), or secret_* with verify_ticket_*".into());
    }
    Ok(Arc::new(ComponentCredentials {
        appid,
        secret,
        verify_ticket: ticket,
        access_token: token,
        cache: Default::default(),
    }))
}

/// The secret named by `<what>_env` or `<what>_file`, if either is given (not both).
fn one_of(what: &str, env: &Option<String>, file: &Option<PathBuf>) -> Result<Option<Secret>, String> {
    match (env, file) {
        (Some(_), Some(_)) => Err(format!("give {what}_env or {what}_file, not both")),
        (Some(var), None) => read_env(var).map(Some),
        (None, Some(path)) => read_file(path).map(Some),
        (None, None) => Ok(None),
    }
}

fn read_env(var: &str) -> Result<Secret, String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
        _ => Err(format!("environment variable {var} is not set")),
    }
}

pub use wxcube_connector::account::read_secret_file as read_file;

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Vec<Account>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.toml");
        std::fs::write(&path, text).unwrap();
        load(&path).map_err(|e| e.replace(&path.display().to_string(), "F"))
    }

    #[test]
    fn accounts_and_their_credentials() {
        // SAFETY: tests in this module use their own variable names.
        unsafe { std::env::set_var("WXCUBE_TEST_SECRET_A", "s3cret-a") };
        let accounts = load_str(
            "[[account]]\nappid = \"wxa\"\nsecret_env = \"WXCUBE_TEST_SECRET_A\"\n\n[[account]]\nappid = \"wxb\"\nsecret_env = \"WXCUBE_TEST_SECRET_A\"\nlegacy_token_endpoint = true\n",
        )
        .unwrap();
        assert_eq!(accounts.len(), 2);
        assert!(matches!(&accounts[0].credentials, Credentials::StableToken(s) if s.expose() == "s3cret-a"));
        assert!(matches!(&accounts[1].credentials, Credentials::LegacyToken(_)));
    }

    #[test]
    fn refusals_name_the_problem() {
        let cases = [
            ("[[account]]\nappid = \"wxa\"\nsecret = \"x\"\n", "secrets are never written in the config"),
            (
                "[[account]]\nappid = \"wxa\"\nsecret_env = \"WXCUBE_TEST_UNSET_VAR\"\n",
                "WXCUBE_TEST_UNSET_VAR is not set",
            ),
            ("[[account]]\nappid = \"wxa\"\n", "account wxa: no credentials"),
            ("[[account]]\nappid = \"wx a\"\nsecret_file = \"/x\"\n", "is not an appid"),
            ("[[account]]\nappid = \"wxa\"\nrefresh_token_file = \"/x\"\n", "needs a [component] section"),
            ("[[account]]\nappid = \"wxa\"\nsecret_file = \"/nonexistent\"\n", "/nonexistent"),
            ("", "no [[account]] entries"),
            ("[[account]]\nappid = \"wxa\"\nsecretenv = \"X\"\n", "unknown field"),
        ];
        for (text, needle) in cases {
            let err = load_str(text).unwrap_err();
            assert!(err.starts_with("--config F: "), "{err}");
            assert!(err.contains(needle), "{err} should say {needle}");
            assert!(!err.contains('\n'));
        }
    }
}
