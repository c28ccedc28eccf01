//! Bad input: one clear line, the right exit code, no secret anywhere.

use crate::support::*;

/// Asserts exit code, a single `error:` line on stderr mentioning `needle`, and no secret.
fn assert_refused(run: &Run, code: i32, needle: &str, secrets: &[&str]) {
    assert_eq!(run.code, code, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {}", run.stderr);
    assert!(errors[0].contains(needle), "{:?} should mention {needle:?}", errors[0]);
    if code == 2 {
        assert_eq!(run.stderr.lines().count(), 1, "only the error line: {}", run.stderr);
        assert!(run.stdout.is_empty(), "nothing on stdout: {}", run.stdout);
    }
    for s in secrets {
        assert!(!run.all_output().contains(s), "secret leaked: {}", run.all_output());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2_with_one_line() {
    let sim = simulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let s1 = secret(1);
    let today_plus = (chrono::Utc::now() + chrono::Days::new(1)).format("%Y-%m-%d").to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--tables", "upstream_msgs", "--begin", "2024-03-01", "--end", "2024-03-02"],
            "unknown table 'upstream_msgs'",
        ),
        (vec!["--begin", "2024-3-01"], "YYYY-MM-DD"),
        (vec!["--begin", "2024-02-30"], "is not a date"),
        (vec!["--begin", "2024-03-05", "--end", "2024-03-01"], "--begin 2024-03-05 is after --end 2024-03-01"),
        (vec!["--begin", "2024-03-05", "--end", &today_plus], "is after the latest complete day"),
        (vec!["--end", "2024-03-01"], "--begin is missing"),
        (vec!["--begin", "2024-03-01", "--concurrency", "0"], "--concurrency"),
        (vec!["--begin", "2024-03-01", "--bogus"], "--bogus"),
        (vec!["--begin", "2024-03-01", "--timeout-secs", "0"], "--timeout-secs"),
        (vec!["--begin", "2024-03-01", "--buckets", "0"], "--buckets"),
        (vec!["--begin", "2024-03-01", "--max-retries", "99"], "--max-retries"),
        (vec!["--begin", "2024-03-01", "--tables", ""], "--tables"),
        (vec!["--begin", "2024-03-01", "--log-format", "xml"], "--log-format"),
        (vec!["--begin", "2010-01-01", "--end", "2014-11-30"], "before 2014-12-01"),
        (vec!["--begin", "2024-03-01", "--secret-file", "/nonexistent/secret"], "give the app secret once"),
        (
            vec!["--incremental", "--start-date", "2024-03-05", "--end", "2024-03-01"],
            "--start-date 2024-03-05 is after the end 2024-03-01",
        ),
        (vec!["--begin", "2024-03-01", "--lease-secs", "1"], "--lease-secs"),
        (vec!["--incremental"], "has no state for article_read yet: give --start-date for its first run"),
        (vec!["--begin", "2024-03-01", "--access-token", "tok-123456"], "not both"),
    ];
    for (extra, needle) in cases {
        let run = extract(&sim, &out, 1, &extra).await;
        assert_refused(&run, 2, needle, &[&s1]);
    }
    assert!(!out.exists(), "nothing written");
    assert_eq!(sim.stats().datacube_requests, 0);

    // Flags that need no simulator.
    let base = sim.base_url();
    let out_s = out.to_str().unwrap();
    let raw_cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--output", "", "--appid", "wx1"], "--output is empty"),
        (vec!["--output", "gs://bucket/x", "--appid", "wx1"], "scheme 'gs' is not supported"),
        (vec!["--output", "s3:///x", "--appid", "wx1"], "has no bucket"),
        (vec!["--output", out_s, "--appid", "wx 1"], "is not an appid"),
        (vec!["--output", out_s, "--appid", "wx1", "--api-base", "ftp://x"], "scheme 'ftp'"),
        (vec!["--output", out_s, "--appid", "wx1", "--api-base", "https://user:pw@x"], "no credentials"),
        (
            vec!["--output", out_s, "--appid", "wx1", "--secret-file", "/nonexistent/secret"],
            "--secret-file /nonexistent/secret",
        ),
    ];
    for (flags, needle) in raw_cases {
        let mut args = vec!["extract", "--begin", "2024-03-01", "--end", "2024-03-02"];
        args.extend(flags);
        if !args.contains(&"--api-base") {
            args.extend(["--api-base", &base]);
        }
        let env: Vec<(&str, &str)> =
            if args.contains(&"--secret-file") { vec![] } else { vec![("WECHAT_SECRET", &s1)] };
        assert_refused(&wxcube(&args, &env).await, 2, needle, &[&s1]);
    }
    assert!(!out.exists(), "nothing written");

    // The demo writes to a local folder: a store's URL is refused, not made a folder named `s3:`.
    for url in ["s3://lake/wxcube-demo-refused", "gs://lake/wxcube-demo-refused"] {
        let run = wxcube(&["demo", "--output", url], &[]).await;
        assert_refused(&run, 2, &format!("the demo writes to a local folder, not {url}"), &[]);
    }
    assert!(!std::path::Path::new("s3:").exists(), "no folder named after the URL");
}

