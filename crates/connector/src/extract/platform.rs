//! Tokens of accounts authorised to a third-party platform: the platform's component token,
//! and each account's access token from its refresh token.
//!
//! The component token is shared by every account of the platform and lives two hours like an
//! account's token: it is renewed a margin before its `expires_in` runs out, and when
//! `api_authorizer_token` refuses it (40001, 40014, 42001) — dropped only if it is still the
//! current one, then fetched again, for as long as renewing makes progress
//! ([`Renewals`]). A component token given from outside cannot be renewed: the account fails
//! with a message saying so.
//!
//! The refresh token rotates at every use: once WeChat has served an exchange, the token sent
//! is dead and only the answer holds the new one. So an exchange is never blindly retried:
//! - an errcode answer means WeChat did not rotate (61023 aside), and a connection that was
//!   never established sent nothing: both are safe to retry;
//! - any other failure — a timeout, a connection cut mid-answer, HTTP 5xx, an unreadable body
//!   — may have come after WeChat rotated the token. The file is read again: if another process
//!   saved a newer token there, that one is used; otherwise the account fails with the fix
//!   (authorise again), and the token that may be dead is not sent again;
//! - 61023 (refresh token invalid): if the file changed since it was read (another process
//!   rotated it), the new token is used; otherwise the account fails with the same fix.
//!
//! The rotated token is saved (atomically, synced, folder included) before the access token is
//! used, and the exchange runs on even if the request that asked for it is abandoned, so an
//! answer that reached wxcube is never lost to a crash or a stop.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::errors::{ApiError, CallError, Class};
use super::http::ApiClient;
use super::token::{HeldToken, Rejection, Renewals, lifetime, passed_token_check, read_answer, string_field};
use crate::account::{AppId, ComponentCredentials, RefreshToken, Secret};

/// How long to wait for another process's exchange of the same refresh token. It holds the
/// lock for one exchange — a few requests, each bounded by the request timeout.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// Exchanges retried with a token another process saved meanwhile, before giving up: the file
/// changing again and again under wxcube is not a race, but something else rotating the token.
const MAX_FOREIGN_ROTATIONS: usize = 3;

/// An authorizer access token for `appid`, and its lifetime.
pub(super) async fn authorizer_token(
    api: &Arc<ApiClient>,
    appid: &AppId,
    component: &Arc<ComponentCredentials>,
    refresh: &RefreshToken,
) -> Result<(Secret, Duration), CallError> {
    let RefreshToken::File(path) = refresh;
    let mut renewals = Renewals::default();
    loop {
        let component_token = component_token(api, component).await?;
        let error = match exchange_to_the_end(api, appid, component, &component_token, path).await {
            Err(error) if error.class() == Class::TokenRejected => error,
            done => return done,
        };
        let rejection = match component.access_token {
            Some(_) => Rejection::Given,
            None => component.cache.reject(&component_token).await,
        };
        if let Rejection::Given = rejection {
            return Err(CallError::Token(format!(
                "the component access token given was refused ({error}) and cannot be renewed: pass a fresh one through the [component] section's access_token_env or access_token_file"
            )));
        }
        renewals
            .refused(&rejection)
            .map_err(|why| CallError::Token(format!("the component access token was refused ({error}); {why}")))?;
        if let Rejection::Dropped(_) = rejection {
            tracing::info!(component = %component.appid, error = %error, "component access token refused, renewing it");
        }
    }
}

/// The component access token: given from outside, or the platform's current one, fetched
/// with its secret and verify ticket when there is none or it is due for renewal.
async fn component_token(api: &ApiClient, component: &ComponentCredentials) -> Result<Arc<HeldToken>, CallError> {
    if let Some(token) = &component.access_token {
        return Ok(Arc::new(HeldToken::given(token.clone())));
    }
    component.cache.get_or_fetch(async || fetch_component_token(api, component).await).await
}

async fn fetch_component_token(
    api: &ApiClient,
    component: &ComponentCredentials,
) -> Result<(Secret, Duration), CallError> {
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
    Ok((string_field(&object, "component_access_token")?, lifetime(&object)))
}

/// [`exchange`] in a task of its own: if the request waiting for it is abandoned (the run is
/// stopping), the exchange still runs to the end and saves the rotated token.
async fn exchange_to_the_end(
    api: &Arc<ApiClient>,
    appid: &AppId,
    component: &Arc<ComponentCredentials>,
    component_token: &Arc<HeldToken>,
    path: &Path,
) -> Result<(Secret, Duration), CallError> {
    let (api, appid, component, component_token, path) =
        (api.clone(), appid.clone(), component.clone(), component_token.clone(), path.to_path_buf());
    let task = tokio::spawn(async move { exchange(&api, &appid, &component, &component_token, &path).await });
    match task.await {
        Ok(done) => done,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(CallError::Stopped),
    }
}

