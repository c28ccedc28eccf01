//! Access tokens as the real service hands them out.
//!
//! Three independent kinds per account, as the official documentation describes them:
//! - the *stable* token (`/cgi-bin/stable_token`): asking again returns the same token with its
//!   remaining lifetime; only `force_refresh` replaces it, and the old one stops working at once;
//! - the *classic* token (`/cgi-bin/token`): every call issues a new one, and the previous one
//!   keeps working only for a short overlap (5 minutes) — the cause of the "not latest" outages
//!   a client must survive;
//! - the *authorizer* token (`/cgi-bin/component/api_authorizer_token`), which a third-party
//!   platform gets on the account's behalf: like the classic one, every call issues a new one
//!   and the previous one lives on for the overlap. Datacube endpoints take it like any other.
//!
//! Beside them, the platform's own *component* token (`/cgi-bin/component/api_component_token`),
//! renewed like a classic one, which only the component endpoints accept ([`Holder`]), and each
//! account's *authorizer refresh token*, which the authorizer endpoint takes and **replaces at
//! every use**: the answer carries the new one, and the old one is refused from that moment
//! ([`TokenStore::authorizer`]). A client that does not keep the new one has lost the account.
//!
//! Two faults bend these rules (see [`TokenRules`]): with a *shared* overlap the account has one
//! current token for all three endpoints — as SDK bug trackers report when another service of
//! the account calls `/cgi-bin/token` — and every newer token, from any endpoint, retires all
//! older ones after that overlap; with a *use limit* a token answers 42001 once it has served
//! that many datacube calls, and `stable_token` hands out a fresh one. Component tokens and
//! refresh tokens follow neither.
//!
//! Lifetimes run on the monotonic clock (tokio's, so a test may pause it), not on the simulated
//! calendar, which only decides which dates have data.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

/// Whose a token is: an account's (stable, classic or authorizer token), good for the
/// account's APIs, or a third-party platform's (component token), good for the component APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    Account,
    Component,
}

/// What a presented token turns out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    /// Valid, for this appid (an account's, or a component's for [`TokenStore::check_component`]).
    Valid(String),
    /// Valid, but of the other [`Holder`]: 61015 where an account's token is needed, 61014 where
    /// a component token is.
    WrongHolder,
    /// Never issued, or long forgotten: 40001.
    Invalid,
    /// Replaced by a newer token, and past the overlap: 40001 as well ("not latest").
    NotLatest,
    /// Issued and not replaced, but past its lifetime: 42001.
    Expired,
    /// Past its use limit ([`TokenRules::max_uses`]): 42001 as well.
    UsedUp,
}

/// Fault rules for tokens, from [`super::Faults`]; the default is the real service's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenRules {
    /// One current token per account for all its endpoints; older ones retire after this long.
    pub shared_overlap: Option<Duration>,
    /// Datacube calls a token serves before it answers 42001.
    pub max_uses: Option<u64>,
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
    holder: Holder,
    expires_at: Instant,
    /// When a newer token made this one invalid (after the overlap).
    retired_at: Option<Instant>,
    /// Datacube calls served since the faults last changed.
    uses: u64,
}

#[derive(Debug)]
pub struct TokenStore {
    ttl: Duration,
    /// Lifetime of a new component token; `ttl` unless set apart.
    component_ttl: Duration,
    overlap: Duration,
    tokens: HashMap<String, Entry>,
    stable: HashMap<String, String>,
    classic: HashMap<String, String>,
    authorizer: HashMap<String, String>,
    /// Current component token per component appid.
    component: HashMap<String, String>,
    /// Current authorizer refresh token per account, once the first one was used.
    refresh: HashMap<String, String>,
    /// Refresh tokens that were exchanged, hence rotated away.
    used_refresh: HashSet<String>,
    /// Every token ever issued (access, component and refresh tokens), oldest first, for tests
    /// that look for leaks.
    history: Vec<String>,
}

