//! Scheduled operation: many accounts from a config file, shards, incremental state.

use std::path::Path;

use wxcube_registry as registry;
use wxcube_simulator::faults::{Faults, Trigger};
use wxcube_simulator::{Clock, RunningSimulator, SimConfig};

use wxcube_simulator::accounts::{demo_component_appid, demo_component_secret, demo_refresh_token, demo_verify_ticket};

use crate::support::*;

async fn sim_with(accounts: usize, faults: Faults) -> RunningSimulator {
    simulator_with(SimConfig { clock: Clock::noon_on(d(TODAY)), accounts, faults, ..SimConfig::default() }).await
}

/// An accounts.toml for demo accounts `ids`, each reading its secret from `WXDEMO_SECRET_<i>`.
fn config_file(dir: &Path, ids: &[usize]) -> String {
    let text: String = ids
        .iter()
        .map(|i| format!("[[account]]\nappid = \"{}\"\nsecret_env = \"WXDEMO_SECRET_{i}\"\n\n", appid(*i)))
        .collect();
    let path = dir.join("accounts.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The environment that carries the secrets of `ids`.
fn secrets_env(ids: &[usize]) -> Vec<(String, String)> {
    ids.iter().map(|i| (format!("WXDEMO_SECRET_{i}"), secret(*i))).collect()
}

async fn extract_config(
    sim: &RunningSimulator,
    out: &Path,
    config: &str,
    env: &[(String, String)],
    extra: &[&str],
) -> Run {
    let base = sim.base_url();
    let mut args = vec!["extract", "--output", out.to_str().unwrap(), "--api-base", &base, "--config", config];
    args.extend_from_slice(extra);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    wxcube(&args, &env).await
}

#[tokio::test(flavor = "multi_thread")]
async fn many_accounts_run_together_and_one_failure_stops_only_its_account() {
    let sim = sim_with(6, Faults { unauthorized: vec![appid(3)], daily_quota: None, ..Faults::default() }).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let config = config_file(tmp.path(), &[1, 2, 3, 4, 5]);
    let mut env = secrets_env(&[1, 2, 3, 4]);
    env.push(("WXDEMO_SECRET_5".into(), "wrong-secret-for-account-5".into()));
    let run = extract_config(&sim, &out, &config, &env, &["--begin", "2024-03-01", "--end", "2024-03-20", "-vv"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.summary();
    let lines = summary["per_account"].as_array().unwrap();
    assert_eq!(lines.len(), 5, "a line per account: {lines:?}");
    for line in lines {
        let id = line["appid"].as_str().unwrap();
        match id {
            _ if id == appid(3) => {
                assert_eq!(line["status"], "failed");
                assert!(line["error"].as_str().unwrap().contains("48001"), "{line}");
            }
            _ if id == appid(5) => {
                assert_eq!(line["status"], "failed");
                assert!(line["error"].as_str().unwrap().contains("40125"), "{line}");
            }
            _ => assert_eq!(line["status"], "ok", "{line}"),
        }
    }
    for t in &default_tables() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &[1, 2, 4], "2024-03-01", "2024-03-20"), "{t}");
    }
    assert_no_secrets(&run, &out, &sim, &["wrong-secret-for-account-5"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_run_side_by_side_without_sharing_a_file() {
    let sim = sim_with(8, Faults::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let ids: Vec<usize> = (1..=8).collect();
    let config = config_file(tmp.path(), &ids);
    let env = secrets_env(&ids);
    let flags = ["--begin", "2024-03-01", "--end", "2024-03-15", "--buckets", "4"];
    // The first run fixes the bucket count; then three shards run at once.
    let empty =
        extract_config(&sim, &out, &config, &env, &[&flags[..], &["--tables", "upstream_msg_month"]].concat()).await;
    empty.assert_ok();
    let runs = futures::future::join_all((0..3).map(|i| {
        let shard = format!("{i}/3");
        let (sim, out, config, env) = (&sim, &out, &config, &env);
        async move { extract_config(sim, out, config, env, &[&flags[..], &["--shard", &shard]].concat()).await }
    }))
    .await;
    let mut seen = Vec::new();
    for run in &runs {
        run.assert_ok();
        seen.extend(
            run.summary()["per_account"].as_array().unwrap().iter().map(|l| l["appid"].as_str().unwrap().to_string()),
        );
    }
    seen.sort();
    let mut all: Vec<String> = ids.iter().map(|i| appid(*i)).collect();
    all.sort();
    assert_eq!(seen, all, "every account in exactly one shard");
    for t in &default_tables() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &ids, "2024-03-01", "2024-03-15"), "{t}");
    }
    let too_many = extract_config(&sim, &out, &config, &env, &[&flags[..], &["--shard", "0/5"]].concat()).await;
    assert_eq!(too_many.code, 2);
    assert!(too_many.stderr.contains("at most 4 shards"), "{}", too_many.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_runs_continue_from_state() {
    let sim = sim_with(3, Faults::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let config = config_file(tmp.path(), &[1, 2]);
    let env = secrets_env(&[1, 2]);

    // The simulator's "today" is pinned; so is wxcube's. The message tables (the other
    // families' look-backs: tests/it/families.rs).
    let end = ["--today", TODAY, "--tables", "message"];
    let no_start = extract_config(&sim, &out, &config, &env, &[&["--incremental"][..], &end].concat()).await;
    assert_eq!(no_start.code, 2);
    assert!(no_start.stderr.contains("give --start-date"), "{}", no_start.stderr);

    let first = extract_config(
        &sim,
        &out,
        &config,
        &env,
        &[&["--incremental", "--start-date", "2024-03-01"][..], &end].concat(),
    )
    .await;
    first.assert_ok();
    for t in &registry::select("message").unwrap() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &[1, 2], "2024-03-01", "2024-04-09"), "{t}");
    }
    // Right after a complete run: only the look-back (3 days: 2024-04-07..09). upstream_msg and
    // dist: one window each; hour: three; the week of Monday 2024-04-08 has not ended; no month.
    sim.reset_stats();
    let second = extract_config(&sim, &out, &config, &env, &[&["--incremental"][..], &end].concat()).await;
    second.assert_ok();
    assert_eq!(second.summary()["requests"], 2 * 5, "{}", second.stdout);
    assert_eq!(sim.stats().datacube_requests, 10);
    let week = &second.summary()["tables"]["upstream_msg_week"];
    assert_eq!(week["planned"], 0);

    // State far in the future: nothing to do.
    let bucket_files: Vec<_> = files(&out).into_iter().filter(|f| f.starts_with("_wxcube/state")).collect();
    assert!(!bucket_files.is_empty());
    for f in &bucket_files {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        let future = regex_lite_replace_dates(&text, "2030-01-01");
        std::fs::write(out.join(f), future).unwrap();
    }
    sim.reset_stats();
    let third = extract_config(&sim, &out, &config, &env, &["--incremental", end[0], end[1], end[2], end[3]]).await;
    third.assert_ok();
    assert_eq!(sim.stats().datacube_requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_state_never_jumps_over_a_failed_cell() {
    let sim = sim_with(3, Faults { busy: Trigger::count(3), ..Faults::default() }).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let config = config_file(tmp.path(), &[1]);
    let env = secrets_env(&[1]);
    let flags =
        ["--incremental", "--start-date", "2024-01-01", "--today", TODAY, "--max-retries", "0", "--concurrency", "1"];
    let first = extract_config(&sim, &out, &config, &env, &flags).await;
    assert_eq!(first.code, 1, "{}", first.stderr);
    let failed = first.summary()["failures"].as_u64().unwrap();
    assert_eq!(failed, 3);
    // The failed cells are early in the range; the state stops before each, so the next run
    // re-pulls them (and what follows) and the output is complete.
    sim.set_faults(Faults::default()).unwrap();
    let second = extract_config(&sim, &out, &config, &env, &["--incremental", "--today", TODAY]).await;
    second.assert_ok();
    for t in &default_tables() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &[1], "2024-01-01", "2024-04-09"), "{t}");
    }
}

/// Every `YYYY-MM-DD` in `text` replaced by `date`.
fn regex_lite_replace_dates(text: &str, date: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let is_date = i + 10 <= bytes.len() && wxcube_connector::dates::parse_date(&text[i..i + 10]).is_ok();
        if is_date {
            out.push_str(date);
            i += 10;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

/// An accounts.toml for demo accounts `ids` authorised to the demo platform, each with its
/// first refresh token in `refresh-<i>` beside it, and the environment with the platform's
/// secret and verify ticket.
fn platform_config(dir: &Path, ids: &[usize]) -> (String, Vec<(String, String)>) {
    let component = "secret_env = \"COMPONENT_SECRET\"\nverify_ticket_env = \"COMPONENT_TICKET\"";
    let env = vec![
        ("COMPONENT_SECRET".to_string(), demo_component_secret()),
        ("COMPONENT_TICKET".to_string(), demo_verify_ticket()),
    ];
    (platform_config_with(dir, ids, component), env)
}

/// As [`platform_config`], with `component` for the credentials of the `[component]` section.
fn platform_config_with(dir: &Path, ids: &[usize], component: &str) -> String {
    let mut text = format!("[component]\nappid = \"{}\"\n{component}\n\n", demo_component_appid());
    for &i in ids {
        let file = refresh_file(dir, i);
        std::fs::write(&file, demo_refresh_token(i)).unwrap();
        text.push_str(&format!(
            "[[account]]\nappid = \"{}\"\nrefresh_token_file = \"{}\"\n\n",
            appid(i),
            file.display()
        ));
    }
    let config = dir.join("accounts.toml");
    std::fs::write(&config, text).unwrap();
    config.to_str().unwrap().to_string()
}

fn refresh_file(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(format!("refresh-{i}"))
}

/// The platform's static credentials and the first refresh tokens, for leak scans.
fn platform_secrets() -> Vec<String> {
    let mut secrets = vec![demo_component_secret(), demo_verify_ticket()];
    secrets.extend((1..=4).map(demo_refresh_token));
    secrets
}

/// [`assert_no_secrets`] with the platform's credentials too.
fn assert_no_platform_secrets(run: &Run, out: &Path, sim: &RunningSimulator) {
    let secrets = platform_secrets();
    let more: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secrets(run, out, sim, &more);
}

/// A component token of the demo platform, asked for as another service of the platform would.
async fn component_token_from(sim: &RunningSimulator) -> String {
    let url = format!("{}/cgi-bin/component/api_component_token", sim.base_url());
    let request = serde_json::json!({"component_appid": demo_component_appid(),
        "component_appsecret": demo_component_secret(), "component_verify_ticket": demo_verify_ticket()});
    let answer = post_json(&url, &request).await;
    answer["component_access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn third_party_accounts_rotate_and_keep_their_refresh_token() {
    let sim = sim_with(3, Faults::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (config, env) = platform_config(tmp.path(), &[1, 2]);
    for _ in 0..2 {
        // The second run works only if the first kept the rotated refresh tokens.
        let run =
            extract_config(&sim, &out, &config, &env, &["--begin", "2024-03-01", "--end", "2024-03-10", "-vv"]).await;
        run.assert_ok();
        for i in [1, 2] {
            let kept = std::fs::read_to_string(refresh_file(tmp.path(), i)).unwrap();
            assert_eq!(Some(kept), sim.authorizer_refresh_token(&appid(i)), "the rotated refresh token is kept");
        }
        assert_no_platform_secrets(&run, &out, &sim);
    }
    assert_eq!(sim.stats().token_calls.component_token, 2, "one component token per run");
    assert_eq!(sim.stats().token_calls.authorizer_token, 4, "one authorizer token per account per run");
    for t in &default_tables() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &[1, 2], "2024-03-01", "2024-03-10"), "{t}");
    }
}

/// The errcodes `api_authorizer_token` answered, and how often.
fn authorizer_answers(sim: &RunningSimulator) -> std::collections::BTreeMap<i64, usize> {
    let mut answers = std::collections::BTreeMap::new();
    for r in sim.stats().authorizer_requests {
        *answers.entry(r.errcode).or_default() += 1;
    }
    answers
}

#[tokio::test(flavor = "multi_thread")]
async fn component_tokens_are_renewed_before_they_expire_and_when_refused() {
    // Account tokens used up every 4 calls keep asking for authorizer tokens all run long,
    // each with the component token; 100 ms per answer make the run last a few seconds.
    let busy_platform = Faults { token_expires_after: Some(4), latency_ms: 100, ..Faults::default() };
    let ids = [1, 2, 3];
    let (begin, end) = ("2024-02-01", "2024-03-31");
    let flags = ["--begin", begin, "--end", end, "--tables", "upstream_msg_hour", "--concurrency", "8", "-vv"];
    let hours = registry::find("upstream_msg_hour").unwrap();

    // Component tokens that live a second, on a run that lasts longer.
    let sim = simulator_with(SimConfig {
        clock: Clock::noon_on(d(TODAY)),
        component_token_ttl: Some(std::time::Duration::from_secs(1)),
        faults: busy_platform.clone(),
        ..SimConfig::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (config, env) = platform_config(tmp.path(), &ids);
    let started = std::time::Instant::now();
    let run = extract_config(&sim, &out, &config, &env, &flags).await;
    run.assert_ok();
    assert!(started.elapsed().as_secs() >= 2, "the run outlived a component token");
    assert_eq!(table_rows(&out, hours), expected_rows(hours, &ids, begin, end));
    assert!(sim.stats().token_calls.component_token > 1, "{:?}", sim.stats().token_calls);
    let answers = authorizer_answers(&sim);
    assert_eq!(answers.keys().copied().collect::<Vec<_>>(), [0], "renewed before it expired: {answers:?}");
    assert_no_platform_secrets(&run, &out, &sim);

    // Another service of the platform takes a new component token every 200 ms, which
    // retires the one wxcube holds at once.
    let sim = simulator_with(SimConfig {
        clock: Clock::noon_on(d(TODAY)),
        token_overlap: std::time::Duration::ZERO,
        faults: busy_platform,
        ..SimConfig::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (config, env) = platform_config(tmp.path(), &ids);
    let done = std::sync::atomic::AtomicBool::new(false);
    let run = async {
        let run = extract_config(&sim, &out, &config, &env, &flags).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        run
    };
    let other_service = async {
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            component_token_from(&sim).await;
        }
    };
    let (run, ()) = tokio::join!(run, other_service);
    run.assert_ok();
    assert_eq!(table_rows(&out, hours), expected_rows(hours, &ids, begin, end));
    let answers = authorizer_answers(&sim);
    assert!(answers.get(&40001).is_some_and(|&n| n > 0), "the component token was refused: {answers:?}");
    assert_no_platform_secrets(&run, &out, &sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_and_quota_say_what_is_wrong_per_account() {
    // A simulator on the real clock: `check` asks for the latest complete day.
    let sim = simulator_with(SimConfig {
        accounts: 3,
        faults: Faults { unauthorized: vec![appid(2)], ..Faults::default() },
        ..SimConfig::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let config = config_file(tmp.path(), &[1, 2, 3]);
    let mut env = secrets_env(&[1, 2]);
    env.push(("WXDEMO_SECRET_3".into(), "not-the-secret-of-three".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let base = sim.base_url();
    let check = wxcube(&["check", "--config", &config, "--api-base", &base], &env).await;
    assert_eq!(check.code, 1, "{}", check.stderr);
    let lines: Vec<&str> = check.stdout.lines().collect();
    assert!(lines[0].starts_with(&format!("{}  ok", appid(1))), "{}", check.stdout);
    assert!(lines[1].contains("FAILED") && lines[1].contains("48001"), "{}", check.stdout);
    assert!(lines[2].contains("FAILED") && lines[2].contains("40125"), "{}", check.stdout);
    assert_eq!(check.summary()["accounts"].as_array().unwrap().len(), 3);
    assert!(!check.all_output().contains("not-the-secret-of-three"));

    let quota = wxcube(&["quota", "--config", &config, "--api-base", &base], &env).await;
    assert_eq!(quota.code, 1, "account 3 cannot get a token: {}", quota.stdout);
    let q = quota.summary();
    let first = q["quota"].as_array().unwrap().iter().find(|l| l["appid"] == appid(1).as_str()).unwrap();
    assert_eq!(first["daily_limit"], 5000);
    assert!(first["remain"].as_i64().unwrap() <= 5000);
    for t in &default_tables() {
        assert!(quota.stdout.contains(&t.name));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_expiring_every_few_calls_slow_a_run_but_fail_no_cell() {
    // Every token is used up after 3 calls while 8 requests are in flight: most requests see
    // their token refused at least once, many more than once.
    let sim = sim_with(4, Faults { token_expires_after: Some(3), ..Faults::default() }).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let ids = [1, 2, 3, 4];
    let config = config_file(tmp.path(), &ids);
    let flags = ["--begin", "2024-01-01", "--end", "2024-03-31", "--concurrency", "8", "-vv"];
    let run = extract_config(&sim, &out, &config, &secrets_env(&ids), &flags).await;
    run.assert_ok();
    let summary = run.summary();
    assert_eq!(summary["failures"], 0, "{}", run.stdout);
    for t in &default_tables() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &ids, "2024-01-01", "2024-03-31"), "{t}");
    }
    let stats = sim.stats();
    assert!(stats.datacube_requests > 500, "a long run: {} requests", stats.datacube_requests);
    // A token serves 3 calls: every 3 answered calls took a new one.
    let answered = stats.recent.iter().filter(|r| r.errcode == 0).count();
    let issued = sim.issued_tokens().len();
    assert!(issued > 1 && issued * 3 >= answered, "{issued} tokens for {answered} answered calls");
    assert!(stats.faults["token_expired"] > 100, "tokens were refused all along: {:?}", stats.faults);
    assert_no_secrets(&run, &out, &sim, &[]);
}

/// The `per_account` line of `id` in a run's summary.
fn account_line(summary: &serde_json::Value, id: &str) -> serde_json::Value {
    summary["per_account"].as_array().unwrap().iter().find(|l| l["appid"] == id).unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_authorizer_answer_fails_its_account_without_resending_the_refresh_token() {
    // The first exchange is served (the refresh token rotates), then its answer is cut off.
    let sim = sim_with(3, Faults { authorizer_lost: Trigger::count(1), ..Faults::default() }).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let ids = [1, 2, 3];
    let (config, env) = platform_config(tmp.path(), &ids);
    let flags = ["--begin", "2024-03-01", "--end", "2024-03-10", "-vv"];
    let run = extract_config(&sim, &out, &config, &env, &flags).await;
    assert_eq!(run.code, 1, "{}", run.stderr);

    let stats = sim.stats();
    let lost = stats.authorizer_requests.iter().find(|r| r.faults == ["authorizer_lost"]).expect("the fault struck");
    let victim = ids.into_iter().find(|&i| lost.appid.as_deref() == Some(appid(i).as_str())).unwrap();
    let others: Vec<usize> = ids.into_iter().filter(|&i| i != victim).collect();
    // The refresh token that may be dead was never sent again.
    assert!(stats.authorizer_requests.iter().all(|r| !r.stale_refresh_token), "{:?}", stats.authorizer_requests);
    let victim_calls = stats.authorizer_requests.iter().filter(|r| r.appid == lost.appid).count();
    assert_eq!(victim_calls, 1, "not retried");
    let file = refresh_file(tmp.path(), victim);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), demo_refresh_token(victim), "the file is left as it was");
    assert_ne!(sim.authorizer_refresh_token(&appid(victim)), Some(demo_refresh_token(victim)), "WeChat rotated it");

    // One line names the file and the fix.
    let summary = run.summary();
    let line = account_line(&summary, &appid(victim));
    let error = line["error"].as_str().unwrap();
    let fix =
        format!("authorise the account to the platform again and put the new refresh token in {}", file.display());
    assert_eq!(line["status"], "failed");
    assert!(error.contains("answer to api_authorizer_token was lost") && error.contains(&fix), "{error}");
    assert!(error.contains("if WeChat did not rotate it, the next run works as is"), "{error}");
    let said = run.stderr.lines().filter(|l| l.contains("ERROR") && l.contains(&fix)).count();
    assert_eq!(said, 1, "one error line: {}", run.stderr);
    // The other accounts are complete.
    for &i in &others {
        assert_eq!(account_line(&summary, &appid(i))["status"], "ok");
    }
    for t in &default_tables() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &others, "2024-03-01", "2024-03-10"), "{t}");
    }
    assert_no_platform_secrets(&run, &out, &sim);

    // The operator authorises the account again and saves its new refresh token: all is filled.
    std::fs::write(&file, sim.authorizer_refresh_token(&appid(victim)).unwrap()).unwrap();
    let rerun = extract_config(&sim, &out, &config, &env, &flags).await;
    rerun.assert_ok();
    for t in &default_tables() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &ids, "2024-03-01", "2024-03-10"), "{t}");
    }
    assert_no_platform_secrets(&rerun, &out, &sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_authorizer_call_that_did_not_rotate_the_refresh_token_is_retried() {
    // Errcode -1: WeChat answered without rotating anything.
    let sim = sim_with(2, Faults { authorizer_busy: Trigger::count(2), ..Faults::default() }).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (config, env) = platform_config(tmp.path(), &[1, 2]);
    let flags = ["--begin", "2024-03-01", "--end", "2024-03-10", "-vv"];
    let run = extract_config(&sim, &out, &config, &env, &flags).await;
    run.assert_ok();
    for t in &default_tables() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &[1, 2], "2024-03-01", "2024-03-10"), "{t}");
    }
    let stats = sim.stats();
    let codes: Vec<i64> = stats.authorizer_requests.iter().map(|r| r.errcode).collect();
    assert_eq!((codes.iter().filter(|&&c| c == -1).count(), codes.len()), (2, 4), "{codes:?}");
    assert!(stats.authorizer_requests.iter().all(|r| !r.stale_refresh_token));
    for i in [1, 2] {
        let kept = std::fs::read_to_string(refresh_file(tmp.path(), i)).unwrap();
        assert_eq!(Some(kept), sim.authorizer_refresh_token(&appid(i)));
    }
    assert_no_platform_secrets(&run, &out, &sim);

    // A connection refused: the request never left. The component token is given, so the
    // first call wxcube makes is the exchange itself, to a port nothing listens on yet.
    let sim = sim_with(2, Faults::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let config = platform_config_with(tmp.path(), &[1, 2], "access_token_env = \"COMPONENT_TOKEN\"");
    let component = component_token_from(&sim).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = sim.addr();
    let forwarder = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let (mut inbound, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let args = ["extract", "--output", out.to_str().unwrap(), "--api-base", &base, "--config", &config];
    let run = wxcube(&[&args[..], &flags[..]].concat(), &[("COMPONENT_TOKEN", &component)]).await;
    forwarder.abort();
    run.assert_ok();
    assert!(
        run.stderr.lines().any(|l| l.contains("token request failed, retrying") && l.contains("api_authorizer_token")),
        "{}",
        run.stderr
    );
    for t in &default_tables() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &[1, 2], "2024-03-01", "2024-03-10"), "{t}");
    }
    let stats = sim.stats();
    assert_eq!(stats.authorizer_requests.len(), 2, "the refused tries never reached WeChat");
    assert!(stats.authorizer_requests.iter().all(|r| r.errcode == 0));
    assert_no_platform_secrets(&run, &out, &sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_token_another_process_rotated_is_taken_from_the_file() {
    // Another process exchanges the refresh token just before wxcube's call is checked, and
    // saves its new one in the file while wxcube waits for the answer (61023).
    let faults = Faults { refresh_used_elsewhere: Trigger::count(1), authorizer_latency_ms: 500, ..Faults::default() };
    let sim = sim_with(1, faults).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (config, env) = platform_config(tmp.path(), &[1]);
    let file = refresh_file(tmp.path(), 1);
    let flags = ["--begin", "2024-03-01", "--end", "2024-03-10", "-vv"];
    let run = extract_config(&sim, &out, &config, &env, &flags);
    let other_process = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let current = sim.authorizer_refresh_token(&appid(1)).unwrap();
            if current != demo_refresh_token(1) {
                std::fs::write(&file, current).unwrap();
                return;
            }
        }
    };
    let (run, ()) = tokio::join!(run, other_process);
    run.assert_ok();
    assert!(run.stderr.contains("another process saved a new refresh token meanwhile"), "{}", run.stderr);
    for t in &default_tables() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &[1], "2024-03-01", "2024-03-10"), "{t}");
    }
    let seen: Vec<(i64, bool)> =
        sim.stats().authorizer_requests.iter().map(|r| (r.errcode, r.stale_refresh_token)).collect();
    assert_eq!(seen, [(61023, true), (0, false)], "refused once, then served with the file's new token");
    assert_eq!(Some(std::fs::read_to_string(&file).unwrap()), sim.authorizer_refresh_token(&appid(1)));
    assert_no_platform_secrets(&run, &out, &sim);

    // When nobody saved a new one, the account fails with the fix, and only that account.
    let sim = sim_with(2, Faults { refresh_used_elsewhere: Trigger::count(1), ..Faults::default() }).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (config, env) = platform_config(tmp.path(), &[1, 2]);
    let run = extract_config(&sim, &out, &config, &env, &flags).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let stats = sim.stats();
    let victim = if stats.authorizer_requests[0].appid.as_deref() == Some(appid(1).as_str()) { 1 } else { 2 };
    let other = 3 - victim;
    assert_eq!(stats.authorizer_requests.iter().filter(|r| r.stale_refresh_token).count(), 1, "never sent again");
    let summary = run.summary();
    let error = account_line(&summary, &appid(victim))["error"].as_str().unwrap().to_string();
    let fix = format!(
        "is no longer valid: authorise the account to the platform again and put the new refresh token in {}",
        refresh_file(tmp.path(), victim).display()
    );
    assert!(error.contains("errcode 61023") && error.contains(&fix), "{error}");
    assert_eq!(account_line(&summary, &appid(other))["status"], "ok");
    for t in &default_tables() {
        assert_eq!(table_rows(&out, t), expected_rows(t, &[other], "2024-03-01", "2024-03-10"), "{t}");
    }
    assert_no_platform_secrets(&run, &out, &sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_on_one_host_take_turns_with_each_refresh_token() {
    // Tokens used up every 3 calls: both runs exchange every account's refresh token again and
    // again, at the same time; each exchange takes 50 ms, a window for the other run to start one.
    let faults = Faults { token_expires_after: Some(3), authorizer_latency_ms: 50, ..Faults::default() };
    let sim = sim_with(3, faults).await;
    let tmp = tempfile::tempdir().unwrap();
    let ids = [1, 2, 3];
    let (config, env) = platform_config(tmp.path(), &ids);
    let flags = ["--begin", "2024-03-01", "--end", "2024-03-20", "-vv"];
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (run_a, run_b) =
        tokio::join!(extract_config(&sim, &a, &config, &env, &flags), extract_config(&sim, &b, &config, &env, &flags));
    for (run, out) in [(&run_a, &a), (&run_b, &b)] {
        run.assert_ok();
        for t in &default_tables() {
            assert_eq!(table_rows(out, t), expected_rows(t, &ids, "2024-03-01", "2024-03-20"), "{t}");
        }
        assert_no_platform_secrets(run, out, &sim);
    }
    let requests = sim.stats().authorizer_requests;
    assert!(requests.len() > 20, "{} exchanges", requests.len());
    assert!(requests.iter().all(|r| r.errcode == 0), "no refresh token was sent twice: {requests:?}");
    for i in ids {
        let kept = std::fs::read_to_string(refresh_file(tmp.path(), i)).unwrap();
        assert_eq!(Some(kept), sim.authorizer_refresh_token(&appid(i)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_token_given_and_refused_fails_its_accounts_with_the_fix() {
    let sim = simulator_with(SimConfig {
        clock: Clock::noon_on(d(TODAY)),
        token_overlap: std::time::Duration::ZERO,
        ..SimConfig::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let config = platform_config_with(tmp.path(), &[1, 2], "access_token_env = \"COMPONENT_TOKEN\"");
    let given = component_token_from(&sim).await;
    component_token_from(&sim).await; // another service's newer one retires it at once
    let env = [("COMPONENT_TOKEN".to_string(), given)];
    let run = extract_config(&sim, &out, &config, &env, &["--begin", "2024-03-01", "--end", "2024-03-10"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.summary();
    for i in [1, 2] {
        let error = account_line(&summary, &appid(i))["error"].as_str().unwrap().to_string();
        assert!(
            error.contains("errcode 40001") && error.contains("cannot be renewed: pass a fresh one through the [component] section's access_token_env or access_token_file"),
            "{error}"
        );
    }
    assert_eq!(sim.stats().token_calls.component_token, 2, "wxcube never asked for one itself");
    assert_eq!(sim.stats().datacube_requests, 0);
    assert!(files(&out).iter().all(|f| f.starts_with("_wxcube")), "no data written");
    assert_no_platform_secrets(&run, &out, &sim);
}