/// Exchanges the refresh token in `path` for an access token, holding the file's lock from
/// reading the token to saving the rotated one.
async fn exchange(
    api: &ApiClient,
    appid: &AppId,
    component: &ComponentCredentials,
    component_token: &Arc<HeldToken>,
    path: &Path,
) -> Result<(Secret, Duration), CallError> {
    let file = RefreshFile::new(path);
    let _lock = file.lock().await?;
    let mut sent = file.read()?;
    for _ in 0..=MAX_FOREIGN_ROTATIONS {
        let error = match call(api, appid, component, component_token, &sent).await {
            Ok(answer) => return file.keep_rotated(&sent, &answer),
            Err(error) => error,
        };
        let fate = Fate::of(&error);
        if fate == Fate::Kept {
            return Err(error);
        }
        let stored = file.read()?;
        if stored == sent {
            return Err(file.dead_end(error, fate));
        }
        tracing::info!(appid = %appid, file = %path.display(), error = %error, "another process saved a new refresh token meanwhile; exchanging that one");
        sent = stored;
    }
    Err(CallError::Token(format!(
        "the refresh token in {} changed {MAX_FOREIGN_ROTATIONS} times while wxcube exchanged it: make sure one process at a time uses this account's refresh token",
        path.display()
    )))
}

/// One `api_authorizer_token` call with `refresh`: the answer's fields, or why it failed.
async fn call(
    api: &ApiClient,
    appid: &AppId,
    component: &ComponentCredentials,
    component_token: &Arc<HeldToken>,
    refresh: &Secret,
) -> Result<Map<String, Value>, CallError> {
    let request = json!({
        "component_appid": component.appid.as_str(),
        "authorizer_appid": appid.as_str(),
        "authorizer_refresh_token": refresh.expose(),
    });
    let sending = component_token.send();
    let query = [("component_access_token", component_token.expose())];
    let answer = api
        .post_json("/cgi-bin/component/api_authorizer_token", &query, &request)
        .await
        .and_then(|body| read_answer(&body));
    if passed_token_check(&answer) {
        sending.accepted();
    }
    answer
}

/// What a failed exchange says about the refresh token it sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// WeChat answered with an errcode, so it did not rotate the token, or the request never
    /// reached it: the token is as good as before.
    Kept,
    /// 61023: WeChat says the token is invalid.
    Refused,
    /// The request may have reached WeChat, and its answer was lost: the token may have been
    /// rotated, and only that answer held the new one.
    Unknown,
}

impl Fate {
    fn of(error: &CallError) -> Self {
        match error {
            CallError::Api(e) if e.code == 61023 => Fate::Refused,
            CallError::Api(_) | CallError::NotSent(_) => Fate::Kept,
            _ => Fate::Unknown,
        }
    }
}

/// The file holding an account's refresh token.
struct RefreshFile<'a> {
    path: &'a Path,
}

impl<'a> RefreshFile<'a> {
    fn new(path: &'a Path) -> Self {
        Self { path }
    }