#[tokio::test(flavor = "multi_thread")]
async fn credential_problems_exit_2() {
    let sim = simulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (base, out_s) = (sim.base_url(), out.to_str().unwrap().to_string());
    let common = ["extract", "--output", &out_s, "--api-base", &base, "--begin", "2024-03-01", "--end", "2024-03-02"];
    let args = |extra: &[&'static str]| [&common[..], extra].concat();

    let missing = wxcube(&args(&[]), &[]).await;
    assert_refused(&missing, 2, "no credentials", &[]);

    let id = appid(1);
    let wrong =
        wxcube(&[&args(&["--appid"])[..], &[&id]].concat(), &[("WECHAT_SECRET", "not-the-secret-0123456789")]).await;
    assert_refused(&wrong, 2, "40125", &["not-the-secret-0123456789"]);

    let unknown =
        wxcube(&args(&["--appid", "wx00000000000000ff"]), &[("WECHAT_SECRET", "whatever-secret-value")]).await;
    assert_refused(&unknown, 2, "40013", &["whatever-secret-value"]);

    let token_without_appid = wxcube(&args(&[]), &[("WECHAT_ACCESS_TOKEN", "tok-abcdef-123456")]).await;
    assert_refused(&token_without_appid, 2, "--access-token needs --appid", &["tok-abcdef-123456"]);
    assert!(!out.exists(), "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_base_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();
    let s1 = secret(1);
    let id = appid(1);
    let flags = |base: &'static str| {
        vec![
            "extract",
            "--output",
            out_s,
            "--api-base",
            base,
            "--appid",
            &id,
            "--begin",
            "2024-03-01",
            "--end",
            "2024-03-02",
            "--max-retries",
            "1",
        ]
    };
    let plain = wxcube(&flags("http://api.example.com"), &[("WECHAT_SECRET", &s1)]).await;
    assert_refused(&plain, 2, "plain http", &[&s1]);

    // Nothing listens on port 9 of loopback: the run starts, cannot reach the API, and says so.
    let unreachable = wxcube(&flags("http://127.0.0.1:9"), &[("WECHAT_SECRET", &s1)]).await;
    assert_eq!(unreachable.code, 1, "{}", unreachable.stderr);
    assert!(unreachable.stderr.contains("http://127.0.0.1:9/cgi-bin/stable_token"), "{}", unreachable.stderr);
    assert!(!unreachable.all_output().contains(&s1));
    let summary = unreachable.summary();
    assert_eq!(summary["status"], "partial");
    assert!(summary["failures"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_given_access_token_is_used_as_is_and_never_printed() {
    let sim = simulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (base, out_s, id) = (sim.base_url(), out.to_str().unwrap().to_string(), appid(1));
    let args = [
        "extract",
        "--output",
        &out_s,
        "--api-base",
        &base,
        "--appid",
        &id,
        "--begin",
        "2024-03-01",
        "--end",
        "2024-03-03",
        "-vv",
    ];
    let bogus = wxcube(&args, &[("WECHAT_ACCESS_TOKEN", "bogus-token-value-42")]).await;
    assert_eq!(bogus.code, 1, "{}", bogus.stderr);
    assert!(bogus.stderr.contains("40001"), "{}", bogus.stderr);
    assert!(!bogus.all_output().contains("bogus-token-value-42"), "{}", bogus.all_output());
    assert_eq!(token_calls(&sim.stats()), 0, "a given token is never replaced by a fetched one");
}

/// An S3 output and no AWS credentials anywhere: the S3 client falls back to the instance
/// metadata service, and the one error line says what is missing and how to give it, not only
/// which metadata endpoint failed to answer.
#[tokio::test(flavor = "multi_thread")]
async fn an_s3_output_without_credentials_says_how_to_give_them() {
    let sim = simulator().await;
    // Stand-ins on loopback where nothing listens, for the metadata service and the store.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let closed = format!("http://{closed}");
    let s1 = secret(1);
    let env = [
        ("WECHAT_SECRET", s1.as_str()),
        ("AWS_METADATA_ENDPOINT", &closed),
        ("AWS_ENDPOINT", &closed),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
    ];
    let (base, id) = (sim.base_url(), appid(1));
    let args = ["extract", "--output", "s3://lake/x", "--api-base", &base, "--appid", &id, "--begin", "2024-03-01"];
    let run = wxcube(&args, &env).await;
    assert_refused(&run, 2, "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", &[&s1]);
    assert!(run.stderr.contains("/latest/api/token"), "the endpoint that failed is still named: {}", run.stderr);
    assert_eq!(sim.stats().datacube_requests, 0, "nothing is fetched for an output that cannot be written");
}

/// An API that cannot be reached for three years of one account fails every cell alike: the
/// summary line stays small (schedulers keep it, Airflow in XCom), grouped by table and reason
/// with the whole range, and the run's record lists every cell.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_api_gives_a_small_summary_and_a_full_record() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let id = appid(1);
    let args = [
        "extract",
        "--output",
        out.to_str().unwrap(),
        "--api-base",
        "http://127.0.0.1:9",
        "--appid",
        &id,
        "--begin",
        "2021-01-01",
        "--end",
        "2023-12-31",
        "--max-retries",
        "0",
    ];
    let run = wxcube(&args, &[("WECHAT_SECRET", &secret(1))]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let line = run.stdout.lines().last().unwrap();
    assert!(line.len() < 8_000, "a {} byte summary", line.len());
    let summary = run.summary();
    let cells = summary["failures"].as_u64().unwrap();
    assert!(cells > 1_000, "{cells} cells");
    let groups = summary["failed"].as_array().unwrap();
    // One group per table with cells in 2021–2023: every default table but the 2025 family's.
    let tables = default_tables().iter().filter(|t| t.floor <= d("2023-12-31")).count();
    assert_eq!(groups.len(), tables, "one group per table: {groups:?}");
    for g in groups {
        assert!(g["error"].as_str().unwrap().contains("127.0.0.1:9"), "{g}");
        // One range: the first period's first day in 2021 to the last one's in December 2023.
        assert_eq!(g["ranges"].as_array().unwrap().len(), 1, "{g}");
        assert!(g["ranges"][0][0].as_str().unwrap().starts_with("2021-01-0"), "{g}");
        assert!(g["ranges"][0][1].as_str().unwrap().starts_with("2023-12-"), "{g}");
    }
    assert_eq!(groups.iter().map(|g| g["cells"].as_u64().unwrap()).sum::<u64>(), cells);
    assert_eq!(failed_cells(&summary).len() as u64, cells);
    // The error line says where the full list is.
    assert!(run.stderr.contains("_wxcube/runs/"), "{}", run.stderr);
}
