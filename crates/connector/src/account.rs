//! Accounts and their credentials.
//!
//! A [`Secret`] never shows its value through `Debug` or `Display`, so an app secret or access
//! token cannot reach a log line, an error message or a panic by accident: the only way to the
//! value is [`Secret::expose`], used where the value goes on the wire.

use std::fmt;
use std::sync::Arc;

/// A WeChat Official Account id (`wx` followed by 16 hex digits for real accounts).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppId(String);

impl AppId {
    /// Accepts ids of 1 to 64 ASCII letters, digits, `_` or `-`: they become file contents and
    /// log fields, so nothing else is let through.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok =
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!("'{s}' is not an appid: expected letters and digits such as wx1234567890abcdef"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A credential: an app secret, an access token, a refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the request that needs it. Never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How an account gets its access token.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// A token handed in from outside (a central token service, an Airflow connection), used as
    /// is; wxcube cannot renew it.
    AccessToken(Secret),
    /// App secret through `/cgi-bin/stable_token` in normal mode: returns the current token and
    /// never invalidates one another service holds.
    StableToken(Secret),
    /// App secret through the legacy `/cgi-bin/token`, which invalidates every other holder's
    /// token: only on explicit request.
    LegacyToken(Secret),
    /// An account authorised to a third-party platform: its token comes from
    /// `api_authorizer_token` with the authoriser's refresh token, which rotates on every use.
    Authorizer { component: Arc<ComponentCredentials>, refresh: RefreshToken },
}

/// A third-party platform's own credentials.
#[derive(Debug)]
pub struct ComponentCredentials {
    pub appid: AppId,
    pub secret: Option<Secret>,
    /// Pushed to the platform's webhook every 10 minutes; a batch job takes it from outside.
    pub verify_ticket: Option<Secret>,
    /// A component access token from outside, used instead of secret + ticket.
    pub access_token: Option<Secret>,
    /// The component access token fetched by this run, shared by every authorised account of
    /// the platform and renewed as it expires.
    pub cache: crate::extract::token::TokenSlot,
}

/// Where an authoriser's refresh token lives. It rotates on every use, and the rotated one
/// must be kept, or the account is lost once the old one lapses.
#[derive(Clone, Debug)]
pub enum RefreshToken {
    /// A file holding the token, rewritten atomically (and readable by its owner only) with
    /// each rotation.
    File(std::path::PathBuf),
}

/// The secret a file holds (surrounding whitespace ignored); an empty file is an error.
pub fn read_secret_file(path: &std::path::Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if text.trim().is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(text.trim()))
}

#[derive(Clone, Debug)]
pub struct Account {
    pub appid: AppId,
    pub credentials: Credentials,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_format() {
        let s = Secret::new("hunter2");
        assert_eq!(
            format!("{s} {s:?} {:?}", Credentials::StableToken(s.clone())),
            "*** Secret(***) StableToken(Secret(***))"
        );
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn appids() {
        assert!(AppId::parse("wx1234567890abcdef").is_ok());
        assert!(AppId::parse("wx 1").is_err());
        assert!(AppId::parse("").is_err());
        assert!(AppId::parse("../etc").is_err());
    }
}
