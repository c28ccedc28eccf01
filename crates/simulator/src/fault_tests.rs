//! End-to-end tests of fault injection: each fault, set by count, by rate or at run time,
//! observably happens over real HTTP, and is counted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use serde_json::Value;

use super::faults::{FaultKind, Faults, Trigger};
use super::testing::{Client, Raw, assert_error, config, d};
use super::{SimConfig, SimStats};

/// A week the simulator has data for, on its pinned day.
const BEGIN: &str = "2024-03-05";
const END: &str = "2024-03-11";

async fn with_faults(faults: Faults) -> (Client, String) {
    let c = Client::start(SimConfig { faults, ..config() }).await;
    let token = c.token(1).await;
    (c, token)
}

/// What a careful client would notice about an answer to a request for `BEGIN..=END`: the
/// names of the faults it shows, none for a clean list.
fn observed(answer: &reqwest::Result<Raw>) -> Vec<&'static str> {
    let Ok(raw) = answer else {
        return vec!["drop"];
    };
    if raw.status != 200 {
        return vec!["http_5xx"];
    }
    if raw.body.len() > 8 << 20 {
        return vec!["huge"];
    }
    if raw.body.starts_with(b"{\"list\":[[[") {
        return vec!["deep"];
    }
    match raw.json() {
        Err(_) if raw.text().contains("1e400") => vec!["absurd"],
        Err(_) => vec!["bad_json"],
        Ok(answer) if answer["errcode"] == -1 || answer["errcode"] == "-1" => vec!["busy"],
        Ok(answer) => observed_in_list(answer["list"].as_array().expect("a list")),
    }
}

fn observed_in_list(list: &[Value]) -> Vec<&'static str> {
    let mut seen = Vec::new();
    let any = |f: &dyn Fn(&Value) -> bool| list.iter().any(f);
    let counts = |row: &Value| ["msg_user", "msg_count"].map(|k| row.get(k).cloned().unwrap_or(Value::Null));
    if any(&|r| {
        counts(r).iter().any(|v| v.as_f64().is_some_and(|f| f > 1e18) || v.as_str().is_some_and(|s| s.len() > 20))
    }) {
        seen.push("absurd");
    }
    let date = |r: &Value| d(r["ref_date"].as_str().unwrap());
    if any(&|r| date(r) < d(BEGIN) || date(r) > d(END)) {
        seen.push("out_of_window");
    }
    if any(&|r| r["msg_type"] == 99 || r["count_interval"] == 9) {
        seen.push("unknown_code");
    }
    if any(&|r| r["msg_user"].as_i64().is_some_and(|n| n < 0)) {
        seen.push("negative_count");
    }
    if any(&|r| counts(r).iter().any(|v| *v == 2.5 || *v == "many")) {
        seen.push("non_integer_count");
    }
    seen
}

async fn request(c: &Client, token: &str) -> reqwest::Result<Raw> {
    c.raw_datacube("getupstreammsg", token, BEGIN, END).await
}

#[tokio::test]
async fn every_fault_strikes_by_count_then_stops() {
    for kind in FaultKind::datacube() {
        let mut faults = Faults::default();
        faults.trigger_mut(kind).count = 2;
        let (c, token) = with_faults(faults).await;
        for _ in 0..2 {
            assert_eq!(observed(&request(&c, &token).await), [kind.name()], "{kind}");
        }
        assert_eq!(observed(&request(&c, &token).await), Vec::<&str>::new(), "{kind} is used up");
        assert!(c.sim.faults().trigger(kind).is_off());
        let stats = c.sim.stats();
        assert_eq!(stats.faults, BTreeMap::from([(kind.name().to_string(), 2)]), "{kind}");
        assert_eq!(stats.recent[0].faults, [kind.name()]);
        assert!(stats.recent[2].faults.is_empty());
    }
}

#[tokio::test]
async fn every_fault_strikes_always_at_rate_one() {
    for kind in FaultKind::datacube() {
        let mut faults = Faults::default();
        *faults.trigger_mut(kind) = Trigger::always();
        let (c, token) = with_faults(faults).await;
        for _ in 0..3 {
            assert_eq!(observed(&request(&c, &token).await), [kind.name()], "{kind}");
        }
        assert_eq!(c.sim.stats().faults[kind.name()], 3);
    }
}