/// The kinds of token a new one replaces the previous of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rolling {
    Classic,
    Authorizer,
    Component,
}

/// Expired tokens are remembered this long (to answer 42001 rather than 40001), then forgotten
/// so that a long-running simulator does not grow without bound.
const REMEMBER_EXPIRED: Duration = Duration::from_secs(3600);

impl TokenStore {
    pub fn new(ttl: Duration, overlap: Duration) -> Self {
        Self {
            ttl,
            component_ttl: ttl,
            overlap,
            tokens: HashMap::new(),
            stable: HashMap::new(),
            classic: HashMap::new(),
            authorizer: HashMap::new(),
            component: HashMap::new(),
            refresh: HashMap::new(),
            used_refresh: HashSet::new(),
            history: Vec::new(),
        }
    }

    /// Gives new component tokens a lifetime of their own.
    pub fn with_component_ttl(mut self, ttl: Duration) -> Self {
        self.component_ttl = ttl;
        self
    }

    /// `/cgi-bin/stable_token`: the account's current stable token, or a new one if there is
    /// none still usable or `force_refresh` asks for it.
    pub fn stable(&mut self, appid: &str, force_refresh: bool, now: Instant, rules: TokenRules) -> Issued {
        if !force_refresh
            && let Some(token) = self.stable.get(appid)
            && let Some(expires_in) = self.reusable(token, now, rules)
        {
            return Issued { token: token.clone(), expires_in };
        }
        let token = self.issue(appid, Holder::Account, now);
        match rules.shared_overlap {
            Some(overlap) => self.supersede(appid, &token, now + overlap),
            None => {
                if let Some(old) = self.stable.insert(appid.to_string(), token.clone()) {
                    self.retire(&old, now);
                }
            }
        }
        Issued { token, expires_in: self.ttl.as_secs() }
    }

    /// `/cgi-bin/token`: always a new token; the previous one lives on for the overlap only.
    pub fn classic(&mut self, appid: &str, now: Instant, rules: TokenRules) -> Issued {
        self.rolling(Rolling::Classic, appid, now, rules)
    }

    /// `/cgi-bin/component/api_component_token`: always a new component token; the previous
    /// one lives on for the overlap only. Fault rules do not apply to platforms.
    pub fn component(&mut self, component_appid: &str, now: Instant) -> Issued {
        self.rolling(Rolling::Component, component_appid, now, TokenRules::default())
    }

    /// `/cgi-bin/component/api_authorizer_token`: if `refresh_token` is the account's current
    /// authorizer refresh token (`initial` until it was first used), replaces it and returns a
    /// new authorizer access token with the new refresh token. The one presented is refused
    /// from now on. `None` for any other refresh token.
    pub fn authorizer(
        &mut self,
        appid: &str,
        refresh_token: &str,
        initial: &str,
        now: Instant,
        rules: TokenRules,
    ) -> Option<(Issued, String)> {
        if refresh_token != self.current_refresh(appid).unwrap_or(initial) {
            return None;
        }
        let issued = self.rolling(Rolling::Authorizer, appid, now, rules);
        self.used_refresh.insert(refresh_token.to_string());
        let refresh = new_refresh_token();
        self.history.push(refresh.clone());
        self.refresh.insert(appid.to_string(), refresh.clone());
        Some((issued, refresh))
    }

    /// The account's current authorizer refresh token, if its first one was used; before that,
    /// the first one is current.
    pub fn current_refresh(&self, appid: &str) -> Option<&str> {
        self.refresh.get(appid).map(String::as_str)
    }

    /// Whether `refresh_token` was exchanged already: a client presenting it again lost track
    /// of the rotation.
    pub fn was_exchanged(&self, refresh_token: &str) -> bool {
        self.used_refresh.contains(refresh_token)
    }

    /// An account's token presented to an account's API.
    pub fn check(&self, token: &str, now: Instant) -> TokenCheck {
        self.check_as(token, now, Holder::Account)
    }

