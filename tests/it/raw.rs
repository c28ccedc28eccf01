//! Raw landing and replay: `--keep-raw` keeps every answer; `wxcube rebuild` derives the same
//! tables from them without calling the API.

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_derives_the_same_rows_without_the_api() {
    let sim = simulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // Every table, the legacy article ones too: a plain `rebuild` takes them all back.
    let every = wxcube_registry::select("all,article_legacy").unwrap();
    for i in [1, 2] {
        let flags = ["--begin", "2024-02-01", "--end", "2024-03-31", "--keep-raw", "--tables", "all,article_legacy"];
        extract(&sim, &out, i, &flags).await.assert_ok();
    }
    // An overlapping later window for account 1, as an incremental look-back would fetch.
    let again = extract(&sim, &out, 1, &["--begin", "2024-03-05", "--end", "2024-03-20", "--keep-raw", "-vv"]).await;
    again.assert_ok();
    let raw: Vec<_> = files(&out).into_iter().filter(|f| f.starts_with("_wxcube/raw")).collect();
    assert!(raw.iter().all(|f| f.to_string_lossy().ends_with(".json.zst")));
    let planned: u64 =
        again.summary()["tables"].as_object().unwrap().values().map(|t| t["planned"].as_u64().unwrap()).sum();
    assert!(raw.len() as u64 > planned, "every answer kept: {} objects", raw.len());
    assert_no_secrets(&again, &out, &sim, &[]);

    // Lose every data file, then rebuild from the raw answers alone.
    for t in &every {
        std::fs::remove_dir_all(out.join(&t.name)).ok();
    }
    sim.reset_stats();
    let rebuild = wxcube(&["rebuild", "--output", out.to_str().unwrap()], &[]).await;
    rebuild.assert_ok();
    assert_eq!(sim.stats().datacube_requests, 0, "rebuild calls nothing");
    for t in &every {
        assert_eq!(table_rows(&out, t), expected_rows(t, &[1, 2], "2024-02-01", "2024-03-31"), "{t}");
    }
    // Nothing changed since: a second rebuild writes nothing.
    let idle = wxcube(&["rebuild", "--output", out.to_str().unwrap()], &[]).await;
    idle.assert_ok();
    assert_eq!(idle.summary()["files_written"], 0);

    let missing = wxcube(&["rebuild", "--output", tmp.path().join("nope").to_str().unwrap()], &[]).await;
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("does not exist"), "{}", missing.stderr);
}