    /// Takes the exclusive lock on `<file>.lock`, waiting up to [`LOCK_WAIT`] for another
    /// process to finish its exchange; the lock is released when the returned file is dropped
    /// (or the process dies, so a killed run never leaves it behind).
    ///
    /// Why a lock: two processes on one host exchanging the same refresh token at once (an
    /// overlapping scheduled run, a `wxcube check` during a run) would both send it; WeChat
    /// serves one, and the other's 61023 could come before the winner has saved the new token,
    /// failing an account that was fine. Holding the lock across read → call → write-back
    /// makes them take turns, the second reading what the first saved. It is an advisory
    /// `flock`, so it binds wxcube processes only, and processes on other hosts only where the
    /// file system shares such locks; the re-reads on 61023 and on a lost answer cover the
    /// rest. It is a sibling file, not the token file itself, because the token file is
    /// replaced by a rename: a lock held on the old file would not bind a process that opens
    /// the new one.
    async fn lock(&self) -> Result<File, CallError> {
        let path = self.sibling("lock");
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path);
        let file = file.map_err(|e| {
            CallError::Token(format!(
                "cannot open {} ({e}): the refresh token's folder must be writable, for this lock and for the rotated token",
                path.display()
            ))
        })?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(CallError::Token(format!(
                        "another process has held {} for {} minutes while exchanging this account's refresh token: let it finish, or stop it",
                        path.display(),
                        LOCK_WAIT.as_secs() / 60
                    )));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(CallError::Token(format!("cannot lock {}: {e}", path.display())));
                }
            }
        }
    }

    fn read(&self) -> Result<Secret, CallError> {
        crate::account::read_secret_file(self.path).map_err(|e| CallError::Token(format!("refresh token: {e}")))
    }

    /// Saves the refresh token a served exchange rotated `sent` into, then hands out the access
    /// token: saved first, so a crash cannot lose it.
    fn keep_rotated(&self, sent: &Secret, answer: &Map<String, Value>) -> Result<(Secret, Duration), CallError> {
        if let Ok(rotated) = string_field(answer, "authorizer_refresh_token")
            && rotated != *sent
        {
            self.replace(&rotated).map_err(|e| {
                CallError::Token(format!(
                    "the rotated refresh token could not be saved to {} ({e}): authorise the account to the platform again and put the new refresh token in that file",
                    self.path.display()
                ))
            })?;
        }
        Ok((string_field(answer, "authorizer_access_token")?, lifetime(answer)))
    }

    /// The error of an exchange that may have cost the token in the file, which has not
    /// changed since: it is not sent again.
    fn dead_end(&self, error: CallError, fate: Fate) -> CallError {
        let path = self.path.display();
        let fix = format!("authorise the account to the platform again and put the new refresh token in {path}");
        match error {
            CallError::Api(e) if fate == Fate::Refused => CallError::Api(ApiError {
                code: e.code,
                message: format!("{}; the refresh token in {path} is no longer valid: {fix}", e.message),
            }),
            _ => CallError::Token(format!(
                "the answer to api_authorizer_token was lost ({error}), and WeChat may have rotated the refresh token in {path} meanwhile, so it is not sent again: {fix} (if WeChat did not rotate it, the next run works as is)"
            )),
        }
    }

    /// Replaces the token file atomically: a temporary file readable by its owner only, synced,
    /// renamed over the old one, and the folder synced so that the rename survives a crash too.
    fn replace(&self, secret: &Secret) -> std::io::Result<()> {
        let tmp = self.sibling(&format!("tmp-{}", std::process::id()));
        let written = write_synced(&tmp, secret).and_then(|()| std::fs::rename(&tmp, self.path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        let folder = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(folder)?.sync_all()
    }

    /// `<file>.<suffix>`, in the token file's folder.
    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{suffix}"));
        self.path.with_file_name(name)
    }
}

fn write_synced(path: &Path, secret: &Secret) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(secret.expose().as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn api_error(code: i64) -> CallError {
        CallError::Api(ApiError { code, message: "m".into() })
    }

    #[test]
    fn only_failures_that_may_have_reached_wechat_put_the_token_in_doubt() {
        assert_eq!(Fate::of(&api_error(-1)), Fate::Kept);
        assert_eq!(Fate::of(&api_error(40001)), Fate::Kept);
        assert_eq!(Fate::of(&CallError::NotSent("refused".into())), Fate::Kept);
        assert_eq!(Fate::of(&api_error(61023)), Fate::Refused);
        for lost in [
            CallError::Transport("timed out".into()),
            CallError::Http { status: 502, snippet: String::new() },
            CallError::Body("not JSON".into()),
        ] {
            assert_eq!(Fate::of(&lost), Fate::Unknown, "{lost}");
        }
    }

    #[test]
    fn the_token_file_is_replaced_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wx.refresh");
        std::fs::write(&path, "old").unwrap();
        let file = RefreshFile::new(&path);
        file.replace(&Secret::new("new")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["wx.refresh"], "no temporary file left");
        assert_eq!(file.sibling("lock"), dir.path().join("wx.refresh.lock"));
        // A relative path's folder is the working directory.
        assert_eq!(RefreshFile::new(Path::new("r")).sibling("lock"), Path::new("r.lock"));
    }

    #[tokio::test]
    async fn one_exchange_of_a_token_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wx.refresh");
        let file = RefreshFile::new(&path);
        let held = file.lock().await.unwrap();
        // A second lock, as another process's, has to wait.
        let other = File::open(dir.path().join("wx.refresh.lock")).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(held);
        assert!(other.try_lock().is_ok());
    }

    #[test]
    fn dead_ends_name_the_file_and_the_fix() {
        let path = Path::new("/var/lib/wxcube/wx1.refresh");
        let file = RefreshFile::new(path);
        let lost = file.dead_end(CallError::Transport("POST https://x/y: timed out".into()), Fate::Unknown).to_string();
        assert_eq!(
            lost,
            "the answer to api_authorizer_token was lost (POST https://x/y: timed out), and WeChat may have rotated the refresh token in /var/lib/wxcube/wx1.refresh meanwhile, so it is not sent again: authorise the account to the platform again and put the new refresh token in /var/lib/wxcube/wx1.refresh (if WeChat did not rotate it, the next run works as is)"
        );
        let refused = file.dead_end(api_error(61023), Fate::Refused);
        assert_eq!(refused.class(), Class::Permanent(super::super::errors::Scope::Account));
        assert!(refused.to_string().starts_with("errcode 61023 (authorizer refresh token invalid): m; the refresh token in /var/lib/wxcube/wx1.refresh is no longer valid: authorise the account"), "{refused}");
    }
}
