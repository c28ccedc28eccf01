//! The user, article and interface families end to end: every row of every table against the
//! simulator's own data, the 2025 article family's `is_delay`, per-table look-backs, and a
//! family the account may not read.
//!
//! The simulated day is in December 2025, after the 2025 article family's first day
//! (2025-11-01), so that every family has data.

use wxcube_registry::{self as registry, Family};
use wxcube_simulator::calendar::DaySpan;
use wxcube_simulator::data;
use wxcube_simulator::faults::Faults;
use wxcube_simulator::{Clock, RunningSimulator, SimConfig};

use crate::support::*;

/// The simulated today; its latest published day is the day before.
const DAY: &str = "2025-12-10";

async fn simulator_on(today: &str, faults: Faults) -> RunningSimulator {
    simulator_with(SimConfig { clock: Clock::noon_on(d(today)), faults, ..SimConfig::default() }).await
}

/// The `is_delay` column of every row of `table` under `out`, by (appid, ref_date).
fn delay_flags(out: &std::path::Path, table: &registry::Table) -> Vec<(String, chrono::NaiveDate, bool)> {
    let column = table.columns.iter().position(|c| c.name == "is_delay").unwrap();
    let mut flags = Vec::new();
    for (rel, batch) in read_table(out, table) {
        let date = d(rel.split("ref_date=").nth(1).unwrap().split('/').next().unwrap());
        let ids = batch.column(table.appid_column()).as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        let delayed = batch.column(column).as_any().downcast_ref::<arrow::array::BooleanArray>().unwrap();
        flags.extend((0..batch.num_rows()).map(|i| (ids.value(i).to_string(), date, delayed.value(i))));
    }
    flags.sort();
    flags.dedup();
    flags
}

