//! Access tokens as the real service hands them out.
//!
//! Two independent kinds per account, as on the real service:
//! - the *stable* token (`/cgi-bin/stable_token`): asking again returns the same token with its
//!   remaining lifetime; only `force_refresh` replaces it, and the old one stops working at once;
//! - the *classic* token (`/cgi-bin/token`): every call issues a new one, and the previous one
//!   keeps working only for a short overlap (5 minutes) — the cause of the "not latest" outages
//!   a client must survive.
//!
//! Lifetimes run on the monotonic clock (tokio's, so a test may pause it), not on the simulated
//! calendar, which only decides which dates have data.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// What a presented token turns out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    /// Valid, for this appid.
    Valid(String),
    /// Never issued, replaced, or past its overlap: 40001.
    Invalid,
    /// Issued and not replaced, but past its lifetime: 42001.
    Expired,
}

/// A token handed out, with its remaining lifetime in whole seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub token: String,
    pub expires_in: u64,
}

#[derive(Debug)]
struct Entry {
    appid: String,
    expires_at: Instant,
    /// When a newer classic token made this one invalid (after the overlap).
    retired_at: Option<Instant>,
}

#[derive(Debug)]
pub struct TokenStore {
    ttl: Duration,
    overlap: Duration,
    tokens: HashMap<String, Entry>,
    stable: HashMap<String, String>,
    classic: HashMap<String, String>,
    issued: u64,
}

/// Expired tokens are remembered this long (to answer 42001 rather than 40001), then forgotten
/// so that a long-running simulator does not grow without bound.
const REMEMBER_EXPIRED: Duration = Duration::from_secs(3600);

impl TokenStore {
    pub fn new(ttl: Duration, overlap: Duration) -> Self {
        Self { ttl, overlap, tokens: HashMap::new(), stable: HashMap::new(), classic: HashMap::new(), issued: 0 }
    }

    /// `/cgi-bin/stable_token`: the account's current stable token, or a new one if there is
    /// none still valid or `force_refresh` asks for it.
    pub fn stable(&mut self, appid: &str, force_refresh: bool, now: Instant) -> Issued {
        if let Some(token) = self.stable.get(appid) {
            let remaining = self.tokens.get(token).map_or(0, |e| e.expires_at.saturating_duration_since(now).as_secs());
            if !force_refresh && remaining > 0 {
                return Issued { token: token.clone(), expires_in: remaining };
            }
            let old = token.clone();
            self.tokens.remove(&old);
        }
        let token = self.issue(appid, now);
        self.stable.insert(appid.to_string(), token.clone());
        Issued { token, expires_in: self.ttl.as_secs() }
    }

    /// `/cgi-bin/token`: always a new token; the previous one lives on for the overlap only.
    pub fn classic(&mut self, appid: &str, now: Instant) -> Issued {
        let token = self.issue(appid, now);
        if let Some(previous) = self.classic.insert(appid.to_string(), token.clone())
            && let Some(entry) = self.tokens.get_mut(&previous)
        {
            entry.retired_at = Some(now + self.overlap);
        }
        Issued { token, expires_in: self.ttl.as_secs() }
    }

    pub fn check(&self, token: &str, now: Instant) -> TokenCheck {
        match self.tokens.get(token) {
            None => TokenCheck::Invalid,
            Some(e) if e.retired_at.is_some_and(|at| now >= at) => TokenCheck::Invalid,
            Some(e) if now >= e.expires_at => TokenCheck::Expired,
            Some(e) => TokenCheck::Valid(e.appid.clone()),
        }
    }

    fn issue(&mut self, appid: &str, now: Instant) -> String {
        self.issued += 1;
        if self.issued.is_multiple_of(1024) {
            self.forget_old(now);
        }
        let token = new_token(self.issued);
        let entry = Entry { appid: appid.to_string(), expires_at: now + self.ttl, retired_at: None };
        self.tokens.insert(token.clone(), entry);
        token
    }

    fn forget_old(&mut self, now: Instant) {
        self.tokens.retain(|_, e| {
            let dead_since = e.retired_at.map_or(e.expires_at, |r| r.min(e.expires_at));
            now.saturating_duration_since(dead_since) < REMEMBER_EXPIRED
        });
    }
}

/// A random token shaped like a real one: a short numeric prefix, an underscore, and URL-safe
/// characters, 136 in all. Random rather than derived, so that no two simulators (or runs)
/// hand out the same token and a client cannot get away with caching one across them.
fn new_token(serial: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut token = format!("{}_", 80 + serial % 20);
    while token.len() < 136 {
        token.push(ALPHABET[fastrand::usize(..ALPHABET.len())] as char);
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(7200);
    const OVERLAP: Duration = Duration::from_secs(300);

    fn valid(appid: &str) -> TokenCheck {
        TokenCheck::Valid(appid.to_string())
    }

    #[test]
    fn stable_tokens_are_reused_until_forced() {
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        let a = s.stable("wxa", false, t0);
        assert_eq!(a.expires_in, 7200);
        assert_eq!(a.token.len(), 136);
        let again = s.stable("wxa", false, t0 + Duration::from_secs(100));
        assert_eq!(again, Issued { token: a.token.clone(), expires_in: 7100 });
        assert_ne!(s.stable("wxb", false, t0).token, a.token, "one token per account");
        let forced = s.stable("wxa", true, t0 + Duration::from_secs(200));
        assert_ne!(forced.token, a.token);
        assert_eq!(forced.expires_in, 7200);
        assert_eq!(s.check(&a.token, t0 + Duration::from_secs(201)), TokenCheck::Invalid);
        assert_eq!(s.check(&forced.token, t0 + Duration::from_secs(201)), valid("wxa"));
    }

    #[test]
    fn stable_tokens_expire_and_are_replaced() {
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        let a = s.stable("wxa", false, t0);
        assert_eq!(s.check(&a.token, t0 + TTL), TokenCheck::Expired);
        let b = s.stable("wxa", false, t0 + TTL);
        assert_ne!(a.token, b.token);
        assert_eq!(s.check(&b.token, t0 + TTL), valid("wxa"));
    }

    #[test]
    fn classic_tokens_overlap_for_five_minutes() {
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        let a = s.classic("wxa", t0);
        let b = s.classic("wxa", t0 + Duration::from_secs(10));
        assert_ne!(a.token, b.token);
        assert_eq!(s.check(&a.token, t0 + Duration::from_secs(309)), valid("wxa"));
        assert_eq!(s.check(&a.token, t0 + Duration::from_secs(310)), TokenCheck::Invalid);
        assert_eq!(s.check(&b.token, t0 + Duration::from_secs(310)), valid("wxa"));
        // The two kinds are independent: a classic call leaves the stable token alone.
        let st = s.stable("wxa", false, t0);
        s.classic("wxa", t0 + Duration::from_secs(20));
        assert_eq!(s.check(&st.token, t0 + Duration::from_secs(1000)), valid("wxa"));
        assert_eq!(s.check("nonsense", t0), TokenCheck::Invalid);
    }

    #[test]
    fn old_tokens_are_forgotten() {
        let mut s = TokenStore::new(Duration::from_secs(1), OVERLAP);
        let t0 = Instant::now();
        for _ in 0..2048 {
            s.stable("wxa", true, t0);
        }
        let later = t0 + REMEMBER_EXPIRED + Duration::from_secs(2);
        for _ in 0..1024 {
            s.classic("wxb", later);
        }
        assert!(s.tokens.len() <= 1025, "{}", s.tokens.len());
    }
}
