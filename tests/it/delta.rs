//! `--format delta` without a reader: the format is fixed per output, and a Delta table wxcube
//! would damage is refused before any data request. (The readers' checks, and writers that
//! meet, are in tests/tools/delta.rs.)

use crate::support::*;

const RANGE: [&str; 5] = ["--begin", "2024-03-01", "--end", "2024-03-07", "--tables"];

fn flags<'a>(tables: &'a str, format: &'a str) -> Vec<&'a str> {
    let mut f = RANGE.to_vec();
    f.extend([tables, "--format", format]);
    f
}

#[tokio::test(flavor = "multi_thread")]
async fn an_output_keeps_the_format_it_was_first_written_in() {
    let sim = simulator().await;
    let out = tempfile::tempdir().unwrap();
    extract(&sim, out.path(), 1, &flags("upstream_msg", "parquet")).await.assert_ok();
    let refused = extract(&sim, out.path(), 1, &flags("upstream_msg", "delta")).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("holds parquet tables, not delta: use --format parquet"), "{}", refused.stderr);
    // Without --format, a run takes the output's.
    let delta = tempfile::tempdir().unwrap();
    extract(&sim, delta.path(), 1, &flags("upstream_msg", "delta")).await.assert_ok();
    let again =
        extract(&sim, delta.path(), 2, &RANGE.iter().copied().chain(["upstream_msg"]).collect::<Vec<_>>()).await;
    again.assert_ok();
    assert_eq!(again.summary()["tables"]["upstream_msg"]["delta_version"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delta_table_wxcube_would_damage_is_refused_before_any_request() {
    let sim = simulator().await;
    let out = tempfile::tempdir().unwrap();
    extract(&sim, out.path(), 1, &flags("upstream_msg", "delta")).await.assert_ok();
    let log = out.path().join("upstream_msg/_delta_log/00000000000000000000.json");
    let original = std::fs::read_to_string(&log).unwrap();
    let cases = [
        // Another engine renamed a column.
        (original.replace("msg_count", "msg_total"), "has another schema than wxcube's table upstream_msg"),
        // An engine turned on deletion vectors.
        (
            original.replace(
                r#""minReaderVersion":1,"minWriterVersion":2"#,
                r#""minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors"]"#,
            ),
            "needs Delta writer version 7",
        ),
        (original.replace(r#""configuration":{"#, r#""configuration":{"delta.appendOnly":"true","#), "append-only"),
    ];
    for (log_text, why) in cases {
        assert_ne!(log_text, original, "the case changes the log");
        std::fs::write(&log, &log_text).unwrap();
        let before = sim.stats().datacube_requests;
        let refused = extract(&sim, out.path(), 2, &flags("upstream_msg", "delta")).await;
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        assert!(refused.stderr.contains(why), "{why}: {}", refused.stderr);
        assert_eq!(sim.stats().datacube_requests, before, "refused before any data request");
    }
}