/// The first days asked of `endpoint` by account `i`, oldest first.
fn asked_from(sim: &RunningSimulator, endpoint: &str, i: usize) -> Option<String> {
    let stats = sim.stats();
    stats
        .recent
        .iter()
        .filter(|r| r.endpoint == endpoint && r.appid.as_deref() == Some(appid(i).as_str()) && r.errcode == 0)
        .filter_map(|r| r.begin.clone())
        .min()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_of_every_table_matches_the_simulator() {
    let sim = simulator_on(DAY, Faults::default()).await;
    let out = tempfile::tempdir().unwrap();
    let (begin, end) = ("2025-10-27", "2025-11-16");
    for i in [1, 2] {
        let run =
            extract(&sim, out.path(), i, &["--begin", begin, "--end", end, "--tables", "all,article_legacy"]).await;
        run.assert_ok();
        assert_eq!(run.summary()["tables"].as_object().unwrap().len(), 21);
    }
    for table in registry::tables() {
        let want = expected_rows_on(DAY, table, &[1, 2], begin, end);
        assert!(!want.is_empty(), "{table}: the simulator has rows in the range");
        assert_eq!(table_rows(out.path(), table), want, "{table}");
        if table.reports_delay() {
            // Every day of the range is weeks old: final.
            assert!(delay_flags(out.path(), table).iter().all(|(_, _, delayed)| !delayed), "{table}");
        }
    }
    // Nothing of the 2025 family was asked before its first day.
    for t in registry::tables().iter().filter(|t| t.reports_delay()) {
        assert_eq!(asked_from(&sim, &t.endpoint, 1).as_deref(), Some("2025-11-01"), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delayed_days_are_written_flagged_and_fetched_again() {
    let sim = simulator_on(DAY, Faults::default()).await;
    let out = tempfile::tempdir().unwrap();
    let flags = ["--incremental", "--start-date", "2025-12-01", "--tables", "article_read", "--lookback-days", "0"];
    extract(&sim, out.path(), 1, &[&flags[..], &["--today", DAY]].concat()).await.assert_ok();
    let table = registry::find("article_read").unwrap();
    let now = Clock::noon_on(d(DAY)).now();
    // Each day was asked on its own (a span of one day): its flag is the simulator's for it.
    for (_, date, delayed) in delay_flags(out.path(), table) {
        assert_eq!(delayed, data::delayed(DaySpan::new(date, date).unwrap(), now), "{date}");
    }
    let first_delayed = DaySpan::new(d("2025-12-01"), d("2025-12-09"))
        .unwrap()
        .each()
        .find(|&day| data::delayed(DaySpan::new(day, day).unwrap(), now))
        .expect("the latest days are delayed");
    // The next day's run starts again at the first delayed day, not after the last one written.
    let next = simulator_on("2025-12-11", Faults::default()).await;
    let again = ["--incremental", "--tables", "article_read", "--lookback-days", "0", "--today", "2025-12-11"];
    extract(&next, out.path(), 1, &again).await.assert_ok();
    assert_eq!(asked_from(&next, "getarticleread", 1), Some(first_delayed.to_string()));
    // The days fetched again are now final where the simulator says so, and every row is there.
    let want = expected_rows_on("2025-12-11", table, &[1], "2025-12-01", "2025-12-10");
    assert_eq!(table_rows(out.path(), table), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_whose_figures_keep_changing_are_fetched_again_over_their_own_lookback() {
    let sim = simulator_on(DAY, Faults::default()).await;
    let out = tempfile::tempdir().unwrap();
    let tables = "article_total_detail,article_total,user_summary";
    let first = ["--incremental", "--start-date", "2025-10-01", "--tables", tables, "--today", DAY];
    extract(&sim, out.path(), 1, &first).await.assert_ok();
    let next = simulator_on("2025-12-20", Faults::default()).await;
    extract(&next, out.path(), 1, &["--incremental", "--tables", tables, "--today", "2025-12-20"]).await.assert_ok();
    // user_summary: the default --lookback-days (3) before the day after the last complete one
    // (2025-12-09). article_total: its 7 days. article_total_detail: its 30 days, counted from
    // the day before its first delayed day (the simulator delays the two latest).
    assert_eq!(asked_from(&next, "getusersummary", 1).as_deref(), Some("2025-12-07"));
    assert_eq!(asked_from(&next, "getarticletotal", 1).as_deref(), Some("2025-12-03"));
    assert_eq!(asked_from(&next, "getarticletotaldetail", 1).as_deref(), Some("2025-11-08"));
    // The running totals written last are the ones of the second run's day.
    for name in ["article_total", "article_total_detail"] {
        let t = registry::find(name).unwrap();
        assert_eq!(
            table_rows(out.path(), t),
            expected_rows_on("2025-12-20", t, &[1], "2025-10-01", "2025-12-19"),
            "{t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_family_the_account_may_not_read_fails_alone() {
    let mut faults = Faults::default();
    faults.unauthorized_families.insert("user".into(), vec![appid(1)]);
    let sim = simulator_on(DAY, faults).await;
    let out = tempfile::tempdir().unwrap();
    let (begin, end) = ("2025-11-01", "2025-11-14");
    let run =
        extract(&sim, out.path(), 1, &["--begin", begin, "--end", end, "--tables", "user,interface,article"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.summary();
    assert_eq!(summary["status"], "partial");
    for table in registry::tables().iter().filter(|t| summary["tables"].get(&t.name).is_some()) {
        let s = &summary["tables"][&table.name];
        if table.family == Family::User {
            assert_eq!(s["failures"], s["planned"], "{table}: every cell of the family fails");
            // One refusal per table at most: the first 48001 stops the family for the account.
            let refused =
                sim.stats().recent.iter().filter(|r| r.endpoint == table.endpoint && r.errcode == 48001).count();
            assert!(refused <= 1, "{table}: {refused} refusals");
        } else {
            assert_eq!(s["failures"], 0, "{table}");
            assert_eq!(table_rows(out.path(), table), expected_rows_on(DAY, table, &[1], begin, end), "{table}");
        }
    }
    let refusals: Vec<&str> =
        summary["failed"].as_array().unwrap().iter().filter_map(|g| g["error"].as_str()).collect();
    assert!(
        refusals
            .iter()
            .any(|e| e.contains("48001") && e.contains("the user family (permission set 2) is not authorised")),
        "{refusals:?}"
    );
    // One error line for the family, not one per table or window.
    assert_eq!(run.stderr.matches("is not authorised for this account").count(), 1, "{}", run.stderr);
}

/// The simulator's faults strike the new endpoints as they do the message ones: transient
/// faults are retried away, bad data fails exactly its window (named), and a re-run fills it.
#[tokio::test(flavor = "multi_thread")]
async fn faults_on_every_family_lose_nothing_and_bad_data_fails_only_its_window() {
    use wxcube_simulator::faults::Trigger;
    let transient = Faults {
        busy: Trigger::rate(0.05),
        http_5xx: Trigger::rate(0.05),
        bad_json: Trigger::rate(0.05),
        drop: Trigger::rate(0.05),
        seed: 5,
        ..Faults::default()
    };
    let sim = simulator_on(DAY, transient).await;
    let out = tempfile::tempdir().unwrap();
    let (begin, end) = ("2025-11-01", "2025-11-10");
    let flags =
        ["--begin", begin, "--end", end, "--tables", "user,article,interface,article_legacy", "--max-retries", "10"];
    extract(&sim, out.path(), 1, &flags).await.assert_ok();
    for table in registry::tables().iter().filter(|t| t.family != Family::Message) {
        assert_eq!(table_rows(out.path(), table), expected_rows_on(DAY, table, &[1], begin, end), "{table}");
    }
    let struck = sim.stats().faults;
    for kind in ["busy", "http_5xx", "bad_json", "drop"] {
        assert!(struck.get(kind).copied().unwrap_or(0) > 0, "{kind} struck: {struck:?}");
    }

    // A count that is not an integer, in the third answer: that window fails, named; nothing
    // else does, and a re-run without the fault fills it.
    let data = Faults { non_integer_count: Trigger { rate: 0.0, count: 1 }, ..Faults::default() };
    let sim = simulator_on(DAY, data).await;
    let out = tempfile::tempdir().unwrap();
    let flags = ["--begin", begin, "--end", end, "--tables", "article_total_detail", "--concurrency", "1"];
    let run = extract(&sim, out.path(), 1, &flags).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.summary();
    assert_eq!(summary["failures"], 1, "{summary}");
    let error = summary["failed"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("getarticletotaldetail: row 1: "), "{error}");
    let clean = simulator_on(DAY, Faults::default()).await;
    extract(&clean, out.path(), 1, &flags).await.assert_ok();
    let t = registry::find("article_total_detail").unwrap();
    assert_eq!(table_rows(out.path(), t), expected_rows_on(DAY, t, &[1], begin, end));
}
