//! The simulator's demo accounts and their credentials.
//!
//! Account `i` (1-based) has appid `wxdemo` followed by `i` in twelve digits — eighteen
//! characters, shaped like a real appid — and a 32-character secret, shaped like a real
//! AppSecret. They are public on purpose: the simulator is a local stand-in, and the demo, the
//! tests and anyone trying wxcube need them without set-up. Credentials are derived, not stored,
//! so a simulator with 5 000 accounts costs nothing.

const APPID_PREFIX: &str = "wxdemo";
const SECRET_PREFIX: &str = "demosecret";

/// The appid of demo account `i` (1-based), e.g. `wxdemo000000000001`.
pub fn demo_appid(i: usize) -> String {
    format!("{APPID_PREFIX}{i:012}")
}

/// The secret of demo account `i` (1-based).
pub fn demo_secret(i: usize) -> String {
    format!("{SECRET_PREFIX}{i:022}")
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
