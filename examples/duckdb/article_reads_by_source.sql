-- Readers of published articles by read source (article family, 2025 endpoints), from the
-- folder `wxcube demo` writes (./wxcube-demo).
-- Run from the folder that holds wxcube-demo:   duckdb < examples/duckdb/article_reads_by_source.sql
-- read_user_source is a list of {user_count, scene_desc}: UNNEST makes one row per source.
-- "全部" (all) is the article's total readers; the other sources overlap, so never add them up
-- to get a total. is_delay marks days the API still revises.
SELECT s.scene_desc,
       count(DISTINCT msgid)  AS articles,
       sum(s.user_count)      AS readers,
       bool_or(is_delay)      AS still_revised
FROM (
    SELECT msgid, is_delay, UNNEST(read_user_source) AS s
    FROM read_parquet('wxcube-demo/article_read/*/*.parquet', hive_partitioning = true)
)
GROUP BY ALL
ORDER BY readers DESC;