    /// A component token presented to a component API.
    pub fn check_component(&self, token: &str, now: Instant) -> TokenCheck {
        self.check_as(token, now, Holder::Component)
    }

    fn check_as(&self, token: &str, now: Instant, holder: Holder) -> TokenCheck {
        match self.tokens.get(token) {
            None => TokenCheck::Invalid,
            Some(e) if e.retired_at.is_some_and(|at| now >= at) => TokenCheck::NotLatest,
            Some(e) if now >= e.expires_at => TokenCheck::Expired,
            Some(e) if e.holder != holder => TokenCheck::WrongHolder,
            Some(e) => TokenCheck::Valid(e.appid.clone()),
        }
    }

    /// Checks a token presented to an account's API other than datacube (the quota endpoint):
    /// as [`Self::use_token`] would, but without counting a use.
    pub fn peek_token(&self, token: &str, now: Instant, rules: TokenRules) -> TokenCheck {
        let check = self.check(token, now);
        if let TokenCheck::Valid(_) = check
            && let Some(entry) = self.tokens.get(token)
            && rules.max_uses.is_some_and(|max| entry.uses >= max)
        {
            return TokenCheck::UsedUp;
        }
        check
    }

    /// Checks a token presented to a datacube endpoint, and counts the call against it.
    pub fn use_token(&mut self, token: &str, now: Instant, rules: TokenRules) -> TokenCheck {
        let check = self.check(token, now);
        if let TokenCheck::Valid(_) = check
            && let Some(entry) = self.tokens.get_mut(token)
        {
            entry.uses += 1;
            if rules.max_uses.is_some_and(|max| entry.uses > max) {
                return TokenCheck::UsedUp;
            }
        }
        check
    }

    /// Forgets how often each token was used: a new use limit counts from now.
    pub fn reset_uses(&mut self) {
        self.tokens.values_mut().for_each(|e| e.uses = 0);
    }

    /// Every token issued so far, oldest first.
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// The remaining lifetime of `token` if `stable_token` may hand it out again.
    fn reusable(&self, token: &str, now: Instant, rules: TokenRules) -> Option<u64> {
        let TokenCheck::Valid(_) = self.check(token, now) else {
            return None;
        };
        let entry = self.tokens.get(token)?;
        let remaining = entry.expires_at.saturating_duration_since(now).as_secs();
        let used_up = rules.max_uses.is_some_and(|max| entry.uses >= max);
        (remaining > 0 && !used_up).then_some(remaining)
    }

    /// A new token of a kind where each call issues one, and the previous one lives on for the
    /// overlap (or, for accounts with a shared overlap, every older one for that).
    fn rolling(&mut self, kind: Rolling, appid: &str, now: Instant, rules: TokenRules) -> Issued {
        let holder = if kind == Rolling::Component { Holder::Component } else { Holder::Account };
        let token = self.issue(appid, holder, now);
        match rules.shared_overlap {
            Some(overlap) if holder == Holder::Account => self.supersede(appid, &token, now + overlap),
            _ => {
                let current = match kind {
                    Rolling::Classic => &mut self.classic,
                    Rolling::Authorizer => &mut self.authorizer,
                    Rolling::Component => &mut self.component,
                };
                if let Some(previous) = current.insert(appid.to_string(), token.clone()) {
                    self.retire(&previous, now + self.overlap);
                }
            }
        }
        Issued { token, expires_in: self.ttl_of(holder).as_secs() }
    }

    /// Makes `token` the account's current token for all three endpoints; the ones it replaces
    /// retire at `at`.
    fn supersede(&mut self, appid: &str, token: &str, at: Instant) {
        let replaced = [&mut self.stable, &mut self.classic, &mut self.authorizer]
            .map(|m| m.insert(appid.to_string(), token.to_string()));
        for old in replaced.into_iter().flatten() {
            self.retire(&old, at);
        }
    }