#[tokio::test]
async fn rates_strike_about_as_often_as_asked() {
    let faults = Faults {
        busy: Trigger::rate(0.2),
        http_5xx: Trigger::rate(0.1),
        negative_count: Trigger::rate(0.2),
        seed: 3,
        ..Faults::default()
    };
    let (c, token) = with_faults(faults).await;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..500 {
        for name in observed(&request(&c, &token).await) {
            *seen.entry(name).or_default() += 1;
        }
    }
    // 500 draws at 20% give 100 ± 9 (one standard deviation); at 10%, 50 ± 7.
    assert!((70..=130).contains(&seen["busy"]), "{seen:?}");
    assert!((28..=72).contains(&seen["http_5xx"]), "{seen:?}");
    // Data faults only alter lists: 20% of the ~70% that escaped the envelope faults.
    assert!((45..=100).contains(&seen["negative_count"]), "{seen:?}");
    let counted = c.sim.stats().faults;
    assert_eq!(counted.len(), 3, "{counted:?}");
    assert!(seen.iter().all(|(name, n)| counted[*name] == *n as u64), "{seen:?} {counted:?}");
}

#[tokio::test]
async fn the_same_seed_strikes_the_same_requests() {
    let faults =
        Faults { bad_json: Trigger::rate(0.3), unknown_code: Trigger::rate(0.3), seed: 11, ..Faults::default() };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (c, token) = with_faults(faults.clone()).await;
        let mut run = Vec::new();
        for _ in 0..40 {
            run.push(observed(&request(&c, &token).await));
        }
        runs.push(run);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].iter().any(|o| o.is_empty()) && runs[0].iter().any(|o| !o.is_empty()));
}

#[tokio::test]
async fn busy_answers_look_like_the_real_ones() {
    let (c, token) = with_faults(Faults { busy: Trigger::count(3), ..Faults::default() }).await;
    let answers: Vec<Value> = futures_in_order(&c, &token, 3).await.iter().map(|r| r.json().unwrap()).collect();
    assert_error(&answers[0], -1, "system error");
    assert_eq!(answers[1]["errcode"], "-1", "as a string");
    assert!(answers[1]["errmsg"].as_str().unwrap().starts_with("system error rid: "));
    assert_eq!(answers[2], serde_json::json!({"errcode": -1}), "without errmsg");
    let recent = c.sim.stats().recent;
    assert!(recent.iter().all(|r| (r.errcode, r.status, r.rows) == (-1, 200, 0)), "{recent:?}");
}

async fn futures_in_order(c: &Client, token: &str, n: usize) -> Vec<Raw> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(request(c, token).await.unwrap());
    }
    out
}

#[tokio::test]
async fn http_5xx_pages_come_from_nginx() {
    let (c, token) = with_faults(Faults { http_5xx: Trigger::count(2), ..Faults::default() }).await;
    let pages = futures_in_order(&c, &token, 2).await;
    assert_eq!((pages[0].status, pages[1].status), (502, 503));
    for page in &pages {
        assert_eq!(page.content_type.as_deref(), Some("text/html"));
        assert!(page.text().contains("<hr><center>nginx</center>"), "{}", page.text());
    }
    let recent = c.sim.stats().recent;
    assert_eq!((recent[0].status, recent[1].status, recent[1].errcode), (502, 503, -1));
}

