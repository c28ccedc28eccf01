//! The API failing in every way it does: retries, token renewal, quotas, limits, span
//! discovery, bad data. Every run here logs at the most verbose level and is checked for
//! leaked credentials.

use std::collections::BTreeSet;
use wxcube_registry as registry;
use wxcube_simulator::data::SimValue;
use wxcube_simulator::faults::{Faults, Trigger};
use wxcube_simulator::{Clock, SimConfig};

use crate::support::*;

async fn faulty(faults: Faults) -> wxcube_simulator::RunningSimulator {
    simulator_with(SimConfig { clock: Clock::noon_on(d(TODAY)), faults, ..SimConfig::default() }).await
}

const RANGE: [&str; 4] = ["--begin", "2024-01-01", "--end", "2024-03-31"];

fn all_rows_match(out: &std::path::Path, accounts: &[usize], begin: &str, end: &str) {
    for t in &default_tables() {
        assert_eq!(table_rows(out, t), expected_rows(t, accounts, begin, end), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifth_of_requests_failing_transiently_loses_nothing() {
    let faults = Faults {
        busy: Trigger::rate(0.05),
        http_5xx: Trigger::rate(0.05),
        bad_json: Trigger::rate(0.05),
        drop: Trigger::rate(0.05),
        seed: 7,
        ..Faults::default()
    };
    let sim = faulty(faults).await;
    let out = tempfile::tempdir().unwrap();
    // The most verbose logging there is, as JSON, with RUST_LOG asking for every crate's traces.
    let flags = [&RANGE[..], &["--max-retries", "10", "-vv", "--log-format", "json"]].concat();
    let run = extract_env(&sim, out.path(), 1, &flags, &[("RUST_LOG", "trace")]).await;
    run.assert_ok();
    assert!(run.stderr.lines().any(|l| l.starts_with('{') && l.contains("\"retry\"")), "JSON logs with retries");
    all_rows_match(out.path(), &[1], "2024-01-01", "2024-03-31");
    let stats = sim.stats();
    for kind in ["busy", "http_5xx", "bad_json", "drop"] {
        assert!(stats.faults.get(kind).copied().unwrap_or(0) > 0, "{kind} struck: {:?}", stats.faults);
    }
    assert_eq!(run.summary()["requests"].as_u64().unwrap(), stats.datacube_requests);
    assert_no_secrets(&run, out.path(), &sim, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_cells_are_named_and_a_rerun_fills_exactly_those() {
    let sim = faulty(Faults { busy: Trigger::rate(0.3), seed: 11, ..Faults::default() }).await;
    let out = tempfile::tempdir().unwrap();
    let flags = [&RANGE[..], &["--max-retries", "0", "-vv"]].concat();
    let first = extract_env(&sim, out.path(), 1, &flags, &[]).await;
    assert_eq!(first.code, 1, "{}", first.stderr);
    let summary = first.summary();
    let failed = failed_cells(&summary);
    assert!(!failed.is_empty());
    assert_eq!(summary["failures"].as_u64().unwrap(), failed.len() as u64);
    assert!(failed.iter().all(|c| c["error"].as_str().unwrap().contains("errcode -1")), "{failed:?}");
    // Exactly the failed cells are missing.
    for t in &default_tables() {
        assert_eq!(
            table_rows(out.path(), t),
            expected_without_failures(t, 1, "2024-01-01", "2024-03-31", &summary),
            "{t}"
        );
    }
    assert_no_secrets(&first, out.path(), &sim, &[]);
    let before: Vec<(std::path::PathBuf, Vec<u8>)> =
        files(out.path()).into_iter().map(|f| (f.clone(), std::fs::read(out.path().join(&f)).unwrap())).collect();

    // The fault is gone; the same command fills the gaps and leaves every other file as it was.
    sim.set_faults(Faults::default()).unwrap();
    let second = extract_env(&sim, out.path(), 1, &flags, &[]).await;
    second.assert_ok();
    all_rows_match(out.path(), &[1], "2024-01-01", "2024-03-31");
    for (f, bytes) in &before {
        assert_eq!(&std::fs::read(out.path().join(f)).unwrap(), bytes, "{} was rewritten", f.display());
    }
    let parquet = |files: Vec<std::path::PathBuf>| {
        files.into_iter().filter(|f| f.extension() == Some("parquet".as_ref())).count()
    };
    let new_files = parquet(files(out.path())) - parquet(before.iter().map(|(f, _)| f.clone()).collect());
    assert_eq!(second.summary()["files_written"].as_u64().unwrap(), new_files as u64, "only the gaps were written");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_superseded_tokens_are_renewed() {
    // Every token expires after 20 calls: the run renews it as often as needed.
    let sim = faulty(Faults { token_expires_after: Some(20), ..Faults::default() }).await;
    let out = tempfile::tempdir().unwrap();
    let run = extract_env(&sim, out.path(), 1, &[&RANGE[..], &["-vv"]].concat(), &[]).await;
    run.assert_ok();
    all_rows_match(out.path(), &[1], "2024-01-01", "2024-03-31");
    assert!(sim.stats().token_calls.stable_token >= 7, "{:?}", sim.stats().token_calls);
    assert_no_secrets(&run, out.path(), &sim, &[]);

    // Another service takes a new token through the legacy endpoint mid-run: the old one is
    // "not latest" at once (40001), and the run picks up the new one.
    let sim = faulty(Faults { token_overlap_secs: Some(0), latency_ms: 20, ..Faults::default() }).await;
    let out = tempfile::tempdir().unwrap();
    let flags = [&RANGE[..], &["--concurrency", "2", "-vv"]].concat();
    let run = extract_env(&sim, out.path(), 1, &flags, &[]);
    let rotate = async {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        let url = format!(
            "{}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            sim.base_url(),
            appid(1),
            secret(1)
        );
        let answer: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        assert!(answer["access_token"].is_string(), "{answer}");
    };
    let (run, ()) = tokio::join!(run, rotate);
    run.assert_ok();
    all_rows_match(out.path(), &[1], "2024-01-01", "2024-03-31");
    assert!(sim.stats().recent.iter().any(|r| r.errcode == 40001), "the old token was refused at least once");
    assert_no_secrets(&run, out.path(), &sim, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_stops_the_table_and_unauthorised_accounts_fail_once() {
    let sim = faulty(Faults { daily_quota: Some(2), ..Faults::default() }).await;
    let out = tempfile::tempdir().unwrap();
    let run = extract_env(&sim, out.path(), 1, &[&RANGE[..], &["--concurrency", "1", "-vv"]].concat(), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.summary();
    for t in &default_tables() {
        let s = &summary["tables"][&t.name];
        let refused = sim.stats().recent.iter().filter(|r| r.endpoint == t.endpoint && r.errcode == 45009).count();
        if s["planned"].as_u64().unwrap() <= 2 {
            assert_eq!(s["failures"], 0, "{t}");
        } else {
            assert!((1..=2).contains(&refused), "{t}: 45009 stops the table after the first refusal, got {refused}");
            assert_eq!(s["failures"].as_u64().unwrap(), s["planned"].as_u64().unwrap() - 2, "{t}");
        }
        assert_eq!(
            table_rows(out.path(), t),
            expected_without_failures(t, 1, "2024-01-01", "2024-03-31", &summary),
            "{t}"
        );
    }
    assert_no_secrets(&run, out.path(), &sim, &[]);

    // An account refused by every endpoint: 48001 stops each family for it at its first
    // refusal (a platform is authorised per family), one clear message per family.
    let sim = faulty(Faults { unauthorized: vec![appid(2)], ..Faults::default() }).await;
    let run = extract_env(&sim, out.path(), 2, &[&RANGE[..], &["-vv"]].concat(), &[]).await;
    assert_eq!(run.code, 1);
    let families: BTreeSet<registry::Family> =
        default_tables().iter().filter(|t| t.floor <= d("2024-03-31")).map(|t| t.family).collect();
    let mentions = run.stderr.lines().filter(|l| l.contains("48001") && l.contains("ERROR")).count();
    assert_eq!(mentions, families.len(), "one clear message per family: {}", run.stderr);
    let stats = sim.stats();
    // At most one request per unit that was already under way when a family's first refusal came.
    assert!(
        stats.datacube_requests <= 8 * families.len() as u64,
        "never retried: {} requests",
        stats.datacube_requests
    );
    assert_no_secrets(&run, out.path(), &sim, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_narrower_enforced_span_is_found_and_kept() {
    let mut faults = Faults::default();
    faults.max_span_days.insert("upstream_msg_week".into(), 1);
    faults.max_span_days.insert("upstream_msg_dist_month".into(), 15);
    let sim = faulty(faults).await;
    let out = tempfile::tempdir().unwrap();
    let flags = [
        "--begin",
        "2023-01-01",
        "--end",
        "2024-03-31",
        "--tables",
        "upstream_msg_week,upstream_msg_dist_month",
        "-vv",
    ];
    let run = extract_env(&sim, out.path(), 1, &flags, &[]).await;
    run.assert_ok();
    for t in ["upstream_msg_week", "upstream_msg_dist_month"] {
        let t = registry::find(t).unwrap();
        assert_eq!(table_rows(out.path(), t), expected_rows(t, &[1], "2023-01-01", "2024-03-31"), "{t}");
    }
    let warning =
        run.stderr.lines().find(|l| l.contains("getupstreammsgweek refuses")).expect("a warning names the table");
    assert!(warning.contains("1-day windows work"), "{warning}");
    // Once learnt, the span is kept: far fewer refusals than windows.
    let refused =
        sim.stats().recent.iter().filter(|r| r.endpoint == "getupstreammsgweek" && r.errcode == 61501).count();
    assert!(refused <= 4, "61501 answered {refused} times");
    assert_no_secrets(&run, out.path(), &sim, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_rows_are_counted_and_bad_ones_fail_their_cell() {
    let sim =
        faulty(Faults { out_of_window: Trigger::always(), unknown_code: Trigger::always(), ..Faults::default() }).await;
    let out = tempfile::tempdir().unwrap();
    let run = extract_env(
        &sim,
        out.path(),
        1,
        &["--begin", "2024-03-01", "--end", "2024-03-07", "--tables", "upstream_msg", "-vv"],
        &[],
    )
    .await;
    run.assert_ok();
    let t = &run.summary()["tables"]["upstream_msg"];
    assert_eq!(t["out_of_window_rows"], 1);
    assert_eq!(t["unknown_codes"], 1);
    let rows = table_rows(out.path(), registry::find("upstream_msg").unwrap());
    assert_eq!(
        rows.len(),
        expected_rows(registry::find("upstream_msg").unwrap(), &[1], "2024-03-01", "2024-03-07").len() + 1
    );
    assert!(rows.iter().any(|r| r.2[0] == SimValue::Int(99)), "the unknown code keeps its row");
    assert_no_secrets(&run, out.path(), &sim, &[]);

    let cases: [(Faults, &str); 5] = [
        (Faults { negative_count: Trigger::always(), ..Faults::default() }, "counts must be non-negative"),
        (Faults { non_integer_count: Trigger::always(), ..Faults::default() }, "not an integer"),
        (Faults { absurd: Trigger::always(), ..Faults::default() }, "not an integer|unreadable response"),
        (Faults { huge: Trigger::always(), ..Faults::default() }, "larger than 8 MiB"),
        (Faults { deep: Trigger::always(), ..Faults::default() }, "unreadable response"),
    ];
    for (faults, needle) in cases {
        sim.set_faults(faults).unwrap();
        let out = tempfile::tempdir().unwrap();
        let flags =
            ["--begin", "2024-03-01", "--end", "2024-03-07", "--tables", "upstream_msg", "--max-retries", "1", "-vv"];
        let run = extract_env(&sim, out.path(), 1, &flags, &[]).await;
        assert_eq!(run.code, 1, "{needle}: {}", run.stderr);
        let cells = failed_cells(&run.summary());
        assert_eq!(
            (cells.len(), &cells[0]["begin"], &cells[0]["end"]),
            (1, &"2024-03-01".into(), &"2024-03-07".into())
        );
        let error = cells[0]["error"].as_str().unwrap().to_string();
        assert!(needle.split('|').any(|n| error.contains(n)), "{error} should mention {needle}");
        assert!(error.starts_with("getupstreammsg: "), "{error}");
        assert!(
            read_table(out.path(), registry::find("upstream_msg").unwrap()).is_empty(),
            "nothing written for a bad cell"
        );
        assert_no_secrets(&run, out.path(), &sim, &[]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_minute_limit_waits_for_the_next_minute() {
    let sim = faulty(Faults { per_minute_limit: Some(4), ..Faults::default() }).await;
    let out = tempfile::tempdir().unwrap();
    let flags = ["--begin", "2024-01-01", "--end", "2024-02-25", "--tables", "upstream_msg", "-vv"];
    let run = extract_env(&sim, out.path(), 1, &flags, &[]).await;
    run.assert_ok();
    let t = registry::find("upstream_msg").unwrap();
    assert_eq!(table_rows(out.path(), t), expected_rows(t, &[1], "2024-01-01", "2024-02-25"));
    assert!(sim.stats().recent.iter().any(|r| r.errcode == 45011));
    assert!(run.stderr.contains("45011"), "{}", run.stderr);
    assert_no_secrets(&run, out.path(), &sim, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_given_token_that_is_refused_fails_its_account_with_the_fix() {
    let sim = faulty(Faults { token_expires_after: Some(5), ..Faults::default() }).await;
    let url = format!("{}/cgi-bin/stable_token", sim.base_url());
    let request = serde_json::json!({"grant_type": "client_credential", "appid": appid(1), "secret": secret(1)});
    let answer = post_json(&url, &request).await;
    let token = answer["access_token"].as_str().unwrap().to_string();
    let out = tempfile::tempdir().unwrap();
    let base = sim.base_url();
    let out_dir = out.path().to_str().unwrap();
    let id = appid(1);
    let args = [&["extract", "--output", out_dir, "--api-base", &base, "--appid", &id][..], &RANGE[..], &["-vv"]];
    let run = wxcube(&args.concat(), &[("WECHAT_ACCESS_TOKEN", &token)]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.summary();
    let error = summary["per_account"][0]["error"].as_str().unwrap();
    assert!(error.contains("42001") && error.contains("cannot be renewed: pass a fresh one"), "{error}");
    assert_eq!(sim.stats().token_calls.stable_token, 1, "wxcube never asked for a token itself");
    // The cells answered before the token ran out are written, exactly.
    for t in &default_tables() {
        assert_eq!(
            table_rows(out.path(), t),
            expected_without_failures(t, 1, "2024-01-01", "2024-03-31", &summary),
            "{t}"
        );
    }
    assert_no_secrets(&run, out.path(), &sim, &[]);
}