    fn retire(&mut self, token: &str, at: Instant) {
        if let Some(entry) = self.tokens.get_mut(token) {
            entry.retired_at = Some(entry.retired_at.map_or(at, |before| before.min(at)));
        }
    }

    fn issue(&mut self, appid: &str, holder: Holder, now: Instant) -> String {
        self.history.push(new_token(self.history.len() as u64 + 1));
        if self.history.len().is_multiple_of(1024) {
            self.forget_old(now);
        }
        let token = self.history.last().expect("just pushed").clone();
        let expires_at = now + self.ttl_of(holder);
        let entry = Entry { appid: appid.to_string(), holder, expires_at, retired_at: None, uses: 0 };
        self.tokens.insert(token.clone(), entry);
        token
    }

    fn ttl_of(&self, holder: Holder) -> Duration {
        match holder {
            Holder::Account => self.ttl,
            Holder::Component => self.component_ttl,
        }
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
    random_tail(format!("{}_", 80 + serial % 20), 136)
}

/// A random authorizer refresh token shaped like a real one: `refreshtoken@@@` and 43 URL-safe
/// characters. Random for the same reason as access tokens.
fn new_refresh_token() -> String {
    random_tail(super::accounts::refresh_token_prefix().to_string(), 58)
}

/// `head` followed by random URL-safe characters, `len` characters in all.
fn random_tail(mut head: String, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    while head.len() < len {
        head.push(ALPHABET[fastrand::usize(..ALPHABET.len())] as char);
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(7200);
    const OVERLAP: Duration = Duration::from_secs(300);
    const REAL: TokenRules = TokenRules { shared_overlap: None, max_uses: None };

    fn valid(appid: &str) -> TokenCheck {
        TokenCheck::Valid(appid.to_string())
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn stable_tokens_are_reused_until_forced() {
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        let a = s.stable("wxa", false, t0, REAL);
        assert_eq!(a.expires_in, 7200);
        assert_eq!(a.token.len(), 136);
        let again = s.stable("wxa", false, t0 + secs(100), REAL);
        assert_eq!(again, Issued { token: a.token.clone(), expires_in: 7100 });
        assert_ne!(s.stable("wxb", false, t0, REAL).token, a.token, "one token per account");
        let forced = s.stable("wxa", true, t0 + secs(200), REAL);
        assert_ne!(forced.token, a.token);
        assert_eq!(forced.expires_in, 7200);
        assert_eq!(s.check(&a.token, t0 + secs(200)), TokenCheck::NotLatest);
        assert_eq!(s.check(&forced.token, t0 + secs(201)), valid("wxa"));
    }

    #[test]
    fn stable_tokens_expire_and_are_replaced() {
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        let a = s.stable("wxa", false, t0, REAL);
        assert_eq!(s.check(&a.token, t0 + TTL), TokenCheck::Expired);
        let b = s.stable("wxa", false, t0 + TTL, REAL);
        assert_ne!(a.token, b.token);
        assert_eq!(s.check(&b.token, t0 + TTL), valid("wxa"));
    }

    #[test]
    fn classic_tokens_overlap_for_five_minutes() {
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        let a = s.classic("wxa", t0, REAL);
        let b = s.classic("wxa", t0 + secs(10), REAL);
        assert_ne!(a.token, b.token);
        assert_eq!(s.check(&a.token, t0 + secs(309)), valid("wxa"));
        assert_eq!(s.check(&a.token, t0 + secs(310)), TokenCheck::NotLatest);
        assert_eq!(s.check(&b.token, t0 + secs(310)), valid("wxa"));
        // The two kinds are independent: a classic call leaves the stable token alone.
        let st = s.stable("wxa", false, t0, REAL);
        s.classic("wxa", t0 + secs(20), REAL);
        assert_eq!(s.check(&st.token, t0 + secs(1000)), valid("wxa"));
        assert_eq!(s.check("nonsense", t0), TokenCheck::Invalid);
    }

    #[test]
    fn a_shared_token_retires_every_older_one() {
        let shared = TokenRules { shared_overlap: Some(Duration::ZERO), max_uses: None };
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        let st = s.stable("wxa", false, t0, shared);
        let other = s.stable("wxb", false, t0, shared);
        let classic = s.classic("wxa", t0 + secs(1), shared);
        assert_eq!(s.check(&st.token, t0 + secs(1)), TokenCheck::NotLatest, "retired at once");
        assert_eq!(s.check(&other.token, t0 + secs(1)), valid("wxb"), "other accounts keep theirs");
        // stable_token now hands out the account's current token: the classic one.
        assert_eq!(s.stable("wxa", false, t0 + secs(2), shared).token, classic.token);
        let forced = s.stable("wxa", true, t0 + secs(3), shared);
        assert_eq!(s.check(&classic.token, t0 + secs(3)), TokenCheck::NotLatest);
        assert_eq!(s.check(&forced.token, t0 + secs(3)), valid("wxa"));
        // With an overlap, the old one works until it ends.
        let later = TokenRules { shared_overlap: Some(secs(60)), max_uses: None };
        let newest = s.classic("wxa", t0 + secs(10), later);
        assert_eq!(s.check(&forced.token, t0 + secs(69)), valid("wxa"));
        assert_eq!(s.check(&forced.token, t0 + secs(70)), TokenCheck::NotLatest);
        assert_eq!(s.check(&newest.token, t0 + secs(70)), valid("wxa"));
    }

    #[test]
    fn tokens_are_used_up_after_n_calls() {
        let rules = TokenRules { shared_overlap: None, max_uses: Some(2) };
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        let a = s.stable("wxa", false, t0, rules);
        assert_eq!(s.use_token(&a.token, t0, rules), valid("wxa"));
        assert_eq!(s.stable("wxa", false, t0, rules).token, a.token, "still usable once more");
        assert_eq!(s.use_token(&a.token, t0, rules), valid("wxa"));
        assert_eq!(s.use_token(&a.token, t0, rules), TokenCheck::UsedUp);
        let b = s.stable("wxa", false, t0, rules);
        assert_ne!(b.token, a.token, "a used-up token is replaced");
        assert_eq!(s.use_token(&b.token, t0, rules), valid("wxa"));
        assert_eq!(s.use_token("nonsense", t0, rules), TokenCheck::Invalid);
        s.reset_uses();
        assert_eq!(s.use_token(&b.token, t0, rules), valid("wxa"));
        assert_eq!(s.use_token(&b.token, t0, REAL), valid("wxa"), "no limit, no expiry");
        assert_eq!(s.history(), [a.token, b.token]);
    }

    #[test]
    fn refresh_tokens_rotate_at_every_use() {
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        assert_eq!(s.current_refresh("wxa"), None);
        assert_eq!(s.authorizer("wxa", "wrong", "first", t0, REAL), None);
        let (a, second) = s.authorizer("wxa", "first", "first", t0, REAL).unwrap();
        assert_eq!((a.token.len(), a.expires_in), (136, 7200));
        assert!(second.starts_with("refreshtoken@@@") && second.len() == 58, "{second}");
        assert_eq!(s.current_refresh("wxa"), Some(second.as_str()));
        assert_eq!(s.authorizer("wxa", "first", "first", t0, REAL), None, "the first one is used up");
        assert!(s.was_exchanged("first") && !s.was_exchanged(&second) && !s.was_exchanged("wrong"));
        assert_eq!(s.authorizer("wxb", &second, "firstb", t0, REAL), None, "another account's");
        assert_eq!(s.check(&a.token, t0), valid("wxa"));
        let (b, third) = s.authorizer("wxa", &second, "first", t0 + secs(10), REAL).unwrap();
        assert_ne!((&b.token, &third), (&a.token, &second));
        // The previous access token lives on for the overlap, like a classic one.
        assert_eq!(s.check(&a.token, t0 + secs(309)), valid("wxa"));
        assert_eq!(s.check(&a.token, t0 + secs(310)), TokenCheck::NotLatest);
        assert_eq!(s.check(&b.token, t0 + secs(310)), valid("wxa"));
        assert_eq!(s.history(), [a.token, second, b.token, third]);
    }

    #[test]
    fn component_tokens_only_open_component_apis() {
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        let c = s.component("wxc", t0);
        let account = s.stable("wxa", false, t0, REAL);
        assert_eq!(s.check_component(&c.token, t0), valid("wxc"));
        assert_eq!(s.check(&c.token, t0), TokenCheck::WrongHolder);
        assert_eq!(s.check_component(&account.token, t0), TokenCheck::WrongHolder);
        let rules = TokenRules { shared_overlap: Some(Duration::ZERO), max_uses: Some(0) };
        assert_eq!(s.use_token(&c.token, t0, rules), TokenCheck::WrongHolder, "never counted");
        let newer = s.component("wxc", t0 + secs(1));
        assert_eq!(s.check_component(&c.token, t0 + secs(301)), TokenCheck::NotLatest);
        assert_eq!(s.check_component(&newer.token, t0 + secs(301)), valid("wxc"));
        assert_eq!(s.check_component(&newer.token, t0 + TTL + secs(1)), TokenCheck::Expired);
    }

    #[test]
    fn component_tokens_may_live_shorter() {
        let mut s = TokenStore::new(TTL, OVERLAP).with_component_ttl(secs(2));
        let t0 = Instant::now();
        let c = s.component("wxc", t0);
        assert_eq!(c.expires_in, 2);
        assert_eq!(s.check_component(&c.token, t0 + secs(1)), valid("wxc"));
        assert_eq!(s.check_component(&c.token, t0 + secs(2)), TokenCheck::Expired);
        let account = s.stable("wxa", false, t0, REAL);
        assert_eq!((account.expires_in, s.check(&account.token, t0 + secs(3))), (7200, valid("wxa")));
    }

    #[test]
    fn a_shared_token_includes_authorizer_tokens() {
        let shared = TokenRules { shared_overlap: Some(Duration::ZERO), max_uses: None };
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        let st = s.stable("wxa", false, t0, shared);
        let (auth, _) = s.authorizer("wxa", "r", "r", t0 + secs(1), shared).unwrap();
        assert_eq!(s.check(&st.token, t0 + secs(1)), TokenCheck::NotLatest);
        assert_eq!(s.stable("wxa", false, t0 + secs(2), shared).token, auth.token);
    }

    #[test]
    fn peeking_does_not_count_a_use() {
        let rules = TokenRules { shared_overlap: None, max_uses: Some(1) };
        let mut s = TokenStore::new(TTL, OVERLAP);
        let t0 = Instant::now();
        let a = s.stable("wxa", false, t0, rules);
        assert_eq!(s.peek_token(&a.token, t0, rules), valid("wxa"));
        assert_eq!(s.peek_token(&a.token, t0, rules), valid("wxa"));
        assert_eq!(s.use_token(&a.token, t0, rules), valid("wxa"));
        assert_eq!(s.peek_token(&a.token, t0, rules), TokenCheck::UsedUp, "its one call is served");
        assert_eq!(s.peek_token(&a.token, t0, REAL), valid("wxa"));
        assert_eq!(s.peek_token("nonsense", t0, rules), TokenCheck::Invalid);
    }

    #[test]
    fn old_tokens_are_forgotten() {
        let mut s = TokenStore::new(secs(1), OVERLAP);
        let t0 = Instant::now();
        for _ in 0..2048 {
            s.stable("wxa", true, t0, REAL);
        }
        let later = t0 + REMEMBER_EXPIRED + secs(2);
        for _ in 0..1024 {
            s.classic("wxb", later, REAL);
        }
        assert!(s.tokens.len() <= 1025, "{}", s.tokens.len());
        assert_eq!(s.history().len(), 3072, "the history keeps them all");
    }
}