#[tokio::test]
async fn bad_json_is_cut_short_empty_or_html() {
    let (c, token) = with_faults(Faults { bad_json: Trigger::count(3), ..Faults::default() }).await;
    let bodies = futures_in_order(&c, &token, 3).await;
    assert!(bodies[0].text().starts_with(r#"{"list":[{"ref_date":"2024-03-05""#), "{}", bodies[0].text());
    assert!(bodies[1].body.is_empty());
    assert!(bodies[2].text().starts_with("<html>"));
    assert!(bodies.iter().all(|b| b.status == 200 && b.json().is_err()));
}

#[tokio::test]
async fn a_dropped_connection_fails_the_client_and_the_next_request_works() {
    let (c, token) = with_faults(Faults { drop: Trigger::count(1), ..Faults::default() }).await;
    let error = request(&c, &token).await.unwrap_err();
    assert!(error.is_body() || error.is_request() || error.is_decode(), "{error:?}");
    let next = request(&c, &token).await.unwrap();
    assert!(next.json().unwrap()["list"].is_array());
    assert_eq!(c.sim.stats().faults["drop"], 1);
}

#[tokio::test]
async fn huge_bodies_pass_eight_mebibytes() {
    let (c, token) = with_faults(Faults { huge: Trigger::count(1), ..Faults::default() }).await;
    let body = request(&c, &token).await.unwrap();
    assert!(body.body.len() > 8 << 20, "{}", body.body.len());
    let list = body.json().unwrap()["list"].as_array().unwrap().len();
    let real = c.datacube("getupstreammsg", &token, BEGIN, END).await["list"].as_array().unwrap().len();
    assert!(list > 100 * real, "{list} rows, {real} real");
}

#[tokio::test]
async fn deep_json_nests_thousands_of_levels() {
    let (c, token) = with_faults(Faults { deep: Trigger::count(1), ..Faults::default() }).await;
    let body = request(&c, &token).await.unwrap();
    let depth = body.body.iter().take_while(|&&b| b != b']').filter(|&&b| b == b'[').count();
    assert!(depth >= 5000, "{depth}");
    assert!(body.json().unwrap_err().to_string().contains("recursion limit"));
}

#[tokio::test]
async fn absurd_counts_take_turns() {
    let (c, token) = with_faults(Faults { absurd: Trigger::count(3), ..Faults::default() }).await;
    let bodies = futures_in_order(&c, &token, 3).await;
    for (body, literal) in bodies.iter().zip([
        r#""msg_count":123456789012345678901234567890,"#,
        r#""msg_count":1e400,"#,
        r#""msg_count":"123456789012345678901234567890","#,
    ]) {
        assert!(body.text().contains(literal), "{}", body.text());
    }
}

#[tokio::test]
async fn data_faults_alter_distributions_too() {
    let faults = Faults {
        out_of_window: Trigger::count(1),
        unknown_code: Trigger::count(1),
        negative_count: Trigger::count(1),
        non_integer_count: Trigger::count(2),
        ..Faults::default()
    };
    let (c, token) = with_faults(faults).await;
    let first = c.datacube("getupstreammsgdist", &token, BEGIN, END).await;
    let list = first["list"].as_array().unwrap();
    assert_eq!(observed_in_list(list), ["out_of_window", "unknown_code", "negative_count", "non_integer_count"]);
    assert!(list[0]["msg_user"].as_i64().is_some_and(|n| n < 0));
    assert_eq!(list[list.len() - 3]["msg_user"], 2.5, "msg_user is the distributions' count");
    let added = &list[list.len() - 1];
    assert_eq!(added["count_interval"], 9);
    assert!(d(added["ref_date"].as_str().unwrap()) >= d(BEGIN), "the unknown code is dated in the window");
    assert!(added["msg_user"].as_i64().is_some_and(|n| n > 0), "with a valid count");
    let second = c.datacube("getupstreammsgdist", &token, BEGIN, END).await;
    assert_eq!(second["list"].as_array().unwrap().last().unwrap()["msg_user"], "many");
    let recent = c.sim.stats().recent;
    assert_eq!((recent[0].errcode, recent[0].rows), (0, list.len()));
}

#[tokio::test]
async fn tokens_expire_after_n_calls() {
    let (c, token) = with_faults(Faults { token_expires_after: Some(2), ..Faults::default() }).await;
    for _ in 0..2 {
        assert!(c.datacube("getupstreammsg", &token, BEGIN, END).await["list"].is_array());
    }
    assert_error(&c.datacube("getupstreammsg", &token, BEGIN, END).await, 42001, "access_token expired");
    let fresh = c.token(1).await;
    assert_ne!(fresh, token, "stable_token replaces a used-up token");
    assert!(c.datacube("getupstreammsg", &fresh, BEGIN, END).await["list"].is_array());
    assert_eq!(c.sim.stats().faults, BTreeMap::from([("token_expired".to_string(), 1)]));
}

#[tokio::test]
async fn a_newer_token_makes_the_old_one_not_latest() {
    let (c, token) = with_faults(Faults { token_overlap_secs: Some(0), ..Faults::default() }).await;
    let other = c.token(2).await;
    let newer = c.classic_token(1).await["access_token"].as_str().unwrap().to_string();
    let not_latest = "invalid credential, access_token is invalid or not latest";
    assert_error(&c.datacube("getupstreammsg", &token, BEGIN, END).await, 40001, not_latest);
    assert!(c.datacube("getupstreammsg", &other, BEGIN, END).await["list"].is_array(), "other accounts unaffected");
    assert_eq!(c.token(1).await, newer, "stable_token hands out the account's current token");
    assert!(c.datacube("getupstreammsg", &newer, BEGIN, END).await["list"].is_array());
    let forced = c.stable_token(1, true).await["access_token"].as_str().unwrap().to_string();
    assert_error(&c.datacube("getupstreammsg", &newer, BEGIN, END).await, 40001, not_latest);
    assert!(c.datacube("getupstreammsg", &forced, BEGIN, END).await["list"].is_array());
    assert_eq!(c.sim.stats().faults["token_not_latest"], 2);
}

#[tokio::test]
async fn without_the_fault_the_two_token_kinds_are_independent() {
    let (c, token) = with_faults(Faults::default()).await;
    c.classic_token(1).await;
    c.classic_token(1).await;
    assert!(c.datacube("getupstreammsg", &token, BEGIN, END).await["list"].is_array());
}

#[tokio::test]
async fn daily_quota_per_account_and_endpoint() {
    let (c, token) = with_faults(Faults { daily_quota: Some(2), ..Faults::default() }).await;
    let other = c.token(2).await;
    for _ in 0..2 {
        assert!(c.datacube("getupstreammsg", &token, BEGIN, END).await["list"].is_array());
    }
    for _ in 0..2 {
        let refused = c.datacube("getupstreammsg", &token, BEGIN, END).await;
        assert_error(&refused, 45009, "reach max api daily quota limit");
    }
    assert!(c.datacube("getupstreammsgdist", &token, BEGIN, END).await["list"].is_array(), "another endpoint");
    assert!(c.datacube("getupstreammsg", &other, BEGIN, END).await["list"].is_array(), "another account");
    assert_eq!(c.sim.stats().faults["daily_quota"], 2);
}

#[tokio::test]
async fn per_minute_limit_per_account() {
    // Stay clear of a minute boundary, which would reset the count mid-test.
    let second = Utc::now().second();
    if second >= 55 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - second))).await;
    }
    let (c, token) = with_faults(Faults { per_minute_limit: Some(3), ..Faults::default() }).await;
    let other = c.token(2).await;
    for endpoint in ["getupstreammsg", "getupstreammsgdist", "getupstreammsg"] {
        assert!(c.datacube(endpoint, &token, BEGIN, END).await["list"].is_array());
    }
    let refused = c.datacube("getupstreammsgdist", &token, BEGIN, END).await;
    assert_error(&refused, 45011, "api minute-quota reach limit mustslower retry next minute");
    assert!(c.datacube("getupstreammsg", &other, BEGIN, END).await["list"].is_array(), "another account");
    assert_eq!(c.sim.stats().faults["per_minute_limit"], 1);
}

