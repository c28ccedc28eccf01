//! The simulator's demo accounts and their credentials.
//!
//! Account `i` (1-based) has appid `wxdemo` followed by `i` in twelve digits — eighteen
//! characters, shaped like a real appid — and a 32-character secret, shaped like a real
//! AppSecret. They are public on purpose: the simulator is a local stand-in, and the demo, the
//! tests and anyone trying wxcube need them without set-up. Credentials are derived, not stored,
//! so a simulator with 5 000 accounts costs nothing.
//!
//! There is also one demo *third-party platform* (a "component", in the API's words) to which
//! every demo account is authorised: appid [`demo_component_appid`], secret
//! [`demo_component_secret`], and a `component_verify_ticket` that never expires,
//! [`demo_verify_ticket`] (the real one is pushed to the platform's webhook every 10 minutes).
//! Account `i`'s first authorizer refresh token is [`demo_refresh_token`]`(i)`; the simulator
//! replaces it at every use (see [`super::RunningSimulator::authorizer_refresh_token`]).

const APPID_PREFIX: &str = "wxdemo";
const SECRET_PREFIX: &str = "demosecret";
const COMPONENT_APPID: &str = "wxcomponent0000001";
const COMPONENT_SECRET: &str = "componentsecret00000000000000001";
const VERIFY_TICKET: &str = "ticket@@@demoverifyticket-component0000001-neverexpires";
const REFRESH_PREFIX: &str = "refreshtoken@@@";

/// The appid of demo account `i` (1-based), e.g. `wxdemo000000000001`.
pub fn demo_appid(i: usize) -> String {
    format!("{APPID_PREFIX}{i:012}")
}

/// The secret of demo account `i` (1-based).
pub fn demo_secret(i: usize) -> String {
    format!("{SECRET_PREFIX}{i:022}")
}

/// The appid of the demo third-party platform, `wxcomponent0000001`: eighteen characters, like
/// an account's.
pub fn demo_component_appid() -> String {
    COMPONENT_APPID.to_string()
}

/// The demo platform's `component_appsecret`, 32 characters like an AppSecret.
pub fn demo_component_secret() -> String {
    COMPONENT_SECRET.to_string()
}

/// The demo platform's `component_verify_ticket`, shaped like a real one (`ticket@@@…`). It is
/// always valid: the simulator does not push tickets.
pub fn demo_verify_ticket() -> String {
    VERIFY_TICKET.to_string()
}

/// Demo account `i`'s first `authorizer_refresh_token`, e.g. `refreshtoken@@@demo000000000001`
/// (the appid without its `wx`): valid until its first use, which replaces it.
pub fn demo_refresh_token(i: usize) -> String {
    format!("{REFRESH_PREFIX}{}", &demo_appid(i)[2..])
}

/// The start of every authorizer refresh token the simulator knows.
pub(super) fn refresh_token_prefix() -> &'static str {
    REFRESH_PREFIX
}

/// The demo accounts a simulator with `count` accounts knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accounts {
    count: usize,
}

impl Accounts {
    pub fn new(count: usize) -> Self {
        Self { count }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// The account number of `appid`, if it is one of ours. Only the canonical spelling counts,
    /// as a real appid is matched exactly.
    pub fn index_of(&self, appid: &str) -> Option<usize> {
        let digits = appid.strip_prefix(APPID_PREFIX)?;
        if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let i: usize = digits.parse().ok()?;
        (1..=self.count).contains(&i).then_some(i)
    }

    /// Whether `secret` is the secret of account `i`.
    pub fn secret_matches(&self, i: usize, secret: &str) -> bool {
        secret == demo_secret(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_look_real() {
        assert_eq!(demo_appid(1), "wxdemo000000000001");
        assert_eq!(demo_appid(1).len(), 18);
        assert_eq!(demo_secret(12), "demosecret0000000000000000000012");
        assert_eq!(demo_secret(12).len(), 32);
        assert_eq!(demo_component_appid().len(), 18);
        assert_eq!(demo_component_secret().len(), 32);
        assert!(demo_verify_ticket().starts_with("ticket@@@"));
        assert_eq!(demo_refresh_token(12), "refreshtoken@@@demo000000000012");
        assert_ne!(demo_refresh_token(1), demo_refresh_token(2));
    }

    #[test]
    fn only_known_accounts_resolve() {
        let a = Accounts::new(3);
        assert_eq!(a.index_of("wxdemo000000000003"), Some(3));
        for unknown in ["wxdemo000000000004", "wxdemo000000000000", "wxdemo3", "wxdemo+00000000003", "wx1234"] {
            assert_eq!(a.index_of(unknown), None, "{unknown}");
        }
        assert!(a.secret_matches(2, &demo_secret(2)));
        assert!(!a.secret_matches(2, &demo_secret(1)));
    }
}
