//! What an API error means, and what the connector does about it.
//!
//! The classes follow the error table of the API notes (`datacube-api.md`): retry what is
//! transient, renew a rejected token once, stop what is permanent at the right scope.

use std::time::Duration;

pub use crate::answer::{ApiError, meaning};

/// How far a failure reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// This request window only.
    Cell,
    /// This table, for this account, for the rest of the run (45009: quota used up today).
    TableForAccount,
    /// Every table of this table's family, for this account (48001: the account, or the
    /// third-party platform calling for it, is not authorised for the family).
    FamilyForAccount,
    /// Everything of this account (bad secret, no permission).
    Account,
}

/// What to do about a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Try again after a backoff (system busy, 5xx, timeouts, unreadable bodies).
    Transient,
    /// Try again once the next minute has begun (45011).
    RateLimited,
    /// The access token was refused: renew it once, then try again.
    TokenRejected,
    /// The window is wider than the server accepts (61501).
    RangeTooWide,
    /// Do not retry; fail at this scope.
    Permanent(Scope),
}

/// Classifies an API error code.
pub fn classify(code: i64) -> Class {
    match code {
        -1 => Class::Transient,
        45011 => Class::RateLimited,
        40001 | 40014 | 42001 => Class::TokenRejected,
        61501 => Class::RangeTooWide,
        45009 | 47009 => Class::Permanent(Scope::TableForAccount),
        48001 => Class::Permanent(Scope::FamilyForAccount),
        40013 | 40125 | 40164 | 89503 | 40002 | 41002 | 41004 | 61023 => Class::Permanent(Scope::Account),
        _ => Class::Permanent(Scope::Cell),
    }
}

/// Why a call failed, after classification.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Api(ApiError),
    /// Status, and the first bytes of a non-JSON body, with no URL in it.
    #[error("HTTP {status}{}", if .snippet.is_empty() { String::new() } else { format!(": {}", .snippet) })]
    Http { status: u16, snippet: String },
    /// Connection, timeout or body errors, already stripped of the URL (which carries the token).
    #[error("{0}")]
    Transport(String),
    /// The connection was refused or never established: unlike [`CallError::Transport`], the
    /// request certainly never reached the API.
    #[error("{0}")]
    NotSent(String),
    /// A body that is not the JSON the API promises.
    #[error("unreadable response: {0}")]
    Body(String),
    /// No usable token for the account.
    #[error("{0}")]
    Token(String),
    /// Not sent: the account (or the table for it, as `scope` says) failed while the request
    /// waited.
    #[error("{why}")]
    Skipped { why: String, scope: Scope },
    /// Abandoned: the run was asked to stop (SIGTERM, Ctrl-C).
    #[error("not fetched: the run was stopped")]
    Stopped,
}

impl CallError {
    pub fn class(&self) -> Class {
        match self {
            CallError::Api(e) => classify(e.code),
            CallError::Http { status: 429, .. } => Class::RateLimited,
            CallError::Http { status, .. } if *status >= 500 => Class::Transient,
            CallError::Http { .. } => Class::Permanent(Scope::Cell),
            CallError::Transport(_) | CallError::NotSent(_) | CallError::Body(_) => Class::Transient,
            CallError::Token(_) => Class::Permanent(Scope::Account),
            CallError::Stopped => Class::Permanent(Scope::Cell),
            CallError::Skipped { scope, .. } => Class::Permanent(*scope),
        }
    }

    /// How long to wait before the next try, for classes that wait for the clock rather than
    /// back off: 45011 resumes at the start of the next minute.
    pub fn wait_hint(&self, now_secs_in_minute: u32) -> Option<Duration> {
        (self.class() == Class::RateLimited).then(|| Duration::from_secs(u64::from(60 - now_secs_in_minute.min(59))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_error_table() {
        assert_eq!(classify(-1), Class::Transient);
        for c in [40001, 40014, 42001] {
            assert_eq!(classify(c), Class::TokenRejected);
        }
        assert_eq!(classify(48001), Class::Permanent(Scope::FamilyForAccount));
        for c in [40013, 40125, 40164, 89503, 61023] {
            assert_eq!(classify(c), Class::Permanent(Scope::Account), "{c}");
        }
        assert_eq!(classify(45009), Class::Permanent(Scope::TableForAccount));
        assert_eq!(classify(45011), Class::RateLimited);
        assert_eq!(classify(61501), Class::RangeTooWide);
        assert_eq!(classify(41001), Class::Permanent(Scope::Cell));
        assert_eq!(classify(61500), Class::Permanent(Scope::Cell));
        assert_eq!(classify(12345), Class::Permanent(Scope::Cell));
    }

    #[test]
    fn messages_read_as_fragments() {
        let e = ApiError { code: 45009, message: "reach max api daily quota limit rid: 1-2-3".into() };
        assert_eq!(
            e.to_string(),
            "errcode 45009 (daily quota for this API reached: retry tomorrow): reach max api daily quota limit rid: 1-2-3"
        );
        assert_eq!(ApiError { code: 9, message: String::new() }.to_string(), "errcode 9");
        assert_eq!(CallError::Http { status: 502, snippet: "<html>".into() }.to_string(), "HTTP 502: <html>");
        assert_eq!(CallError::Http { status: 503, snippet: "x".into() }.class(), Class::Transient);
    }

    #[test]
    fn rate_limit_waits_for_the_next_minute() {
        let e = CallError::Api(ApiError { code: 45011, message: String::new() });
        assert_eq!(e.wait_hint(45), Some(Duration::from_secs(15)));
        assert_eq!(e.wait_hint(0), Some(Duration::from_secs(60)));
        assert_eq!(CallError::Transport("x".into()).wait_hint(3), None);
    }
}