#[tokio::test]
async fn unauthorized_for_the_named_account_only() {
    let faults = Faults { unauthorized: vec![super::accounts::demo_appid(2)], ..Faults::default() };
    let (c, token) = with_faults(faults).await;
    let refused = c.token(2).await;
    assert_error(&c.datacube("getupstreammsghour", &refused, END, END).await, 48001, "api unauthorized");
    assert!(c.datacube("getupstreammsghour", &token, END, END).await["list"].is_array());
    assert_eq!(c.sim.stats().faults["unauthorized"], 1);
}

#[tokio::test]
async fn latency_delays_every_datacube_answer() {
    let (c, token) = with_faults(Faults { latency_ms: 150, latency_jitter_ms: 20, ..Faults::default() }).await;
    let started = Instant::now();
    assert!(c.datacube("getupstreammsg", &token, BEGIN, END).await["list"].is_array());
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(2), "{took:?}");
    let started = Instant::now();
    c.token(1).await;
    assert!(started.elapsed() < Duration::from_millis(150), "token requests are not delayed");
    assert_eq!(c.sim.stats().faults["latency"], 1);
}

#[tokio::test]
async fn faults_change_at_run_time_over_http() {
    let (c, token) = with_faults(Faults::default()).await;
    let echo = c.post("/_sim/faults", r#"{"busy":{"count":1},"max_span_days":{"getupstreammsg":3}}"#).await;
    assert_eq!(echo, serde_json::json!({"busy": {"count": 1}, "max_span_days": {"upstream_msg": 3}}));
    let refused = c.datacube("getupstreammsg", &token, BEGIN, END).await;
    assert_error(&refused, 61501, "date range error");
    assert_eq!(c.sim.stats().faults["max_span"], 1);
    assert_eq!(observed(&c.raw_datacube("getupstreammsg", &token, "2024-03-09", END).await), ["busy"]);
    assert_eq!(c.get("/_sim/faults").await, serde_json::json!({"max_span_days": {"upstream_msg": 3}}), "busy used up");
    for (bad, reason) in [
        (r#"{"bussy":{"rate":1}}"#, "unknown field `bussy`"),
        (r#"{"busy":{"rate":1.5}}"#, "busy rate 1.5 is not a probability"),
        (r#"{"max_span_days":{"nope":1}}"#, "not a table"),
        ("not json", "invalid faults"),
    ] {
        let response = c.http.post(c.url("/_sim/faults")).body(bad).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        assert!(response.text().await.unwrap().contains(reason), "{bad}");
    }
    assert_eq!(c.sim.faults().max_span_days["upstream_msg"], 3, "a refused change changes nothing");
    c.post("/_sim/faults", "{}").await;
    assert!(c.datacube("getupstreammsg", &token, BEGIN, END).await["list"].is_array());
}

#[tokio::test]
async fn faults_change_at_run_time_in_process_and_start_afresh() {
    let (c, token) = with_faults(Faults { busy: Trigger::count(5), daily_quota: Some(1), ..Faults::default() }).await;
    assert_eq!(observed(&request(&c, &token).await), ["busy"]);
    assert_eq!(c.sim.faults().busy, Trigger::count(4), "counts go down as they are used");
    let again = Faults { busy: Trigger::count(1), daily_quota: Some(2), ..Faults::default() };
    c.sim.set_faults(again).unwrap();
    assert_eq!(observed(&request(&c, &token).await), ["busy"], "the busy and daily counts started afresh");
    assert_eq!(observed(&request(&c, &token).await), Vec::<&str>::new());
    assert_error(&c.datacube("getupstreammsg", &token, BEGIN, END).await, 45009, "reach max api daily quota limit");
    let wrong = Faults { drop: Trigger::rate(-0.5), ..Faults::default() };
    assert!(c.sim.set_faults(wrong).unwrap_err().to_string().contains("drop rate -0.5"));
    // Spans set at start are the baseline; faults narrow them further and can be lifted.
    let spans = BTreeMap::from([("getupstreammsgweek".to_string(), 1)]);
    let c = Client::start(SimConfig { max_span_days: spans, ..config() }).await;
    let token = c.token(1).await;
    assert_eq!(c.datacube("getupstreammsgweek", &token, BEGIN, END).await["errcode"], 61501);
    c.sim
        .set_faults(Faults { max_span_days: BTreeMap::from([("upstream_msg_week".into(), 30)]), ..Faults::default() })
        .unwrap();
    assert!(c.datacube("getupstreammsgweek", &token, BEGIN, END).await["list"].is_array());
    c.sim.set_faults(Faults::default()).unwrap();
    let week = c.datacube("getupstreammsgweek", &token, BEGIN, END).await;
    assert_eq!(week["errcode"], 61501, "back to the configured span");
    assert_eq!(c.sim.stats().faults["max_span"], 2, "narrowed at start or at run time, both count");
}

#[tokio::test]
async fn answers_without_faults_are_identical() {
    let faults =
        Faults { unauthorized: vec![super::accounts::demo_appid(3)], daily_quota: Some(100), ..Faults::default() };
    let (c, token) = with_faults(faults).await;
    let (a, b) = (request(&c, &token).await.unwrap(), request(&c, &token).await.unwrap());
    assert_eq!(a.body, b.body);
    let (plain, plain_token) = with_faults(Faults::default()).await;
    assert_eq!(request(&plain, &plain_token).await.unwrap().body, a.body);
    assert_eq!(c.sim.stats().faults, BTreeMap::new());
}

#[tokio::test]
async fn issued_tokens_are_all_listed() {
    let c = Client::start(config()).await;
    let stable = c.token(1).await;
    let classic = c.classic_token(2).await["access_token"].as_str().unwrap().to_string();
    let forced = c.stable_token(1, true).await["access_token"].as_str().unwrap().to_string();
    assert_eq!(c.token(1).await, forced);
    assert_eq!(c.sim.issued_tokens(), [stable, classic, forced]);
}

#[tokio::test]
async fn stats_served_over_http_count_faults() {
    let (c, token) = with_faults(Faults { http_5xx: Trigger::count(1), ..Faults::default() }).await;
    request(&c, &token).await.unwrap();
    let stats: SimStats = serde_json::from_value(c.get("/_sim/stats").await).unwrap();
    assert_eq!(stats, c.sim.stats());
    assert_eq!(stats.faults["http_5xx"], 1);
    assert_eq!((stats.recent[0].status, stats.recent[0].faults.as_slice()), (502, ["http_5xx".to_string()].as_slice()));
}
